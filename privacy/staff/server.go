package staff

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/privacy/localsock"
)

// Handler executes a request (*Service).
type Handler interface {
	Do(ctx context.Context, req Request) Response
}

// ServerOptions configure Listen. Every field but Path has a default.
type ServerOptions struct {
	// Path is the socket's path, DATA_DIR/admin.sock. Required. Its dir
	// must not be open to group or others: the dir's owner (and root) are
	// who the server admits.
	Path string
	// Timeout bounds one request, from accepting it to writing the
	// response. Default 2 minutes: a lookup waits for its SMS to go out.
	Timeout time.Duration
	// MaxConcurrent is how many requests run at once; more wait. Default 8.
	MaxConcurrent int
	// Logger gets refused peers and failed connections. Default
	// zerolog.Nop().
	Logger *zerolog.Logger
}

// Server is the admin socket. Create it with Listen, run it with Serve,
// stop it with Shutdown.
type Server struct {
	opts  ServerOptions
	h     Handler
	log   zerolog.Logger
	ln    *net.UnixListener
	owner uint32 // the uid admitted besides root
	sem   chan struct{}

	ctx    context.Context // ends handlers Shutdown stops waiting for
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[*net.UnixConn]struct{}
	wg     sync.WaitGroup
}

// Protocol limits.
const (
	maxRequestLine  = 1 << 20
	maxResponseLine = 64 << 20
	pingTimeout     = 2 * time.Second
)

// maxSocketPath is the longest path a unix socket may have: sun_path holds
// 108 bytes on Linux (104 on the BSDs), the last one a NUL.
const maxSocketPath = 103

// Listen creates the socket at opts.Path (mode 0600) for h. A stale socket
// left by a crash is removed; one a live process answers on is an error
// naming its pid, and so is a path that is not a socket. On systems
// without SO_PEERCRED (anything but Linux) it returns an error wrapping
// errors.ErrUnsupported rather than admit peers it cannot identify.
func Listen(opts ServerOptions, h Handler) (*Server, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("%w: ServerOptions.Path is required", ErrSocket)
	}
	if len(opts.Path) > maxSocketPath {
		return nil, fmt.Errorf("%w: %s is %d bytes; a unix socket's path may have %d: use a shorter data dir path", ErrSocket, opts.Path, len(opts.Path), maxSocketPath)
	}
	if !localsock.Supported {
		return nil, fmt.Errorf("%w: %w: the admin socket needs SO_PEERCRED (Linux)", ErrSocket, errors.ErrUnsupported)
	}
	setDefault(&opts.Timeout, 2*time.Minute)
	setDefault(&opts.MaxConcurrent, 8)
	if opts.Logger == nil {
		l := zerolog.Nop()
		opts.Logger = &l
	}
	ln, owner, err := localsock.Listen(opts.Path, ping)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSocket, err)
	}
	s := &Server{
		opts: opts, h: h, ln: ln, owner: owner,
		log:   opts.Logger.With().Str("component", "admin-socket").Logger(),
		sem:   make(chan struct{}, opts.MaxConcurrent),
		conns: make(map[*net.UnixConn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// ping asks a live socket for its pid; 0 if it does not say.
func ping(c net.Conn) int {
	c.SetDeadline(time.Now().Add(pingTimeout))
	b, _ := json.Marshal(Request{Op: opPing})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return 0
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxRequestLine)).ReadBytes('\n')
	var resp Response
	if err != nil || json.Unmarshal(line, &resp) != nil {
		return 0
	}
	return resp.PID
}

// Path is the socket's path.
func (s *Server) Path() string { return s.opts.Path }

// Serve accepts connections until Shutdown, then returns nil.
func (s *Server) Serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("%w: accept: %w", ErrSocket, err)
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Shutdown stops accepting, removes the socket, and waits for the
// requests in hand until ctx ends; then it cancels them and closes their
// connections. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	var err error
	if first {
		err = s.ln.Close() // unlinks the socket
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrSocket, err)
	}
	return nil
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(s.opts.Timeout))
	uid, pid, err := localsock.PeerCred(c)
	if err != nil || !localsock.Admits(uid, s.owner) {
		s.log.Warn().Err(err).Uint32("uid", uid).Int32("pid", pid).Msg("admin socket: peer refused")
		s.reply(c, Response{Error: fmt.Sprintf("%v: the admin socket admits only its data dir's owner and root", ErrDenied), Kind: "denied"})
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxRequestLine)).ReadBytes('\n')
	if err != nil {
		s.log.Warn().Err(err).Int32("pid", pid).Msg("admin socket: no request")
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		s.reply(c, Response{Error: fmt.Sprintf("%v: not a request line", ErrInvalid), Kind: "invalid"})
		return
	}
	if req.Op == opPing {
		s.reply(c, Response{})
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-s.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	s.reply(c, s.do(ctx, req))
}

// do runs the handler; a panic is an internal error, not a dead service.
func (s *Server) do(ctx context.Context, req Request) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error().Interface("panic", r).Str(logOp, string(req.Op)).Msg("admin socket: handler panicked")
			resp = Response{Error: ErrInternal.Error(), Kind: "internal"}
		}
	}()
	return s.h.Do(ctx, req)
}

func (s *Server) reply(c net.Conn, resp Response) {
	resp.PID = os.Getpid()
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{PID: resp.PID, Error: ErrInternal.Error(), Kind: "internal"})
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		s.log.Warn().Err(err).Msg("admin socket: response not written")
	}
}

// Call sends req to the service listening at path and returns its
// response. It returns ErrNoService, having sent nothing, when nothing
// listens there (no socket, or a stale one); the caller may then do the
// work itself. Any later failure is an error, not ErrNoService: the
// service may have executed the request.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return Response{}, ErrNoService
		}
		return Response{}, fmt.Errorf("%w: %w", ErrSocket, err)
	}
	defer c.Close()
	if err := checkServer(c.(*net.UnixConn), path); err != nil {
		return Response{}, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("%w: send: %w", ErrSocket, errors.Join(ctx.Err(), err))
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxResponseLine)).ReadBytes('\n')
	if err != nil {
		return Response{}, fmt.Errorf("%w: the service did not answer (the request may have been done): %w", ErrSocket, errors.Join(ctx.Err(), err))
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil || resp.PID == 0 {
		return Response{}, fmt.Errorf("%w: not a response line", ErrSocket)
	}
	return resp, nil
}

// checkServer makes sure the process answering on path runs as the owner
// of the socket's dir, or as root, before a number or a code is sent to
// it: the same rule the server applies to its clients.
func checkServer(c *net.UnixConn, path string) error {
	if !localsock.Supported {
		return nil
	}
	uid, pid, owner, err := localsock.ServerCred(c, path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSocket, err)
	}
	if !localsock.Admits(uid, owner) {
		return fmt.Errorf("%w: the process on %s (pid %d) runs as uid %d, not as the data dir's owner", ErrSocket, path, pid, uid)
	}
	return nil
}

// CheckOwner returns an error when the calling process does not run as the
// owner of dir: files it made there (the registry, the access log) would
// be unreadable to the service, which runs as the owner. A missing dir,
// or a system that cannot tell, passes.
func CheckOwner(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	owner, err := localsock.OwnerOf(st)
	if err != nil {
		return nil
	}
	if uid := os.Getuid(); uid >= 0 && uint32(uid) != owner {
		return fmt.Errorf("%w: %s belongs to uid %d; run as that user (now uid %d), so that what this run writes stays readable to the service", ErrDenied, dir, owner, uid)
	}
	return nil
}

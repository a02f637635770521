package feed

// Live ingest: while `roamtrail serve` holds the store, a feeder streams
// events to it over a unix socket in the data dir (DATA_DIR/ingest.sock)
// and the service runs the same Ingest on its open store.
//
// The protocol, client to service:
//
//	{"op":"ingest","batch":65536}\n     one JSON line (Request); or {"op":"purge"}
//	65536\n<65536 bytes>                 the input in chunks: a decimal length line, then the bytes
//	...
//	0\n                                  the end of the input
//
// and service to client, one JSON line each (Reply):
//
//	{"pid":12,"ack":{"line":65537,"offset":3801234,"rows":65536}}   after each synced batch
//	{"pid":12,"done":{...Summary...},"ack":{...the whole input...}} at the end
//	{"pid":12,"error":"...","ack":{...the last ack...}}             instead of done
//
// The end of the input is said, never inferred from the connection
// closing: a feeder killed mid-way leaves a cut line, and a cut line can
// still parse (a region code cut from 110105 to 110 is another region), so
// a connection that ends without "0" fails the ingest and the batch being
// read is dropped. What was acknowledged stays stored; Ingest is idempotent,
// so sending the whole input again, or from the line after the last ack,
// converges to the same store.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/privacy/localsock"
	"github.com/roamtrail/roamtrail/store"
)

// Errors of live ingest.
var (
	// ErrNoService: nothing listens on the socket (no socket, or a stale
	// one). Nothing was sent; the caller may open the data dir itself.
	ErrNoService = errors.New("feed: no service on the ingest socket")
	// ErrProtocol: a malformed request, chunk or reply.
	ErrProtocol = errors.New("feed: protocol error")
	// ErrCutOff: the input ended without its end mark.
	ErrCutOff = errors.New("feed: input cut off before its end")
	// ErrLost: the connection to the service ended before its last reply.
	ErrLost = errors.New("feed: connection to the service lost")
	// ErrDenied: the peer does not run as the data dir's owner or root.
	ErrDenied = errors.New("feed: peer refused")
	// ErrRemote: the service reported a failure (its text follows).
	ErrRemote = errors.New("feed: the service failed")
)

// Ops of a Request.
const (
	OpIngest = "ingest"
	OpPurge  = "purge"
)

// Protocol limits.
const (
	maxRequestLine = 4 << 10
	maxReplyLine   = 1 << 20
	maxChunk       = 1 << 20 // bytes in one chunk
	maxChunkLine   = 16      // "1048576\n" and some slack
	MaxBatch       = 1 << 20 // rows per batch a client may ask for
	clientChunk    = 64 << 10
)

// Request is the first line a client sends.
type Request struct {
	Op string `json:"op"`
	// Batch is the rows per synced batch (ingest); 0 is Options' default.
	Batch int `json:"batch,omitempty"`
}

// Ack says how far the input is durably applied: every line up to and
// including Line, every byte before Offset. Rows is the valid rows among
// them (bad rows are counted in the Summary, never stored).
type Ack struct {
	Line   int64 `json:"line"`
	Offset int64 `json:"offset"`
	Rows   int64 `json:"rows"`
}

// Reply is one line from the service.
type Reply struct {
	PID    int               `json:"pid"`
	Ack    *Ack              `json:"ack,omitempty"`
	Done   *Summary          `json:"done,omitempty"`
	Purged *store.PurgeStats `json:"purged,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// ParseRequest parses a request line.
func ParseRequest(line []byte) (Request, error) {
	var r Request
	if len(line) > maxRequestLine {
		return r, fmt.Errorf("%w: request line too long", ErrProtocol)
	}
	if err := json.Unmarshal(bytes.TrimRight(line, "\r\n"), &r); err != nil {
		return r, fmt.Errorf("%w: request is not a JSON object", ErrProtocol)
	}
	switch r.Op {
	case OpIngest, OpPurge:
	default:
		return r, fmt.Errorf("%w: unknown op %q", ErrProtocol, trunc(r.Op))
	}
	if r.Batch < 0 || r.Batch > MaxBatch {
		return r, fmt.Errorf("%w: batch: want 0..%d", ErrProtocol, MaxBatch)
	}
	return r, nil
}

// ParseReply parses a reply line. A reply names the pid that sent it and
// says something: progress, an end, or an error.
func ParseReply(line []byte) (Reply, error) {
	var r Reply
	if len(line) > maxReplyLine {
		return r, fmt.Errorf("%w: reply line too long", ErrProtocol)
	}
	if err := json.Unmarshal(bytes.TrimRight(line, "\r\n"), &r); err != nil {
		return Reply{}, fmt.Errorf("%w: reply is not a JSON object", ErrProtocol)
	}
	if r.PID <= 0 {
		return Reply{}, fmt.Errorf("%w: reply without a pid", ErrProtocol)
	}
	if r.Ack == nil && r.Done == nil && r.Purged == nil && r.Error == "" {
		return Reply{}, fmt.Errorf("%w: empty reply", ErrProtocol)
	}
	if a := r.Ack; a != nil && (a.Line < 0 || a.Offset < 0 || a.Rows < 0) {
		return Reply{}, fmt.Errorf("%w: negative ack", ErrProtocol)
	}
	return r, nil
}

func trunc(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// ChunkReader reads the chunked input of a live ingest: io.EOF after the
// end mark, ErrCutOff if the stream ends before it, ErrProtocol on a bad
// length line. It counts the lines and bytes it passed on.
type ChunkReader struct {
	br    *bufio.Reader
	left  int // bytes of the current chunk not yet read
	err   error
	lines int64
	bytes int64
	last  byte // the last byte passed on
}

// NewChunkReader reads chunks from br.
func NewChunkReader(br *bufio.Reader) *ChunkReader { return &ChunkReader{br: br} }

func (c *ChunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.left == 0 {
		n, err := c.chunkLen()
		if err != nil {
			c.err = err
			return 0, err
		}
		if n == 0 {
			c.err = io.EOF
			return 0, io.EOF
		}
		c.left = n
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= n
	c.bytes += int64(n)
	c.lines += int64(bytes.Count(p[:n], []byte{'\n'}))
	if n > 0 {
		c.last = p[n-1]
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = ErrCutOff
		}
		c.err = err
		if n > 0 {
			return n, nil // the error again on the next Read
		}
		return 0, err
	}
	return n, nil
}

// chunkLen reads a chunk's length line.
func (c *ChunkReader) chunkLen() (int, error) {
	var line []byte
	for {
		b, err := c.br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, ErrCutOff
			}
			return 0, err
		}
		if b == '\n' {
			break
		}
		if len(line) >= maxChunkLine || b < '0' || b > '9' {
			return 0, fmt.Errorf("%w: bad chunk length", ErrProtocol)
		}
		line = append(line, b)
	}
	n, err := strconv.Atoi(string(line))
	if err != nil || n > maxChunk {
		return 0, fmt.Errorf("%w: bad chunk length", ErrProtocol)
	}
	return n, nil
}

// End is the position after the whole input: lines as Reader counts them
// (a last line without a newline counts), bytes.
func (c *ChunkReader) End() (line, offset int64) {
	line = c.lines
	if c.bytes > 0 && c.last != '\n' {
		line++
	}
	return line, c.bytes
}

// WriteChunks copies r to w as chunks, each as soon as r returns it (a
// feeder tailing a stream is not held back for a full chunk), and writes
// the end mark at r's EOF.
func WriteChunks(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, maxChunkLine+clientChunk)
	var total int64
	for {
		n, rerr := r.Read(buf[maxChunkLine:])
		if n > 0 {
			// The length line goes right before the data: one write.
			hdr := strconv.AppendInt(nil, int64(n), 10)
			hdr = append(hdr, '\n')
			start := maxChunkLine - len(hdr)
			copy(buf[start:], hdr)
			if _, err := w.Write(buf[start : maxChunkLine+n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if errors.Is(rerr, io.EOF) {
			_, err := w.Write([]byte("0\n"))
			return total, err
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Purger deletes expired visits (store.DB).
type Purger interface {
	Purge(ctx context.Context) (store.PurgeStats, error)
}

// Recorder puts what a live ingest or purge did on the access log, as the
// offline commands do.
type Recorder interface {
	RecordIngest(ctx context.Context, sum Summary, err error) error
	RecordPurge(ctx context.Context, st store.PurgeStats) error
}

// ServerDeps is what the ingest socket works on: the service's open store.
type ServerDeps struct {
	Regions    RegionParser
	Pseudonyms Pseudonymizer
	Store      Store
	Purger     Purger
	Recorder   Recorder
}

// ServerOptions configure Listen. Every field but Path has a default.
type ServerOptions struct {
	// Path is the socket, DATA_DIR/ingest.sock. Required. Its dir must
	// not be open to group or others: its owner (and root) are who the
	// server admits, as on the admin socket.
	Path string
	// Idle bounds the wait for the client's next chunk, and for an ack to
	// be written. Default 2 minutes.
	Idle time.Duration
	// Logger gets refused peers and failed ingests. Default zerolog.Nop().
	Logger *zerolog.Logger
}

// Server is the ingest socket: Listen, Serve, Shutdown.
type Server struct {
	opts  ServerOptions
	deps  ServerDeps
	log   zerolog.Logger
	ln    *net.UnixListener
	owner uint32

	// One ingest at a time: two would only contend for the store's write
	// lock and double the memory held in batches.
	ingestMu sync.Mutex

	ctx    context.Context // ends ingests in hand at Shutdown
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Listen creates the socket at opts.Path, mode 0600. A stale socket left by
// a crash (kill -9) is removed; one a live process answers on is an error.
// Without SO_PEERCRED it returns an error wrapping errors.ErrUnsupported.
func Listen(opts ServerOptions, deps ServerDeps) (*Server, error) {
	if opts.Path == "" {
		return nil, errors.New("feed: ServerOptions.Path is required")
	}
	if !localsock.Supported {
		return nil, fmt.Errorf("feed: the ingest socket needs SO_PEERCRED (Linux): %w", errors.ErrUnsupported)
	}
	if opts.Idle <= 0 {
		opts.Idle = 2 * time.Minute
	}
	if opts.Logger == nil {
		l := zerolog.Nop()
		opts.Logger = &l
	}
	if deps.Regions == nil || deps.Pseudonyms == nil || deps.Store == nil || deps.Purger == nil || deps.Recorder == nil {
		return nil, errors.New("feed: ServerDeps: every field is required")
	}
	ln, owner, err := localsock.Listen(opts.Path, nil)
	if err != nil {
		return nil, fmt.Errorf("feed: ingest socket: %w", err)
	}
	s := &Server{opts: opts, deps: deps, ln: ln, owner: owner, conns: make(map[net.Conn]struct{}),
		log: opts.Logger.With().Str("component", "ingest-socket").Logger()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.opts.Path }

// Serve accepts connections until Shutdown, then returns nil.
func (s *Server) Serve() error {
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
				s.log.Warn().Err(err).Msg("accept failed")
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("feed: ingest socket: accept: %w", err)
		}
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

// Shutdown stops accepting and removes the socket, stops the ingests in
// hand after their current batch (a feeder resumes from its last ack),
// and waits for the purges in hand until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	var err error
	if first {
		err = s.ln.Close()
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("feed: ingest socket: %w", err)
	}
	return nil
}

// idleConn sets a deadline before each read and write: a client that
// stops sending, or stops reading acks, is dropped after Idle. Reads end
// at once when ctx does (Shutdown): the ingest stops after its batch.
type idleConn struct {
	net.Conn
	ctx  context.Context
	idle time.Duration
}

func (c idleConn) Read(p []byte) (int, error) {
	// The deadline first, then ctx: a cancel in between is seen here, and
	// one after sets the deadline back to now (serveConn's AfterFunc).
	c.SetReadDeadline(time.Now().Add(c.idle))
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c idleConn) Write(p []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	conn := idleConn{c, s.ctx, s.opts.Idle}
	stop := context.AfterFunc(s.ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	uid, pid, err := localsock.PeerCred(c)
	if err != nil || !localsock.Admits(uid, s.owner) {
		s.log.Warn().Err(err).Uint32("uid", uid).Int32("pid", pid).Msg("ingest socket: peer refused")
		s.reply(conn, Reply{Error: ErrDenied.Error() + ": the ingest socket admits only its data dir's owner and root"})
		return
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	line, err := readLine(br, maxRequestLine)
	if err != nil {
		s.log.Warn().Err(err).Int32("pid", pid).Msg("ingest socket: no request")
		return
	}
	req, err := ParseRequest(line)
	if err != nil {
		s.reply(conn, Reply{Error: err.Error()})
		return
	}
	switch req.Op {
	case OpPurge:
		s.purge(conn)
	case OpIngest:
		s.ingest(conn, br, req)
	}
}

func (s *Server) purge(conn net.Conn) {
	// A purge is bounded (one range deletion and compaction): it runs to
	// its end even through Shutdown, which waits for it.
	ctx := context.WithoutCancel(s.ctx)
	st, err := s.deps.Purger.Purge(ctx)
	if err == nil {
		if lerr := s.deps.Recorder.RecordPurge(ctx, st); lerr != nil {
			s.reply(conn, Reply{Error: fmt.Sprintf("purged, but the access log did not record it: %v", lerr)})
			return
		}
		s.reply(conn, Reply{Purged: &st})
		return
	}
	s.reply(conn, Reply{Error: err.Error()})
}

// countingStore counts the rows of the batches applied: Ingest calls
// Progress right after Apply, on the same goroutine.
type countingStore struct {
	Store
	rows int64
}

func (c *countingStore) Apply(ctx context.Context, b []store.Sighting, cp *store.Checkpoint) (store.ApplyStats, error) {
	st, err := c.Store.Apply(ctx, b, cp)
	if err == nil {
		c.rows += int64(len(b))
	}
	return st, err
}

func (s *Server) ingest(conn net.Conn, br *bufio.Reader, req Request) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	s.ingestMu.Lock()
	defer s.ingestMu.Unlock()
	cs := &countingStore{Store: s.deps.Store}
	var (
		last   Ack
		ackErr error
	)
	in := NewChunkReader(br)
	sum, err := Ingest(ctx, in, s.deps.Regions, s.deps.Pseudonyms, cs, Options{
		BatchSize: req.Batch,
		Progress: func(lines, bytes int64) {
			last = Ack{Line: lines, Offset: bytes, Rows: cs.rows}
			if ackErr == nil {
				if ackErr = s.reply(conn, Reply{Ack: &last}); ackErr != nil {
					cancel() // nobody to tell: stop reading
				}
			}
		},
	})
	if err != nil && s.ctx.Err() != nil {
		err = fmt.Errorf("the service is shutting down: %w", err)
	}
	lerr := s.deps.Recorder.RecordIngest(context.WithoutCancel(ctx), sum, err)
	if err != nil {
		s.log.Warn().Err(err).Int64("acked_line", last.Line).Msg("live ingest stopped")
		if lerr != nil {
			err = errors.Join(err, fmt.Errorf("access log: %w", lerr))
		}
		s.reply(conn, Reply{Error: err.Error(), Ack: &last})
		return
	}
	if lerr != nil {
		s.reply(conn, Reply{Error: fmt.Sprintf("ingested, but the access log did not record it: %v", lerr), Ack: &last})
		return
	}
	end := Ack{Rows: cs.rows}
	end.Line, end.Offset = in.End()
	s.reply(conn, Reply{Done: &sum, Ack: &end})
}

func (s *Server) reply(w io.Writer, r Reply) error {
	r.PID = os.Getpid()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one line of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max {
			return nil, fmt.Errorf("%w: line too long", ErrProtocol)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// Client is a connection to the service's ingest socket.
type Client struct {
	c   *net.UnixConn
	pid int // the server's, from SO_PEERCRED
}

// Dial connects to the service at path. It returns ErrNoService, having
// sent nothing, when nothing listens there; and refuses a service that
// does not run as the owner of the socket's dir, or root.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, ErrNoService
		}
		return nil, fmt.Errorf("feed: ingest socket: %w", err)
	}
	uc := c.(*net.UnixConn)
	cl := &Client{c: uc}
	if localsock.Supported {
		uid, pid, owner, err := localsock.ServerCred(uc, path)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("feed: ingest socket: %w", err)
		}
		if !localsock.Admits(uid, owner) {
			c.Close()
			return nil, fmt.Errorf("%w: the process on %s (pid %d) runs as uid %d, not as the data dir's owner", ErrDenied, path, pid, uid)
		}
		cl.pid = int(pid)
	}
	return cl, nil
}

// PID is the service's process id.
func (cl *Client) PID() int { return cl.pid }

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

// IngestResult is what a live ingest came to.
type IngestResult struct {
	Summary Summary // the service's, when Err is nil
	Acked   Ack     // how far the input is durably applied
	PID     int     // the service that applied it
}

// Ingest streams r to the service and returns when it said the whole
// input is applied (or failed). onAck, if set, sees every ack. On an error
// Acked still says how far the input is durable; ErrLost means the
// connection ended without an answer.
func (cl *Client) Ingest(ctx context.Context, r io.Reader, batch int, onAck func(Ack)) (IngestResult, error) {
	defer cl.c.Close()
	res := IngestResult{PID: cl.pid}
	stop := context.AfterFunc(ctx, func() { cl.c.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(Request{Op: OpIngest, Batch: batch})
	if _, err := cl.c.Write(append(b, '\n')); err != nil {
		return res, fmt.Errorf("%w: %w", ErrLost, errors.Join(ctx.Err(), err))
	}
	werr := make(chan error, 1)
	go func() {
		_, err := WriteChunks(cl.c, r)
		if err != nil && !isConnErr(err) {
			// The input failed: end the stream without the end mark, so
			// the service drops what it has not acknowledged and says how
			// far that is.
			cl.c.CloseWrite()
		}
		werr <- err
	}()
	br := bufio.NewReader(cl.c)
	for {
		line, err := readLine(br, maxReplyLine)
		if err != nil {
			if e := <-werr; e != nil && !isConnErr(e) {
				return res, fmt.Errorf("reading the input: %w", e)
			}
			return res, fmt.Errorf("%w: %w", ErrLost, errors.Join(ctx.Err(), err))
		}
		rep, err := ParseReply(line)
		if err != nil {
			return res, err
		}
		res.PID = rep.PID
		if rep.Ack != nil && (rep.Error == "" || rep.Ack.Line > res.Acked.Line) {
			res.Acked = *rep.Ack
		}
		switch {
		case rep.Error != "":
			rerr := fmt.Errorf("%w: %s", ErrRemote, rep.Error)
			select {
			case e := <-werr:
				if e != nil && !isConnErr(e) {
					rerr = fmt.Errorf("reading the input: %w", e)
				}
			default:
			}
			return res, rerr
		case rep.Done != nil:
			res.Summary = *rep.Done
			<-werr
			return res, nil
		case rep.Ack != nil && onAck != nil:
			onAck(*rep.Ack)
		}
	}
}

// Purge asks the service to purge expired visits.
func (cl *Client) Purge(ctx context.Context) (store.PurgeStats, int, error) {
	defer cl.c.Close()
	stop := context.AfterFunc(ctx, func() { cl.c.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(Request{Op: OpPurge})
	if _, err := cl.c.Write(append(b, '\n')); err != nil {
		return store.PurgeStats{}, cl.pid, fmt.Errorf("%w: %w", ErrLost, errors.Join(ctx.Err(), err))
	}
	line, err := readLine(bufio.NewReader(cl.c), maxReplyLine)
	if err != nil {
		return store.PurgeStats{}, cl.pid, fmt.Errorf("%w (the purge may have run): %w", ErrLost, errors.Join(ctx.Err(), err))
	}
	rep, err := ParseReply(line)
	if err != nil {
		return store.PurgeStats{}, cl.pid, err
	}
	if rep.Error != "" {
		return store.PurgeStats{}, rep.PID, fmt.Errorf("%w: %s", ErrRemote, rep.Error)
	}
	if rep.Purged == nil {
		return store.PurgeStats{}, rep.PID, fmt.Errorf("%w: no purge result", ErrProtocol)
	}
	return *rep.Purged, rep.PID, nil
}

// isConnErr tells a failure of the connection from a failure of the input.
func isConnErr(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrDeadlineExceeded)
}

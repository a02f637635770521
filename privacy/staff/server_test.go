//go:build linux

package staff

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer listens in a fresh dir of mode 0700 with h and serves until
// the test ends.
func startServer(t *testing.T, h Handler) *Server {
	t.Helper()
	dir := privateDir(t)
	s, err := Listen(ServerOptions{Path: filepath.Join(dir, "admin.sock")}, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

type handlerFunc func(ctx context.Context, req Request) Response

func (f handlerFunc) Do(ctx context.Context, req Request) Response { return f(ctx, req) }

func TestSocketRoundTrip(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent")
	s := startServer(t, h.svc)
	st, err := os.Stat(s.Path())
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, mode %v; want a socket of mode 0600", err, st.Mode())
	}
	ctx := context.Background()
	resp, err := Call(ctx, s.Path(), Request{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15})
	if err != nil || resp.Err() != nil {
		t.Fatalf("Call: %v, %v", err, resp.Err())
	}
	if resp.PID != os.Getpid() || resp.CodeSent == nil || resp.CodeSent.Masked != testMasked {
		t.Fatalf("response %+v", resp)
	}
	code := codeIn(t, h.sms.last(t).Text)
	resp, _ = Call(ctx, s.Path(), Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15, Code: code})
	if resp.Itinerary == nil || len(resp.Itinerary.Places) != 3 {
		t.Fatalf("confirm over the socket: %+v", resp)
	}
	// Errors keep their sentinel across the socket.
	resp, _ = Call(ctx, s.Path(), Request{Op: OpErase, Operator: "eve", Number: testNumber, Ticket: "T-1"})
	if err := resp.Err(); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "eve is not an operator") {
		t.Errorf("a refusal over the socket: %v", err)
	}
	resp, _ = Call(ctx, s.Path(), Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15, Code: code})
	if err := resp.Err(); !errors.Is(err, ErrCode) {
		t.Errorf("a used code over the socket: %v", err)
	}
}

func TestSocketNoService(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(dir, "admin.sock")
	if _, err := Call(context.Background(), path, Request{Op: OpOperatorsList}); !errors.Is(err, ErrNoService) {
		t.Errorf("no socket: %v, want ErrNoService", err)
	}
	// A stale socket: bound, then its listener gone without unlinking.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Call(context.Background(), path, Request{Op: OpOperatorsList}); !errors.Is(err, ErrNoService) {
		t.Errorf("stale socket: %v, want ErrNoService", err)
	}
	// Listen removes it and takes over.
	s, err := Listen(ServerOptions{Path: path}, handlerFunc(func(ctx context.Context, req Request) Response {
		return Response{Operators: []Operator{}}
	}))
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	go s.Serve()
	defer s.Shutdown(context.Background())
	if _, err := Call(context.Background(), path, Request{Op: OpOperatorsList}); err != nil {
		t.Fatalf("Call: %v", err)
	}
}

func TestListenRefuses(t *testing.T) {
	ok := handlerFunc(func(ctx context.Context, req Request) Response { return Response{} })
	t.Run("live socket", func(t *testing.T) {
		s := startServer(t, ok)
		_, err := Listen(ServerOptions{Path: s.Path()}, ok)
		if !errors.Is(err, ErrSocket) || !strings.Contains(err.Error(), "pid") {
			t.Fatalf("a second Listen on a live socket: %v", err)
		}
		if _, err := Call(context.Background(), s.Path(), Request{Op: OpOperatorsList}); err != nil {
			t.Errorf("the first server was disturbed: %v", err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(privateDir(t), "admin.sock")
		os.WriteFile(path, []byte("x"), 0o600)
		if _, err := Listen(ServerOptions{Path: path}, ok); !errors.Is(err, ErrSocket) {
			t.Fatalf("a file in the way: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "x" {
			t.Error("Listen removed a file that was not a socket")
		}
	})
	t.Run("open dir", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		if _, err := Listen(ServerOptions{Path: filepath.Join(dir, "admin.sock")}, ok); !errors.Is(err, ErrSocket) {
			t.Fatalf("a dir open to others: %v", err)
		}
	})
	t.Run("long path", func(t *testing.T) {
		if _, err := Listen(ServerOptions{Path: "/" + strings.Repeat("d", 120) + "/admin.sock"}, ok); !errors.Is(err, ErrSocket) {
			t.Fatalf("a path too long for a socket: %v", err)
		}
	})
}

func TestSocketShutdownWaits(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	dir := privateDir(t)
	s, err := Listen(ServerOptions{Path: filepath.Join(dir, "admin.sock")}, handlerFunc(func(ctx context.Context, req Request) Response {
		once.Do(func() { close(started) })
		select {
		case <-release:
			return Response{Operators: []Operator{{ID: "done"}}}
		case <-ctx.Done():
			return Response{Error: ctx.Err().Error(), Kind: "internal"}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	got := make(chan Response, 1)
	go func() {
		resp, _ := Call(context.Background(), s.Path(), Request{Op: OpOperatorsList})
		got <- resp
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case <-shut:
		t.Fatal("Shutdown did not wait for the request in hand")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("the socket is still there during shutdown: %v", err)
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if resp := <-got; len(resp.Operators) != 1 {
		t.Errorf("the request in hand got %+v", resp)
	}

	// A Shutdown whose context ends cancels what is left.
	s2, err := Listen(ServerOptions{Path: filepath.Join(dir, "admin2.sock")}, handlerFunc(func(ctx context.Context, req Request) Response {
		<-ctx.Done()
		return Response{}
	}))
	if err != nil {
		t.Fatal(err)
	}
	go s2.Serve()
	go Call(context.Background(), s2.Path(), Request{Op: OpOperatorsList})
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSocketBadLine(t *testing.T) {
	s := startServer(t, handlerFunc(func(ctx context.Context, req Request) Response { panic("boom") }))
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("not json\n"))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	if !strings.Contains(string(buf[:n]), `"kind":"invalid"`) {
		t.Errorf("a bad line got %s", buf[:n])
	}
	// A panicking handler is an internal error, and the server lives on.
	for range 2 {
		resp, err := Call(context.Background(), s.Path(), Request{Op: OpOperatorsList})
		if err != nil || !errors.Is(resp.Err(), ErrInternal) {
			t.Fatalf("a panicking handler: %v, %v", err, resp.Err())
		}
	}
}

// privateDir is a temporary dir of mode 0700, as a data dir is.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

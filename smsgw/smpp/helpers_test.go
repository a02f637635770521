package smpp_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// bound is a generous failure bound, never a performance assertion.
const bound = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t testing.TB) *zerolog.Logger {
	if os.Getenv("SMPP_TEST_LOG") == "" {
		return nil
	}
	l := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	return &l
}

// checkGoroutines fails the test if goroutines started during it are
// still running after its cleanups (registered first so it runs last).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func startSim(t testing.TB, opts smsc.Options) *smsc.Server {
	t.Helper()
	opts.Logger = testLogger(t)
	sim, err := smsc.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sim.Serve(context.Background()) }()
	t.Cleanup(func() {
		sim.Close()
		if err := <-done; !errors.Is(err, smsc.ErrClosed) {
			t.Errorf("sim Serve: %v", err)
		}
	})
	return sim
}

func fastBackoff(int) time.Duration { return 20 * time.Millisecond }

// startSession binds a session to addr and shuts it down at cleanup.
func startSession(t testing.TB, addr string, opts smpp.Options) *smpp.Session {
	t.Helper()
	opts.Addr = addr
	if opts.SystemID == "" {
		opts.SystemID = "roamtrail"
		opts.Password = "secret"
	}
	if opts.Backoff == nil {
		opts.Backoff = fastBackoff
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := smpp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, smpp.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := s.WaitBound(ctx); err != nil {
		t.Fatalf("WaitBound: %v", err)
	}
	return s
}

// inbox collects handler calls.
type inbox struct {
	mu   sync.Mutex
	got  []*smpp.Deliver
	cond chan struct{}
}

func newInbox() *inbox { return &inbox{cond: make(chan struct{})} }

func (b *inbox) add(d *smpp.Deliver) {
	b.mu.Lock()
	b.got = append(b.got, d)
	close(b.cond)
	b.cond = make(chan struct{})
	b.mu.Unlock()
}

func (b *inbox) handler(st smpp.Status) smpp.Handler {
	return func(_ context.Context, d *smpp.Deliver) smpp.Status {
		b.add(d)
		return st
	}
}

func (b *inbox) wait(t testing.TB, n int) []*smpp.Deliver {
	t.Helper()
	deadline := time.After(bound)
	for {
		b.mu.Lock()
		got, ch := append([]*smpp.Deliver(nil), b.got...), b.cond
		b.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited for %d inbound, got %d", n, len(got))
		}
	}
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sub(to, text string) *smpp.Submit {
	return &smpp.Submit{
		Source: smpp.Address{Addr: "10086", TON: 3}, Dest: smpp.Address{Addr: to, TON: 1, NPI: 1},
		ShortMessage: []byte(text),
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

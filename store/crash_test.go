package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/roamtrail/roamtrail/itinerary"
)

// The crash test: a child process applies batches to a real data dir and
// says "acked N" after each Apply returns; the parent kills it with SIGKILL
// at a random moment, reopens the dir and checks that every acknowledged
// batch is there, that nothing of an unacknowledged batch is there without
// its checkpoint, and that re-applying changes nothing.

const (
	crashEnv     = "STORE_CRASH_DIR"
	crashSource  = "crash-feed"
	crashSubs    = 300
	crashPerStep = 250
	crashNow     = "2026-11-27T20:00:00+08:00"
)

// crashOptions are the child's and the parent's: one fixed clock, so that
// every batch falls inside retention in both, and fsyncs spaced as serve
// spaces them (an acknowledged batch waited for its shared fsync).
func crashOptions(tb testing.TB) Options {
	now := mustTime(tb, crashNow)
	return Options{Now: func() time.Time { return now }, Retention: 30, WALMinSyncInterval: 2 * time.Millisecond}
}

// crashBatch is batch n, the same in the child and the parent.
func crashBatch(n int64) []Sighting {
	rng := rand.New(rand.NewPCG(uint64(n), 0xc0ffee))
	regions := []uint32{110100, 130100, 130000, 440, 810000, 310100, 500100, 454}
	b := make([]Sighting, crashPerStep)
	for i := range b {
		b[i] = Sighting{
			Sub:    sub(rng.IntN(crashSubs)),
			Time:   at(today-itinerary.Day(rng.IntN(30)), rng.Uint32N(86400)),
			Region: itinerary.Region(regions[rng.IntN(len(regions))]),
		}
	}
	return b
}

// TestCrashChild is the child process of TestCrash. It resumes from the
// stored checkpoint, as a feed would, and applies batches until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrash")
	}
	ctx := context.Background()
	db, err := Open(ctx, dir, crashOptions(t))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	next, _, err := db.Offset(crashSource)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("resuming %d\n", next)
	for n := next; ; n++ {
		if _, err := db.Apply(ctx, crashBatch(n), &Checkpoint{Source: crashSource, Offset: n + 1}); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", n)
	}
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := int64(-1)
	for round := range 5 {
		// Kill after 1 to 40 acknowledgements, then up to 3 ms more.
		killAfter := 1 + rng.IntN(40)
		delay := time.Duration(rng.IntN(3000)) * time.Microsecond
		last, resumed := runCrashChild(t, dir, killAfter, delay)
		if resumed != acked+1 {
			t.Errorf("round %d: the child resumed at %d, want %d (the batch after the last acknowledged)", round, resumed, acked+1)
		}
		if last < acked {
			t.Fatalf("round %d: acknowledgements went backwards: %d after %d", round, last, acked)
		}
		acked = last

		db, err := Open(ctx, dir, crashOptions(t))
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		next, ok, err := db.Offset(crashSource)
		if err != nil || !ok {
			t.Fatalf("round %d: Offset = %d, %v, %v", round, next, ok, err)
		}
		// Every acknowledged batch is in; at most one more committed
		// before the kill without being acknowledged.
		if next < acked+1 || next > acked+2 {
			t.Fatalf("round %d: checkpoint %d, want %d or %d", round, next, acked+1, acked+2)
		}
		t.Logf("round %d: killed after %d acks + %v; %d batches acknowledged, checkpoint %d", round, killAfter, delay, acked+1, next)

		// The store holds exactly batches 0..next-1: each batch and its
		// checkpoint are one atomic write.
		want := MustOpen(t, "/want", Options{FS: vfs.NewMem(), Now: crashOptions(t).Now, Retention: 30})
		for n := int64(0); n < next; n++ {
			MustApply(t, want, crashBatch(n), nil)
		}
		if got, w := allVisits(t, db, crashSubs), allVisits(t, want, crashSubs); !equalVisits(got, w) {
			t.Fatalf("round %d: the store after a crash differs from batches 0..%d applied cleanly", round, next-1)
		}
		want.Close()

		// Re-applying what was acknowledged converges: nothing to write.
		for n := int64(0); n < next; n++ {
			st, err := db.Apply(ctx, crashBatch(n), nil)
			if err != nil {
				t.Fatal(err)
			}
			if st.Written != 0 {
				t.Fatalf("round %d: re-applying batch %d wrote %d subscriber-days", round, n, st.Written)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		acked = next - 1 // the child resumes from the checkpoint
	}
}

// runCrashChild starts TestCrashChild on dir, kills it with SIGKILL delay
// after its killAfter-th acknowledgement, and returns the last batch it
// acknowledged and the batch it resumed at.
func runCrashChild(t *testing.T, dir string, killAfter int, delay time.Duration) (last, resumed int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	last, resumed = -1, -1
	n := 0
	killed := false
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "resuming "):
			resumed, _ = strconv.ParseInt(strings.TrimPrefix(line, "resuming "), 10, 64)
		case strings.HasPrefix(line, "acked "):
			a, err := strconv.ParseInt(strings.TrimPrefix(line, "acked "), 10, 64)
			if err != nil || a != max(last+1, resumed) {
				t.Fatalf("child said %q after acknowledging %d", line, last)
			}
			last = a
			if n++; n == killAfter && !killed {
				time.Sleep(delay)
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		default:
			t.Fatalf("child said %q", line)
		}
	}
	// Acknowledgements still in the pipe when the kill landed count too.
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended before it was killed: %v", err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, want SIGKILL", err)
	}
	return last, resumed
}

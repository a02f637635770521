package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var ctx = context.Background()

func open(t *testing.T, dir string, opts Options) *Journal {
	t.Helper()
	j, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

// contents is what Jobs lists, as id=value lines in order.
func contents(t *testing.T, j *Journal) []string {
	t.Helper()
	var out []string
	if err := j.Jobs(ctx, func(id, v []byte) error {
		out = append(out, string(id)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	return out
}

func segs(t *testing.T, dir string) []uint64 {
	t.Helper()
	s, err := segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutUpdateDeleteSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	for _, id := range []string{"c", "a", "b"} {
		if err := j.PutJob(ctx, []byte(id), []byte("v-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.UpdateJob(ctx, []byte("b"), []byte("v-b2")); err != nil {
		t.Fatal(err)
	}
	if err := j.DeleteJob(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := j.DeleteJob(ctx, []byte("missing")); err != nil {
		t.Fatalf("deleting a missing job: %v", err)
	}
	want := []string{"b=v-b2", "c=v-c"}
	if got := contents(t, j); !slices.Equal(got, want) {
		t.Fatalf("before reopen: %q, want %q", got, want)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.PutJob(ctx, []byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after Close: %v, want ErrClosed", err)
	}
	j = open(t, dir, Options{})
	defer j.Close()
	if got := contents(t, j); !slices.Equal(got, want) {
		t.Fatalf("after reopen: %q, want %q", got, want)
	}
	if s := segs(t, dir); len(s) != 1 {
		t.Fatalf("segments after reopen: %v, want one", s)
	}
}

// A job's slices are the caller's: changing them after the call changes
// nothing stored, and Jobs hands out copies.
func TestSlicesAreNotKept(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	defer j.Close()
	id, v := []byte("id"), []byte("value")
	if err := j.PutJob(ctx, id, v); err != nil {
		t.Fatal(err)
	}
	id[0], v[0] = 'X', 'X'
	j.Jobs(ctx, func(id, v []byte) error { v[1] = 'Y'; return nil })
	if got := contents(t, j); !slices.Equal(got, []string{"id=value"}) {
		t.Fatalf("got %q", got)
	}
}

func TestTornTailIsCutAndNotAppendedTo(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	for i := range 10 {
		if err := j.PutJob(ctx, fmt.Appendf(nil, "job%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	last := filepath.Join(dir, segmentName(segs(t, dir)[0]))
	// What a crash mid-write leaves: the first bytes of a record.
	torn := appendRecord(nil, opPut, []byte("torn"), []byte("never acknowledged"))
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(torn[:len(torn)-3])
	f.Close()

	j = open(t, dir, Options{})
	got := contents(t, j)
	if len(got) != 10 || slices.Contains(got, "torn=never acknowledged") {
		t.Fatalf("after a torn tail: %q", got)
	}
	if _, err := os.Stat(last); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the torn segment is still there (%v)", err)
	}
	if err := j.PutJob(ctx, []byte("job10"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = open(t, dir, Options{})
	defer j.Close()
	if n := j.Len(); n != 11 {
		t.Fatalf("%d jobs after a second reopen, want 11", n)
	}
}

// Damage anywhere but at the end of the newest segment is not what a
// crash leaves: Open refuses, and removes nothing.
func TestCorruptOlderSegmentIsRefused(t *testing.T) {
	dir := t.TempDir()
	seg1 := append([]byte(magic), appendRecord(nil, opPut, []byte("a"), []byte("1"))...)
	seg1 = appendRecord(seg1, opPut, []byte("b"), []byte("2"))
	seg1[headerSize+10] ^= 0xff // inside the first record's payload
	seg2 := append([]byte(magic), appendRecord(nil, opPut, []byte("c"), []byte("3"))...)
	for n, b := range map[uint64][]byte{1: seg1, 2: seg2} {
		if err := os.WriteFile(filepath.Join(dir, segmentName(n)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	t.Logf("the error reads: %v", err)
	if s := segs(t, dir); !slices.Equal(s, []uint64{1, 2}) {
		t.Fatalf("segments after a refused Open: %v", s)
	}

	// A file that is not a segment at all is refused the same way.
	os.WriteFile(filepath.Join(dir, segmentName(1)), []byte("PK\x03\x04 some archive"), 0o600)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a foreign file: %v, want ErrCorrupt", err)
	}
}

// A rotation that could not remove an older segment leaves it to be
// replayed before the new one: a job finished before the rotation must not
// come back from it.
func TestLeftoverSegmentBringsNothingBack(t *testing.T) {
	dir := t.TempDir()
	old := append([]byte(magic), appendRecord(nil, opPut, []byte("done"), []byte("1"))...)
	old = appendRecord(old, opPut, []byte("live"), []byte("1"))
	// The new segment: the live jobs, then the buffer the rotation took,
	// holding the delete of the finished job.
	cur := append([]byte(magic), appendRecord(nil, opPut, []byte("live"), []byte("2"))...)
	cur = appendRecord(cur, opDelete, []byte("done"), nil)
	os.WriteFile(filepath.Join(dir, segmentName(7)), old, 0o600)
	os.WriteFile(filepath.Join(dir, segmentName(8)), cur, 0o600)
	j := open(t, dir, Options{})
	defer j.Close()
	if got := contents(t, j); !slices.Equal(got, []string{"live=2"}) {
		t.Fatalf("got %q, want only live=2", got)
	}
	if s := segs(t, dir); !slices.Equal(s, []uint64{9}) {
		t.Fatalf("segments: %v, want [9]", s)
	}
}

// With small segments, the disk holds a segment or two whatever the
// traffic, and what is live survives every rotation and a reopen. The
// older segments are removed by the pruner, off the syncer, so each check
// gives it a moment to catch up (the bound is what is checked, not speed).
func TestRotationBoundsTheDisk(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 4 << 10})
	live := churn(t, j, 3000, func(i int) {
		if i%500 != 0 {
			return
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			s := segs(t, dir)
			if len(s) <= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d jobs: %d segments", i, len(s))
			}
		}
	})
	first := segs(t, dir)[0]
	if first < 10 {
		t.Fatalf("only %d rotations for 3000 jobs in 4 KiB segments", first)
	}
	j.Close()
	j = open(t, dir, Options{SegmentSize: 4 << 10})
	defer j.Close()
	if n := j.Len(); n != len(live) {
		t.Fatalf("%d jobs after reopen, want %d", n, len(live))
	}
	for _, line := range contents(t, j) {
		if id, _, _ := cutEq(line); !live[id] {
			t.Fatalf("job %s came back", id)
		}
	}
}

// churn puts n jobs of 100 bytes and deletes each right after its put but
// one in ten, which stays queued; each, if not nil, is called after job i.
// It returns the ids left queued.
func churn(t *testing.T, j *Journal, n int, each func(i int)) map[string]bool {
	t.Helper()
	live := map[string]bool{}
	value := make([]byte, 100)
	for i := range n {
		id := fmt.Sprintf("job%05d", i)
		if err := j.PutJob(ctx, []byte(id), value); err != nil {
			t.Fatal(err)
		}
		live[id] = true
		if i%10 != 0 {
			if err := j.DeleteJob(ctx, []byte(id)); err != nil {
				t.Fatal(err)
			}
			delete(live, id)
		}
		if each != nil {
			each(i)
		}
	}
	return live
}

// Segments a rotation left behind (a removal that failed, or one a crash
// undid) bring back no finished job when they are replayed before the
// newer ones: a rotation writes the records it took into the new segment
// after the live jobs, deletes included.
func TestLeftoverSegmentsBringNothingBack(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 4 << 10})
	j.removeFile = func(string) error { return errors.New("refused") }
	live := churn(t, j, 3000, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if s := segs(t, dir); len(s) < 10 {
		t.Fatalf("%d segments kept, want every rotation's", len(s))
	}
	j = open(t, dir, Options{SegmentSize: 4 << 10})
	defer j.Close()
	got := contents(t, j)
	for _, line := range got {
		if id, _, _ := cutEq(line); !live[id] {
			t.Errorf("job %s came back", id)
		}
	}
	if len(got) != len(live) {
		t.Fatalf("%d jobs after reopen, want %d", len(got), len(live))
	}
}

func cutEq(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Concurrent writers share fsyncs; every put that returned is there after a
// reopen, and every delete that came before Close is too.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	for _, interval := range []time.Duration{0, time.Millisecond} {
		j := open(t, dir, Options{MinSyncInterval: interval, SegmentSize: 64 << 10})
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := range 200 {
					id := fmt.Appendf(nil, "%d-w%02d-%03d", interval, w, i)
					if err := j.PutJob(ctx, id, id); err != nil {
						t.Error(err)
						return
					}
					if i%2 == 0 {
						if err := j.DeleteJob(ctx, id); err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	j := open(t, dir, Options{})
	defer j.Close()
	if n := j.Len(); n != 2*16*100 {
		t.Fatalf("%d jobs, want %d", n, 2*16*100)
	}
}

func TestSyncJobsMakesDeletesDurable(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	j.PutJob(ctx, []byte("a"), []byte("1"))
	j.PutJob(ctx, []byte("b"), []byte("1"))
	j.DeleteJob(ctx, []byte("a"))
	if err := j.SyncJobs(ctx); err != nil {
		t.Fatal(err)
	}
	j.crash()
	j = open(t, dir, Options{})
	defer j.Close()
	if got := contents(t, j); !slices.Equal(got, []string{"b=1"}) {
		t.Fatalf("got %q", got)
	}
}

// A delete is written to the file at once, without an fsync: a crash of
// the process alone (the kernel keeps the file) does not bring the job
// back, as it did not with the Pebble WAL before.
func TestProcessCrashKeepsUnsyncedDeletes(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	j.PutJob(ctx, []byte("a"), []byte("1"))
	j.PutJob(ctx, []byte("b"), []byte("1"))
	j.DeleteJob(ctx, []byte("a"))
	path := j.f.Name()
	want := int64(headerSize + len(appendRecord(nil, opPut, []byte("a"), []byte("1"))) +
		len(appendRecord(nil, opPut, []byte("b"), []byte("1"))) + len(appendRecord(nil, opDelete, []byte("a"), nil)))
	for deadline := time.Now().Add(5 * time.Second); ; {
		if st, _ := os.Stat(path); st.Size() >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delete was not written within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	j.crash()
	j = open(t, dir, Options{})
	defer j.Close()
	if got := contents(t, j); !slices.Equal(got, []string{"b=1"}) {
		t.Fatalf("got %q", got)
	}
}

// After a failed write the journal refuses every write: what reached the
// disk is unknown.
func TestFailedWriteIsSticky(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	j.PutJob(ctx, []byte("a"), []byte("1"))
	j.mu.Lock()
	j.f.Close() // the next write fails as a bad disk would
	j.mu.Unlock()
	err := j.PutJob(ctx, []byte("b"), []byte("1"))
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("put on a failed file: %v, want ErrFailed", err)
	}
	for _, err := range []error{
		j.PutJob(ctx, []byte("c"), []byte("1")),
		j.UpdateJob(ctx, []byte("a"), []byte("2")),
		j.DeleteJob(ctx, []byte("a")),
		j.SyncJobs(ctx),
	} {
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("after a failure: %v, want ErrFailed", err)
		}
	}
	if err := j.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close after a failure: %v, want ErrFailed", err)
	}
	j = open(t, dir, Options{})
	defer j.Close()
	if got := contents(t, j); !slices.Equal(got, []string{"a=1"}) {
		t.Fatalf("got %q", got)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	defer j.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestRoomRefusesPutsNotDeletes(t *testing.T) {
	full := errors.New("disk full")
	j := open(t, t.TempDir(), Options{Room: func(string) error { return full }})
	defer j.Close()
	if err := j.PutJob(ctx, []byte("a"), []byte("1")); !errors.Is(err, full) {
		t.Fatalf("put: %v", err)
	}
	if err := j.UpdateJob(ctx, []byte("a"), []byte("1")); !errors.Is(err, full) {
		t.Fatalf("update: %v", err)
	}
	if err := j.DeleteJob(ctx, []byte("a")); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func TestBadArguments(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	defer j.Close()
	if err := j.PutJob(ctx, nil, []byte("1")); err == nil {
		t.Fatal("empty id taken")
	}
	if err := j.PutJob(ctx, []byte("a"), make([]byte, maxRecord)); err == nil {
		t.Fatal("oversized value taken")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := j.PutJob(cctx, []byte("a"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a cancelled ctx: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{SegmentSize: -1}); err == nil {
		t.Fatal("negative segment size taken")
	}
}

// A real crash: a child process puts jobs and prints each id once PutJob
// returned; it is killed with SIGKILL mid-stream, and every printed id must
// be there when the journal is opened again.
func TestKillNineKeepsEveryAcknowledgedPut(t *testing.T) {
	if os.Getenv("JOURNAL_CHILD_DIR") != "" {
		child(os.Getenv("JOURNAL_CHILD_DIR"))
		return
	}
	dir := t.TempDir()
	total := 0
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineKeepsEveryAcknowledgedPut$")
		cmd.Env = append(os.Environ(), "JOURNAL_CHILD_DIR="+dir, "JOURNAL_CHILD_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			acked = append(acked, sc.Text())
			if len(acked) == 300+round*97 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for sc.Scan() {
			acked = append(acked, sc.Text()) // what it printed before dying
		}
		cmd.Wait()
		j := open(t, dir, Options{})
		have := map[string]bool{}
		j.Jobs(ctx, func(id, v []byte) error {
			have[string(id)] = true
			if string(id) != string(v) {
				t.Errorf("job %s holds %q", id, v)
			}
			return nil
		})
		j.Close()
		for _, id := range acked {
			if id[0] == '+' && !have[id[1:]] {
				t.Fatalf("round %d: job %s was acknowledged and is gone", round, id[1:])
			}
		}
		total += len(acked)
	}
	t.Logf("%d acknowledged writes over 5 kills, none lost", total)
}

// child writes jobs from 8 goroutines with small segments (so that kills
// land in rotations too), deleting three in four, and prints "+id" once a
// put returned.
func child(dir string) {
	j, err := Open(dir, Options{SegmentSize: 8 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-%06d", os.Getenv("JOURNAL_CHILD_ROUND"), g, i)
				if err := j.PutJob(ctx, []byte(id), []byte(id)); err != nil {
					os.Exit(3)
				}
				if i%4 != 0 {
					j.DeleteJob(ctx, []byte(id))
					continue
				}
				mu.Lock()
				fmt.Fprintln(w, "+"+id)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func BenchmarkPutDelete(b *testing.B) {
	for _, interval := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("interval=%s", interval), func(b *testing.B) {
			j, err := Open(b.TempDir(), Options{MinSyncInterval: interval})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			value := make([]byte, 120)
			b.SetParallelism(32) // as many MOs as the gateway takes at once
			var n sync.Mutex
			seq := 0
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n.Lock()
					seq++
					id := fmt.Appendf(nil, "%032x", seq)
					n.Unlock()
					if err := j.PutJob(ctx, id, value); err != nil {
						b.Error(err)
						return
					}
					j.DeleteJob(ctx, id)
				}
			})
		})
	}
}

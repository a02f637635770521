package feed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/feed"
)

var (
	_ feed.Store         = (*store.DB)(nil)
	_ feed.Pseudonymizer = (*privacy.Pseudonymizer)(nil)
	_ feed.RegionParser  = (*itinerary.Catalog)(nil)
)

const nowString = "2026-11-27T20:00:00+08:00"

// env is what an ingest test needs: the catalog, a pseudonymizer, a clock
// and a real store on disk.
type env struct {
	catalog *itinerary.Catalog
	ps      *privacy.Pseudonymizer
	now     time.Time
	dir     string
	opts    store.Options
	db      *store.DB
}

// MustEnv opens a store on a fresh directory under a pseudonym key of its
// own, with the clock at nowString.
func MustEnv(tb testing.TB) *env {
	tb.Helper()
	catalog, err := itinerary.NewCatalog()
	if err != nil {
		tb.Fatal(err)
	}
	key, err := privacy.LoadOrCreateKey(filepath.Join(tb.TempDir(), "pseudonym.key"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	ps, err := privacy.NewPseudonymizer(key)
	if err != nil {
		tb.Fatal(err)
	}
	now, err := time.Parse(time.RFC3339, nowString)
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{catalog: catalog, ps: ps, now: now, dir: filepath.Join(tb.TempDir(), "data")}
	e.opts = store.Options{Now: func() time.Time { return e.now }, Retention: 30, KeyFingerprint: ps.Fingerprint()}
	e.db = e.mustOpen(tb)
	return e
}

func (e *env) mustOpen(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), e.dir, e.opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func (e *env) ingest(tb testing.TB, in string, o feed.Options) (feed.Summary, error) {
	tb.Helper()
	return feed.Ingest(context.Background(), strings.NewReader(in), e.catalog, e.ps, e.db, o)
}

func (e *env) mustIngest(tb testing.TB, in string, o feed.Options) feed.Summary {
	tb.Helper()
	sum, err := e.ingest(tb, in, o)
	if err != nil {
		tb.Fatalf("Ingest: %v", err)
	}
	return sum
}

// visits returns the visits of a number over the last 30 days.
func (e *env) visits(tb testing.TB, number string) []itinerary.Visit {
	tb.Helper()
	n, err := msisdn.Parse(number)
	if err != nil {
		tb.Fatal(err)
	}
	w := itinerary.LastDays(e.now, e.db.Location(), 30)
	vs, err := e.db.Visits(context.Background(), e.ps.Pseudonym(n), w, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

// csvFeed is a feed with a header and the given rows.
func csvFeed(rows ...string) string {
	return "msisdn,time,region\n" + strings.Join(rows, "\n") + "\n"
}

func TestIngestCounts(t *testing.T) {
	e := MustEnv(t)
	in := csvFeed(
		"13800138000,2026-11-27T08:00:00+08:00,110100", // 2
		"13800138000,2026-11-27T13:00:00+08:00,110100", // 3
		"13800138000,2026-11-20T09:00:00+08:00,440",    // 4
		"13800138001,2026-11-27T09:00:00+08:00,130100", // 5
		"1380013800x,2026-11-27T09:00:00+08:00,130100", // 6 bad number
		"13800138001,2026-11-27T09:00:00,130100",       // 7 no offset
		"13800138001,2026-11-27T09:00:00+08:00,999999", // 8 unknown region
		"13800138001,2026-11-27T09:00:00+08:00",        // 9 short
		"13800138001,2026-10-01T09:00:00+08:00,440",    // 10 too old
		"13800138001,2026-11-29T09:00:00+08:00,440",    // 11 future
		"12345,2026-11-27T09:00:00+08:00,440",          // 12 bad number: not named
		"13800138002,2026-11-27T21:00:00+08:00,454",    // 13
	)
	sum := e.mustIngest(t, in, feed.Options{Source: "counts.csv"})
	want := feed.Summary{
		Rows:     12,
		Rejected: 5,
		Stats:    store.ApplyStats{Accepted: 5, TooOld: 1, Future: 1, Written: 4},
	}
	if sum.Rows != want.Rows || sum.Rejected != want.Rejected || sum.Stats != want.Stats {
		t.Errorf("Summary = %+v, want %+v", sum, want)
	}
	var lines []int64
	for _, re := range sum.Errors {
		lines = append(lines, re.Line)
	}
	if want := []int64{6, 7, 8, 9, 12}; !slices.Equal(lines, want) {
		t.Errorf("errors on lines %v, want %v", lines, want)
	}
	s := sum.String()
	for _, part := range []string{"12 rows", "5 accepted", "5 rejected", "1 too old", "1 in the future", "4 subscriber-days written", "line 6: msisdn", "line 12: msisdn"} {
		if !strings.Contains(s, part) {
			t.Errorf("summary %q lacks %q", s, part)
		}
	}
	if strings.Contains(s, "1380013800") || strings.Contains(s, "12345") {
		t.Errorf("summary %q holds a number", s)
	}
	if off, ok, err := e.db.Offset("counts.csv"); err != nil || !ok || off != int64(len(in)) {
		t.Errorf("Offset = %d, %v, %v; want %d", off, ok, err, len(in))
	}
	day := itinerary.Day(20784)
	if got, want := e.visits(t, "+8613800138000"), []itinerary.Visit{
		{Day: day - 7, Region: 440, First: 9 * 3600, Last: 9 * 3600},
		{Day: day, Region: 110100, First: 8 * 3600, Last: 13 * 3600},
	}; !slices.Equal(got, want) {
		t.Errorf("visits = %v, want %v", got, want)
	}
	if got := e.visits(t, "13800138002"); len(got) != 1 || got[0].Region != 810000 {
		t.Errorf("visits of the third number = %v", got)
	}

	// MaxErrors names more, or fewer.
	sum = e.mustIngest(t, in, feed.Options{MaxErrors: 2})
	if len(sum.Errors) != 2 || sum.Rejected != 5 {
		t.Errorf("MaxErrors 2: %d named of %d", len(sum.Errors), sum.Rejected)
	}
}

func TestIngestTwice(t *testing.T) {
	e := MustEnv(t)
	var rows []string
	for i := range 500 {
		rows = append(rows, fmt.Sprintf("138%08d,2026-11-%02dT%02d:%02d:00+08:00,%s", i%97, 1+i%27, i%24, i%60, []string{"110100", "130100", "440", "454"}[i%4]))
	}
	in := csvFeed(rows...)
	first := e.mustIngest(t, in, feed.Options{BatchSize: 64, Source: "twice"})
	if first.Stats.Written == 0 || first.Stats.Accepted != 500 {
		t.Fatalf("first ingest: %+v", first)
	}
	before := make(map[int][]itinerary.Visit)
	for i := range 97 {
		before[i] = e.visits(t, fmt.Sprintf("138%08d", i))
	}
	second := e.mustIngest(t, in, feed.Options{BatchSize: 100, Source: "twice"})
	if second.Stats.Written != 0 || second.Stats.Accepted != 500 || second.Rows != 500 {
		t.Errorf("second ingest: %+v, want the same rows and nothing written", second.Stats)
	}
	for i := range 97 {
		if got := e.visits(t, fmt.Sprintf("138%08d", i)); !slices.Equal(got, before[i]) {
			t.Errorf("number %d: visits changed on the second ingest", i)
		}
	}
	// And after a reopen, a third time.
	e.db.Close()
	e.db = e.mustOpen(t)
	if third := e.mustIngest(t, in, feed.Options{}); third.Stats.Written != 0 {
		t.Errorf("third ingest after reopen wrote %d", third.Stats.Written)
	}
}

func TestIngestBatchesAndProgress(t *testing.T) {
	e := MustEnv(t)
	var rows []string
	for i := range 100 {
		rows = append(rows, fmt.Sprintf("13800138%03d,2026-11-27T10:00:00+08:00,440", i))
	}
	in := csvFeed(rows...)
	rec := &recordingStore{next: e.db}
	var progress [][2]int64
	sum, err := feed.Ingest(context.Background(), strings.NewReader(in), e.catalog, e.ps, rec, feed.Options{
		BatchSize: 30,
		Source:    "progress",
		Progress:  func(rows, bytes int64) { progress = append(progress, [2]int64{rows, bytes}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{30, 30, 30, 10}; !slices.Equal(rec.sizes, want) {
		t.Errorf("batch sizes %v, want %v", rec.sizes, want)
	}
	if sum.Stats.Written != 100 {
		t.Errorf("written %d, want 100", sum.Stats.Written)
	}
	// Checkpoints and progress move forward and end at the end of input.
	for i := 1; i < len(rec.offsets); i++ {
		if rec.offsets[i] <= rec.offsets[i-1] {
			t.Errorf("checkpoints %v do not increase", rec.offsets)
		}
	}
	if len(rec.offsets) == 0 || rec.offsets[len(rec.offsets)-1] != int64(len(in)) {
		t.Errorf("checkpoints %v do not end at %d", rec.offsets, len(in))
	}
	if len(progress) != 4 || progress[3] != [2]int64{101, int64(len(in))} {
		t.Errorf("progress %v, want 4 calls ending at 101 lines, %d bytes", progress, len(in))
	}

	// A feed of rejected rows only still stores its checkpoint.
	rec = &recordingStore{next: e.db}
	if _, err := feed.Ingest(context.Background(), strings.NewReader(csvFeed("x,y,z")), e.catalog, e.ps, rec, feed.Options{Source: "bad-only"}); err != nil {
		t.Fatal(err)
	}
	if off, ok, _ := e.db.Offset("bad-only"); !ok || off != int64(len(csvFeed("x,y,z"))) {
		t.Errorf("checkpoint of a feed of bad rows = %d, %v", off, ok)
	}
}

// recordingStore passes batches on and records their sizes and checkpoints.
type recordingStore struct {
	next    feed.Store
	mu      sync.Mutex
	sizes   []int
	offsets []int64
}

func (r *recordingStore) Apply(ctx context.Context, batch []store.Sighting, cp *store.Checkpoint) (store.ApplyStats, error) {
	r.mu.Lock()
	if len(batch) > 0 {
		r.sizes = append(r.sizes, len(batch))
	}
	if cp != nil {
		r.offsets = append(r.offsets, cp.Offset)
	}
	r.mu.Unlock()
	return r.next.Apply(ctx, batch, cp)
}

// failingStore fails its n-th Apply (counting from 1).
type failingStore struct {
	n, calls int
	err      error
}

func (f *failingStore) Apply(ctx context.Context, batch []store.Sighting, cp *store.Checkpoint) (store.ApplyStats, error) {
	f.calls++
	if f.calls == f.n {
		return store.ApplyStats{}, f.err
	}
	return store.ApplyStats{Accepted: len(batch)}, nil
}

func TestIngestErrors(t *testing.T) {
	e := MustEnv(t)
	var rows []string
	for i := range 5000 {
		rows = append(rows, fmt.Sprintf("13800138%03d,2026-11-27T10:00:00+08:00,440", i%1000))
	}
	big := csvFeed(rows...)
	storeDown := errors.New("store down")
	readFailed := errors.New("read failed")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		in   io.Reader
		st   feed.Store
		want error
	}{
		{"store fails at once", context.Background(), strings.NewReader(big), &failingStore{n: 1, err: storeDown}, storeDown},
		{"store fails later", context.Background(), strings.NewReader(big), &failingStore{n: 3, err: storeDown}, storeDown},
		{"store fails on the last batch", context.Background(), strings.NewReader(csvFeed(rows[:10]...)), &failingStore{n: 1, err: storeDown}, storeDown},
		{"bad header", context.Background(), strings.NewReader("number,when,where\n1,2,3\n"), &failingStore{}, feed.ErrHeader},
		{"read error", context.Background(), io.MultiReader(strings.NewReader(big[:5000]), iotest.ErrReader(readFailed)), &failingStore{}, readFailed},
		{"canceled", canceled, strings.NewReader(big), e.db, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			sum, err := feed.Ingest(tt.ctx, tt.in, e.catalog, e.ps, tt.st, feed.Options{BatchSize: 100})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Ingest error = %v, want %v", err, tt.want)
			}
			if f, ok := tt.st.(*failingStore); ok && f.n > 0 && f.calls != f.n {
				t.Errorf("Apply called %d times, want %d: no batch after a failure", f.calls, f.n)
			}
			if errors.Is(tt.want, storeDown) && err.Error() != storeDown.Error() {
				t.Errorf("error %q, want only %q: the reader's stop is a consequence, not news", err, storeDown)
			}
			if strings.Contains(err.Error(), "13800138") {
				t.Errorf("error %q holds a number", err)
			}
			_ = sum
			checkNoLeak(t, base)
		})
	}
}

// checkNoLeak waits a little for the goroutine count to fall back to base.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before Ingest:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIngestNoNumberOnDisk is the privacy proof of this layer: a feed with
// canary numbers goes into a real data dir, and afterwards no file under
// the dir holds any of them in any usual spelling.
func TestIngestNoNumberOnDisk(t *testing.T) {
	e := MustEnv(t)
	canaries := []string{"+8613912345678", "+8615887654321", "+8618611112222", "+85291234567", "+12025550143"}
	// Every spelling a feed might use, and every one the HMAC might have
	// been fed: E.164 with and without the plus, national, with spaces.
	var spellings []string
	for _, c := range canaries {
		n, err := msisdn.Parse(c)
		if err != nil {
			t.Fatalf("canary %s: %v", c, err)
		}
		spellings = append(spellings, string(n), n.Digits(), n.National(), "00"+n.Digits())
	}
	var rows []string
	for i, c := range canaries {
		n, _ := msisdn.Parse(c)
		for day := 1; day <= 27; day += 2 {
			// Feed each number in another spelling each day; a US number's
			// digits alone are 11 starting with 1, which msisdn reads as
			// Chinese, so it keeps its plus or 00.
			spelling := []string{string(n), n.Digits(), n.National(), "00" + n.Digits()}[(day+i)%4]
			if strings.HasPrefix(c, "+1") && !strings.HasPrefix(spelling, "+") {
				spelling = "00" + n.Digits()
			}
			rows = append(rows,
				fmt.Sprintf("%s,2026-11-%02dT08:00:00+08:00,110100", spelling, day),
				fmt.Sprintf("%s,2026-11-%02dT13:00:00+08:00,110100", spelling, day),
				fmt.Sprintf("%s,2026-11-%02dT20:00:00+08:00,440", spelling, day))
		}
	}
	sum := e.mustIngest(t, csvFeed(rows...), feed.Options{Source: "canary-feed", BatchSize: 50})
	if sum.Rejected != 0 || sum.Stats.Accepted != len(rows) {
		t.Fatalf("ingest: %s", sum)
	}
	// The data is there to be found: each canary's itinerary.
	for _, c := range canaries {
		if got := e.visits(t, c); len(got) != 28 {
			t.Fatalf("canary %s: %d visits, want 28", c, len(got))
		}
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}

	files := readTree(t, e.dir)
	if len(files) < 3 {
		t.Fatalf("only %d files in the data dir", len(files))
	}
	for name, b := range files {
		for _, s := range spellings {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the number %s", name, msisdn.Mask(s))
			}
		}
	}
	// The scan reads what Pebble wrote: the checkpoint's source name and
	// each canary's pseudonym (its last 12 bytes: a file may store a key's
	// first bytes once for several keys) are found.
	found := func(needle []byte) bool {
		for _, b := range files {
			if bytes.Contains(b, needle) {
				return true
			}
		}
		return false
	}
	if !found([]byte("canary-feed")) {
		t.Error("the checkpoint's source name is in no file: the scan misses Pebble's data")
	}
	for _, c := range canaries {
		n, _ := msisdn.Parse(c)
		ps := e.ps.Pseudonym(n)
		if !found(ps[4:]) {
			t.Errorf("the pseudonym of canary %s is in no file: the scan misses Pebble's data", n.Masked())
		}
	}
}

// readTree reads every file under dir, keyed by its path below dir.
func readTree(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(path, dir)] = b
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

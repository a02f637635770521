package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/roamtrail/roamtrail/itinerary"
)

// testClock is an injectable clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(tb testing.TB, s string) *testClock { return &testClock{t: mustTime(tb, s)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func mustShanghai(tb testing.TB) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// MustOpen opens the store in dir and closes it when the test ends (a
// second Close by the test is harmless).
func MustOpen(tb testing.TB, dir string, o Options) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dir, o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// MustApply applies a batch or stops the test.
func MustApply(tb testing.TB, db *DB, batch []Sighting, cp *Checkpoint) ApplyStats {
	tb.Helper()
	st, err := db.Apply(context.Background(), batch, cp)
	if err != nil {
		tb.Fatalf("Apply: %v", err)
	}
	return st
}

// MustVisits returns all of sub's visits over the last 3660 days.
func MustVisits(tb testing.TB, db *DB, sub itinerary.Pseudonym) []itinerary.Visit {
	tb.Helper()
	today, _ := itinerary.DayOf(db.opts.Now(), db.opts.Location)
	vs, err := db.Visits(context.Background(), sub, itinerary.Window{First: today - 3660, Last: today + 1}, nil)
	if err != nil {
		tb.Fatalf("Visits: %v", err)
	}
	return vs
}

func sub(i int) itinerary.Pseudonym {
	var p itinerary.Pseudonym
	p[0], p[1], p[15] = byte(i), byte(i>>8), 0x5a
	return p
}

// storeKind runs a test on each filesystem a store may live on.
var storeKinds = []struct {
	name string
	dir  func(tb testing.TB) (string, vfs.FS)
}{
	{"mem", func(testing.TB) (string, vfs.FS) { return "/db", vfs.NewMem() }},
	{"disk", func(tb testing.TB) (string, vfs.FS) { return tb.TempDir(), nil }},
}

// visitKey of a test: a day's first and last second in one region.
func v(day itinerary.Day, r itinerary.Region, first, last uint32) itinerary.Visit {
	return itinerary.Visit{Day: day, Region: r, First: first, Last: last}
}

const (
	today     = itinerary.Day(20784) // 2026-11-27
	nowString = "2026-11-27T20:00:00+08:00"
)

// at returns the sighting time of day d at local hh:mm:ss in Shanghai.
func at(d itinerary.Day, hms uint32) time.Time {
	return time.Unix(int64(d)*86400-8*3600+int64(hms), 0)
}

func TestApplyVisits(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir, fs := kind.dir(t)
			clock := newClock(t, nowString)
			opts := Options{FS: fs, Now: clock.Now}
			db := MustOpen(t, dir, opts)
			batch := []Sighting{
				{sub(1), at(today, 8*3600), 110100},
				{sub(1), at(today, 13*3600), 110100},
				{sub(1), at(today, 9*3600), 130100},
				{sub(1), at(today-1, 23*3600), 440},
				{sub(1), at(today-1, 3600), 440},
				{sub(1), at(today-10, 0), 810000},
				{sub(2), at(today, 12*3600), 310100},
				// A UTC time late in the evening is the next local day.
				{sub(3), mustTime(t, "2026-11-26T16:30:00Z"), 440},
			}
			st := MustApply(t, db, batch, nil)
			if want := (ApplyStats{Accepted: 8, Written: 5}); st != want {
				t.Errorf("Apply = %+v, want %+v", st, want)
			}
			wants := map[itinerary.Pseudonym][]itinerary.Visit{
				sub(1): {
					v(today-10, 810000, 0, 0),
					v(today-1, 440, 3600, 23*3600),
					v(today, 110100, 8*3600, 13*3600),
					v(today, 130100, 9*3600, 9*3600),
				},
				sub(2): {v(today, 310100, 12*3600, 12*3600)},
				sub(3): {v(today, 440, 30*60, 30*60)},
				sub(4): nil,
			}
			check := func(t *testing.T, db *DB) {
				t.Helper()
				for s, want := range wants {
					if got := MustVisits(t, db, s); !slices.Equal(got, want) {
						t.Errorf("Visits(%x) =\n%v\nwant\n%v", s[:2], got, want)
					}
				}
				if st := db.Stats(); st.Subscribers != 3 || st.Visits != 6 {
					t.Errorf("Stats = %+v, want 3 subscribers, 6 visits", st)
				}
			}
			check(t, db)

			// A window asks for its days only, and appends to dst.
			dst := []itinerary.Visit{v(1, 1, 1, 1)}
			got, err := db.Visits(context.Background(), sub(1), itinerary.Window{First: today - 1, Last: today - 1}, dst)
			if err != nil || !slices.Equal(got, []itinerary.Visit{v(1, 1, 1, 1), v(today-1, 440, 3600, 23*3600)}) {
				t.Errorf("Visits(yesterday) = %v, %v", got, err)
			}

			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			check(t, MustOpen(t, dir, opts))
		})
	}
}

func TestApplyIdempotent(t *testing.T) {
	clock := newClock(t, nowString)
	db := MustOpen(t, t.TempDir(), Options{Now: clock.Now})
	rng := rand.New(rand.NewPCG(3, 4))
	batch := randomBatch(rng, 500, 50)
	first := MustApply(t, db, batch, nil)
	if first.Written == 0 || first.Accepted != len(batch) {
		t.Fatalf("first Apply = %+v", first)
	}
	before := allVisits(t, db, 50)

	second := MustApply(t, db, batch, nil)
	if want := (ApplyStats{Accepted: len(batch)}); second != want {
		t.Errorf("second Apply = %+v, want %+v", second, want)
	}
	// Any subset, in any order, is already known too.
	part := slices.Clone(batch[100:300])
	rng.Shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] })
	if st := MustApply(t, db, part, nil); st.Written != 0 {
		t.Errorf("a shuffled subset wrote %d subscriber-days", st.Written)
	}
	if after := allVisits(t, db, 50); !equalVisits(before, after) {
		t.Error("re-applying changed the visits")
	}
}

func TestApplyOutOfOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	batch := randomBatch(rng, 2000, 30)

	clock := newClock(t, nowString)
	inOrder := MustOpen(t, t.TempDir(), Options{Now: clock.Now})
	sorted := slices.Clone(batch)
	slices.SortFunc(sorted, func(a, b Sighting) int { return a.Time.Compare(b.Time) })
	MustApply(t, inOrder, sorted, nil)

	// The same sightings reversed, in small batches, and a later batch
	// holding an earlier first sighting: the result is the same.
	shuffled := MustOpen(t, t.TempDir(), Options{Now: clock.Now})
	slices.Reverse(sorted)
	for chunk := range slices.Chunk(sorted, 37) {
		MustApply(t, shuffled, chunk, nil)
	}
	if a, b := allVisits(t, inOrder, 30), allVisits(t, shuffled, 30); !equalVisits(a, b) {
		t.Error("the order of sightings changed the visits")
	}

	// A visit widens both ways and never narrows.
	db := MustOpen(t, t.TempDir(), Options{Now: clock.Now})
	steps := []struct {
		time uint32
		want itinerary.Visit
		wrot int
	}{
		{12 * 3600, v(today, 440, 12*3600, 12*3600), 1},
		{14 * 3600, v(today, 440, 12*3600, 14*3600), 1},
		{9 * 3600, v(today, 440, 9*3600, 14*3600), 1},
		{13 * 3600, v(today, 440, 9*3600, 14*3600), 0},
	}
	for _, s := range steps {
		st := MustApply(t, db, []Sighting{{sub(9), at(today, s.time), 440}}, nil)
		if got := MustVisits(t, db, sub(9)); !slices.Equal(got, []itinerary.Visit{s.want}) || st.Written != s.wrot {
			t.Errorf("after a sighting at %d: %v, written %d; want %v, %d", s.time, got, st.Written, s.want, s.wrot)
		}
	}
}

// randomBatch makes n sightings of subs subscribers over the last 20 days
// and a few regions.
func randomBatch(rng *rand.Rand, n, subs int) []Sighting {
	regions := []itinerary.Region{110100, 130100, 130000, 440, 810000, 310100}
	out := make([]Sighting, n)
	for i := range out {
		out[i] = Sighting{
			Sub:    sub(rng.IntN(subs)),
			Time:   at(today-itinerary.Day(rng.IntN(20)), rng.Uint32N(86400)),
			Region: regions[rng.IntN(len(regions))],
		}
	}
	return out
}

func allVisits(tb testing.TB, db *DB, subs int) [][]itinerary.Visit {
	tb.Helper()
	out := make([][]itinerary.Visit, subs)
	for i := range out {
		out[i] = MustVisits(tb, db, sub(i))
	}
	return out
}

func equalVisits(a, b [][]itinerary.Visit) bool {
	return slices.EqualFunc(a, b, func(x, y []itinerary.Visit) bool { return slices.Equal(x, y) })
}

func TestApplyFutureAndTooOld(t *testing.T) {
	clock := newClock(t, nowString) // 20:00 local
	db := MustOpen(t, "/db", Options{FS: vfs.NewMem(), Now: clock.Now, Retention: 15})
	now := clock.Now()
	batch := []Sighting{
		{sub(1), now.Add(24 * time.Hour), 440},                     // a day ahead: accepted
		{sub(1), now.Add(24*time.Hour + time.Second), 440},         // further: a broken feed
		{sub(1), at(today-14, 0), 110100},                          // the oldest day kept
		{sub(1), at(today-15, 86399), 110100},                      // one second older
		{sub(1), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), 1}, // before the epoch
	}
	st := MustApply(t, db, batch, nil)
	if want := (ApplyStats{Accepted: 2, TooOld: 2, Future: 1, Written: 2}); st != want {
		t.Errorf("Apply = %+v, want %+v", st, want)
	}
	var sum ApplyStats
	sum.Add(st)
	sum.Add(st)
	if want := (ApplyStats{Accepted: 4, TooOld: 4, Future: 2, Written: 4}); sum != want {
		t.Errorf("Add = %+v, want %+v", sum, want)
	}
	// Tomorrow's visit is kept but not in today's window.
	if got := MustVisits(t, db, sub(1)); !slices.Equal(got, []itinerary.Visit{v(today-14, 110100, 0, 0), v(today+1, 440, 20*3600, 20*3600)}) {
		t.Errorf("Visits = %v", got)
	}
}

// scanVisitKeys lists every visit key Pebble still has, tombstoned ones
// excepted, as day and pseudonym.
func scanVisitKeys(tb testing.TB, db *DB) []subDay {
	tb.Helper()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixVisit}, UpperBound: []byte{prefixVisit + 1}})
	if err != nil {
		tb.Fatal(err)
	}
	defer it.Close()
	var out []subDay
	for it.First(); it.Valid(); it.Next() {
		day, s, err := parseVisitKey(it.Key())
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, subDay{s, day})
	}
	if err := it.Error(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// readFiles reads every file under dir, keyed by its path below dir.
func readFiles(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by Pebble since the walk listed it
		}
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

// containing returns the files holding needle.
func containing(files map[string][]byte, needle []byte) []string {
	var out []string
	for name, b := range files {
		if bytes.Contains(b, needle) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// filesContaining returns the files under dir whose bytes contain needle.
func filesContaining(tb testing.TB, dir string, needle []byte) []string {
	tb.Helper()
	return containing(readFiles(tb, dir), needle)
}

// subsOnDisk counts the pseudonyms of subs found in some file under dir,
// by their last 12 bytes (a file may store a key's first bytes once for
// several keys), and names a file of one of them.
func subsOnDisk(tb testing.TB, dir string, subs []itinerary.Pseudonym) (n int, files []string) {
	tb.Helper()
	all := readFiles(tb, dir)
	for _, s := range subs {
		if f := containing(all, s[4:]); len(f) > 0 {
			n, files = n+1, f
		}
	}
	return n, files
}

// eventually retries check for up to five seconds: Pebble deletes the files
// a compaction made obsolete in the background, just after it returns.
func eventually(check func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if check() || time.Now().After(deadline) {
			return check()
		}
	}
}

func TestRetentionAndPurge(t *testing.T) {
	for _, flushed := range []bool{false, true} {
		t.Run(fmt.Sprintf("flushed=%v", flushed), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			clock := newClock(t, nowString)
			opts := Options{Now: clock.Now, Retention: 3}
			db := MustOpen(t, dir, opts)

			// Old subscribers have visits only on days that will expire;
			// their pseudonyms must leave the disk with them. Pseudonyms
			// are random, as real ones are, so that a byte scan can find
			// them in compressed files.
			rng := rand.New(rand.NewPCG(11, 12))
			old, live := randomSubs(rng, 200), randomSubs(rng, 200)
			var batch []Sighting
			for i := range 200 {
				batch = append(batch,
					Sighting{old[i], at(today-2, 3600), 110100},
					Sighting{old[i], at(today-2, 7200), 440},
					Sighting{live[i], at(today, 3600), 130100})
			}
			batch = append(batch, Sighting{old[1], at(today-3, 0), 440}) // already too old
			st := MustApply(t, db, batch, nil)
			if st.TooOld != 1 || st.Accepted != 600 {
				t.Fatalf("Apply = %+v, want 600 accepted, 1 too old", st)
			}
			if flushed {
				if err := db.pdb.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if got := MustVisits(t, db, old[7]); len(got) != 2 {
				t.Fatalf("before expiry: %v", got)
			}

			// Two days on, day today-2 is past retention: never returned,
			// even before a purge.
			clock.Advance(48 * time.Hour)
			if got := MustVisits(t, db, old[7]); len(got) != 0 {
				t.Errorf("an expired visit is returned: %v", got)
			}
			if got := MustVisits(t, db, live[7]); len(got) != 1 {
				t.Errorf("a live visit is missing: %v", got)
			}
			st = MustApply(t, db, []Sighting{{old[7], at(today-2, 0), 110100}}, nil)
			if want := (ApplyStats{TooOld: 1}); st != want {
				t.Errorf("Apply of an expired day = %+v, want %+v", st, want)
			}

			// Before the purge they are on disk, so the scan below would
			// see them if the purge left them.
			if n, _ := subsOnDisk(t, dir, old); n != len(old) {
				t.Fatalf("before Purge only %d of %d expired pseudonyms are on disk: the byte scan misses some", n, len(old))
			}

			ps, err := db.Purge(ctx)
			if err != nil {
				t.Fatalf("Purge: %v", err)
			}
			if ps.MemVisits != 400 || ps.Cutoff != (today).String() {
				t.Errorf("Purge = %+v, want 400 visits dropped, cutoff %v", ps, today)
			}
			if again, err := db.Purge(ctx); err != nil || again.MemVisits != 0 {
				t.Errorf("second Purge = %+v, %v; want nothing to do", again, err)
			}
			for _, k := range scanVisitKeys(t, db) {
				if k.day < today {
					t.Fatalf("after Purge, a key of %v is still in Pebble", k.day)
				}
			}
			if st := db.Stats(); st.Subscribers != 200 || st.Visits != 200 {
				t.Errorf("Stats after purge = %+v, want 200 and 200", st)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			// Reopened, the old days are gone from Pebble and from every
			// file of the data dir.
			db = MustOpen(t, dir, opts)
			keys := scanVisitKeys(t, db)
			if len(keys) != 200 {
				t.Errorf("%d visit keys after reopen, want 200", len(keys))
			}
			for _, k := range keys {
				if k.day < today {
					t.Fatalf("after reopen, a key of %v is still in Pebble", k.day)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if n, files := subsOnDisk(t, dir, old); n != 0 {
				t.Errorf("%d purged pseudonyms are still on disk, e.g. in %v", n, files)
			}
			if n, _ := subsOnDisk(t, dir, live); n != len(live) {
				t.Errorf("only %d of %d live pseudonyms are on disk: the byte scan misses some", n, len(live))
			}
		})
	}
}

// randomSubs returns n random pseudonyms.
func randomSubs(rng *rand.Rand, n int) []itinerary.Pseudonym {
	out := make([]itinerary.Pseudonym, n)
	for i := range out {
		for j := range out[i] {
			out[i][j] = byte(rng.Uint32())
		}
	}
	return out
}

// TestPurgeWhileOpen checks the disk of a running store right after a
// purge, with small memtables so that write-ahead logs come and go: no file
// may keep an expired visit, neither a reused log's tail nor the MANIFEST's
// record of a deleted sstable's first and last key.
func TestPurgeWhileOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString)
	db := MustOpen(t, dir, Options{Now: clock.Now, Retention: 3, MemTableSize: 256 << 10})
	rng := rand.New(rand.NewPCG(13, 14))
	old := randomSubs(rng, 2000)
	batch := make([]Sighting, 0, 2000)
	for _, s := range old {
		batch = append(batch, Sighting{s, at(today-2, 3600), 440})
	}
	MustApply(t, db, batch, nil)
	writeLive := func() {
		for range 20 {
			batch = batch[:0]
			for _, s := range randomSubs(rng, 2000) {
				batch = append(batch, Sighting{s, clock.Now(), 130100})
			}
			MustApply(t, db, batch, nil)
		}
	}
	writeLive()
	if n, _ := subsOnDisk(t, dir, old); n == 0 {
		t.Fatal("before the purge no expired pseudonym is on disk: the scan sees nothing")
	}
	clock.Advance(48 * time.Hour)
	if _, err := db.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	clean := func(when string) {
		t.Helper()
		var n int
		var files []string
		if !eventually(func() bool { n, files = subsOnDisk(t, dir, old); return n == 0 }) {
			t.Errorf("%s, %d expired pseudonyms are on disk, e.g. in %v", when, n, files)
		}
	}
	clean("after Purge")
	// Logs keep being created and retired after the purge: none brings
	// old bytes back.
	for round := range 2 {
		writeLive()
		clean(fmt.Sprintf("round %d after Purge", round))
	}
}

func TestPurgeShrinksDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString)
	db := MustOpen(t, dir, Options{Now: clock.Now, Retention: 2})
	rng := rand.New(rand.NewPCG(7, 8))
	var batch []Sighting
	for i := range 20000 {
		s := sub(rng.IntN(1 << 16))
		s[2], s[3] = byte(i), byte(i>>8)
		batch = append(batch, Sighting{s, at(today-1, rng.Uint32N(86400)), 440})
	}
	MustApply(t, db, batch, nil)
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	before := db.Stats().DiskBytes
	clock.Advance(24 * time.Hour)
	ps, err := db.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 20000 visits of 23 bytes key and 7 value are some 600 KB raw; the
	// files holding them must go. Pebble deletes a compaction's obsolete
	// files just after the compaction returns, so the bytes may take a
	// moment to leave (as TestPurgeWhileOpen allows too).
	if ps.DiskBefore != before {
		t.Errorf("Purge: DiskBefore %d, want %d", ps.DiskBefore, before)
	}
	after := ps.DiskAfter
	for deadline := time.Now().Add(5 * time.Second); after >= before-200_000 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		after = db.Stats().DiskBytes
	}
	if after >= before-200_000 {
		t.Errorf("Purge: disk %d -> %d, want it to shrink by most of 600 KB", before, after)
	}
	if db.Stats().Visits != 0 || len(scanVisitKeys(t, db)) != 0 {
		t.Errorf("after purge: %+v, %d keys", db.Stats(), len(scanVisitKeys(t, db)))
	}
}

func TestErase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString)
	opts := Options{Now: clock.Now, Retention: 5}
	db := MustOpen(t, dir, opts)
	var batch []Sighting
	for _, s := range []int{1, 2, 3} {
		batch = append(batch,
			Sighting{sub(s), at(today-4, 0), 440},
			Sighting{sub(s), at(today, 3600), 110100},
			Sighting{sub(s), clock.Now().Add(20 * time.Hour), 130100}) // tomorrow
	}
	MustApply(t, db, batch, nil)
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	// Two days on, today-4 is past retention but not purged: on disk, not
	// in memory. Erase must remove it too.
	clock.Advance(48 * time.Hour)
	if err := db.Erase(ctx, sub(2)); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if got := MustVisits(t, db, sub(2)); len(got) != 0 {
		t.Errorf("erased subscriber still has %v", got)
	}
	if got := MustVisits(t, db, sub(1)); len(got) != 2 {
		t.Errorf("another subscriber lost visits: %v", got)
	}
	checkKeys := func(t *testing.T, db *DB) {
		t.Helper()
		n := 0
		for _, k := range scanVisitKeys(t, db) {
			if k.sub == sub(2) {
				t.Errorf("a key of the erased subscriber on %v", k.day)
			}
			n++
		}
		if n != 6 {
			t.Errorf("%d visit keys, want 6 of the two others", n)
		}
	}
	checkKeys(t, db)
	// Erasing again, or erasing a stranger, is harmless.
	if err := db.Erase(ctx, sub(2)); err != nil {
		t.Errorf("second Erase: %v", err)
	}
	if err := db.Erase(ctx, sub(99)); err != nil {
		t.Errorf("Erase of a stranger: %v", err)
	}
	// A canceled context erases nothing and says so; an Erase that
	// reports an error must not have happened.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.Erase(canceled, sub(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Erase with a canceled context: %v", err)
	}
	if got := MustVisits(t, db, sub(1)); len(got) != 2 {
		t.Errorf("a canceled Erase removed visits: %v", got)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = MustOpen(t, dir, opts)
	if got := MustVisits(t, db, sub(2)); len(got) != 0 {
		t.Errorf("after reopen the erased subscriber has %v", got)
	}
	if got := MustVisits(t, db, sub(3)); len(got) != 2 {
		t.Errorf("after reopen another subscriber has %v", got)
	}
	checkKeys(t, db)
	// A new sighting after erasure starts afresh.
	MustApply(t, db, []Sighting{{sub(2), clock.Now(), 440}}, nil)
	if got := MustVisits(t, db, sub(2)); len(got) != 1 {
		t.Errorf("after a new sighting: %v", got)
	}
}

func TestReopenChecks(t *testing.T) {
	ctx := context.Background()
	shanghai := mustShanghai(t)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := bytes.Repeat([]byte{0xa}, 16), bytes.Repeat([]byte{0xb}, 16)
	tests := []struct {
		name    string
		made    Options
		reopen  Options
		wantErr error
	}{
		{"same zone and key", Options{Location: shanghai, KeyFingerprint: keyA}, Options{Location: shanghai, KeyFingerprint: keyA}, nil},
		{"default zone is Shanghai", Options{}, Options{Location: shanghai}, nil},
		{"other zone", Options{Location: shanghai}, Options{Location: tokyo}, ErrWrongZone},
		{"UTC", Options{}, Options{Location: time.UTC}, ErrWrongZone},
		{"other key", Options{KeyFingerprint: keyA}, Options{KeyFingerprint: keyB}, ErrWrongKey},
		{"no key skips the check", Options{KeyFingerprint: keyA}, Options{}, nil},
		{"a key is recorded on first use", Options{}, Options{KeyFingerprint: keyA}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := Open(ctx, dir, tt.made)
			if err != nil {
				t.Fatal(err)
			}
			MustApply(t, db, []Sighting{{sub(1), time.Now(), 440}}, nil)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(ctx, dir, tt.reopen)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("reopen error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				db.Close()
			} else {
				if errors.Is(err, ErrWrongZone) && !strings.Contains(err.Error(), "Asia/Shanghai") {
					t.Errorf("error %q does not name the zone the dir was made with", err)
				}
				// The failed Open released the dir: the right options open it.
				db = MustOpen(t, dir, tt.made)
				if got := MustVisits(t, db, sub(1)); len(got) != 1 {
					t.Errorf("visits after a refused open: %v", got)
				}
			}
		})
	}

	// A key recorded on first use is checked from then on.
	dir := t.TempDir()
	for i, o := range []Options{{}, {KeyFingerprint: keyA}, {KeyFingerprint: keyA}} {
		db, err := Open(ctx, dir, o)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		db.Close()
	}
	if _, err := Open(ctx, dir, Options{KeyFingerprint: keyB}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("open with another key after recording one: %v, want ErrWrongKey", err)
	}
}

func TestOpenOptions(t *testing.T) {
	for _, r := range []int{-1, 3661} {
		_, err := Open(context.Background(), t.TempDir(), Options{Retention: r})
		if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "Retention") {
			t.Errorf("Retention %d: error %v, want ErrBadOption naming the field", r, err)
		}
	}
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		_, err := Open(context.Background(), t.TempDir(), Options{WALMinSyncInterval: d})
		if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "WALMinSyncInterval") {
			t.Errorf("WALMinSyncInterval %s: error %v, want ErrBadOption naming the field", d, err)
		}
	}
	// The data dir is private.
	dir := filepath.Join(t.TempDir(), "data")
	MustOpen(t, dir, Options{})
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("data dir mode %v, want no access for group or others", st.Mode().Perm())
	}
}

// lockMessage is what a refused Open says: who holds the dir, as the
// holder wrote it into LOCK.
var lockMessage = regexp.MustCompile(`^store: data dir is in use: held by pid \d+ \(store\.test\) since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

func TestLockInProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := MustOpen(t, dir, Options{})
	// flock locks belong to an open file description, so a second Open in
	// the same process conflicts as a second process would.
	_, err := Open(ctx, dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d ", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%q)", err, want)
	}
	if !lockMessage.MatchString(err.Error()) {
		t.Errorf("error %q does not match %v", err, lockMessage)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := MustOpen(t, dir, Options{})
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLockChild is the child process of TestLockOtherProcess: it holds the
// store in STORE_LOCK_CHILD_DIR until its stdin closes.
func TestLockChild(t *testing.T) {
	dir := os.Getenv("STORE_LOCK_CHILD_DIR")
	if dir == "" {
		t.Skip("child process of TestLockOtherProcess")
	}
	db, err := Open(context.Background(), dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	db.Close()
	os.Exit(0)
}

func TestLockOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	ctx := context.Background()
	dir := t.TempDir()
	for _, end := range []string{"close", "kill"} {
		t.Run(end, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "STORE_LOCK_CHILD_DIR="+dir)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "locked\n" {
				t.Fatalf("child said %q, %v", line, err)
			}

			_, err = Open(ctx, dir, Options{})
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("Open while the child holds the dir: %v, want ErrLocked", err)
			}
			if want := "pid " + strconv.Itoa(cmd.Process.Pid) + " "; !strings.Contains(err.Error(), want) || !lockMessage.MatchString(err.Error()) {
				t.Errorf("error %q does not name the child (%q)", err, want)
			}

			if end == "close" {
				stdin.Close()
			} else {
				// A killed holder leaves its LOCK file behind, but not the
				// lock: the kernel drops it with the process.
				cmd.Process.Signal(os.Kill)
			}
			cmd.Wait()
			db, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatalf("Open after the child ended (%s): %v", end, err)
			}
			db.Close()
		})
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	MustApply(t, db, []Sighting{{sub(1), time.Now(), 440}}, &Checkpoint{Source: "f", Offset: 1})
	for i := range 3 {
		if err := db.Close(); err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	if _, err := db.Apply(ctx, []Sighting{{sub(1), time.Now(), 440}}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := db.Erase(ctx, sub(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Erase after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Purge(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Purge after Close: %v, want ErrClosed", err)
	}
	if _, _, err := db.Offset("f"); !errors.Is(err, ErrClosed) {
		t.Errorf("Offset after Close: %v, want ErrClosed", err)
	}
	// Close releases the dir and empties the LOCK file: it no longer
	// names a holder.
	if b, err := os.ReadFile(filepath.Join(dir, lockName)); err != nil || len(b) != 0 {
		t.Errorf("LOCK after Close holds %q, %v", b, err)
	}
	MustOpen(t, dir, Options{})

	// Close is safe on a store whose Open failed.
	(&DB{}).Close()
}

func TestCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString)
	opts := Options{Now: clock.Now}
	db := MustOpen(t, dir, opts)
	if _, ok, err := db.Offset("feed-a"); ok || err != nil {
		t.Errorf("Offset of a new source = %v, %v; want none", ok, err)
	}
	MustApply(t, db, []Sighting{{sub(1), clock.Now(), 440}}, &Checkpoint{Source: "feed-a", Offset: 100})
	MustApply(t, db, []Sighting{{sub(2), clock.Now(), 440}}, &Checkpoint{Source: "feed-b", Offset: 7})
	// A batch with nothing new, or nothing at all, still moves the offset.
	if st := MustApply(t, db, []Sighting{{sub(1), clock.Now(), 440}}, &Checkpoint{Source: "feed-a", Offset: 200}); st.Written != 0 {
		t.Errorf("a known sighting wrote %d", st.Written)
	}
	MustApply(t, db, nil, &Checkpoint{Source: "feed-a", Offset: 1 << 40})

	// A batch that fails stores neither its visits nor its offset.
	var huge []Sighting
	for r := range maxRegions + 1 {
		huge = append(huge, Sighting{sub(3), clock.Now(), itinerary.Region(100000 + r)})
	}
	if _, err := db.Apply(ctx, huge, &Checkpoint{Source: "feed-a", Offset: 999}); !errors.Is(err, ErrTooManyRegs) {
		t.Fatalf("Apply of %d regions: %v, want ErrTooManyRegs", len(huge), err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Apply(canceled, []Sighting{{sub(4), clock.Now(), 440}}, &Checkpoint{Source: "feed-a", Offset: 998}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a canceled context: %v", err)
	}

	check := func(t *testing.T, db *DB) {
		t.Helper()
		for src, want := range map[string]int64{"feed-a": 1 << 40, "feed-b": 7} {
			if got, ok, err := db.Offset(src); got != want || !ok || err != nil {
				t.Errorf("Offset(%s) = %d, %v, %v; want %d", src, got, ok, err, want)
			}
		}
		if got := MustVisits(t, db, sub(3)); len(got) != 0 {
			t.Errorf("a failed batch left visits: %d", len(got))
		}
		if got := MustVisits(t, db, sub(4)); len(got) != 0 {
			t.Errorf("a canceled batch left visits: %v", got)
		}
	}
	check(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check(t, MustOpen(t, dir, opts))
}

// TestConcurrentReadWrite runs lookups beside writes, purges and erasures;
// under -race it checks the index's locking.
func TestConcurrentReadWrite(t *testing.T) {
	ctx := context.Background()
	clock := newClock(t, nowString)
	db := MustOpen(t, "/db", Options{FS: vfs.NewMem(), Now: clock.Now, Retention: 10})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 0))
			var dst []itinerary.Visit
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				dst, err = db.Visits(ctx, sub(rng.IntN(50)), itinerary.Window{First: today - 29, Last: today}, dst[:0])
				if err != nil {
					t.Error(err)
					return
				}
				for i := 1; i < len(dst); i++ {
					if dst[i].Day < dst[i-1].Day {
						t.Errorf("visits out of day order: %v", dst)
						return
					}
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 50 {
		MustApply(t, db, randomBatch(rng, 200, 50), nil)
		switch i % 10 {
		case 3:
			if err := db.Erase(ctx, sub(rng.IntN(50))); err != nil {
				t.Error(err)
			}
		case 7:
			clock.Advance(24 * time.Hour)
			if _, err := db.Purge(ctx); err != nil {
				t.Error(err)
			}
			db.Stats()
		}
	}
	close(stop)
	wg.Wait()
}

func TestSubcommand(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, nil},
		{[]string{"roamtrail"}, nil},
		{[]string{"roamtrail", "serve"}, []string{"serve"}},
		{[]string{"roamtrail", "erase", "13800138000"}, []string{"erase"}},
		{[]string{"roamtrail", "erase", "+8613800138000"}, []string{"erase"}},
		{[]string{"roamtrail", "ingest", "--data", "/var/lib/x", "feed.csv"}, []string{"ingest"}},
		{[]string{"roamtrail", "lookup", "x13800138000"}, []string{"lookup"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if got := subcommand(tt.args); !slices.Equal(got, tt.want) {
				t.Errorf("subcommand = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzVisitValue decodes arbitrary values (never a panic; a length that is
// not a whole number of visits is ErrCorrupt) and round-trips the visits it
// decodes.
func FuzzVisitValue(f *testing.F) {
	f.Add(appendVisitValue(nil, dayVisit{region: 130100, first: 3600, last: 90000}))
	f.Add(appendVisitValue(appendVisitValue(nil, dayVisit{region: 440}), dayVisit{region: 999999, first: maxSecond, last: maxSecond}))
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []dayVisit
		err := parseVisitValue(b, func(v dayVisit) { got = append(got, v) })
		if len(b) == 0 || len(b)%visitLen != 0 {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("value of %d bytes: %v, want ErrCorrupt", len(b), err)
			}
			return
		}
		if err != nil || len(got) != len(b)/visitLen {
			t.Fatalf("value of %d bytes: %d visits, %v", len(b), len(got), err)
		}
		var again []byte
		for _, v := range got {
			if v.region >= 1<<20 || v.first > maxSecond || v.last > maxSecond {
				t.Fatalf("decoded %+v out of range", v)
			}
			again = appendVisitValue(again, v)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, want %x", again, b)
		}
	})
}

// FuzzVisitKey decodes arbitrary keys and round-trips visit keys.
func FuzzVisitKey(f *testing.F) {
	f.Add(visitKey(nil, today, sub(1)))
	f.Add([]byte("v"))
	f.Add(metaKey("format"))
	f.Fuzz(func(t *testing.T, k []byte) {
		day, s, err := parseVisitKey(k)
		if len(k) != visitKeyLen || k[0] != prefixVisit {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("key %x: %v, want ErrCorrupt", k, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if again := visitKey(nil, day, s); !bytes.Equal(again, k) {
			t.Fatalf("re-encoded %x, want %x", again, k)
		}
		if !bytes.HasPrefix(k, dayKey(day)) || bytes.Compare(k, dayKey(day+1)) >= 0 {
			t.Fatalf("key %x is outside its day's range", k)
		}
	})
}

// TestPack checks the in-memory encoding at its limits.
func TestPack(t *testing.T) {
	m := newMemIndex()
	for _, tt := range []struct {
		day         itinerary.Day
		region      itinerary.Region
		first, last uint32
	}{
		{0, 440, 0, 0},
		{today, 130100, 3600, 90000}, // a 25-hour day
		{maxDay, 999999, memSecMask, memSecMask},
	} {
		idx, ok := m.index(tt.region)
		if !ok {
			t.Fatal("index full")
		}
		e := pack(tt.day, idx, tt.first, tt.last)
		if got, want := m.unpack(e), v(tt.day, tt.region, tt.first, tt.last); got != want {
			t.Errorf("unpack(pack(%v)) = %v", want, got)
		}
		if entryDay(e) != tt.day {
			t.Errorf("entryDay = %v, want %v", entryDay(e), tt.day)
		}
	}
	// Entries sort by day whatever their region.
	a, _ := m.index(999999)
	b, _ := m.index(440)
	if pack(today, a, memSecMask, memSecMask) >= pack(today+1, b, 0, 0) {
		t.Error("a later day sorts first")
	}
}

package store

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/roamtrail/roamtrail/itinerary"
)

// mustConsent returns sub's consent or stops the test.
func mustConsent(tb testing.TB, db *DB, sub itinerary.Pseudonym) itinerary.Consent {
	tb.Helper()
	c, err := db.Consent(context.Background(), sub)
	if err != nil {
		tb.Fatalf("Consent: %v", err)
	}
	return c
}

// keysOf counts the visit keys on disk that belong to sub.
func keysOf(tb testing.TB, db *DB, sub itinerary.Pseudonym) (days []itinerary.Day) {
	tb.Helper()
	for _, k := range scanVisitKeys(tb, db) {
		if k.sub == sub {
			days = append(days, k.day)
		}
	}
	return days
}

// reopen closes db and opens dir again with opts.
func reopen(tb testing.TB, db *DB, dir string, opts Options) *DB {
	tb.Helper()
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	return MustOpen(tb, dir, opts)
}

func TestOptOut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString) // 20:00 local
	opts := Options{Now: clock.Now, Retention: 5}
	db := MustOpen(t, dir, opts)
	var batch []Sighting
	for _, s := range []int{1, 2} {
		batch = append(batch,
			Sighting{sub(s), at(today-7, 0), 440}, // on disk, past retention once the clock moves
			Sighting{sub(s), at(today-3, 3600), 130100},
			Sighting{sub(s), at(today, 3600), 110100})
	}
	clock.Advance(-72 * time.Hour)
	MustApply(t, db, batch[:1], nil)
	MustApply(t, db, batch[3:4], nil)
	clock.Advance(72 * time.Hour)
	MustApply(t, db, batch, nil)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}

	outAt := clock.Now()
	if err := db.OptOut(ctx, sub(1), outAt); err != nil {
		t.Fatalf("OptOut: %v", err)
	}
	if got := MustVisits(t, db, sub(1)); len(got) != 0 {
		t.Errorf("opted-out subscriber still has %v", got)
	}
	if days := keysOf(t, db, sub(1)); len(days) != 0 {
		t.Errorf("opted-out subscriber still has keys on days %v", days)
	}
	if got := MustVisits(t, db, sub(2)); len(got) != 2 {
		t.Errorf("another subscriber lost visits: %v", got)
	}
	want := itinerary.Consent{OptedOut: outAt.UTC()}
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("Consent = %+v, want %+v", got, want)
	}
	if got := mustConsent(t, db, sub(2)); got != (itinerary.Consent{}) {
		t.Errorf("a stranger's Consent = %+v", got)
	}

	// Events of an opted-out subscriber are dropped, whatever their time:
	// late ones from before the opt-out too.
	late := []Sighting{
		{sub(1), at(today, 7200), 110100},
		{sub(1), clock.Now().Add(time.Hour), 110100},
		{sub(2), at(today, 7200), 110100},
	}
	if st := MustApply(t, db, late, nil); st != (ApplyStats{Accepted: 1, NoConsent: 2, Written: 1}) {
		t.Errorf("Apply after opt-out = %+v", st)
	}
	if got := MustVisits(t, db, sub(1)); len(got) != 0 {
		t.Errorf("opted-out subscriber got visits: %v", got)
	}

	// Opting out again keeps the first time.
	clock.Advance(time.Hour)
	if err := db.OptOut(ctx, sub(1), clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("after a second OptOut, Consent = %+v, want %+v", got, want)
	}

	// All of it holds after a reopen.
	db = reopen(t, db, dir, opts)
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("after reopen, Consent = %+v, want %+v", got, want)
	}
	if st := MustApply(t, db, late, nil); st.NoConsent != 2 {
		t.Errorf("Apply after reopen = %+v, want 2 dropped", st)
	}
	if got := MustVisits(t, db, sub(1)); len(got) != 0 {
		t.Errorf("after reopen the opted-out subscriber has %v", got)
	}
}

func TestOptIn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString)
	opts := Options{Now: clock.Now}
	db := MustOpen(t, dir, opts)
	if err := db.OptOut(ctx, sub(1), at(today, 3600)); err != nil {
		t.Fatal(err)
	}
	inAt := at(today, 10*3600)
	if err := db.OptIn(ctx, sub(1), inAt); err != nil {
		t.Fatalf("OptIn: %v", err)
	}
	want := itinerary.Consent{OptedIn: inAt.UTC()}
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("Consent = %+v, want %+v", got, want)
	}
	// Recording starts at the opt-in: what came before, while opted out,
	// is dropped even if it arrives now.
	batch := []Sighting{
		{sub(1), at(today, 5*3600), 440},
		{sub(1), inAt.Add(-time.Second), 440},
		{sub(1), inAt, 110100},
		{sub(1), at(today, 19*3600), 110100},
	}
	if st := MustApply(t, db, batch, nil); st != (ApplyStats{Accepted: 2, NoConsent: 2, Written: 1}) {
		t.Errorf("Apply = %+v", st)
	}
	wantVisits := []itinerary.Visit{v(today, 110100, 10*3600, 19*3600)}
	if got := MustVisits(t, db, sub(1)); !slices.Equal(got, wantVisits) {
		t.Errorf("Visits = %v, want %v", got, wantVisits)
	}
	// Opting in again changes nothing, and does not move the start.
	if err := db.OptIn(ctx, sub(1), at(today, 19*3600)); err != nil {
		t.Fatal(err)
	}
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("after a second OptIn, Consent = %+v, want %+v", got, want)
	}
	db = reopen(t, db, dir, opts)
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("after reopen, Consent = %+v, want %+v", got, want)
	}
	if st := MustApply(t, db, batch, nil); st != (ApplyStats{Accepted: 2, NoConsent: 2}) {
		t.Errorf("Apply after reopen = %+v", st)
	}
	if got := MustVisits(t, db, sub(1)); !slices.Equal(got, wantVisits) {
		t.Errorf("after reopen Visits = %v, want %v", got, wantVisits)
	}
}

func TestCollectOptedIn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString)
	opts := Options{Now: clock.Now, Collect: CollectOptedIn}
	db := MustOpen(t, dir, opts)
	inAt := at(today, 12*3600)
	for _, s := range []int{1, 3} {
		if err := db.OptIn(ctx, sub(s), inAt); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.OptOut(ctx, sub(3), at(today, 13*3600)); err != nil {
		t.Fatal(err)
	}
	batch := func() []Sighting {
		var b []Sighting
		for _, s := range []int{1, 2, 3} { // in, never asked, in then out
			b = append(b,
				Sighting{sub(s), at(today, 3600), 110100},    // before the opt-in
				Sighting{sub(s), at(today, 14*3600), 130100}, // after it
			)
		}
		return b
	}
	if st := MustApply(t, db, batch(), nil); st != (ApplyStats{Accepted: 1, NoConsent: 5, Written: 1}) {
		t.Errorf("Apply = %+v", st)
	}
	check := func(t *testing.T, db *DB) {
		t.Helper()
		if got, want := MustVisits(t, db, sub(1)), []itinerary.Visit{v(today, 130100, 14*3600, 14*3600)}; !slices.Equal(got, want) {
			t.Errorf("opted in: Visits = %v, want %v", got, want)
		}
		for _, s := range []int{2, 3} {
			if got := MustVisits(t, db, sub(s)); len(got) != 0 {
				t.Errorf("sub(%d) not opted in has %v", s, got)
			}
		}
	}
	check(t, db)
	db = reopen(t, db, dir, opts)
	if st := MustApply(t, db, batch(), nil); st != (ApplyStats{Accepted: 1, NoConsent: 5}) {
		t.Errorf("Apply after reopen = %+v", st)
	}
	check(t, db)
	// The same store under CollectAll keeps the one who never asked.
	opts.Collect = CollectAll
	db = reopen(t, db, dir, opts)
	if st := MustApply(t, db, batch(), nil); st != (ApplyStats{Accepted: 3, NoConsent: 3, Written: 1}) {
		t.Errorf("Apply under CollectAll = %+v", st)
	}
}

func TestReassigned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock(t, nowString) // 20:00 local
	opts := Options{Now: clock.Now}
	db := MustOpen(t, dir, opts)
	// The old holder: days ago, and today in three regions around 12:00.
	old := []Sighting{
		{sub(1), at(today-5, 3600), 440},
		{sub(1), at(today-1, 3600), 110100},
		{sub(1), at(today-1, 20*3600), 110100},
		{sub(1), at(today, 3600), 130100},      // only before 12:00
		{sub(1), at(today, 11*3600), 110100},   // spans 12:00
		{sub(1), at(today, 13*3600), 110100},   //
		{sub(1), at(today, 12*3600+1), 130600}, // only after
		{sub(2), at(today-1, 3600), 110100},    // someone else
	}
	MustApply(t, db, old, nil)
	// Choices the old holder made before the number changed hands must not
	// bind the new holder: sub(1) opted in, sub(3) out.
	if err := db.OptIn(ctx, sub(1), at(today, 60)); err != nil {
		t.Fatal(err)
	}
	if err := db.OptOut(ctx, sub(3), at(today, 60)); err != nil {
		t.Fatal(err)
	}
	reAt := at(today, 12*3600)
	if err := db.Reassigned(ctx, sub(1), reAt); err != nil {
		t.Fatalf("Reassigned: %v", err)
	}
	want := itinerary.Consent{Reassigned: reAt.UTC()}
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("Consent = %+v, want %+v (the old holder's choices dropped)", got, want)
	}
	// Kept: the spanning visit's last sighting only (13:00) and what came
	// after; gone: every earlier day and what was only before 12:00.
	wantVisits := []itinerary.Visit{v(today, 110100, 13*3600, 13*3600), v(today, 130600, 12*3600+1, 12*3600+1)}
	check := func(t *testing.T, db *DB) {
		t.Helper()
		if got := MustVisits(t, db, sub(1)); !slices.Equal(got, wantVisits) {
			t.Errorf("Visits = %v, want %v", got, wantVisits)
		}
		if days := keysOf(t, db, sub(1)); !slices.Equal(days, []itinerary.Day{today}) {
			t.Errorf("keys on days %v, want only today", days)
		}
		if got := MustVisits(t, db, sub(2)); len(got) != 1 {
			t.Errorf("someone else lost visits: %v", got)
		}
	}
	check(t, db)
	if err := db.Reassigned(ctx, sub(3), reAt); err != nil {
		t.Fatal(err)
	}
	if got := mustConsent(t, db, sub(3)); got != want {
		t.Errorf("sub(3): Consent = %+v, want %+v (the old holder's opt-out dropped)", got, want)
	}
	// Late events of the old holder are dropped; the new holder's kept.
	st := MustApply(t, db, []Sighting{{sub(1), at(today, 11*3600), 440}, {sub(1), at(today-2, 0), 440}, {sub(1), at(today, 19*3600), 130600}, {sub(3), at(today, 19*3600), 440}}, nil)
	if st != (ApplyStats{Accepted: 2, NoConsent: 2, Written: 2}) {
		t.Errorf("Apply after reassignment = %+v", st)
	}
	wantVisits[1].Last = 19 * 3600
	check(t, db)
	// An earlier reassignment reported later changes nothing.
	if err := db.Reassigned(ctx, sub(1), at(today-3, 0)); err != nil {
		t.Fatal(err)
	}
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("after an earlier reassignment, Consent = %+v, want %+v", got, want)
	}
	check(t, db)
	db = reopen(t, db, dir, opts)
	check(t, db)
	if got := mustConsent(t, db, sub(1)); got != want {
		t.Errorf("after reopen, Consent = %+v, want %+v", got, want)
	}

	// Visits hides what precedes a reassignment even if it were on disk:
	// write the old holder's visits back behind the store's back.
	b := db.pdb.NewBatch()
	b.Set(visitKey(nil, today-1, sub(1)), appendVisitValue(nil, dayVisit{110100, 3600, 72000}), nil)
	b.Set(visitKey(nil, today, sub(1)), appendVisitValue(appendVisitValue(nil, dayVisit{440, 3600, 3700}), dayVisit{110100, 3600, 13 * 3600}), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, dir, opts)
	if got, want := MustVisits(t, db, sub(1)), []itinerary.Visit{v(today, 110100, 13*3600, 13*3600)}; !slices.Equal(got, want) {
		t.Errorf("Visits with the old holder's days on disk = %v, want %v", got, want)
	}
}

func TestConsentBadTime(t *testing.T) {
	ctx := context.Background()
	clock := newClock(t, nowString)
	db := MustOpen(t, "/db", Options{FS: vfs.NewMem(), Now: clock.Now})
	for name, fn := range map[string]func(context.Context, itinerary.Pseudonym, time.Time) error{
		"OptOut": db.OptOut, "OptIn": db.OptIn, "Reassigned": db.Reassigned,
	} {
		for _, bad := range []time.Time{{}, time.Unix(0, 0), clock.Now().Add(25 * time.Hour)} {
			if err := fn(ctx, sub(1), bad); !errors.Is(err, ErrBadTime) {
				t.Errorf("%s(%v) = %v, want ErrBadTime", name, bad, err)
			}
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if err := fn(canceled, sub(1), clock.Now()); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v", name, err)
		}
	}
	if got := mustConsent(t, db, sub(1)); got != (itinerary.Consent{}) {
		t.Errorf("refused changes left %+v", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.OptOut(ctx, sub(1), clock.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("OptOut after Close = %v", err)
	}
}

// TestOptOutDuringApply races opt-outs with ingest: once OptOut returned,
// nothing of the subscriber may be stored, by an Apply that started before
// it or after.
func TestOptOutDuringApply(t *testing.T) {
	ctx := context.Background()
	clock := newClock(t, nowString)
	db := MustOpen(t, "/db", Options{FS: vfs.NewMem(), Now: clock.Now, Retention: 10})
	const subs = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Apply(ctx, randomBatch(rng, 500, subs), nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for s := range subs {
		if err := db.OptOut(ctx, sub(s), clock.Now()); err != nil {
			t.Fatal(err)
		}
		if s%4 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	for s := range subs {
		if got := MustVisits(t, db, sub(s)); len(got) != 0 {
			t.Errorf("sub(%d) opted out has %d visits", s, len(got))
		}
		if days := keysOf(t, db, sub(s)); len(days) != 0 {
			t.Errorf("sub(%d) opted out has keys on days %v", s, days)
		}
	}
}

// FuzzConsentValue decodes arbitrary consent values (never a panic) and
// round-trips those it accepts.
func FuzzConsentValue(f *testing.F) {
	loc := time.FixedZone("CST", 8*3600)
	f.Add(appendConsentValue(nil, consentRec{out: 1795000000}))
	f.Add(appendConsentValue(nil, consentRec{in: 1795000000, re: 1794000000}))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{1, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseConsentValue(b, loc)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again := appendConsentValue(nil, r)
		r2, err := parseConsentValue(again, loc)
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %x -> %+v, %v", r, again, r2, err)
		}
		if r.re != 0 {
			if day, sec := itinerary.DayOf(time.Unix(r.re, 0), loc); day != r.reDay || sec != r.reSec {
				t.Fatalf("reassignment day %v %d, want %v %d", r.reDay, r.reSec, day, sec)
			}
		}
	})
}

// consentBenchCases are the consent records BenchmarkApplyConsent and
// BenchmarkFoldConsent run with: none (the fast path), a million records of
// other subscribers (a miss per subscriber), and CollectOptedIn with every
// subscriber of the batches opted in (a hit per subscriber).
var consentBenchCases = []struct {
	name    string
	collect Collect
	seed    func(i int) (itinerary.Pseudonym, consentRec)
}{
	{"none", CollectAll, nil},
	{"others-opted-out", CollectAll, func(i int) (itinerary.Pseudonym, consentRec) {
		p := benchSub(i)
		p[15] = 1 // not a subscriber of the batches
		return p, consentRec{out: 1}
	}},
	{"all-opted-in", CollectOptedIn, func(i int) (itinerary.Pseudonym, consentRec) {
		return benchSub(i), consentRec{in: 1}
	}},
}

const benchSeeded = 1 << 20

func benchSub(i int) itinerary.Pseudonym {
	var p itinerary.Pseudonym
	binary.BigEndian.PutUint64(p[:], uint64(i%benchSeeded))
	return p
}

// benchConsentStore opens a store on disk with the case's records.
func benchConsentStore(b *testing.B, collect Collect, seed func(int) (itinerary.Pseudonym, consentRec)) (*DB, time.Time) {
	b.Helper()
	loc := time.FixedZone("Asia/Shanghai", 8*3600)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, loc)
	db, err := Open(context.Background(), b.TempDir(), Options{Location: loc, Now: func() time.Time { return now }, Collect: collect})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if seed != nil {
		pb := db.pdb.NewBatch()
		for i := range benchSeeded {
			p, r := seed(i)
			pb.Set(consentKey(p), appendConsentValue(nil, r), nil)
			db.mem.setConsent(p, r)
		}
		if err := pb.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	return db, now
}

// fillBenchBatch is BenchmarkApply's batch: four events a subscriber, new
// subscribers (then new days) as n grows.
func fillBenchBatch(batch []Sighting, n int, now time.Time) int {
	for i := range batch {
		day := time.Duration(n/4/benchSeeded%30) * 24 * time.Hour
		batch[i] = Sighting{Sub: benchSub(n / 4), Time: now.Add(-day - time.Duration(n%4)*time.Hour), Region: 110100}
		n++
	}
	return n
}

// BenchmarkApplyConsent is BenchmarkApply with consent records in play.
func BenchmarkApplyConsent(b *testing.B) {
	for _, bc := range consentBenchCases {
		b.Run(bc.name, func(b *testing.B) {
			db, now := benchConsentStore(b, bc.collect, bc.seed)
			batch := make([]Sighting, 1<<14)
			n := 0
			for b.Loop() {
				n = fillBenchBatch(batch, n, now)
				st, err := db.Apply(context.Background(), batch, nil)
				if err != nil {
					b.Fatal(err)
				}
				if st.NoConsent != 0 {
					b.Fatalf("%d events dropped", st.NoConsent)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkFoldConsent measures the part of Apply that consent adds to:
// the fold of a batch into subscriber-days, which checks every event. It
// involves no I/O, so it shows the consent check's cost free of fsync
// noise.
func BenchmarkFoldConsent(b *testing.B) {
	for _, bc := range consentBenchCases {
		b.Run(bc.name, func(b *testing.B) {
			db, now := benchConsentStore(b, bc.collect, bc.seed)
			batch := make([]Sighting, 1<<14)
			fillBenchBatch(batch, 0, now)
			for b.Loop() {
				if _, st := db.fold(batch); st.Accepted != len(batch) {
					b.Fatalf("%+v", st)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
		})
	}
}

// A staff code pending for a subscriber dies with an opt-out or a
// reassignment; one pending for someone else, or kept over an opt-in, stays.
func TestConsentChangeDeletesCodes(t *testing.T) {
	ctx := context.Background()
	subKey := func(n int) []byte { p := sub(n); return p[:] }
	clock := newClock(t, nowString)
	db := MustOpen(t, t.TempDir(), Options{Now: clock.Now})
	for s := 1; s <= 4; s++ {
		if err := db.PutCode(ctx, subKey(s), []byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	now := clock.Now()
	for _, step := range []struct {
		name string
		do   func() error
		sub  int
		kept bool
	}{
		{"opt out", func() error { return db.OptOut(ctx, sub(1), now) }, 1, false},
		{"reassigned", func() error { return db.Reassigned(ctx, sub(2), now) }, 2, false},
		{"opt in", func() error { return db.OptIn(ctx, sub(3), now) }, 3, true},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if _, ok, err := db.GetCode(ctx, subKey(step.sub)); err != nil || ok != step.kept {
			t.Errorf("after %s: code kept %t (%v), want %t", step.name, ok, err, step.kept)
		}
	}
	if _, ok, _ := db.GetCode(ctx, subKey(4)); !ok {
		t.Error("another subscriber's code went too")
	}
}

package itinerary_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/store"
)

var _ itinerary.VisitSource = (*store.DB)(nil)

// fakeSource answers from a fixed list of visits and records the windows
// it was asked for.
type fakeSource struct {
	visits []itinerary.Visit
	err    error
	asked  []itinerary.Window
}

func (f *fakeSource) Visits(_ context.Context, _ itinerary.Pseudonym, w itinerary.Window, dst []itinerary.Visit) ([]itinerary.Visit, error) {
	f.asked = append(f.asked, w)
	if f.err != nil {
		return nil, f.err
	}
	// Deliberately return everything, in reverse, window or not: the
	// engine's rules must not rely on the source's filtering or order.
	for i := len(f.visits) - 1; i >= 0; i-- {
		dst = append(dst, f.visits[i])
	}
	return dst, nil
}

// clock returns a Now func fixed at s.
func clock(tb testing.TB, s string) func() time.Time {
	t := itinerary.MustTime(tb, s)
	return func() time.Time { return t }
}

const today = itinerary.Day(20784) // 2026-11-27

func TestEngineLookup(t *testing.T) {
	shanghai := itinerary.MustLocation(t, "Asia/Shanghai")
	src := &fakeSource{visits: []itinerary.Visit{
		{Day: today, Region: 110100, First: 0, Last: 5 * 3600},
		{Day: today - 14, Region: 130100, First: 0, Last: 5 * 3600},
		{Day: today - 15, Region: 440, First: 0, Last: 0}, // 16 days ago: outside 15
		{Day: today + 1, Region: 310100, First: 0, Last: 5 * 3600},
		{Day: today - 3, Region: 310100, First: 0, Last: 3600}, // too short
	}}
	e := &itinerary.Engine{
		Source:   src,
		Rules:    itinerary.Rules{MinDwell: itinerary.DefaultMinDwell},
		Location: shanghai,
		Now:      clock(t, "2026-11-27T15:59:59Z"), // 23:59:59 local
	}
	it, err := e.Lookup(context.Background(), itinerary.Pseudonym{1}, 15)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	wantW := itinerary.Window{First: today - 14, Last: today}
	if it.Window != wantW || !slices.Equal(src.asked, []itinerary.Window{wantW}) {
		t.Errorf("window = %v, asked %v; want %v", it.Window, src.asked, wantW)
	}
	want := []itinerary.Place{{Region: 110100, FirstDay: today, LastDay: today}, {Region: 130100, FirstDay: today - 14, LastDay: today - 14}}
	if !slices.Equal(it.Places, want) {
		t.Errorf("Places = %v, want %v", it.Places, want)
	}

	// One second later it is tomorrow in Shanghai: the window moves.
	e.Now = clock(t, "2026-11-27T16:00:00Z")
	it, err = e.Lookup(context.Background(), itinerary.Pseudonym{1}, 15)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if wantW := (itinerary.Window{First: today - 13, Last: today + 1}); it.Window != wantW {
		t.Errorf("after local midnight: window = %v, want %v", it.Window, wantW)
	}
	want = []itinerary.Place{{Region: 310100, FirstDay: today + 1, LastDay: today + 1}, {Region: 110100, FirstDay: today, LastDay: today}}
	if !slices.Equal(it.Places, want) {
		t.Errorf("after local midnight: Places = %v, want %v", it.Places, want)
	}
}

func TestEngineErrors(t *testing.T) {
	shanghai := itinerary.MustLocation(t, "Asia/Shanghai")
	boom := errors.New("source down")
	tests := []struct {
		name   string
		src    *fakeSource
		days   int
		recent int
		want   error
	}{
		{"zero days", &fakeSource{}, 0, 0, itinerary.ErrBadWindow},
		{"negative days", &fakeSource{}, -1, 0, itinerary.ErrBadWindow},
		{"more than MaxDays", &fakeSource{}, itinerary.MaxDays + 1, 0, itinerary.ErrBadWindow},
		{"source error", &fakeSource{err: boom}, 15, 0, boom},
		{"split at zero", &fakeSource{}, 30, -1, itinerary.ErrBadWindow},
		{"split past the window", &fakeSource{}, 30, 30, itinerary.ErrBadWindow},
		{"split source error", &fakeSource{err: boom}, 30, 15, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &itinerary.Engine{Source: tt.src, Location: shanghai, Now: clock(t, "2026-11-27T12:00:00+08:00")}
			var err error
			if tt.recent != 0 {
				_, _, err = e.LookupSplit(context.Background(), itinerary.Pseudonym{}, tt.days, tt.recent)
			} else {
				_, err = e.Lookup(context.Background(), itinerary.Pseudonym{}, tt.days)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if errors.Is(tt.want, itinerary.ErrBadWindow) && tt.recent == 0 && len(tt.src.asked) != 0 {
				t.Errorf("a bad window reached the source: %v", tt.src.asked)
			}
		})
	}
}

// MustStore opens a store on a fresh real directory, closed at the end of
// the test.
func MustStore(tb testing.TB, o store.Options) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), tb.TempDir(), o)
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// TestEngineOnStore runs the engine over a real store on disk, with one
// clock for both: the engine's window and the store's retention must agree.
func TestEngineOnStore(t *testing.T) {
	ctx := context.Background()
	shanghai := itinerary.MustLocation(t, "Asia/Shanghai")
	now := itinerary.MustTime(t, "2026-11-27T20:00:00+08:00")
	db := MustStore(t, store.Options{Location: shanghai, Retention: 30, Now: func() time.Time { return now }})
	alice, bob := itinerary.Pseudonym{0xa1}, itinerary.Pseudonym{0xb0}
	at := func(s string) time.Time { return itinerary.MustTime(t, s) }
	batch := []store.Sighting{
		// Alice: Beijing today for 5 hours (two sightings), Shijiazhuang
		// 10 days ago for 4 hours exactly, Japan 20 days ago once, and a
		// short stop in Shanghai yesterday.
		{Sub: alice, Time: at("2026-11-27T08:00:00+08:00"), Region: 110100},
		{Sub: alice, Time: at("2026-11-27T13:00:00+08:00"), Region: 110100},
		{Sub: alice, Time: at("2026-11-17T10:00:00+08:00"), Region: 130100},
		{Sub: alice, Time: at("2026-11-17T06:00:00Z"), Region: 130100}, // 14:00 local
		{Sub: alice, Time: at("2026-11-07T09:00:00+08:00"), Region: 440},
		{Sub: alice, Time: at("2026-11-26T10:00:00+08:00"), Region: 310100},
		{Sub: alice, Time: at("2026-11-26T11:00:00+08:00"), Region: 310100},
		// Bob was only in Japan.
		{Sub: bob, Time: at("2026-11-27T01:00:00+08:00"), Region: 440},
	}
	if _, err := db.Apply(ctx, batch, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	e := &itinerary.Engine{
		Source:   db,
		Rules:    itinerary.Rules{MinDwell: itinerary.DefaultMinDwell},
		Location: db.Location(),
		Now:      func() time.Time { return now },
	}

	it, err := e.Lookup(ctx, alice, 15)
	if err != nil {
		t.Fatal(err)
	}
	want := []itinerary.Place{{Region: 110100, FirstDay: today, LastDay: today}, {Region: 130100, FirstDay: today - 10, LastDay: today - 10}}
	if !slices.Equal(it.Places, want) {
		t.Errorf("15 days: %v, want %v", it.Places, want)
	}

	newer, older, err := e.LookupSplit(ctx, alice, 30, 15)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(newer.Places, want) {
		t.Errorf("days 1-15: %v, want %v", newer.Places, want)
	}
	if want := []itinerary.Place{{Region: 440, FirstDay: today - 20, LastDay: today - 20}}; !slices.Equal(older.Places, want) {
		t.Errorf("days 16-30: %v, want %v", older.Places, want)
	}

	words := itinerary.Wording{Catalog: itinerary.MustCatalog(t)}
	if got, want := words.Itinerary(it, itinerary.Chinese), "根据您的授权查询，您于近15天内到达或途经：北京市、河北省石家庄市。"; got != want {
		t.Errorf("reply = %s, want %s", got, want)
	}

	it, err = e.Lookup(ctx, bob, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []itinerary.Place{{Region: 440, FirstDay: today, LastDay: today}}; !slices.Equal(it.Places, want) {
		t.Errorf("bob today: %v, want %v", it.Places, want)
	}

	it, err = e.Lookup(ctx, itinerary.Pseudonym{0xcc}, 30)
	if err != nil || len(it.Places) != 0 {
		t.Errorf("a stranger: %v, %v; want nothing", it.Places, err)
	}
}

package itinerary

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// MustLocation loads a time zone or stops the test.
func MustLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

// MustTime parses an RFC 3339 time or stops the test.
func MustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatalf("time.Parse(%q): %v", s, err)
	}
	return t
}

// day20261127 is 2026-11-27, counted from 1970-01-01: written out rather than
// computed so that the test does not repeat DayOf's arithmetic.
const day20261127 Day = 20784

func TestDayOf(t *testing.T) {
	shanghai := MustLocation(t, "Asia/Shanghai")
	newYork := MustLocation(t, "America/New_York")
	tests := []struct {
		name    string
		t       string
		loc     *time.Location
		wantDay Day
		wantSec uint32
	}{
		{"local midnight", "2026-11-27T00:00:00+08:00", shanghai, day20261127, 0},
		{"last second of the local day", "2026-11-27T23:59:59+08:00", shanghai, day20261127, 86399},
		{"next local midnight", "2026-11-28T00:00:00+08:00", shanghai, day20261127 + 1, 0},
		{"UTC evening is the next local day", "2026-11-27T16:00:00Z", shanghai, day20261127 + 1, 0},
		{"UTC afternoon is still the local day", "2026-11-27T15:59:59Z", shanghai, day20261127, 86399},
		{"UTC morning of the same date", "2026-11-27T01:00:00Z", shanghai, day20261127, 9 * 3600},
		{"offset of another zone", "2026-11-27T23:30:00-05:00", shanghai, day20261127 + 1, 12*3600 + 30*60},
		{"epoch in UTC", "1970-01-01T00:00:00Z", time.UTC, 0, 0},
		// 2026-03-08 in New York has 23 hours: seconds count elapsed time,
		// not the wall clock, so the dwell rule measures real time.
		{"short DST day", "2026-03-08T23:59:59-04:00", newYork, 20520, 23*3600 - 1},
		{"after the DST jump", "2026-03-08T03:00:00-04:00", newYork, 20520, 2 * 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			day, sec := DayOf(MustTime(t, tt.t), tt.loc)
			if day != tt.wantDay || sec != tt.wantSec {
				t.Errorf("DayOf(%s, %s) = %d (%v), %d; want %d (%v), %d",
					tt.t, tt.loc, day, day, sec, tt.wantDay, tt.wantDay, tt.wantSec)
			}
		})
	}
}

func TestDayTimeAndString(t *testing.T) {
	shanghai := MustLocation(t, "Asia/Shanghai")
	if got, want := day20261127.String(), "2026-11-27"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	start := day20261127.Time(shanghai)
	if want := MustTime(t, "2026-11-27T00:00:00+08:00"); !start.Equal(want) {
		t.Errorf("Time() = %v, want %v", start, want)
	}
	// Day.Time and DayOf are inverses at every local midnight.
	for d := day20261127 - 400; d < day20261127+400; d++ {
		got, sec := DayOf(d.Time(shanghai), shanghai)
		if got != d || sec != 0 {
			t.Fatalf("DayOf(%v.Time()) = %v, %d; want %v, 0", d, got, sec, d)
		}
	}
}

func TestLastDays(t *testing.T) {
	shanghai := MustLocation(t, "Asia/Shanghai")
	tests := []struct {
		name string
		now  string
		n    int
		want Window
	}{
		{"15 days at the last local second", "2026-11-27T23:59:59+08:00", 15, Window{day20261127 - 14, day20261127}},
		{"15 days at local midnight", "2026-11-28T00:00:00+08:00", 15, Window{day20261127 - 13, day20261127 + 1}},
		{"UTC time on the next local day", "2026-11-27T16:00:00Z", 15, Window{day20261127 - 13, day20261127 + 1}},
		{"today only", "2026-11-27T12:00:00+08:00", 1, Window{day20261127, day20261127}},
		{"30 days", "2026-11-27T12:00:00+08:00", 30, Window{day20261127 - 29, day20261127}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LastDays(MustTime(t, tt.now), shanghai, tt.n)
			if got != tt.want {
				t.Errorf("LastDays(%s, %d) = %v..%v, want %v..%v", tt.now, tt.n, got.First, got.Last, tt.want.First, tt.want.Last)
			}
			if got.Days() != tt.n {
				t.Errorf("Days() = %d, want %d", got.Days(), tt.n)
			}
		})
	}
}

func TestWindowContains(t *testing.T) {
	w := Window{First: 100, Last: 114}
	tests := []struct {
		name string
		day  Day
		want bool
	}{
		{"day before", 99, false},
		{"first day", 100, true},
		{"middle", 107, true},
		{"last day", 114, true},
		{"day after", 115, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.Contains(tt.day); got != tt.want {
				t.Errorf("Contains(%d) = %v, want %v", tt.day, got, tt.want)
			}
		})
	}
	if one := (Window{First: 7, Last: 7}); !one.Contains(7) || one.Days() != 1 {
		t.Errorf("a one-day window: Contains = %v, Days = %d", one.Contains(7), one.Days())
	}
}

const (
	beijing      Region = 110100
	shijiazhuang Region = 130100
	hebei        Region = 130000
	hongKong     Region = 810000
	japan        Region = 440
	shanghaiCity Region = 310100
)

// visit is a visit from first to last, given as durations since midnight.
func visit(day Day, r Region, first, last time.Duration) Visit {
	return Visit{Day: day, Region: r, First: uint32(first / time.Second), Last: uint32(last / time.Second)}
}

func TestBuild(t *testing.T) {
	w := Window{First: 100, Last: 114}
	four := Rules{MinDwell: DefaultMinDwell}
	const h = time.Hour
	tests := []struct {
		name   string
		visits []Visit
		rules  Rules
		want   []Place
	}{
		{"no visits", nil, four, nil},
		{
			"exactly four hours counts",
			[]Visit{visit(110, beijing, 8*h, 12*h)},
			four,
			[]Place{{beijing, 110, 110}},
		},
		{
			"one second short does not",
			[]Visit{visit(110, beijing, 8*h, 12*h-time.Second)},
			four,
			nil,
		},
		{
			"MinDwell zero counts a single sighting",
			[]Visit{visit(110, beijing, 9*h, 9*h)},
			Rules{},
			[]Place{{beijing, 110, 110}},
		},
		{
			"a country counts on one sighting",
			[]Visit{visit(110, japan, 9*h, 9*h)},
			four,
			[]Place{{japan, 110, 110}},
		},
		{
			"a province is held to the dwell rule",
			[]Visit{visit(110, hebei, 9*h, 10*h)},
			four,
			nil,
		},
		{
			"Hong Kong, like a country, counts on one sighting",
			[]Visit{visit(110, hebei, 9*h, 10*h), visit(111, hongKong, 9*h, 9*h)},
			four,
			[]Place{{hongKong, 111, 111}},
		},
		{
			"only qualifying days set the span",
			[]Visit{
				visit(101, beijing, 0, h), // too short: not the first day
				visit(103, beijing, 0, 5*h),
				visit(107, beijing, 0, 5*h),
				visit(109, beijing, 0, time.Minute), // too short: not the last day
			},
			four,
			[]Place{{beijing, 103, 107}},
		},
		{
			"most recent first",
			[]Visit{
				visit(101, japan, 0, 0),
				visit(105, shijiazhuang, 0, 5*h),
				visit(112, beijing, 0, 5*h),
			},
			four,
			[]Place{{beijing, 112, 112}, {shijiazhuang, 105, 105}, {japan, 101, 101}},
		},
		{
			"same last day: first seen later goes first",
			[]Visit{
				visit(102, beijing, 0, 5*h),
				visit(110, beijing, 0, 5*h),
				visit(108, shijiazhuang, 0, 5*h),
				visit(110, shijiazhuang, 0, 5*h),
			},
			four,
			[]Place{{shijiazhuang, 108, 110}, {beijing, 102, 110}},
		},
		{
			"same days: lower code first",
			[]Visit{
				visit(110, shijiazhuang, 0, 5*h),
				visit(110, japan, 0, 0),
				visit(110, beijing, 0, 5*h),
			},
			four,
			[]Place{{japan, 110, 110}, {beijing, 110, 110}, {shijiazhuang, 110, 110}},
		},
		{
			"out of order and repeated",
			[]Visit{
				visit(112, beijing, 0, 5*h),
				visit(101, beijing, 0, 5*h),
				visit(112, beijing, 0, 5*h),
				visit(106, beijing, 0, 5*h),
				visit(101, beijing, 0, 5*h),
			},
			four,
			[]Place{{beijing, 101, 112}},
		},
		{
			"outside the window is ignored",
			[]Visit{
				visit(99, japan, 0, 0),
				visit(99, beijing, 0, 5*h),
				visit(100, beijing, 0, 5*h),
				visit(114, shijiazhuang, 0, 5*h),
				visit(115, beijing, 0, 5*h),
				visit(115, shanghaiCity, 0, 5*h),
			},
			four,
			[]Place{{shijiazhuang, 114, 114}, {beijing, 100, 100}},
		},
		{
			"a long day counts",
			[]Visit{visit(114, beijing, 0, 25*h)}, // a DST day
			four,
			[]Place{{beijing, 114, 114}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Build(tt.visits, w, tt.rules)
			if got.Window != w {
				t.Errorf("Window = %v, want %v", got.Window, w)
			}
			if !slices.Equal(got.Places, tt.want) {
				t.Errorf("Places =\n%v\nwant\n%v", got.Places, tt.want)
			}
		})
	}
}

// TestBuildOrderIndependent checks that shuffling and repeating visits
// never changes the itinerary: the store returns visits by day, a fake or
// a future store may not.
func TestBuildOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := Window{First: 100, Last: 129}
	regions := []Region{beijing, shijiazhuang, hebei, hongKong, japan, shanghaiCity, 310, 454}
	for i := range 200 {
		var vs []Visit
		for range rng.IntN(40) {
			first := rng.Uint32N(86400)
			vs = append(vs, Visit{
				Day:    Day(95 + rng.IntN(40)),
				Region: regions[rng.IntN(len(regions))],
				First:  first,
				Last:   first + rng.Uint32N(86400-first+1),
			})
		}
		want := Build(vs, w, Rules{MinDwell: DefaultMinDwell})
		shuffled := slices.Clone(vs)
		shuffled = append(shuffled, vs[:len(vs)/2]...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := Build(shuffled, w, Rules{MinDwell: DefaultMinDwell})
		if !slices.Equal(got.Places, want.Places) {
			t.Fatalf("case %d: shuffled and repeated visits give\n%v\nwant\n%v", i, got.Places, want.Places)
		}
		seen := make(map[Region]bool)
		for j, p := range got.Places {
			if seen[p.Region] {
				t.Fatalf("case %d: %v named twice", i, p.Region)
			}
			seen[p.Region] = true
			if !w.Contains(p.FirstDay) || !w.Contains(p.LastDay) || p.FirstDay > p.LastDay {
				t.Fatalf("case %d: place %+v outside %v", i, p, w)
			}
			if j > 0 && got.Places[j-1].LastDay < p.LastDay {
				t.Fatalf("case %d: not most recent first: %v", i, got.Places)
			}
		}
	}
}

func TestSplit(t *testing.T) {
	w := Window{First: 101, Last: 130} // 30 days; day 130 is today, "day 1"
	const h = time.Hour
	visits := []Visit{
		visit(130, beijing, 0, 5*h),      // day 1
		visit(116, shijiazhuang, 0, 5*h), // day 15
		visit(115, japan, 0, 0),          // day 16
		visit(101, hongKong, 0, 5*h),     // day 30
		visit(100, shanghaiCity, 0, 5*h), // day 31: outside
		visit(116, beijing, 0, 5*h),      // day 15 again
	}
	newer, older, err := Split(visits, w, Rules{MinDwell: DefaultMinDwell}, 15)
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	if want := (Window{First: 116, Last: 130}); newer.Window != want {
		t.Errorf("newer window = %v, want %v", newer.Window, want)
	}
	if want := (Window{First: 101, Last: 115}); older.Window != want {
		t.Errorf("older window = %v, want %v", older.Window, want)
	}
	if want := []Place{{beijing, 116, 130}, {shijiazhuang, 116, 116}}; !slices.Equal(newer.Places, want) {
		t.Errorf("newer places = %v, want %v", newer.Places, want)
	}
	if want := []Place{{japan, 115, 115}, {hongKong, 101, 101}}; !slices.Equal(older.Places, want) {
		t.Errorf("older places = %v, want %v", older.Places, want)
	}

	for _, recent := range []int{-1, 0, 30, 31} {
		t.Run(fmt.Sprintf("recent %d", recent), func(t *testing.T) {
			_, _, err := Split(visits, w, Rules{}, recent)
			if !errors.Is(err, ErrBadWindow) {
				t.Errorf("Split(recent %d) error = %v, want ErrBadWindow", recent, err)
			}
		})
	}
}

func TestVisitDwell(t *testing.T) {
	if got := visit(1, beijing, time.Hour, 5*time.Hour).Dwell(); got != 4*time.Hour {
		t.Errorf("Dwell() = %v, want 4h", got)
	}
}

func TestBorderCrossingsCountOnOneSighting(t *testing.T) {
	rules := Rules{MinDwell: DefaultMinDwell}
	for _, r := range []Region{440, 810000, 820000, 710000} {
		if !rules.Qualifies(Visit{Region: r, First: 3600, Last: 3600}) {
			t.Errorf("%v: one sighting should count", r)
		}
	}
	for _, r := range []Region{110100, 130000, 440100} {
		if rules.Qualifies(Visit{Region: r, First: 3600, Last: 3600}) {
			t.Errorf("%v: one sighting should not count", r)
		}
	}
}

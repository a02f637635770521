package itinerary

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Day is a local calendar day, counted from 1970-01-01 in the location the
// service runs in (Asia/Shanghai by default). Local days, not UTC days, because
// "the last 15 days" means the subscriber's calendar.
type Day int32

// DayOf returns the local day of t in loc and the seconds elapsed since that
// day's local midnight.
func DayOf(t time.Time, loc *time.Location) (Day, uint32) {
	lt := t.In(loc)
	y, m, d := lt.Date()
	day := Day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)
	return day, uint32(t.Unix() - midnight.Unix())
}

// Time returns the local midnight that starts d in loc.
func (d Day) Time(loc *time.Location) time.Time {
	u := time.Unix(int64(d)*86400, 0).UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, loc)
}

// String formats d as an ISO date.
func (d Day) String() string {
	return time.Unix(int64(d)*86400, 0).UTC().Format(time.DateOnly)
}

// Window is a closed range of local days: the last N days up to and including
// today.
type Window struct {
	First, Last Day
}

// LastDays returns the window of today and the n-1 days before it, today
// being now's local day in loc.
func LastDays(now time.Time, loc *time.Location, n int) Window {
	today, _ := DayOf(now, loc)
	return Window{First: today - Day(n) + 1, Last: today}
}

// Days is the number of days in w.
func (w Window) Days() int { return int(w.Last-w.First) + 1 }

// Contains reports whether d falls in w.
func (w Window) Contains(d Day) bool { return d >= w.First && d <= w.Last }

// Visit is what the store keeps of a subscriber's sightings in one region on
// one day: the first and last sighting, as seconds since local midnight. The
// dwell rule needs nothing more, so the raw events are never kept.
type Visit struct {
	Day         Day
	Region      Region
	First, Last uint32
}

// Dwell is the span between the first and the last sighting.
func (v Visit) Dwell() time.Duration { return time.Duration(v.Last-v.First) * time.Second }

// DefaultMinDwell is the dwell rule of the national itinerary card: a city
// counts for a day when the phone was seen there over at least four hours.
const DefaultMinDwell = 4 * time.Hour

// Rules decide which visits an itinerary names.
type Rules struct {
	// MinDwell is the least span between the first and last sighting in a
	// city on a day for that city to count for that day. Zero counts every
	// sighting. A country abroad, Hong Kong, Macao and Taiwan count on any
	// sighting whatever MinDwell is: crossing a border (or a boundary
	// with its own entry control) is itself what the service reports.
	MinDwell time.Duration
}

// Qualifies reports whether v counts under r.
func (r Rules) Qualifies(v Visit) bool {
	return v.Region.CrossesBorder() || v.Dwell() >= r.MinDwell
}

// Place is one region an itinerary names, with the first and last day it
// qualified within the window.
type Place struct {
	Region            Region
	FirstDay, LastDay Day
}

// Itinerary is the answer to "where was this phone over this window".
type Itinerary struct {
	Window Window
	// Places names each qualifying region once, most recently visited first;
	// ties go to the region first seen later, then to the lower code, so that
	// the order is deterministic.
	Places []Place
}

// Build applies rules to visits and returns the itinerary for w. Visits may
// come in any order and may repeat; those outside w are ignored.
func Build(visits []Visit, w Window, rules Rules) Itinerary {
	it := Itinerary{Window: w}
	for _, v := range visits {
		if !w.Contains(v.Day) || !rules.Qualifies(v) {
			continue
		}
		i := slices.IndexFunc(it.Places, func(p Place) bool { return p.Region == v.Region })
		if i < 0 {
			it.Places = append(it.Places, Place{Region: v.Region, FirstDay: v.Day, LastDay: v.Day})
			continue
		}
		p := &it.Places[i]
		p.FirstDay = min(p.FirstDay, v.Day)
		p.LastDay = max(p.LastDay, v.Day)
	}
	slices.SortFunc(it.Places, func(a, b Place) int {
		switch {
		case a.LastDay != b.LastDay:
			return int(b.LastDay - a.LastDay)
		case a.FirstDay != b.FirstDay:
			return int(b.FirstDay - a.FirstDay)
		default:
			return int(a.Region) - int(b.Region)
		}
	})
	return it
}

// Split divides a window into its most recent days (1 to recent, counting
// today as day 1) and the days before them, as China Mobile's original
// 30-day reply did with days 1-15 and 16-30. Each part is built from the same
// visits with the same rules.
func Split(visits []Visit, w Window, rules Rules, recent int) (newer, older Itinerary, err error) {
	if recent <= 0 || recent >= w.Days() {
		return Itinerary{}, Itinerary{}, fmt.Errorf("%w: split at %d of a %d-day window", ErrBadWindow, recent, w.Days())
	}
	nw := Window{First: w.Last - Day(recent) + 1, Last: w.Last}
	ow := Window{First: w.First, Last: nw.First - 1}
	return Build(visits, nw, rules), Build(visits, ow, rules), nil
}

// ErrBadWindow reports a window that does not make sense.
var ErrBadWindow = errors.New("itinerary: bad window")

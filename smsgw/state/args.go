package state

import (
	"time"
)

// dayCounterTTL is how long a subscriber's count for a day is kept after
// the day's first request: the rest of that day, whatever the time zone
// and daylight saving do to its length, plus slack for instances whose
// clocks straddle midnight.
const dayCounterTTL = 48 * time.Hour

// dayLayout is the form of CountRequest's day: a local date.
const dayLayout = "2006-01-02"

func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return invalid("ttl must be at least a millisecond")
	}
	return nil
}

// checkDay validates a day and returns the day before it. Only the
// canonical form is accepted, so that one day has one key and days sort
// as strings.
func checkDay(day string) (yesterday string, err error) {
	t, err := time.Parse(dayLayout, day)
	if err != nil || t.Format(dayLayout) != day {
		return "", invalid("day must be a date like YYYY-MM-DD")
	}
	return t.AddDate(0, 0, -1).Format(dayLayout), nil
}

func checkLimit(limit int) error {
	if limit < 1 {
		return invalid("limit must be positive")
	}
	return nil
}

func checkPer(per time.Duration) error {
	if per < time.Millisecond {
		return invalid("per must be at least a millisecond")
	}
	return nil
}

// window numbers the fixed budget window of length per that holds now:
// windows start at multiples of per since the Unix epoch, so instances
// agree on them as far as their clocks agree.
func window(now time.Time, per time.Duration) (perMs, n int64) {
	perMs = per.Milliseconds()
	ms := now.UnixMilli()
	n = ms / perMs
	if ms%perMs < 0 {
		n-- // floor, for clocks before 1970
	}
	return perMs, n
}

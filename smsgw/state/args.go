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

// maxID bounds nonces, owners and takers: job ids, kept short so that a
// dialogue stays a small record.
const maxID = 64

// checkID validates a nonce, owner or taker; name is the argument's name.
func checkID(name, id string) error {
	if id == "" || len(id) > maxID {
		return invalid(name + " must be one to sixty-four bytes")
	}
	return nil
}

func checkRequest(r Request) error {
	if err := checkID("Request.Nonce", r.Nonce); err != nil {
		return err
	}
	if r.Days < 1 || r.Days > 366 {
		return invalid("Request.Days must be from one to three hundred sixty-six")
	}
	return nil
}

func checkAsk(req Request, ttl time.Duration) error {
	if err := checkRequest(req); err != nil {
		return err
	}
	return checkTTL(ttl)
}

func checkClaim(key, owner string, ttl time.Duration) error {
	if key == "" {
		return invalid("key must not be empty")
	}
	if err := checkID("owner", owner); err != nil {
		return err
	}
	return checkTTL(ttl)
}

func checkResolve(taker string, ttl time.Duration) error {
	if err := checkID("taker", taker); err != nil {
		return err
	}
	return checkTTL(ttl)
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

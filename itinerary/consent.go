package itinerary

import "time"

// Consent is what a subscriber chose about the recording of their
// locations, and whether their number changed hands. The zero value is a
// subscriber who never chose: recorded or not as the deployment's
// collection policy says. Times are kept to the second, in UTC.
//
// The transitions (WithOptOut, WithOptIn, WithReassigned) live here, in
// the domain, because two parties must agree on them exactly: the store
// that applies them and the gateway that predicts their result to suppress
// a redelivered TD or KT.
type Consent struct {
	// OptedOut is when the subscriber opted out (TD); zero while they are
	// not opted out.
	OptedOut time.Time
	// OptedIn is when the subscriber last opted in (KT): recording runs
	// from then. Zero if they never did, or not since the number changed
	// hands.
	OptedIn time.Time
	// Reassigned is when the number last went to a new holder: nothing
	// from before it belongs to the current holder. Zero if never.
	Reassigned time.Time
}

// Out reports whether the subscriber is opted out.
func (c Consent) Out() bool { return !c.OptedOut.IsZero() }

// In reports whether the subscriber opted in and has not opted out since.
func (c Consent) In() bool { return !c.Out() && !c.OptedIn.IsZero() }

// Since is the earliest time an event of the current holder may come from:
// the later of OptedIn and Reassigned, zero when neither is set.
func (c Consent) Since() time.Time {
	if c.OptedIn.After(c.Reassigned) {
		return c.OptedIn
	}
	return c.Reassigned
}

// WithOptOut is c after an opt-out at at. An opt-out already in force keeps
// its time, so repeating one changes nothing.
func (c Consent) WithOptOut(at time.Time) Consent {
	if !c.Out() {
		c.OptedOut = second(at)
	}
	return c
}

// WithOptIn is c after an opt-in at at: recording starts from at. An opt-in
// already in force keeps its time, so repeating one changes nothing (and
// does not drop events that arrive late from before it).
func (c Consent) WithOptIn(at time.Time) Consent {
	if c.In() {
		return c
	}
	c.OptedOut, c.OptedIn = time.Time{}, second(at)
	return c
}

// WithReassigned is c after the number went to a new holder at at. A choice
// made before at was the previous holder's and is dropped; one made at or
// after at (the operator may report a reassignment late) is the new
// holder's and is kept. The latest reassignment wins.
func (c Consent) WithReassigned(at time.Time) Consent {
	at = second(at)
	if at.Before(c.Reassigned) {
		at = c.Reassigned
	}
	c.Reassigned = at
	if c.OptedOut.Before(at) {
		c.OptedOut = time.Time{}
	}
	if c.OptedIn.Before(at) {
		c.OptedIn = time.Time{}
	}
	return c
}

// second truncates t to the second, in UTC; the zero time stays zero.
func second(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.Unix(t.Unix(), 0).UTC()
}

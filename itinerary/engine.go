package itinerary

import (
	"context"
	"fmt"
	"time"
)

// VisitSource gives a subscriber's visits over a window (store.DB).
type VisitSource interface {
	Visits(ctx context.Context, sub Pseudonym, w Window, dst []Visit) ([]Visit, error)
}

// Engine answers itinerary lookups: the window from the clock, the visits
// from the source, the rules applied.
type Engine struct {
	Source   VisitSource
	Rules    Rules
	Location *time.Location // the calendar of "the last N days"; must match the store's
	Now      func() time.Time
}

// MaxDays is the longest window a lookup may ask for.
const MaxDays = 30

// Lookup returns sub's itinerary over the last days days, today included.
func (e *Engine) Lookup(ctx context.Context, sub Pseudonym, days int) (Itinerary, error) {
	w, vs, err := e.visits(ctx, sub, days)
	if err != nil {
		return Itinerary{}, err
	}
	return Build(vs, w, e.Rules), nil
}

// LookupSplit returns sub's itinerary over the last days days split into
// the recent most recent days and the rest.
func (e *Engine) LookupSplit(ctx context.Context, sub Pseudonym, days, recent int) (newer, older Itinerary, err error) {
	w, vs, err := e.visits(ctx, sub, days)
	if err != nil {
		return Itinerary{}, Itinerary{}, err
	}
	return Split(vs, w, e.Rules, recent)
}

func (e *Engine) visits(ctx context.Context, sub Pseudonym, days int) (Window, []Visit, error) {
	if days < 1 || days > MaxDays {
		return Window{}, nil, fmt.Errorf("%w: %d days", ErrBadWindow, days)
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	w := LastDays(now(), e.Location, days)
	vs, err := e.Source.Visits(ctx, sub, w, make([]Visit, 0, 64))
	return w, vs, err
}

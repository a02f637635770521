package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/smsgw/state"
	"github.com/roamtrail/roamtrail/store"
)

// consentStore is what changes and reads consent: the store alone, or the
// store shared with the other instances on one Redis (sharedConsent).
type consentStore interface {
	OptOut(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error
	OptIn(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error
	Reassigned(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error
	Erase(ctx context.Context, sub itinerary.Pseudonym) error
	Consent(ctx context.Context, sub itinerary.Pseudonym) (itinerary.Consent, error)
}

// consentPublisher appends a change of consent for the other instances
// (*state.Redis).
type consentPublisher interface {
	PublishConsent(ctx context.Context, ev state.ConsentEvent) error
}

// sharedConsent applies each change to this instance's store, then
// publishes it for the others (state's consent stream). A publish that
// fails fails the change: the gateway retries the job, staff see the
// error, and doing it again changes nothing more than publishing it.
type sharedConsent struct {
	*store.DB
	pub    consentPublisher
	origin string
}

func (s sharedConsent) publish(ctx context.Context, op state.ConsentOp, sub itinerary.Pseudonym, at time.Time) error {
	return s.pub.PublishConsent(ctx, state.ConsentEvent{Op: op, Sub: sub, At: at, Origin: s.origin})
}

func (s sharedConsent) OptOut(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error {
	if err := s.DB.OptOut(ctx, sub, at); err != nil {
		return err
	}
	return s.publish(ctx, state.ConsentOptOut, sub, at)
}

func (s sharedConsent) OptIn(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error {
	if err := s.DB.OptIn(ctx, sub, at); err != nil {
		return err
	}
	return s.publish(ctx, state.ConsentOptIn, sub, at)
}

func (s sharedConsent) Reassigned(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error {
	if err := s.DB.Reassigned(ctx, sub, at); err != nil {
		return err
	}
	return s.publish(ctx, state.ConsentReassigned, sub, at)
}

func (s sharedConsent) Erase(ctx context.Context, sub itinerary.Pseudonym) error {
	if err := s.DB.Erase(ctx, sub); err != nil {
		return err
	}
	return s.publish(ctx, state.ConsentErase, sub, time.Time{})
}

// newOrigin names this process in the events it publishes, so that it
// skips them when it reads them back. After a restart it applies its own
// old ones again, which changes nothing.
func newOrigin() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// consentMark is the store's mark for the consent stream.
const consentMark = "consent-events"

// followConsent applies the other instances' changes of consent to db, in
// the order they were published, from where db's mark says, until ctx
// ends; Redis going away is retried. A change is applied before the mark
// moves past it, so a crash between the two applies it again.
func followConsent(ctx context.Context, r *state.Redis, db *store.DB, origin string, events *prometheus.CounterVec, log zerolog.Logger) {
	log = log.With().Str("component", "consent-sync").Logger()
	const retry = 2 * time.Second
	for ctx.Err() == nil {
		mark, _, err := db.Mark(consentMark)
		if err == nil {
			var gap bool
			gap, err = r.FollowConsent(ctx, mark, 5*time.Second, func(next string, ev state.ConsentEvent, perr error) error {
				switch {
				case perr != nil:
					log.Warn().Err(perr).Msg("skipping a consent stream entry that is not an event")
					events.WithLabelValues("unknown", "skipped").Inc()
				case ev.Origin == origin:
					events.WithLabelValues(string(ev.Op), "own").Inc()
				default:
					switch err := applyConsent(ctx, db, ev); {
					case errors.Is(err, store.ErrBadTime):
						log.Warn().Err(err).Str("op", string(ev.Op)).Msg("skipping a consent event with a time out of range")
						events.WithLabelValues(string(ev.Op), "skipped").Inc()
					case err != nil:
						return err // tried again from the mark
					default:
						events.WithLabelValues(string(ev.Op), "applied").Inc()
					}
				}
				return db.SetMark(ctx, consentMark, next)
			})
			if gap {
				// Events were trimmed before this instance read them: an
				// opt-out among them was not applied here. Loud, since
				// only an operator can reconcile (re-running the TDs of
				// the access logs of the other instances).
				log.Error().Int("stream_len", state.ConsentStreamLen).Msg("changes of consent were trimmed from Redis before this instance read them; some opt-outs may not be applied here")
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Dur("retry_in", retry).Msg("following the consent stream failed")
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

func applyConsent(ctx context.Context, db *store.DB, ev state.ConsentEvent) error {
	switch ev.Op {
	case state.ConsentOptOut:
		return db.OptOut(ctx, ev.Sub, ev.At)
	case state.ConsentOptIn:
		return db.OptIn(ctx, ev.Sub, ev.At)
	case state.ConsentReassigned:
		return db.Reassigned(ctx, ev.Sub, ev.At)
	case state.ConsentErase:
		return db.Erase(ctx, ev.Sub)
	}
	return nil // parse already refused anything else
}

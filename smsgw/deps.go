package smsgw

import (
	"context"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// What the gateway needs from the rest of the service, declared here where
// it is used and kept small. cmd wires the concrete types: *itinerary.Engine,
// *store.DB, the state store (smsgw/state), *smpp.Session, the access log
// (privacy/audit).

// Itineraries answers lookups (itinerary.Engine over the store).
type Itineraries interface {
	Lookup(ctx context.Context, sub itinerary.Pseudonym, days int) (itinerary.Itinerary, error)
	LookupSplit(ctx context.Context, sub itinerary.Pseudonym, days, recent int) (newer, older itinerary.Itinerary, err error)
}

// Jobs is the durable queue an MO is written to before it is acknowledged
// (store/journal).
type Jobs interface {
	PutJob(ctx context.Context, id, value []byte) error
	// UpdateJob replaces a job without waiting for an fsync; the next
	// synced write or SyncJobs makes it durable.
	UpdateJob(ctx context.Context, id, value []byte) error
	DeleteJob(ctx context.Context, id []byte) error
	Jobs(ctx context.Context, fn func(id, value []byte) error) error
	// SyncJobs makes earlier writes durable; DeleteJob need not.
	SyncJobs(ctx context.Context) error
}

// Sender submits replies (smpp.Session).
type Sender interface {
	SubmitParts(ctx context.Context, m *smpp.Message) ([]string, error)
}

// State is the gateway's shared state: dialogues, duplicate claims and
// limits (smsgw/state: in memory for one instance, Redis for several).
// Every operation that a crash may repeat takes the job id as owner, so
// repeating it gives the same answer.
type State interface {
	// Claim records key for ttl. It reports true when key was new or is
	// already owned by owner.
	Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	// Dialog returns sub's dialogue: its token changes with every step.
	Dialog(ctx context.Context, sub itinerary.Pseudonym) (state.Dialog, error)
	// Ask makes req the pending request, replacing any other.
	Ask(ctx context.Context, sub itinerary.Pseudonym, req state.Request, ttl time.Duration) error
	// Resolve ends the pending request on behalf of taker (confirm or
	// cancel) and returns it. Resolving again with the same taker returns
	// the same request; ok is false when nothing is pending for taker.
	Resolve(ctx context.Context, sub itinerary.Pseudonym, taker string, ttl time.Duration) (req state.Request, ok bool, err error)
	// CountRequest counts a request against sub's daily limit: allowed
	// while the day's count is within limit; notify is true once a day, the
	// first time it is not.
	CountRequest(ctx context.Context, sub itinerary.Pseudonym, day string, limit int) (allowed, notify bool, err error)
	// AllowGlobal spends one unit of a global budget of limit per window.
	AllowGlobal(ctx context.Context, limit int, per time.Duration) (bool, error)
	// Forget drops sub's dialogue and day counters (an opt-out).
	Forget(ctx context.Context, sub itinerary.Pseudonym) error
}

// Consent keeps subscribers' choices (store.DB). OptOut erases the
// subscriber's history at once and stops recording; OptIn starts it from
// at. Both are idempotent, so a job may repeat them.
type Consent interface {
	OptOut(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error
	OptIn(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error
	Consent(ctx context.Context, sub itinerary.Pseudonym) (itinerary.Consent, error)
}

// AccessLog is the access log (privacy/audit: a *audit.Log for Append,
// Write and Synced, and audit.Last on its dir). An entry is on record
// before the itinerary it records is sent and before a change of consent
// is confirmed; if it cannot be written, nothing is sent.
//
// Append returns once the entry is on disk. Write returns once it is
// written, and Synced once an fsync covers it: the gateway uses these for
// a Y whose queued job, synced before the MO was acknowledged, already
// records the request it confirms, so that the itinerary is looked up and
// sent while the entry's fsync runs; the job is deleted only after Synced,
// and a job resumed after a crash writes its entry again. Last returns the
// newest n entries about subject, newest first, for JL; when ctx ends it
// returns what it found with ctx's error.
type AccessLog interface {
	Append(ctx context.Context, e audit.Entry) (audit.Entry, error)
	Write(ctx context.Context, e audit.Entry) (audit.Entry, error)
	Synced(ctx context.Context, seq uint64) error
	Last(ctx context.Context, subject string, n int) ([]audit.Entry, error)
}

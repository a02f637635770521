// Package compare holds the visit stores roamtrail is measured against
// (roamtrail bench compare): the same visits in PostgreSQL and in Redis,
// each laid out the way someone would reach for first, each answering the
// question store.DB answers (itinerary.VisitSource), so that one
// itinerary.Engine runs on any of them and the answers can be compared.
//
// Neither is a supported store: they exist to put roamtrail's figures
// beside the alternatives on the same data and the same queries.
package compare

import (
	"errors"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Errors. None carries a pseudonym.
var (
	ErrBadOption = errors.New("compare: bad option")
	ErrCorrupt   = errors.New("compare: corrupt data")
)

// Subscriber is one subscriber's visits, as a store loads them.
type Subscriber struct {
	Sub    itinerary.Pseudonym
	Visits []itinerary.Visit
}

// Load is what loading a store cost.
type Load struct {
	Visits int   // visits written
	Bytes  int64 // what the store holds for them (each type says how it counts)

	// ServerBytes is, for Redis, used_memory after the load minus before:
	// the whole server's growth, noisy when others use it. Zero elsewhere.
	ServerBytes int64
}

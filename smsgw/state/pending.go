package state

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Pending is a request waiting for the subscriber's "Y": what to send once
// it is confirmed. It is stored encoded (see MarshalBinary), 14 bytes.
type Pending struct {
	// Days is the length of the itinerary asked for, from 0 to
	// math.MaxInt32.
	Days int
	// Lang is the language the reply is written in.
	Lang itinerary.Lang
	// Created is when the request came in. It is kept to the
	// millisecond, in UTC.
	Created time.Time
}

// Pending's encoding, version 1: the version byte, Lang, Days as a
// big-endian uint32, Created as big-endian milliseconds since the Unix
// epoch. A fixed width keeps the decoder trivial and every valid encoding
// canonical; the version byte leaves room for more fields.
const (
	pendingV1   = 1
	pendingSize = 1 + 1 + 4 + 8
)

// MarshalBinary encodes p; it fails only for Days out of range.
func (p Pending) MarshalBinary() ([]byte, error) {
	if p.Days < 0 || p.Days > math.MaxInt32 {
		return nil, invalid("Pending.Days out of range")
	}
	b := make([]byte, pendingSize)
	b[0] = pendingV1
	b[1] = byte(p.Lang)
	binary.BigEndian.PutUint32(b[2:6], uint32(p.Days))
	binary.BigEndian.PutUint64(b[6:14], uint64(p.Created.UnixMilli()))
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded; any other input is
// ErrCorrupt.
func (p *Pending) UnmarshalBinary(b []byte) error {
	switch {
	case len(b) != pendingSize:
		return fmt.Errorf("%w: wrong length", ErrCorrupt)
	case b[0] != pendingV1:
		return fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	days := binary.BigEndian.Uint32(b[2:6])
	if days > math.MaxInt32 {
		return fmt.Errorf("%w: days out of range", ErrCorrupt)
	}
	*p = Pending{
		Days:    int(days),
		Lang:    itinerary.Lang(b[1]),
		Created: time.UnixMilli(int64(binary.BigEndian.Uint64(b[6:14]))).UTC(),
	}
	return nil
}

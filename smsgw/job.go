package smsgw

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// job is one MO on its way to its reply, as stored in the durable queue.
// The number it answers is sealed (privacy.Sealer): the data dir never
// holds a number in clear.
type job struct {
	ID       string              `json:"-"`
	Sub      itinerary.Pseudonym `json:"s"`
	Sealed   []byte              `json:"n"` // the sender's E.164 number, sealed with the job id as AD
	Masked   string              `json:"m"` // 138****8000, for logs
	Cmd      Command             `json:"c"`
	Received time.Time           `json:"r"`
	// Set as the job advances, so that a job resumed after a crash does
	// not redo a step whose effect is already in the shared state.
	Claimed  bool           `json:"k,omitempty"`
	Counted  bool           `json:"q,omitempty"` // counted against the daily limit
	Allowed  bool           `json:"w,omitempty"`
	Notify   bool           `json:"y,omitempty"`
	Resolved *state.Request `json:"p,omitempty"`
	Logged   bool           `json:"l,omitempty"` // its access-log entry is written
	Attempts int            `json:"a,omitempty"`

	// claims are the claim keys this run of the job took, for park.
	claims []string
}

// newJobID is time-ordered (jobs resume oldest first) and unique across
// instances (random tail).
func newJobID(now time.Time) (string, error) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("smsgw: job id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (j *job) encode() ([]byte, error) { return json.Marshal(j) }

var errBadJob = errors.New("smsgw: unreadable job")

func decodeJob(id, b []byte) (*job, error) {
	var j job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadJob, err)
	}
	j.ID = string(id)
	return &j, nil
}

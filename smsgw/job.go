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
	// Intent is, for a Y, the request that was pending when the MO came:
	// stored (and synced) with the job before the MO is acknowledged, it
	// lets the itinerary go while the access-log entry's fsync runs (see
	// AccessLog), since a job resumed after a crash writes that entry again.
	Intent *state.Request `json:"i,omitempty"`
	// Done says the job's work is done and it is kept only as the record
	// of an access-log entry whose fsync failed: the next start writes the
	// entry again and sends nothing.
	Done bool `json:"d,omitempty"`

	// claims are the claim keys this run of the job took, for park.
	claims []string
	// resumed: Run loaded it from a previous run's queue.
	resumed bool
	// unsynced is the access-log entry this run wrote without waiting for
	// its fsync (AccessLog.Write): the job stays stored until it is synced.
	unsynced uint64
	// rewritten: this run wrote Intent's entry again on resuming.
	rewritten bool
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

// A job is stored in a compact binary form, jobVersion then its fields;
// JSON (a first byte of '{') is what earlier versions stored, still read.
// JSON was a tenth of the gateway's CPU per MO: a pseudonym encodes as an
// array of sixteen numbers.
const jobVersion = 1

// Flags of the binary form.
const (
	jobClaimed = 1 << iota
	jobCounted
	jobAllowed
	jobNotify
	jobLogged
	jobResolved
	jobIntent
	jobDone
)

func (j *job) encode() ([]byte, error) {
	b := make([]byte, 0, 64+len(j.Sealed)+len(j.Masked))
	b = append(b, jobVersion)
	b = append(b, j.Sub[:]...)
	b = binary.AppendUvarint(b, uint64(len(j.Sealed)))
	b = append(b, j.Sealed...)
	b = binary.AppendUvarint(b, uint64(len(j.Masked)))
	b = append(b, j.Masked...)
	b = append(b, byte(j.Cmd.Kind), byte(j.Cmd.Days), byte(j.Cmd.Lang))
	b = binary.AppendVarint(b, j.Received.UnixNano())
	var flags byte
	for _, f := range []struct {
		set  bool
		flag byte
	}{{j.Claimed, jobClaimed}, {j.Counted, jobCounted}, {j.Allowed, jobAllowed}, {j.Notify, jobNotify}, {j.Logged, jobLogged}, {j.Resolved != nil, jobResolved}, {j.Intent != nil, jobIntent}, {j.Done, jobDone}} {
		if f.set {
			flags |= f.flag
		}
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(max(j.Attempts, 0)))
	if j.Resolved != nil {
		r, err := json.Marshal(j.Resolved) // rare: only a confirmed request
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	if r := j.Intent; r != nil {
		// Every Y has one: binary, not JSON.
		b = binary.AppendUvarint(b, uint64(len(r.Nonce)))
		b = append(b, r.Nonce...)
		b = binary.AppendUvarint(b, uint64(max(r.Days, 0)))
		b = append(b, byte(r.Lang))
	}
	return b, nil
}

var errBadJob = errors.New("smsgw: unreadable job")

func decodeJob(id, b []byte) (*job, error) {
	var j job
	switch {
	case len(b) > 0 && b[0] == '{':
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("%w: %w", errBadJob, err)
		}
	case len(b) > 0 && b[0] == jobVersion:
		if err := j.decodeBinary(b[1:]); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown form", errBadJob)
	}
	j.ID = string(id)
	return &j, nil
}

// decodeBinary reads what encode wrote after its version byte. The value
// comes from our own store, but a torn or foreign one must be an error,
// not a panic.
func (j *job) decodeBinary(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errBadJob, what) }
	take := func(n int) ([]byte, bool) {
		if n < 0 || n > len(b) {
			return nil, false
		}
		v := b[:n]
		b = b[n:]
		return v, true
	}
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	bytesField := func() ([]byte, bool) {
		n, ok := uvarint()
		if !ok || n > uint64(len(b)) {
			return nil, false
		}
		return take(int(n))
	}
	sub, ok := take(len(j.Sub))
	if !ok {
		return bad("subscriber")
	}
	copy(j.Sub[:], sub)
	sealed, ok := bytesField()
	if !ok {
		return bad("sealed number")
	}
	j.Sealed = append([]byte(nil), sealed...)
	masked, ok := bytesField()
	if !ok {
		return bad("masked number")
	}
	j.Masked = string(masked)
	cmd, ok := take(3)
	if !ok {
		return bad("command")
	}
	j.Cmd = Command{Kind: Kind(cmd[0]), Days: int(cmd[1]), Lang: itinerary.Lang(cmd[2])}
	recv, n := binary.Varint(b)
	if n <= 0 {
		return bad("time")
	}
	b = b[n:]
	j.Received = time.Unix(0, recv)
	flags, ok := take(1)
	if !ok {
		return bad("flags")
	}
	f := flags[0]
	j.Claimed, j.Counted, j.Allowed, j.Notify, j.Logged = f&jobClaimed != 0, f&jobCounted != 0, f&jobAllowed != 0, f&jobNotify != 0, f&jobLogged != 0
	j.Done = f&jobDone != 0
	attempts, ok := uvarint()
	if !ok || attempts > 1<<20 {
		return bad("attempts")
	}
	j.Attempts = int(attempts)
	if f&jobResolved != 0 {
		r, ok := bytesField()
		if !ok {
			return bad("request")
		}
		j.Resolved = new(state.Request)
		if err := json.Unmarshal(r, j.Resolved); err != nil {
			return fmt.Errorf("%w: request: %w", errBadJob, err)
		}
	}
	if f&jobIntent != 0 {
		nonce, ok := bytesField()
		if !ok || len(nonce) == 0 || len(nonce) > 64 {
			return bad("intent")
		}
		days, ok := uvarint()
		if !ok || days > 366 {
			return bad("intent days")
		}
		lang, ok := take(1)
		if !ok {
			return bad("intent language")
		}
		j.Intent = &state.Request{Nonce: string(nonce), Days: int(days), Lang: itinerary.Lang(lang[0])}
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return nil
}

package smstext

import (
	"sync"
	"time"
)

// Part is one received part of a possibly concatenated message, its
// header already stripped.
type Part struct {
	Source      string
	Destination string
	Concat      Concat // Total 0 or 1 means a message on its own
	DataCoding  byte
	Data        []byte // payload without UDH
}

// Message is a complete message: a single part, or every part of a set in
// order.
type Message struct {
	Source      string
	Destination string
	Ref         uint16
	Parts       int  // number of parts it was sent in
	DataCoding  byte // of the first part
	Data        []byte
	// Text is the decoded text; DecodeErr is ErrBinary or ErrUnknownCoding
	// when the data is not text this package reads.
	Text      string
	DecodeErr error

	key    setKey
	inSet  bool
	handed *set
}

// ReassemblerOptions bounds a Reassembler. The zero value means defaults.
type ReassemblerOptions struct {
	// TTL is how long an incomplete set waits for its missing parts,
	// counted from its first part. Default 10 minutes.
	TTL time.Duration
	// MaxSets is the most incomplete sets held; beyond it the oldest is
	// evicted. Default 10000.
	MaxSets int
	// MaxBytes bounds the payload bytes held over all sets; beyond it the
	// oldest sets are evicted. Default 8 MiB.
	MaxBytes int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// ReassemblyStats counts what a Reassembler did.
type ReassemblyStats struct {
	PendingSets  int    // incomplete (or handed out) sets held now
	PendingBytes int    // payload bytes held now
	Completed    uint64 // sets completed and released as consumed
	Duplicates   uint64 // parts ignored because already held
	Expired      uint64 // sets dropped by TTL
	Evicted      uint64 // sets dropped to respect MaxSets/MaxBytes
}

type setKey struct {
	src, dst string
	ref      uint16
	total    uint8
}

type set struct {
	key     setKey
	created time.Time
	parts   [][]byte
	codings []byte
	have    int
	bytes   int
	handed  bool // given to a caller who has not released it yet
}

// Reassembler joins concatenated parts keyed by (source, destination,
// reference, total). Parts may come in any order; a duplicate part is
// ignored. A complete set is handed out once; the caller releases it as
// consumed (it is forgotten) or not (a redelivered part hands it out
// again). Safe for concurrent use.
type Reassembler struct {
	opts ReassemblerOptions

	mu        sync.Mutex
	sets      map[setKey]*set
	bytes     int
	lastSweep time.Time
	stats     ReassemblyStats
}

// NewReassembler returns an empty Reassembler.
func NewReassembler(opts ReassemblerOptions) *Reassembler {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Minute
	}
	if opts.MaxSets <= 0 {
		opts.MaxSets = 10000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 8 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reassembler{opts: opts, sets: make(map[setKey]*set)}
}

// Add takes one part. It returns the complete message when this part
// completes its set (or when the set is complete and not handed out, as
// after a redelivered part), otherwise nil. A part that is not
// concatenated is returned at once as a one-part message.
func (r *Reassembler) Add(p Part) *Message {
	if !p.Concat.valid() || p.Concat.Total == 1 {
		return finish(&Message{
			Source: p.Source, Destination: p.Destination, Ref: p.Concat.Ref,
			Parts: 1, DataCoding: p.DataCoding, Data: p.Data,
		}, []byte{p.DataCoding}, [][]byte{p.Data})
	}
	k := setKey{src: p.Source, dst: p.Destination, ref: p.Concat.Ref, total: p.Concat.Total}

	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	r.sweepLocked(now)

	s := r.sets[k]
	if s == nil {
		for len(r.sets) >= r.opts.MaxSets && r.evictOldestLocked() {
		}
		s = &set{key: k, created: now, parts: make([][]byte, p.Concat.Total), codings: make([]byte, p.Concat.Total)}
		r.sets[k] = s
	}
	i := int(p.Concat.Seq) - 1
	if s.parts[i] != nil {
		r.stats.Duplicates++
	} else {
		for r.bytes+len(p.Data) > r.opts.MaxBytes && r.evictOldestExceptLocked(s) {
		}
		data := append(make([]byte, 0, len(p.Data)), p.Data...) // never nil: nil marks a missing part
		s.parts[i], s.codings[i] = data, p.DataCoding
		s.have++
		s.bytes += len(data)
		r.bytes += len(data)
	}
	if s.have < len(s.parts) || s.handed {
		return nil
	}
	s.handed = true
	m := &Message{
		Source: k.src, Destination: k.dst, Ref: k.ref, Parts: len(s.parts),
		DataCoding: s.codings[0], key: k, inSet: true, handed: s,
	}
	return finish(m, s.codings, s.parts)
}

// Release ends the caller's hold on a message from Add. consumed true
// forgets the set (later parts with the same key start a new one);
// false keeps it complete so that a redelivered part hands it out again
// (until the TTL drops it). Releasing a one-part message does nothing.
func (r *Reassembler) Release(m *Message, consumed bool) {
	if m == nil || !m.inSet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sets[m.key]
	if s != m.handed {
		return // expired or evicted meanwhile
	}
	if consumed {
		r.dropLocked(s)
		r.stats.Completed++
		return
	}
	s.handed = false
}

// Stats returns counters and the current size.
func (r *Reassembler) Stats() ReassemblyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.PendingSets = len(r.sets)
	st.PendingBytes = r.bytes
	return st
}

// sweepLocked drops expired sets, at most once per second of the clock.
func (r *Reassembler) sweepLocked(now time.Time) {
	if !r.lastSweep.IsZero() && now.Sub(r.lastSweep) < time.Second && now.After(r.lastSweep) {
		return
	}
	r.lastSweep = now
	for _, s := range r.sets {
		if !s.handed && now.Sub(s.created) >= r.opts.TTL {
			r.dropLocked(s)
			r.stats.Expired++
		}
	}
}

func (r *Reassembler) evictOldestLocked() bool { return r.evictOldestExceptLocked(nil) }

// evictOldestExceptLocked drops the oldest set that is neither keep nor
// handed out; false when there is none.
func (r *Reassembler) evictOldestExceptLocked(keep *set) bool {
	var old *set
	for _, s := range r.sets {
		if s == keep || s.handed {
			continue
		}
		if old == nil || s.created.Before(old.created) {
			old = s
		}
	}
	if old == nil {
		return false
	}
	r.dropLocked(old)
	r.stats.Evicted++
	return true
}

func (r *Reassembler) dropLocked(s *set) {
	delete(r.sets, s.key)
	r.bytes -= s.bytes
}

// finish joins and decodes the parts. Parts sharing one coding are
// decoded together so that a character split across parts by a careless
// sender survives; mixed codings are decoded part by part.
func finish(m *Message, codings []byte, parts [][]byte) *Message {
	same := true
	n := 0
	for i, p := range parts {
		n += len(p)
		if codings[i] != codings[0] {
			same = false
		}
	}
	m.Data = make([]byte, 0, n)
	for _, p := range parts {
		m.Data = append(m.Data, p...)
	}
	if same {
		m.Text, m.DecodeErr = Decode(codings[0], m.Data)
		return m
	}
	for i, p := range parts {
		t, err := Decode(codings[i], p)
		if err != nil {
			m.Text, m.DecodeErr = "", err
			return m
		}
		m.Text += t
	}
	return m
}

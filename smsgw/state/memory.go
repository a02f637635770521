package state

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"strconv"
	"sync"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// DefaultMaxEntries is MemoryOptions.MaxEntries's default.
// A query holds about four claims and a dialogue for ten minutes, and a
// day counter per subscriber for two days: a million entries keep the
// dialogues of 200,000 queries in ten minutes (over 300 a second) beside
// the counters of 200,000 subscribers.
const DefaultMaxEntries = 1_000_000

// sweepBatch bounds how many expired entries one call removes, so that a
// burst of expiries is spread over the calls that follow instead of
// stalling one of them. Lookups check expiry themselves.
const sweepBatch = 64

// MemoryOptions configures a Memory. Every field's default applies to its
// zero value.
type MemoryOptions struct {
	// Now is the clock that TTLs and budget windows are measured by.
	// Default time.Now.
	Now func() time.Time
	// MaxEntries bounds the entries held at once: claims, dialogues,
	// day counters and budget windows together. When it is full an entry
	// is dropped to make room, so memory stays bounded under a flood:
	// the day counter nearest its expiry first (losing one lets a
	// subscriber past the daily limit, the safe way to fail), then a
	// budget window, then a claim (a redelivery might be answered
	// again), and a pending dialogue only when nothing else is left
	// (its Y would find nothing). Dropping by expiry alone let the
	// 48-hour counters of 100,000 subscribers crowd out every
	// 10-minute dialogue. Default DefaultMaxEntries (about 250 MB when
	// full).
	MaxEntries int
}

// Memory is the embedded shared state of a single gateway instance: maps
// behind a mutex, with expiry. It starts no goroutine: expired entries are
// removed by the calls that come after their expiry.
//
// Claims, the most numerous entries (three a query, kept ten minutes), are
// held apart in values without pointers, which the garbage collector does
// not scan. Held as pointer entries with the others, they made every GC
// cycle mark them all: after ten seconds at saturation the live heap was
// 83 MB, most of it claims, a mark phase lasted 42-45 ms, and MO-to-reply
// p99 at 2,000 queries a second about doubled (bench sms).
type Memory struct {
	now func() time.Time
	max int

	mu     sync.Mutex
	closed bool
	m      map[memKey]*memEntry
	// byTime orders each kind's entries by expiry (index: memKind); the
	// kindClaim heap stays empty.
	byTime [kindCount]expiryHeap
	// bySub lists each subscriber's dialogue and day counters, for
	// Forget.
	bySub map[itinerary.Pseudonym][]*memEntry
	// claims holds the claims, claimsByTime their expiries, soonest
	// first. An expiry there whose claim is gone or was taken again
	// since is stale and skipped when it comes up.
	claims       map[[16]byte]claimRec
	claimsByTime claimHeap
	// epoch is when the Memory was made: claims' expiries are counted
	// from it, so that they keep the clock's monotonic reading (a step of
	// the wall clock moves no expiry).
	epoch time.Time
}

// claimRec is a claim: hashes only, no pointer (see Memory).
type claimRec struct {
	owner   [16]byte // claimHash of the owner
	expires int64    // nanoseconds since epoch
}

type memKind uint8

const (
	kindClaim memKind = iota + 1
	kindDialog
	kindDay
	kindBudget
	kindCount // the number of kinds, plus one
)

// evictOrder is which kind insert drops from first when full.
var evictOrder = [...]memKind{kindDay, kindBudget, kindClaim, kindDialog}

// perSub reports whether entries of kind belong to a subscriber, and so
// are listed in bySub for Forget.
func (k memKind) perSub() bool { return k == kindDialog || k == kindDay }

type memKey struct {
	kind memKind
	// id is the subscriber (kindDialog, kindDay) or a hash of the
	// claim's key (kindClaim): a fixed size whatever the key's length.
	id [16]byte
	// s is the day (kindDay) or the budget window (kindBudget).
	s string
}

type memEntry struct {
	key     memKey
	expires time.Time
	index   int // in byTime[key.kind]

	dialog   *dialogRec // kindDialog: the dialogue, never nil
	n        int        // kindDay, kindBudget: the count
	notified bool       // kindDay: notifyLimit has been returned
}

// NewMemory returns an empty Memory.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	if opts.MaxEntries < 0 {
		return nil, invalid("MemoryOptions.MaxEntries must not be negative")
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Memory{
		now:    opts.Now,
		max:    opts.MaxEntries,
		m:      make(map[memKey]*memEntry),
		bySub:  make(map[itinerary.Pseudonym][]*memEntry),
		claims: make(map[[16]byte]claimRec),
		epoch:  opts.Now(),
	}, nil
}

// lock takes the mutex, reads the clock and sweeps; on success the caller
// must unlock.
func (m *Memory) lock() (time.Time, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return time.Time{}, ErrClosed
	}
	now := m.now()
	for k := range m.byTime {
		h := m.byTime[k]
		for i := 0; i < sweepBatch && len(h) > 0 && expired(h[0], now); i++ {
			m.remove(h[0])
			h = m.byTime[k]
		}
	}
	for i, ns := 0, m.nanos(now); i < sweepBatch && len(m.claimsByTime) > 0 && m.claimsByTime[0].expires <= ns; i++ {
		m.dropFirstClaim()
	}
	return now, nil
}

// nanos is t as a claim's expiry: nanoseconds since m.epoch.
func (m *Memory) nanos(t time.Time) int64 { return int64(t.Sub(m.epoch)) }

// entries is how many entries are held.
func (m *Memory) entries() int { return len(m.m) + len(m.claims) }

// makeRoom drops entries until one more fits, in evictOrder.
func (m *Memory) makeRoom() {
	for m.entries() >= m.max {
		for _, kind := range evictOrder {
			if kind == kindClaim {
				if len(m.claims) > 0 {
					for !m.dropFirstClaim() {
					}
					break
				}
				continue
			}
			if h := m.byTime[kind]; len(h) > 0 {
				m.remove(h[0])
				break
			}
		}
	}
}

// dropFirstClaim pops the soonest expiry and removes its claim, unless the
// expiry was stale; it reports whether a claim went.
func (m *Memory) dropFirstClaim() bool {
	x := m.claimsByTime.pop()
	if c, ok := m.claims[x.key]; ok && c.expires == x.expires {
		delete(m.claims, x.key)
		return true
	}
	return false
}

func expired(e *memEntry, now time.Time) bool { return !now.Before(e.expires) }

// get returns the live entry for k, or nil.
func (m *Memory) get(k memKey, now time.Time) *memEntry {
	e := m.m[k]
	if e != nil && expired(e, now) {
		m.remove(e)
		return nil
	}
	return e
}

func (m *Memory) insert(k memKey, expires time.Time) *memEntry {
	m.makeRoom()
	e := &memEntry{key: k, expires: expires}
	m.m[k] = e
	heap.Push(&m.byTime[k.kind], e)
	if k.kind.perSub() {
		sub := itinerary.Pseudonym(k.id)
		m.bySub[sub] = append(m.bySub[sub], e)
	}
	return e
}

// expireAt moves e's expiry.
func (m *Memory) expireAt(e *memEntry, t time.Time) {
	e.expires = t
	heap.Fix(&m.byTime[e.key.kind], e.index)
}

func (m *Memory) remove(e *memEntry) {
	heap.Remove(&m.byTime[e.key.kind], e.index)
	delete(m.m, e.key)
	if !e.key.kind.perSub() {
		return
	}
	sub := itinerary.Pseudonym(e.key.id)
	list := m.bySub[sub]
	for i, x := range list {
		if x == e {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(m.bySub, sub)
	} else {
		m.bySub[sub] = list
	}
}

// Claim takes key for ttl on behalf of owner. It reports true when key was
// free or is already owner's: a step repeated after a crash finds its own
// claim. A repeated Claim does not extend the claim.
func (m *Memory) Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := checkClaim(key, owner, ttl); err != nil {
		return false, err
	}
	k, o := claimHash(key), claimHash(owner)
	now, err := m.lock()
	if err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	ns := m.nanos(now)
	if c, ok := m.claims[k]; ok {
		if ns < c.expires {
			return c.owner == o, nil
		}
		delete(m.claims, k) // its expiry, now stale, is skipped later
	}
	m.makeRoom()
	exp := m.nanos(now.Add(ttl))
	m.claims[k] = claimRec{owner: o, expires: exp}
	m.claimsByTime.push(claimExpiry{expires: exp, key: k})
	return true, nil
}

// Ask makes req sub's pending request for ttl, replacing whatever the
// dialogue held.
func (m *Memory) Ask(ctx context.Context, sub itinerary.Pseudonym, req Request, ttl time.Duration) error {
	if err := checkAsk(req, ttl); err != nil {
		return err
	}
	now, err := m.lock()
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	k := memKey{kind: kindDialog, id: sub}
	e := m.get(k, now)
	if e != nil && e.dialog != nil && e.dialog.done && e.dialog.req.Nonce == req.Nonce {
		return nil // a repeat of a request already answered: keep the answer
	}
	if e == nil {
		e = m.insert(k, now.Add(ttl))
	} else {
		m.expireAt(e, now.Add(ttl))
	}
	e.dialog = &dialogRec{req: req}
	return nil
}

// Dialog returns sub's dialogue.
func (m *Memory) Dialog(ctx context.Context, sub itinerary.Pseudonym) (Dialog, error) {
	now, err := m.lock()
	if err != nil {
		return Dialog{}, err
	}
	defer m.mu.Unlock()
	if e := m.get(memKey{kind: kindDialog, id: sub}, now); e != nil {
		return e.dialog.dialog(), nil
	}
	return Dialog{}, nil
}

// Resolve ends sub's pending request on behalf of taker and returns it;
// the record of who took it is kept for ttl. Resolving again with the
// same taker returns the same request; ok is false when nothing is
// pending and taker did not take it earlier.
func (m *Memory) Resolve(ctx context.Context, sub itinerary.Pseudonym, taker string, ttl time.Duration) (req Request, ok bool, err error) {
	if err := checkResolve(taker, ttl); err != nil {
		return Request{}, false, err
	}
	now, err := m.lock()
	if err != nil {
		return Request{}, false, err
	}
	defer m.mu.Unlock()
	e := m.get(memKey{kind: kindDialog, id: sub}, now)
	if e == nil {
		return Request{}, false, nil
	}
	switch d := e.dialog; {
	case !d.done:
		d.done, d.taker = true, taker
		m.expireAt(e, now.Add(ttl))
		return d.req, true, nil
	case d.taker == taker:
		return d.req, true, nil
	}
	return Request{}, false, nil
}

// CountRequest counts a request of sub on day against the daily limit.
func (m *Memory) CountRequest(ctx context.Context, sub itinerary.Pseudonym, day string, limit int) (allowed, notifyLimit bool, err error) {
	if _, err := checkDay(day); err != nil {
		return false, false, err
	}
	if err := checkLimit(limit); err != nil {
		return false, false, err
	}
	k := memKey{kind: kindDay, id: sub, s: day}
	now, err := m.lock()
	if err != nil {
		return false, false, err
	}
	defer m.mu.Unlock()
	e := m.get(k, now)
	if e == nil {
		e = m.insert(k, now.Add(dayCounterTTL))
	}
	e.n++
	if e.n <= limit {
		return true, false, nil
	}
	notify := !e.notified
	e.notified = true
	return false, notify, nil
}

// AllowGlobal spends one unit of the reply budget of limit per window of
// length per.
func (m *Memory) AllowGlobal(ctx context.Context, limit int, per time.Duration) (bool, error) {
	if err := checkLimit(limit); err != nil {
		return false, err
	}
	if err := checkPer(per); err != nil {
		return false, err
	}
	now, err := m.lock()
	if err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	perMs, w := window(now, per)
	k := memKey{kind: kindBudget, s: strconv.FormatInt(perMs, 10) + ":" + strconv.FormatInt(w, 10)}
	e := m.get(k, now)
	if e == nil {
		e = m.insert(k, now.Add(2*per))
	}
	e.n++
	return e.n <= limit, nil
}

// Forget removes everything held about sub: its dialogue and its day
// counters.
func (m *Memory) Forget(ctx context.Context, sub itinerary.Pseudonym) error {
	if _, err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for list := m.bySub[sub]; len(list) > 0; list = m.bySub[sub] {
		m.remove(list[len(list)-1])
	}
	return nil
}

// Close drops all state; every later call returns ErrClosed. It is safe
// to call more than once.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.m, m.byTime, m.bySub = nil, [kindCount]expiryHeap{}, nil
	m.claims, m.claimsByTime = nil, nil
	return nil
}

// claimHash shortens a claim's key to a fixed size. Redis keys use it
// too, so that no text of the caller's key reaches a Redis key.
func claimHash(key string) [16]byte {
	sum := sha256.Sum256([]byte(key))
	return [16]byte(sum[:16])
}

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// claimExpiry is a claim's place in claimsByTime.
type claimExpiry struct {
	expires int64 // nanoseconds since epoch
	key     [16]byte
}

// claimHeap is a binary min-heap of claim expiries. It is written out
// rather than used through container/heap, whose interface would box
// (allocate) every value pushed and popped.
type claimHeap []claimExpiry

func (h *claimHeap) push(x claimExpiry) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].expires <= s[i].expires {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

// pop removes and returns the soonest expiry; h must not be empty.
func (h *claimHeap) pop() claimExpiry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && s[l].expires < s[small].expires {
			small = l
		}
		if r := l + 1; r < n && s[r].expires < s[small].expires {
			small = r
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return top
}

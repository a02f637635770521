package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Collect says whose events Apply keeps.
type Collect uint8

const (
	// CollectAll keeps every subscriber's events except those of
	// subscribers who opted out: the service as the operators first ran it.
	CollectAll Collect = iota
	// CollectOptedIn keeps only the events of subscribers who opted in
	// (KT), from the time they did.
	CollectOptedIn
)

// String names c as the --collect flag does.
func (c Collect) String() string {
	switch c {
	case CollectAll:
		return "all"
	case CollectOptedIn:
		return "opted-in"
	}
	return fmt.Sprintf("Collect(%d)", uint8(c))
}

// ErrBadTime reports a consent change dated where it cannot be: zero, or
// further ahead of the clock than an event may be.
var ErrBadTime = errors.New("store: time out of range")

// Consent records, one per subscriber who ever chose (or whose number
// changed hands), live beside the visits:
//
//	s | pseudonym (16 bytes) -> 1 | uvarint opted-out | uvarint opted-in | uvarint reassigned
//
// each a Unix second, 0 when unset. They are few and small, so all of them
// are also held in memory, in the index's shards (memIndex.consent): Apply
// checks every event against them and must not seek Pebble to do it.
// A record outlives retention on purpose: an opt-out must keep dropping a
// subscriber's events for as long as it is in force, and a reassignment
// keeps the old holder's history from the new one. It holds no location.
const (
	prefixConsent  = 's'
	consentVersion = 1
)

func consentKey(sub itinerary.Pseudonym) []byte {
	return append([]byte{prefixConsent}, sub[:]...)
}

// consentRec is a consent record as the index holds it: Unix seconds, and
// the reassignment's local day and second, which Visits needs.
type consentRec struct {
	out, in, re int64
	reDay       itinerary.Day
	reSec       uint32
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(u int64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(u, 0).UTC()
}

func recOf(c itinerary.Consent, loc *time.Location) consentRec {
	r := consentRec{out: unixOrZero(c.OptedOut), in: unixOrZero(c.OptedIn), re: unixOrZero(c.Reassigned)}
	if r.re != 0 {
		r.reDay, r.reSec = itinerary.DayOf(c.Reassigned, loc)
	}
	return r
}

func (r consentRec) consent() itinerary.Consent {
	return itinerary.Consent{OptedOut: timeOrZero(r.out), OptedIn: timeOrZero(r.in), Reassigned: timeOrZero(r.re)}
}

// keeps reports whether an event at Unix second u may be stored.
func (r consentRec) keeps(u int64, collect Collect) bool {
	switch {
	case r.out != 0:
		return false // opted out
	case u < r.in || u < r.re:
		return false // before recording (re)started, or the previous holder's
	case collect == CollectOptedIn && r.in == 0:
		return false // never opted in
	}
	return true
}

func appendConsentValue(dst []byte, r consentRec) []byte {
	dst = append(dst, consentVersion)
	dst = binary.AppendUvarint(dst, uint64(r.out))
	dst = binary.AppendUvarint(dst, uint64(r.in))
	return binary.AppendUvarint(dst, uint64(r.re))
}

func parseConsentValue(b []byte, loc *time.Location) (consentRec, error) {
	if len(b) == 0 || b[0] != consentVersion {
		return consentRec{}, fmt.Errorf("%w: consent record", ErrCorrupt)
	}
	b = b[1:]
	var ts [3]int64
	for i := range ts {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > 1<<40 {
			return consentRec{}, fmt.Errorf("%w: consent record", ErrCorrupt)
		}
		ts[i], b = int64(v), b[n:]
	}
	if len(b) != 0 {
		return consentRec{}, fmt.Errorf("%w: consent record", ErrCorrupt)
	}
	c := consentRec{out: ts[0], in: ts[1], re: ts[2]}
	return recOf(c.consent(), loc), nil
}

// loadConsent reads every consent record into the index.
func (db *DB) loadConsent(ctx context.Context) error {
	it, err := db.pdb.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{prefixConsent}, UpperBound: []byte{prefixConsent + 1}})
	if err != nil {
		return fmt.Errorf("store: load consent: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 1+len(itinerary.Pseudonym{}) {
			return fmt.Errorf("%w: consent key of %d bytes", ErrCorrupt, len(k))
		}
		var sub itinerary.Pseudonym
		copy(sub[:], k[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: load consent: %w", err)
		}
		r, err := parseConsentValue(v, db.opts.Location)
		if err != nil {
			return err
		}
		db.mem.setConsent(sub, r)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: load consent: %w", err)
	}
	return nil
}

// Consent returns what sub chose; the zero Consent if they never did. It
// reads memory only.
func (db *DB) Consent(ctx context.Context, sub itinerary.Pseudonym) (itinerary.Consent, error) {
	if err := ctx.Err(); err != nil {
		return itinerary.Consent{}, err
	}
	r, _ := db.mem.consentOf(sub)
	return r.consent(), nil
}

// OptOut records that sub withdrew consent at at and erases their visits,
// on every day, at once (as Erase does): lookups find nothing when it
// returns, and Apply drops every later event of theirs, whatever its time,
// until they opt in again. The erasure and the record are one synced write.
// Opting out again changes nothing but erases again.
func (db *DB) OptOut(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error {
	return db.changeConsent(ctx, "opt out", sub, at, func(c itinerary.Consent) (itinerary.Consent, erasure) {
		return c.WithOptOut(at), erasure{before: maxDay + 1} // every day
	})
}

// OptIn records that sub gave consent at at: Apply keeps their events from
// at on (under CollectOptedIn, only theirs). Nothing from before at that
// arrives later is kept. Opting in again while opted in changes nothing.
func (db *DB) OptIn(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error {
	return db.changeConsent(ctx, "opt in", sub, at, func(c itinerary.Consent) (itinerary.Consent, erasure) {
		return c.WithOptIn(at), erasure{} // erases nothing
	})
}

// Reassigned records that sub's number went to a new holder at at. Nothing
// from before at is ever returned again: visits before it are erased at
// once (on at's own day, what was seen only before at goes, and a visit
// spanning at keeps only its last sighting, the new holder's), Apply drops
// events from before it, and Visits hides anything before it. The previous
// holder's opt-out or opt-in no longer applies (itinerary.Consent's
// WithReassigned). The latest reassignment wins.
func (db *DB) Reassigned(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error {
	return db.changeConsent(ctx, "reassign", sub, at, func(c itinerary.Consent) (itinerary.Consent, erasure) {
		c = c.WithReassigned(at)
		day, sec := itinerary.DayOf(c.Reassigned, db.opts.Location)
		return c, erasure{before: day, trim: true, trimSec: sec}
	})
}

// erasure is what a consent change erases: every day before before, and
// with trim, what was seen on before's own day before trimSec.
type erasure struct {
	before  itinerary.Day
	trim    bool
	trimSec uint32
}

// changeConsent applies change to sub's record and erases what it says, in
// one synced batch, then in memory.
func (db *DB) changeConsent(ctx context.Context, op string, sub itinerary.Pseudonym, at time.Time, change func(itinerary.Consent) (itinerary.Consent, erasure)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if at.Unix() <= 0 || at.After(db.opts.Now().Add(maxFuture)) {
		return fmt.Errorf("%w: %s", ErrBadTime, op)
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old, _ := db.mem.consentOf(sub)
	next, er := change(old.consent())
	rec := recOf(next, db.opts.Location)

	b := db.pdb.NewBatch()
	defer b.Close()
	if err := db.eraseBefore(b, sub, er.before); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	var trimmed []uint64
	if er.trim {
		var err error
		if trimmed, err = db.trimDay(b, sub, er.before, er.trimSec); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	if err := b.Set(consentKey(sub), appendConsentValue(nil, rec), nil); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if er.before > 0 {
		// A staff code pending for sub dies with their history: a code
		// asked of the subscriber who then opted out, or of the number's
		// previous holder, must not open what is recorded after. Codes
		// are keyed by the pseudonym they concern (privacy/staff).
		if err := b.Delete(codeKey(sub[:]), nil); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	db.mem.setConsent(sub, rec)
	db.consentGen.Add(1) // see Apply
	switch {
	case er.before > maxDay:
		db.mem.forget(sub)
	case er.before > 0:
		db.mem.dropBefore(sub, er.before)
	}
	if er.trim {
		db.mem.setDay(sub, er.before, trimmed)
	}
	return nil
}

// eraseBefore adds to b the deletion of sub's visits on every day before
// before, from the oldest on disk: days past retention are on disk but not
// in the index. A tombstone for a missing key costs a few bytes until
// compaction.
func (db *DB) eraseBefore(b *pebble.Batch, sub itinerary.Pseudonym, before itinerary.Day) error {
	if before <= 0 {
		return nil
	}
	first, err := db.firstDay()
	if err != nil {
		return err
	}
	last := min(before-1, db.today()+1, maxDay) // nothing is stored past tomorrow
	var key []byte
	for d := first; d <= last; d++ {
		key = visitKey(key[:0], d, sub)
		if err := b.Delete(key, nil); err != nil {
			return err
		}
	}
	return nil
}

// trimDay adds to b sub's visits on day with what was seen before second
// sec removed, and returns them packed for the index.
func (db *DB) trimDay(b *pebble.Batch, sub itinerary.Pseudonym, day itinerary.Day, sec uint32) ([]uint64, error) {
	key := visitKey(nil, day, sub)
	if day < db.cutoff() {
		// Past retention: never returned, and Purge takes it; no need to
		// keep the new holder's part of it.
		return nil, b.Delete(key, nil)
	}
	var (
		val []byte
		es  []uint64
	)
	for _, v := range db.mem.day(nil, sub, day) {
		if v.last < sec {
			continue
		}
		if v.first < sec {
			v.first = v.last
		}
		idx, ok := db.mem.index(v.region)
		if !ok {
			return nil, ErrTooManyRegs
		}
		es = append(es, pack(day, idx, v.first, v.last))
		val = appendVisitValue(val, v)
	}
	if len(val) == 0 {
		return nil, b.Delete(key, nil)
	}
	return es, b.Set(key, val, nil)
}

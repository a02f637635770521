package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Sighting is one event, pseudonymised: the phone of Sub was seen in Region
// at Time.
type Sighting struct {
	Sub    itinerary.Pseudonym
	Time   time.Time
	Region itinerary.Region
}

// Checkpoint is a feed position stored in the same Pebble batch as the
// visits it covers: after a crash, the feed resumes from Offset and nothing
// is lost or, thanks to idempotence, counted twice.
type Checkpoint struct {
	Source string // names the feed: a file's identity, a partition of a stream
	Offset int64  // opaque to the store: bytes, records, a stream offset
}

// ApplyStats counts what Apply did with a batch.
type ApplyStats struct {
	Accepted  int // sightings inside retention (new or already known)
	TooOld    int // before the retention window: dropped
	Future    int // more than a day ahead of the clock: dropped
	NoConsent int // of a subscriber who opted out, or not in, or from before that (Options.Collect): dropped
	Written   int // subscriber-days whose stored value changed
}

// Add sums s and o.
func (s *ApplyStats) Add(o ApplyStats) {
	s.Accepted += o.Accepted
	s.TooOld += o.TooOld
	s.Future += o.Future
	s.NoConsent += o.NoConsent
	s.Written += o.Written
}

// maxFuture is how far ahead of the clock an event may be: a network clock
// a little ahead is normal, a day ahead is a broken feed.
const maxFuture = 24 * time.Hour

type subDay struct {
	sub itinerary.Pseudonym
	day itinerary.Day
}

// Apply adds a batch of sightings, and the checkpoint if not nil, in one
// atomic, synced write: when Apply returns nil the batch survives a crash.
// Applying a sighting again changes nothing. Sightings may come in any
// order. Sightings the subscriber's consent does not cover are dropped
// (Options.Collect, OptOut, OptIn, Reassigned).
func (db *DB) Apply(ctx context.Context, batch []Sighting, cp *Checkpoint) (ApplyStats, error) {
	// Fold the batch into subscriber-days before touching the store: a day
	// of a subscriber's events becomes one write. The fold runs outside
	// writeMu; if consent changed meanwhile it is done again under writeMu,
	// where it cannot change, so that no event an opt-out (or a
	// reassignment) excludes is written after it.
	gen := db.consentGen.Load()
	groups, st := db.fold(batch)
	if err := ctx.Err(); err != nil {
		return ApplyStats{}, err
	}

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ApplyStats{}, ErrClosed
	}
	if db.consentGen.Load() != gen {
		groups, st = db.fold(batch)
	}
	if err := db.roomFor("apply"); err != nil {
		return ApplyStats{}, err
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	type update struct {
		k  subDay
		es []uint64
	}
	var (
		updates []update
		old     []dayVisit
		key     []byte
		val     []byte
	)
	for k, vs := range groups {
		old = db.mem.day(old[:0], k.sub, k.day)
		merged := slices.Clone(old)
		for _, v := range vs {
			merged = mergeVisit(merged, v)
		}
		if slices.Equal(merged, old) {
			continue // already known: replaying a feed writes nothing
		}
		slices.SortFunc(merged, func(a, b dayVisit) int { return int(a.region) - int(b.region) })
		val = val[:0]
		es := make([]uint64, 0, len(merged))
		for _, v := range merged {
			idx, ok := db.mem.index(v.region)
			if !ok {
				return ApplyStats{}, ErrTooManyRegs
			}
			es = append(es, pack(k.day, idx, v.first, v.last))
			val = appendVisitValue(val, v)
		}
		key = visitKey(key[:0], k.day, k.sub)
		if err := b.Set(key, val, nil); err != nil {
			return ApplyStats{}, fmt.Errorf("store: apply: %w", err)
		}
		updates = append(updates, update{k, es})
	}
	if cp != nil {
		var off [8]byte
		binary.BigEndian.PutUint64(off[:], uint64(cp.Offset))
		if err := b.Set(metaKey("offset/"+cp.Source), off[:], nil); err != nil {
			return ApplyStats{}, fmt.Errorf("store: apply: %w", err)
		}
	}
	if !b.Empty() {
		if err := b.Commit(pebble.Sync); err != nil {
			return ApplyStats{}, fmt.Errorf("store: apply: %w", err)
		}
	}
	for _, u := range updates {
		db.mem.setDay(u.k.sub, u.k.day, u.es)
	}
	st.Written = len(updates)
	return st, nil
}

// fold groups batch into subscriber-days, dropping and counting what is
// out of range or not consented to.
func (db *DB) fold(batch []Sighting) (map[subDay][]dayVisit, ApplyStats) {
	var st ApplyStats
	now := db.opts.Now()
	cutoff := db.cutoff()
	latest := now.Add(maxFuture)
	days := dayCalc{loc: db.opts.Location}
	consent := consentCheck{m: db.mem, collect: db.opts.Collect}
	groups := make(map[subDay][]dayVisit, len(batch)/2)
	for i := range batch {
		s := &batch[i]
		if s.Time.After(latest) {
			st.Future++
			continue
		}
		day, sec := days.of(s.Time)
		if day < cutoff || day > maxDay {
			st.TooOld++
			continue
		}
		if !consent.keeps(s.Sub, s.Time.Unix()) {
			st.NoConsent++
			continue
		}
		st.Accepted++
		k := subDay{s.Sub, day}
		groups[k] = mergeVisit(groups[k], dayVisit{region: s.Region, first: sec, last: sec})
	}
	return groups, st
}

// consentCheck looks up subscribers' consent for the fold, remembering the
// last one: a feed often brings a subscriber's events together. With no
// consent record at all and CollectAll it costs one branch an event.
type consentCheck struct {
	m       *memIndex
	collect Collect
	any     int8 // 0 unknown, 1 yes, -1 no consent record at all
	last    itinerary.Pseudonym
	rec     consentRec
	valid   bool
}

func (c *consentCheck) keeps(sub itinerary.Pseudonym, u int64) bool {
	if c.any == 0 {
		c.any = -1
		if c.m.consents.Load() > 0 {
			c.any = 1
		}
	}
	if c.any < 0 {
		return c.collect == CollectAll
	}
	if !c.valid || sub != c.last {
		c.rec, _ = c.m.consentOf(sub)
		c.last, c.valid = sub, true
	}
	return c.rec.keeps(u, c.collect)
}

// mergeVisit folds v into vs: the same region widens its span, a new region
// is added.
func mergeVisit(vs []dayVisit, v dayVisit) []dayVisit {
	for i := range vs {
		if vs[i].region == v.region {
			vs[i].first = min(vs[i].first, v.first)
			vs[i].last = max(vs[i].last, v.last)
			return vs
		}
	}
	return append(vs, v)
}

// dayCalc turns times into local days, remembering the last day's bounds:
// feeds come roughly in time order, so almost every event falls in the day
// before it and costs two comparisons instead of a zone conversion.
type dayCalc struct {
	loc        *time.Location
	start, end int64
	day        itinerary.Day
}

func (c *dayCalc) of(t time.Time) (itinerary.Day, uint32) {
	u := t.Unix()
	if u >= c.start && u < c.end {
		return c.day, uint32(u - c.start)
	}
	day, sec := itinerary.DayOf(t, c.loc)
	c.day = day
	c.start = day.Time(c.loc).Unix()
	c.end = (day + 1).Time(c.loc).Unix()
	return day, sec
}

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
	Accepted int // sightings inside retention (new or already known)
	TooOld   int // before the retention window: dropped
	Future   int // more than a day ahead of the clock: dropped
	Written  int // subscriber-days whose stored value changed
}

// Add sums s and o.
func (s *ApplyStats) Add(o ApplyStats) {
	s.Accepted += o.Accepted
	s.TooOld += o.TooOld
	s.Future += o.Future
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
// order.
func (db *DB) Apply(ctx context.Context, batch []Sighting, cp *Checkpoint) (ApplyStats, error) {
	var st ApplyStats
	now := db.opts.Now()
	cutoff := db.cutoff()
	latest := now.Add(maxFuture)
	days := dayCalc{loc: db.opts.Location}

	// Fold the batch into subscriber-days before touching the store: a day
	// of a subscriber's events becomes one write.
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
		st.Accepted++
		k := subDay{s.Sub, day}
		groups[k] = mergeVisit(groups[k], dayVisit{region: s.Region, first: sec, last: sec})
	}
	if err := ctx.Err(); err != nil {
		return ApplyStats{}, err
	}

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ApplyStats{}, ErrClosed
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

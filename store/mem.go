package store

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/roamtrail/roamtrail/itinerary"
)

// The in-memory index: every subscriber's visits as packed uint64s sorted by
// day, sharded by pseudonym so that lookups on different subscribers never
// contend and a writer holds one shard at a time.
//
//	day (16 bits) | region index (12) | first second (17) | last second (17)
//
// Regions are stored as a small index into memIndex.regions rather than their
// code so that a visit fits a machine word; the index is process-local and
// never written to disk.
const (
	numShards  = 256
	maxRegions = 1 << 12
	memSecMask = 1<<17 - 1
	growSlack  = 4 // spare entries when a subscriber's slice grows
)

type shard struct {
	mu      sync.RWMutex
	subs    map[itinerary.Pseudonym][]uint64
	consent map[itinerary.Pseudonym]consentRec // see consent.go
}

type memIndex struct {
	shards [numShards]shard

	// regions maps a region index to its code. An element is written once,
	// by the single writer, before any visit using it is published under a
	// shard lock; readers read it after taking that shard lock.
	regions   [maxRegions]itinerary.Region
	regionIdx map[itinerary.Region]uint16 // writer only

	consents atomic.Int64 // consent records in all shards
}

func newMemIndex() *memIndex {
	m := &memIndex{regionIdx: make(map[itinerary.Region]uint16)}
	for i := range m.shards {
		m.shards[i].subs = make(map[itinerary.Pseudonym][]uint64)
		m.shards[i].consent = make(map[itinerary.Pseudonym]consentRec)
	}
	return m
}

func (m *memIndex) shard(sub itinerary.Pseudonym) *shard { return &m.shards[sub[0]] }

// index returns r's region index, assigning one on first use. Writer only.
func (m *memIndex) index(r itinerary.Region) (uint16, bool) {
	if i, ok := m.regionIdx[r]; ok {
		return i, true
	}
	n := len(m.regionIdx)
	if n >= maxRegions {
		return 0, false
	}
	m.regions[n] = r
	m.regionIdx[r] = uint16(n)
	return uint16(n), true
}

func pack(day itinerary.Day, idx uint16, first, last uint32) uint64 {
	return uint64(day)<<46 | uint64(idx)<<34 | uint64(first&memSecMask)<<17 | uint64(last&memSecMask)
}

func entryDay(e uint64) itinerary.Day { return itinerary.Day(e >> 46) }

func (m *memIndex) unpack(e uint64) itinerary.Visit {
	return itinerary.Visit{
		Day:    entryDay(e),
		Region: m.regions[(e>>34)&(maxRegions-1)],
		First:  uint32(e>>17) & memSecMask,
		Last:   uint32(e) & memSecMask,
	}
}

// visits appends sub's visits on days from..to to dst. Nothing from before
// sub's number was reassigned is returned (Reassigned erased it already;
// this holds even if a visit were left).
func (m *memIndex) visits(dst []itinerary.Visit, sub itinerary.Pseudonym, from, to itinerary.Day) []itinerary.Visit {
	sh := m.shard(sub)
	sh.mu.RLock()
	es := sh.subs[sub]
	var cut consentRec
	if len(sh.consent) != 0 {
		if r, ok := sh.consent[sub]; ok && r.re != 0 {
			cut = r
			from = max(from, r.reDay)
		}
	}
	// Entries are sorted by day: skip to the window with a binary search, as
	// a subscriber may hold more days than the window asks for.
	i, _ := slices.BinarySearch(es, uint64(from)<<46)
	for ; i < len(es); i++ {
		e := es[i]
		if entryDay(e) > to {
			break
		}
		v := m.unpack(e)
		if cut.re != 0 && v.Day == cut.reDay {
			if v.Last < cut.reSec {
				continue
			}
			if v.First < cut.reSec {
				v.First = v.Last
			}
		}
		dst = append(dst, v)
	}
	sh.mu.RUnlock()
	return dst
}

// day returns sub's visits on day as dayVisits. Writer only (it reads the
// index without the writer's exclusion against itself).
func (m *memIndex) day(dst []dayVisit, sub itinerary.Pseudonym, day itinerary.Day) []dayVisit {
	sh := m.shard(sub)
	sh.mu.RLock()
	es := sh.subs[sub]
	lo, hi := dayRange(es, day)
	for _, e := range es[lo:hi] {
		v := m.unpack(e)
		dst = append(dst, dayVisit{region: v.Region, first: v.First, last: v.Last})
	}
	sh.mu.RUnlock()
	return dst
}

func dayRange(es []uint64, day itinerary.Day) (lo, hi int) {
	lo, _ = slices.BinarySearch(es, uint64(day)<<46)
	hi, _ = slices.BinarySearch(es, uint64(day+1)<<46)
	return lo, hi
}

// setDay replaces sub's visits on day with vs (regions already indexed).
// Writer only.
func (m *memIndex) setDay(sub itinerary.Pseudonym, day itinerary.Day, vs []uint64) {
	sh := m.shard(sub)
	sh.mu.Lock()
	es := sh.subs[sub]
	lo, hi := dayRange(es, day)
	if lo == len(es) {
		// The common case: ingest in time order appends today's visits.
		// Grow by a few entries, not by append's doubling: a million
		// subscribers' slack would be hundreds of megabytes.
		if need := len(es) + len(vs); need > cap(es) {
			grown := make([]uint64, len(es), need+growSlack)
			copy(grown, es)
			es = grown
		}
		es = append(es, vs...)
	} else {
		es = slices.Replace(es, lo, hi, vs...)
	}
	if len(es) == 0 {
		delete(sh.subs, sub)
	} else {
		sh.subs[sub] = es
	}
	sh.mu.Unlock()
}

// appendLoaded adds a visit read back from disk at Open. Days arrive in
// increasing order, so appending keeps each subscriber sorted.
func (m *memIndex) appendLoaded(sub itinerary.Pseudonym, e uint64) {
	sh := m.shard(sub)
	sh.subs[sub] = append(sh.subs[sub], e)
}

// forget removes sub's visits.
func (m *memIndex) forget(sub itinerary.Pseudonym) {
	sh := m.shard(sub)
	sh.mu.Lock()
	delete(sh.subs, sub)
	sh.mu.Unlock()
}

// dropBefore removes sub's visits on days before day.
func (m *memIndex) dropBefore(sub itinerary.Pseudonym, day itinerary.Day) {
	sh := m.shard(sub)
	sh.mu.Lock()
	es := sh.subs[sub]
	n, _ := slices.BinarySearch(es, uint64(day)<<46)
	switch {
	case n == len(es):
		delete(sh.subs, sub)
	case n > 0:
		sh.subs[sub] = slices.Clone(es[n:])
	}
	sh.mu.Unlock()
}

// consentOf returns sub's consent record, if any.
func (m *memIndex) consentOf(sub itinerary.Pseudonym) (consentRec, bool) {
	sh := m.shard(sub)
	sh.mu.RLock()
	r, ok := sh.consent[sub]
	sh.mu.RUnlock()
	return r, ok
}

// setConsent stores sub's consent record. Writer only.
func (m *memIndex) setConsent(sub itinerary.Pseudonym, r consentRec) {
	sh := m.shard(sub)
	sh.mu.Lock()
	if _, ok := sh.consent[sub]; !ok {
		m.consents.Add(1)
	}
	sh.consent[sub] = r
	sh.mu.Unlock()
}

// trim drops every visit before cutoff and returns how many it dropped.
func (m *memIndex) trim(cutoff itinerary.Day) (dropped int) {
	bound := uint64(cutoff) << 46
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for sub, es := range sh.subs {
			if len(es) == 0 || es[0] >= bound {
				continue
			}
			n, _ := slices.BinarySearch(es, bound)
			dropped += n
			if n == len(es) {
				delete(sh.subs, sub)
				continue
			}
			// Copy rather than reslice so the dropped prefix is freed.
			sh.subs[sub] = slices.Clone(es[n:])
		}
		sh.mu.Unlock()
	}
	return dropped
}

// stats counts subscribers and visits.
func (m *memIndex) stats() (subs, visits int) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		subs += len(sh.subs)
		for _, es := range sh.subs {
			visits += len(es)
		}
		sh.mu.RUnlock()
	}
	return subs, visits
}

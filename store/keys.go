package store

import (
	"encoding/binary"
	"fmt"

	"github.com/roamtrail/roamtrail/itinerary"
)

const (
	prefixVisit = 'v'
	prefixMeta  = 'm'

	visitKeyLen = 1 + 2 + len(itinerary.Pseudonym{})
	visitLen    = 7

	// maxDay is the last day a uint16 day number can hold (2149-06-06).
	maxDay = itinerary.Day(0xFFFF)

	maxSecond = 1<<18 - 1 // seconds since local midnight; a 25-hour DST day fits
)

func visitKey(dst []byte, day itinerary.Day, sub itinerary.Pseudonym) []byte {
	dst = append(dst, prefixVisit, byte(day>>8), byte(day))
	return append(dst, sub[:]...)
}

// dayKey is the first key of a day; dayKey(d+1) bounds day d.
func dayKey(day itinerary.Day) []byte {
	if day > maxDay {
		return []byte{prefixVisit + 1}
	}
	if day < 0 {
		day = 0
	}
	return []byte{prefixVisit, byte(day >> 8), byte(day)}
}

func parseVisitKey(k []byte) (itinerary.Day, itinerary.Pseudonym, error) {
	var sub itinerary.Pseudonym
	if len(k) != visitKeyLen || k[0] != prefixVisit {
		return 0, sub, fmt.Errorf("%w: visit key of %d bytes", ErrCorrupt, len(k))
	}
	copy(sub[:], k[3:])
	return itinerary.Day(binary.BigEndian.Uint16(k[1:3])), sub, nil
}

func metaKey(name string) []byte { return append([]byte{prefixMeta}, name...) }

// dayVisit is a visit within a known subscriber-day.
type dayVisit struct {
	region      itinerary.Region
	first, last uint32
}

func appendVisitValue(dst []byte, v dayVisit) []byte {
	x := uint64(v.region)<<36 | uint64(v.first)<<18 | uint64(v.last)
	return append(dst, byte(x>>48), byte(x>>40), byte(x>>32), byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

func parseVisitValue(b []byte, fn func(dayVisit)) error {
	if len(b)%visitLen != 0 || len(b) == 0 {
		return fmt.Errorf("%w: visit value of %d bytes", ErrCorrupt, len(b))
	}
	for ; len(b) > 0; b = b[visitLen:] {
		x := uint64(b[0])<<48 | uint64(b[1])<<40 | uint64(b[2])<<32 | uint64(b[3])<<24 | uint64(b[4])<<16 | uint64(b[5])<<8 | uint64(b[6])
		fn(dayVisit{
			region: itinerary.Region(x >> 36),
			first:  uint32(x>>18) & maxSecond,
			last:   uint32(x) & maxSecond,
		})
	}
	return nil
}

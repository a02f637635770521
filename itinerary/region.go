package itinerary

import (
	"fmt"
	"strconv"
)

// Region identifies a place an itinerary can name. One integer space holds
// both kinds of place so that a visit encodes in a fixed width:
//
//   - 100..999: a country abroad, by its ITU E.212 mobile country code (MCC).
//   - 110000..999999: a place in China by its 6-digit GB/T 2260 code, either a
//     province-level division (130000 Hebei) or a prefecture-level city
//     (130100 Shijiazhuang).
//
// The zero Region is invalid.
type Region uint32

// IsCountry reports whether r names a country abroad (an MCC).
func (r Region) IsCountry() bool { return r >= 100 && r <= 999 }

// CrossesBorder reports whether being seen in r means having crossed a
// border control from the mainland: a country abroad, or Hong Kong (810000),
// Macao (820000) or Taiwan (710000).
func (r Region) CrossesBorder() bool {
	return r.IsCountry() || r == 810000 || r == 820000 || r == 710000
}

// IsProvince reports whether r is a GB/T 2260 province-level code (xx0000).
func (r Region) IsProvince() bool { return r >= 110000 && r <= 999999 && r%10000 == 0 }

// Province returns the province-level code r belongs to (r itself for a
// province), or 0 for a country.
func (r Region) Province() Region {
	if r < 110000 || r > 999999 {
		return 0
	}
	return r - r%10000
}

// String formats r as it is written in input: 6 digits for China, 3 for an MCC.
func (r Region) String() string {
	switch {
	case r.IsCountry():
		return fmt.Sprintf("%03d", uint32(r))
	case r >= 110000 && r <= 999999:
		return strconv.FormatUint(uint64(r), 10)
	default:
		return fmt.Sprintf("Region(%d)", uint32(r))
	}
}

// Kind tells what sort of place a catalog entry is.
type Kind uint8

const (
	KindCountry  Kind = iota + 1 // a country abroad, by MCC
	KindProvince                 // a province-level division of China
	KindCity                     // a prefecture-level city of China
)

// RegionInfo is one catalog entry.
type RegionInfo struct {
	Code     Region
	Kind     Kind
	NameZH   string // 石家庄市, 北京市 (never 市辖区), 日本
	NameEN   string // Shijiazhuang, Beijing, Japan
	Province Region // the province of a city; the province itself; 0 for a country
	ISO      string // ISO 3166-1 alpha-2 of a country ("JP"); "CN" for places in China
	// Canonical is the code visits are stored under. It differs from Code only
	// for aliases: the second city row of a municipality (500200 重庆市 县 is
	// Chongqing 500100) and the province-administered county groups (4190
	// 省直辖县级行政区划 folds into its province 410000), which have no name of
	// their own to show a subscriber.
	Canonical Region
}

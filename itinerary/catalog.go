package itinerary

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
)

//go:generate go run ./internal/gencatalog -data ../../shared/data -out catalog.tsv

// catalogTSV is the generated catalog: two comment lines, then one row per
// code: code, canonical, kind, province, iso, name_zh, name_en.
//
//go:embed catalog.tsv
var catalogTSV string

var (
	// ErrBadRegion means the input is not a region code at all: not exactly
	// 3 or 6 ASCII digits.
	ErrBadRegion = errors.New("itinerary: bad region code")
	// ErrUnknownRegion means the input is well formed but names no place in
	// the catalog.
	ErrUnknownRegion = errors.New("itinerary: unknown region")
)

// Catalog is the region catalog: every province-level division of China
// (Hong Kong, Macao and Taiwan included), every prefecture-level city, and
// every country by MCC. It is generated from ../shared/data by go generate and
// embedded, so it needs no files at run time. A Catalog is read-only and safe
// for concurrent use.
type Catalog struct {
	byCode  map[Region]RegionInfo
	entries []RegionInfo // every entry, aliases included, sorted by code
}

// NewCatalog parses the embedded catalog. It does the work once, so call it
// at startup and share the result.
func NewCatalog() (*Catalog, error) {
	return parseCatalog(catalogTSV)
}

// parseCatalog reads a catalog in the format gencatalog writes. It checks
// what the rest of the package relies on: unique codes, kinds that match
// their codes, canonical codes that are entries of their own, and names.
func parseCatalog(tsv string) (*Catalog, error) {
	c := &Catalog{byCode: make(map[Region]RegionInfo)}
	for i, line := range strings.Split(tsv, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("itinerary: catalog line %d: %w", i+1, err)
		}
		if _, dup := c.byCode[e.Code]; dup {
			return nil, fmt.Errorf("itinerary: catalog line %d: code %v appears twice", i+1, e.Code)
		}
		c.byCode[e.Code] = e
		c.entries = append(c.entries, e)
	}
	for _, e := range c.entries {
		canon, ok := c.byCode[e.Canonical]
		if !ok || canon.Canonical != canon.Code {
			return nil, fmt.Errorf("itinerary: catalog: %v has canonical %v, which is not a canonical entry", e.Code, e.Canonical)
		}
		if e.Kind == KindCity {
			if p, ok := c.byCode[e.Province]; !ok || p.Kind != KindProvince {
				return nil, fmt.Errorf("itinerary: catalog: city %v is in %v, which is not a province", e.Code, e.Province)
			}
		}
	}
	slices.SortFunc(c.entries, func(a, b RegionInfo) int { return int(a.Code) - int(b.Code) })
	return c, nil
}

// parseEntry parses one catalog row.
func parseEntry(line string) (RegionInfo, error) {
	f := strings.Split(line, "\t")
	if len(f) != 7 {
		return RegionInfo{}, fmt.Errorf("%d fields, want 7", len(f))
	}
	var (
		e   = RegionInfo{ISO: f[4], NameZH: f[5], NameEN: f[6]}
		err error
	)
	if e.Code, err = parseCode(f[0]); err != nil {
		return e, err
	}
	if e.Canonical, err = parseCode(f[1]); err != nil {
		return e, err
	}
	if f[3] != "0" {
		if e.Province, err = parseCode(f[3]); err != nil {
			return e, err
		}
	}
	switch f[2] {
	case "country":
		e.Kind = KindCountry
	case "province":
		e.Kind = KindProvince
	case "city":
		e.Kind = KindCity
	default:
		return e, fmt.Errorf("unknown kind %q", f[2])
	}
	if e.NameZH == "" || e.NameEN == "" || e.ISO == "" {
		return e, fmt.Errorf("%v: empty name or ISO code", e.Code)
	}
	// A canonical entry's kind must agree with its code, which is what Region's
	// methods assume. An alias carries its canonical entry's kind instead: 454
	// is an MCC standing for the province 810000 Hong Kong.
	if e.Canonical == e.Code {
		var ok bool
		switch e.Kind {
		case KindCountry:
			ok = e.Code.IsCountry() && e.Province == 0
		case KindProvince:
			ok = e.Code.IsProvince() && e.Province == e.Code
		case KindCity:
			ok = !e.Code.IsProvince() && e.Province == e.Code.Province()
		}
		if !ok {
			return e, fmt.Errorf("%v: kind %s or province %v does not fit the code", e.Code, f[2], e.Province)
		}
	}
	return e, nil
}

// parseCode parses a 3- or 6-digit code. It is the syntax check of
// ParseRegion, so it accepts exactly what Region.String writes: no sign, no
// spaces, no digits but ASCII ones.
func parseCode(s string) (Region, error) {
	if len(s) != 3 && len(s) != 6 {
		return 0, fmt.Errorf("%w: want 3 or 6 digits", ErrBadRegion)
	}
	var n Region
	for i := 0; i < len(s); i++ {
		d := s[i] - '0' // wraps around for bytes below '0'
		if d > 9 {
			return 0, fmt.Errorf("%w: want 3 or 6 digits", ErrBadRegion)
		}
		n = n*10 + Region(d)
	}
	return n, nil
}

// Lookup returns the catalog entry for r. An alias's entry is found too; its
// Canonical says which code the place is stored under.
func (c *Catalog) Lookup(r Region) (RegionInfo, bool) {
	e, ok := c.byCode[r]
	return e, ok
}

// ParseRegion parses a region code as a subscriber or the network writes it:
// 6 digits for a GB/T 2260 code, 3 for an MCC. It returns the canonical code,
// so that every spelling of a place is stored the same way (500200 is
// 500100, 454 is 810000). Errors wrap ErrBadRegion or ErrUnknownRegion. The
// text of a bad input is not repeated in the error, since it may be anything
// the subscriber typed; an unknown code is, being only digits.
func (c *Catalog) ParseRegion(s string) (Region, error) {
	r, err := parseCode(s)
	if err != nil {
		return 0, err
	}
	e, ok := c.byCode[r]
	if !ok {
		return 0, fmt.Errorf("%w %s", ErrUnknownRegion, s)
	}
	return e.Canonical, nil
}

// Regions returns the entries of kind k, sorted by code, leaving out aliases:
// it lists places, each once. The slice is the caller's to keep or change.
func (c *Catalog) Regions(k Kind) []RegionInfo {
	var out []RegionInfo
	for _, e := range c.entries {
		if e.Kind == k && e.Canonical == e.Code {
			out = append(out, e)
		}
	}
	return out
}

// Len returns the number of codes the catalog knows, aliases included.
func (c *Catalog) Len() int { return len(c.entries) }

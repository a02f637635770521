package itinerary

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// MustCatalog returns the embedded catalog or stops the test.
func MustCatalog(tb testing.TB) *Catalog {
	tb.Helper()
	c, err := NewCatalog()
	if err != nil {
		tb.Fatalf("NewCatalog: %v", err)
	}
	return c
}

func TestCatalogLookup(t *testing.T) {
	c := MustCatalog(t)
	tests := []struct {
		name string
		code Region
		want RegionInfo
	}{
		{"city", 130100, RegionInfo{Code: 130100, Kind: KindCity, NameZH: "石家庄市", NameEN: "Shijiazhuang", Province: 130000, ISO: "CN", Canonical: 130100}},
		{"province", 130000, RegionInfo{Code: 130000, Kind: KindProvince, NameZH: "河北省", NameEN: "Hebei", Province: 130000, ISO: "CN", Canonical: 130000}},
		{"municipality city row", 110100, RegionInfo{Code: 110100, Kind: KindCity, NameZH: "北京市", NameEN: "Beijing", Province: 110000, ISO: "CN", Canonical: 110100}},
		{"municipality", 110000, RegionInfo{Code: 110000, Kind: KindProvince, NameZH: "北京市", NameEN: "Beijing", Province: 110000, ISO: "CN", Canonical: 110000}},
		{"municipality second row", 500200, RegionInfo{Code: 500200, Kind: KindCity, NameZH: "重庆市", NameEN: "Chongqing", Province: 500000, ISO: "CN", Canonical: 500100}},
		{"province-administered counties", 419000, RegionInfo{Code: 419000, Kind: KindProvince, NameZH: "河南省", NameEN: "Henan", Province: 410000, ISO: "CN", Canonical: 410000}},
		{"autonomous region counties", 659000, RegionInfo{Code: 659000, Kind: KindProvince, NameZH: "新疆维吾尔自治区", NameEN: "Xinjiang", Province: 650000, ISO: "CN", Canonical: 650000}},
		{"autonomous prefecture", 222400, RegionInfo{Code: 222400, Kind: KindCity, NameZH: "延边朝鲜族自治州", NameEN: "Yanbian", Province: 220000, ISO: "CN", Canonical: 222400}},
		{"league", 152900, RegionInfo{Code: 152900, Kind: KindCity, NameZH: "阿拉善盟", NameEN: "Alxa", Province: 150000, ISO: "CN", Canonical: 152900}},
		{"Hong Kong", 810000, RegionInfo{Code: 810000, Kind: KindProvince, NameZH: "香港特别行政区", NameEN: "Hong Kong", Province: 810000, ISO: "CN", Canonical: 810000}},
		{"Macao", 820000, RegionInfo{Code: 820000, Kind: KindProvince, NameZH: "澳门特别行政区", NameEN: "Macao", Province: 820000, ISO: "CN", Canonical: 820000}},
		{"Taiwan", 710000, RegionInfo{Code: 710000, Kind: KindProvince, NameZH: "台湾省", NameEN: "Taiwan", Province: 710000, ISO: "CN", Canonical: 710000}},
		{"Hong Kong MCC", 454, RegionInfo{Code: 454, Kind: KindProvince, NameZH: "香港特别行政区", NameEN: "Hong Kong", Province: 810000, ISO: "CN", Canonical: 810000}},
		{"Japan", 440, RegionInfo{Code: 440, Kind: KindCountry, NameZH: "日本", NameEN: "Japan", ISO: "JP", Canonical: 440}},
		{"United States", 310, RegionInfo{Code: 310, Kind: KindCountry, NameZH: "美国", NameEN: "United States", ISO: "US", Canonical: 310}},
		{"tidied name", 204, RegionInfo{Code: 204, Kind: KindCountry, NameZH: "荷兰", NameEN: "Netherlands", ISO: "NL", Canonical: 204}},
		{"shared MCC", 234, RegionInfo{Code: 234, Kind: KindCountry, NameZH: "英国", NameEN: "United Kingdom", ISO: "GB", Canonical: 234}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.Lookup(tt.code)
			if !ok {
				t.Fatalf("Lookup(%v): not found", tt.code)
			}
			if got != tt.want {
				t.Errorf("Lookup(%v) =\n%+v, want\n%+v", tt.code, got, tt.want)
			}
		})
	}

	for _, r := range []Region{0, 1, 460, 461, 999, 130199, 999999, 4294967295} {
		if got, ok := c.Lookup(r); ok {
			t.Errorf("Lookup(%d) = %+v, want not found", uint32(r), got)
		}
	}
}

// parseCase is one line of testdata/catalog_parse.txt.
type parseCase struct {
	in   string
	want string // a canonical code, "bad" or "unknown"
}

// readParseCases reads the ParseRegion cases that also seed the fuzz test.
func readParseCases(tb testing.TB) []parseCase {
	tb.Helper()
	f, err := os.Open("testdata/catalog_parse.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []parseCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			tb.Fatalf("catalog_parse.txt:%d: no expectation", n)
		}
		in, err := strconv.Unquote(line[:i])
		if err != nil {
			tb.Fatalf("catalog_parse.txt:%d: %v", n, err)
		}
		cases = append(cases, parseCase{in, line[i+1:]})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

func TestParseRegion(t *testing.T) {
	c := MustCatalog(t)
	for _, tt := range readParseCases(t) {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := c.ParseRegion(tt.in)
			switch tt.want {
			case "bad":
				if !errors.Is(err, ErrBadRegion) {
					t.Fatalf("ParseRegion(%q) = %v, %v; want ErrBadRegion", tt.in, got, err)
				}
			case "unknown":
				if !errors.Is(err, ErrUnknownRegion) {
					t.Fatalf("ParseRegion(%q) = %v, %v; want ErrUnknownRegion", tt.in, got, err)
				}
			default:
				if err != nil || got.String() != tt.want {
					t.Fatalf("ParseRegion(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
				}
			}
		})
	}
}

func TestParseRegionErrorText(t *testing.T) {
	c := MustCatalog(t)
	// Whatever a subscriber typed may be personal (a phone number here), so a
	// syntax error must not repeat it.
	if _, err := c.ParseRegion("13800138000"); err == nil || strings.Contains(err.Error(), "138") {
		t.Errorf("ParseRegion(phone number) error = %v; want ErrBadRegion without the input", err)
	}
	// An unknown code is only digits and helps whoever reads the log.
	if _, err := c.ParseRegion("999999"); err == nil || err.Error() != "itinerary: unknown region 999999" {
		t.Errorf("ParseRegion(999999) error = %v", err)
	}
}

func TestCatalogShape(t *testing.T) {
	c := MustCatalog(t)
	provinces, cities, countries := c.Regions(KindProvince), c.Regions(KindCity), c.Regions(KindCountry)
	if len(provinces) != 34 {
		t.Errorf("%d provinces, want 34 (31 + Hong Kong, Macao, Taiwan)", len(provinces))
	}
	if len(cities) <= 330 {
		t.Errorf("%d cities, want > 330", len(cities))
	}
	if len(countries) <= 200 {
		t.Errorf("%d countries, want > 200", len(countries))
	}
	if got := c.Len(); got <= len(provinces)+len(cities)+len(countries) {
		t.Errorf("Len() = %d, want the %d places plus their aliases", got, len(provinces)+len(cities)+len(countries))
	}

	for _, k := range []Kind{KindProvince, KindCity, KindCountry} {
		rs := c.Regions(k)
		if !slices.IsSortedFunc(rs, func(a, b RegionInfo) int { return int(a.Code) - int(b.Code) }) {
			t.Errorf("Regions(%d) is not sorted by code", k)
		}
		for _, e := range rs {
			if e.Kind != k || e.Canonical != e.Code {
				t.Errorf("Regions(%d) lists %+v", k, e)
			}
			if e.NameZH == "" || e.NameEN == "" || !utf8.ValidString(e.NameZH) || strings.TrimSpace(e.NameEN) != e.NameEN {
				t.Errorf("%v: bad names %q %q", e.Code, e.NameZH, e.NameEN)
			}
			switch k {
			case KindCity:
				if p, ok := c.Lookup(e.Province); !ok || p.Kind != KindProvince {
					t.Errorf("city %v: province %v is not in the catalog", e.Code, e.Province)
				}
			case KindCountry:
				if len(e.ISO) != 2 || e.Province != 0 {
					t.Errorf("country %v: ISO %q, province %v", e.Code, e.ISO, e.Province)
				}
			}
		}
	}

	// Regions hands out a copy: changing it must not change the catalog.
	cities[0].NameEN = "changed"
	if e, _ := c.Lookup(cities[0].Code); e.NameEN == "changed" {
		t.Error("Regions returned the catalog's own storage")
	}
}

// TestAliases checks that an alias is its canonical place under another code,
// so that showing either gives the same name.
func TestAliases(t *testing.T) {
	c := MustCatalog(t)
	var n int
	for _, e := range c.entries {
		if e.Canonical == e.Code {
			continue
		}
		n++
		canon, ok := c.Lookup(e.Canonical)
		if !ok {
			t.Errorf("alias %v: canonical %v missing", e.Code, e.Canonical)
			continue
		}
		canon.Code = e.Code
		if canon != e {
			t.Errorf("alias %+v differs from its canonical entry %+v", e, canon)
		}
	}
	if n != 8 { // 500200, four 省直辖 groups, 454, 455, 466
		t.Errorf("%d aliases, want 8", n)
	}
}

func TestParseCatalogRejects(t *testing.T) {
	const head = "# test\n"
	tests := []struct {
		name, tsv string
	}{
		{"too few fields", "130000\t130000\tprovince\t130000\tCN\t河北省\n"},
		{"unknown kind", "130000\t130000\tregion\t130000\tCN\t河北省\tHebei\n"},
		{"bad code", "13000\t130000\tprovince\t130000\tCN\t河北省\tHebei\n"},
		{"empty name", "130000\t130000\tprovince\t130000\tCN\t\tHebei\n"},
		{"duplicate", "130000\t130000\tprovince\t130000\tCN\t河北省\tHebei\n130000\t130000\tprovince\t130000\tCN\t河北省\tHebei\n"},
		{"missing canonical", "500200\t500100\tcity\t500000\tCN\t重庆市\tChongqing\n"},
		{"missing province", "130100\t130100\tcity\t130000\tCN\t石家庄市\tShijiazhuang\n"},
		{"kind does not fit code", "130100\t130100\tprovince\t130100\tCN\t石家庄市\tShijiazhuang\n"},
		{"country with province", "440\t440\tcountry\t130000\tJP\t日本\tJapan\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseCatalog(head + tt.tsv); err == nil {
				t.Errorf("parseCatalog accepted %q", tt.tsv)
			}
		})
	}
}

func FuzzParseRegion(f *testing.F) {
	for _, tt := range readParseCases(f) {
		f.Add(tt.in)
	}
	c := MustCatalog(f)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := c.ParseRegion(s)
		if err != nil {
			if !errors.Is(err, ErrBadRegion) && !errors.Is(err, ErrUnknownRegion) {
				t.Fatalf("ParseRegion(%q): error %v wraps neither sentinel", s, err)
			}
			if len(err.Error()) > 64 {
				t.Fatalf("ParseRegion(%q): error text %q is too long", s, err)
			}
			return
		}
		e, ok := c.Lookup(r)
		if !ok || e.Canonical != r {
			t.Fatalf("ParseRegion(%q) = %v, which is not a canonical entry (%+v, %t)", s, r, e, ok)
		}
		// The input's own entry folds into r, and r's spelling parses back to r.
		if in, _ := c.Lookup(mustAtoi(t, s)); in.Canonical != r {
			t.Fatalf("ParseRegion(%q) = %v, but the entry's canonical is %v", s, r, in.Canonical)
		}
		if back, err := c.ParseRegion(r.String()); err != nil || back != r {
			t.Fatalf("ParseRegion(%q) = %v, %v; want %v", r.String(), back, err, r)
		}
	})
}

// mustAtoi converts input ParseRegion accepted back to its code.
func mustAtoi(t *testing.T, s string) Region {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		t.Fatalf("ParseRegion accepted %q, which is not a number", s)
	}
	return Region(n)
}

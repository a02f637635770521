package itinerary

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// MustWording returns the default wording over the embedded catalog.
func MustWording(tb testing.TB) Wording {
	tb.Helper()
	return Wording{Catalog: MustCatalog(tb)}
}

// checkGolden compares got with testdata/wording/name.golden, or rewrites
// the file under -update. The file ends with a newline the text does not
// have, so that diffs of it read well.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "wording", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got+"\n" != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\ngot:  %s\nwant: %s", path, got, strings.TrimSuffix(string(want), "\n"))
	}
}

// itineraryOf builds an itinerary from places given most recent first, one
// day apart, each seen long enough to count.
func itineraryOf(w Window, regions ...Region) Itinerary {
	var vs []Visit
	for i, r := range regions {
		vs = append(vs, Visit{Day: w.Last - Day(i%w.Days()), Region: r, First: 8 * 3600, Last: 20 * 3600})
	}
	return Build(vs, w, Rules{MinDwell: DefaultMinDwell})
}

// manyCities returns the first n prefecture-level cities of the catalog.
func manyCities(tb testing.TB, n int) []Region {
	tb.Helper()
	cities := MustCatalog(tb).Regions(KindCity)
	if len(cities) < n {
		tb.Fatalf("the catalog has %d cities, want at least %d", len(cities), n)
	}
	out := make([]Region, n)
	for i := range out {
		out[i] = cities[i].Code
	}
	return out
}

func allCountries(tb testing.TB) []Region {
	tb.Helper()
	var out []Region
	for _, c := range MustCatalog(tb).Regions(KindCountry) {
		out = append(out, c.Code)
	}
	return out
}

var (
	last15 = Window{First: 101, Last: 115}
	last30 = Window{First: 101, Last: 130}
)

func mustSplit(tb testing.TB, it Itinerary) (newer, older Itinerary) {
	tb.Helper()
	vs := make([]Visit, 0, len(it.Places))
	for _, p := range it.Places {
		for _, d := range []Day{p.FirstDay, p.LastDay} {
			vs = append(vs, Visit{Day: d, Region: p.Region, Last: 86399})
		}
	}
	newer, older, err := Split(vs, it.Window, Rules{}, 15)
	if err != nil {
		tb.Fatal(err)
	}
	return newer, older
}

// wordingCase is one golden wording test; text words it in lang.
type wordingCase struct {
	name string
	text func(t *testing.T, w Wording, lang Lang) string
}

func wordingCases() []wordingCase {
	one := func(regions ...Region) func(*testing.T, Wording, Lang) string {
		return func(_ *testing.T, w Wording, lang Lang) string {
			return w.Itinerary(itineraryOf(last15, regions...), lang)
		}
	}
	split := func(newer, older []Region) func(*testing.T, Wording, Lang) string {
		return func(t *testing.T, w Wording, lang Lang) string {
			// Newer places on days 1..n, older ones from day 16 on.
			var vs []Visit
			for i, r := range newer {
				vs = append(vs, Visit{Day: last30.Last - Day(i), Region: r, First: 0, Last: 5 * 3600})
			}
			for i, r := range older {
				vs = append(vs, Visit{Day: last30.Last - 15 - Day(i), Region: r, First: 0, Last: 5 * 3600})
			}
			n, o, err := Split(vs, last30, Rules{MinDwell: DefaultMinDwell}, 15)
			if err != nil {
				t.Fatal(err)
			}
			return w.Split(n, o, lang)
		}
	}
	return []wordingCase{
		{"example", one(beijing, shijiazhuang, japan)},
		{"none", one()},
		{"one-place", one(shanghaiCity)},
		{"province-and-hong-kong", one(hebei, hongKong)},
		{"municipality-alias", one(500100)}, // 重庆市, not 重庆市重庆市
		{"split-30", split([]Region{beijing, shijiazhuang}, []Region{japan, hongKong})},
		{"split-30-older-empty", split([]Region{beijing, shijiazhuang}, nil)},
		{"split-30-newer-empty", split(nil, []Region{japan})},
		{"split-30-none", split(nil, nil)},
		{"huge-200-cities", func(t *testing.T, w Wording, lang Lang) string {
			return w.Itinerary(itineraryOf(last15, manyCities(t, 200)...), lang)
		}},
		{"huge-200-cities-split", func(t *testing.T, w Wording, lang Lang) string {
			return w.splitLang(lang)(mustSplit(t, itineraryOf(last30, manyCities(t, 200)...)))
		}},
		{"huge-countries", func(t *testing.T, w Wording, lang Lang) string {
			return w.Itinerary(itineraryOf(last15, allCountries(t)...), lang)
		}},
		{"huge-cities-one-part", func(t *testing.T, w Wording, lang Lang) string {
			w.MaxParts = 1
			return w.Itinerary(itineraryOf(last15, manyCities(t, 200)...), lang)
		}},
	}
}

// splitLang lets mustSplit's two results go straight into Split.
func (w Wording) splitLang(lang Lang) func(newer, older Itinerary) string {
	return func(newer, older Itinerary) string { return w.Split(newer, older, lang) }
}

func TestWordingGolden(t *testing.T) {
	w := MustWording(t)
	for _, tc := range wordingCases() {
		for _, lang := range []struct {
			name string
			lang Lang
		}{{"zh", Chinese}, {"en", English}} {
			t.Run(tc.name+"-"+lang.name, func(t *testing.T) {
				got := tc.text(t, w, lang.lang)
				checkWellFormed(t, w, got, lang.lang, 8)
				checkGolden(t, tc.name+"-"+lang.name, got)
			})
		}
	}
}

// TestWordingBriefExample pins the example of the brief literally, beside
// its golden file.
func TestWordingBriefExample(t *testing.T) {
	w := MustWording(t)
	it := itineraryOf(last15, beijing, shijiazhuang, japan)
	tests := []struct {
		lang Lang
		want string
	}{
		{Chinese, "根据您的授权查询，您于近15天内到达或途经：北京市、河北省石家庄市、日本。"},
		{English, "In the last 15 days your phone was in: Beijing; Shijiazhuang, Hebei; Japan."},
	}
	for _, tt := range tests {
		if got := w.Itinerary(it, tt.lang); got != tt.want {
			t.Errorf("Itinerary(lang %d) =\n%s\nwant\n%s", tt.lang, got, tt.want)
		}
	}
}

func TestWordingSummarises(t *testing.T) {
	w := MustWording(t)
	cities := manyCities(t, 200)
	tests := []struct {
		name     string
		w        Wording
		it       Itinerary
		lang     Lang
		maxParts int
		want     []string // every one must appear
	}{
		{"200 cities zh", w, itineraryOf(last15, cities...), Chinese, 8, []string{"已按省份汇总", "河北省"}},
		{"200 cities en", w, itineraryOf(last15, cities...), English, 8, []string{"shown by province", "Hebei"}},
		{"200 cities in 1 part zh", Wording{Catalog: w.Catalog, MaxParts: 1}, itineraryOf(last15, cities...), Chinese, 1, []string{"已按省份汇总", "个地区"}},
		{"200 cities in 1 part en", Wording{Catalog: w.Catalog, MaxParts: 1}, itineraryOf(last15, cities...), English, 1, []string{"shown by province", "more places"}},
		{"every country zh", w, itineraryOf(last15, allCountries(t)...), Chinese, 8, []string{"个地区"}},
		{"every country en", w, itineraryOf(last15, allCountries(t)...), English, 8, []string{"more places"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.w.Itinerary(tt.it, tt.lang)
			checkWellFormed(t, w, got, tt.lang, tt.maxParts)
			for _, s := range tt.want {
				if !strings.Contains(got, s) {
					t.Errorf("no %q in the summary:\n%s", s, got)
				}
			}
		})
	}

	// A list that fits is never summarised.
	for _, lang := range []Lang{Chinese, English} {
		got := w.Itinerary(itineraryOf(last15, cities[:5]...), lang)
		if strings.Contains(got, "省份") || strings.Contains(got, "province") || strings.Contains(got, "more place") {
			t.Errorf("five cities are summarised:\n%s", got)
		}
	}
}

// TestWordingAlwaysFits words itineraries of every length from 1 to 250
// places, whole and split, and checks each fits 8 parts and is well formed.
func TestWordingAlwaysFits(t *testing.T) {
	w := MustWording(t)
	cities := manyCities(t, 250)
	countries := allCountries(t)
	var mixed []Region
	for i := range 250 {
		if i%3 == 0 {
			mixed = append(mixed, countries[i%len(countries)])
		} else {
			mixed = append(mixed, cities[i])
		}
	}
	for _, lang := range []Lang{Chinese, English} {
		for n := 1; n <= 250; n += 7 {
			checkWellFormed(t, w, w.Itinerary(itineraryOf(last15, mixed[:n]...), lang), lang, 8)
			checkWellFormed(t, w, w.splitLang(lang)(mustSplit(t, itineraryOf(last30, mixed[:n]...))), lang, 8)
		}
	}
}

// checkWellFormed checks what every reply must be: within maxParts SMS
// parts, ended as a sentence, and naming only whole catalog names (a cut
// never falls mid-name).
func checkWellFormed(t *testing.T, w Wording, text string, lang Lang, maxParts int) {
	t.Helper()
	if n := CountParts(text); n > maxParts {
		t.Errorf("%d SMS parts, want at most %d:\n%s", n, maxParts, text)
	}
	if strings.Contains(text, "Region(") {
		t.Errorf("a region without a name:\n%s", text)
	}
	names := placeNames(w.Catalog)
	for _, item := range listedNames(text, lang) {
		if !names[item] {
			t.Errorf("%q is not a whole place name in:\n%s", item, text)
		}
	}
}

var namesCache sync.Map // *Catalog -> map[string]bool

// placeNames returns every name a reply may list: countries, provinces,
// cities alone and with their province.
func placeNames(c *Catalog) map[string]bool {
	if m, ok := namesCache.Load(c); ok {
		return m.(map[string]bool)
	}
	names := make(map[string]bool)
	for _, k := range []Kind{KindCountry, KindProvince, KindCity} {
		for _, e := range c.Regions(k) {
			names[e.NameZH], names[e.NameEN] = true, true
			if k == KindCity {
				if p, ok := c.Lookup(e.Province); ok {
					names[p.NameZH+e.NameZH] = true
					names[e.NameEN+", "+p.NameEN] = true
				}
			}
		}
	}
	namesCache.Store(c, names)
	return names
}

var (
	zhList = regexp.MustCompile(`途经：([^；。]*)`)
	enList = regexp.MustCompile(`(?:was in|it was in): ([^.]*)\.`)
	zhRest = regexp.MustCompile(`等\d+个地区$`)
	enRest = regexp.MustCompile(`^and \d+ more places?$`)
)

// listedNames returns the place names a reply lists.
func listedNames(text string, lang Lang) []string {
	var out []string
	if lang == Chinese {
		for _, m := range zhList.FindAllStringSubmatch(text, -1) {
			for _, item := range strings.Split(zhRest.ReplaceAllString(m[1], ""), "、") {
				out = append(out, item)
			}
		}
		return out
	}
	for _, m := range enList.FindAllStringSubmatch(text, -1) {
		for _, item := range strings.Split(m[1], "; ") {
			if !enRest.MatchString(item) {
				out = append(out, item)
			}
		}
	}
	return out
}

func TestWordingParts(t *testing.T) {
	// A gateway's own counter is honoured: here every 10 runes is a part.
	w := MustWording(t)
	w.Parts = func(s string) int { return (len([]rune(s)) + 9) / 10 }
	w.MaxParts = 6
	got := w.Itinerary(itineraryOf(last15, manyCities(t, 40)...), Chinese)
	if n := w.Parts(got); n > 6 {
		t.Errorf("%d parts by the gateway's count, want at most 6:\n%s", n, got)
	}
}

func TestCountParts(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
	}{
		{"empty", "", 1},
		{"160 GSM", strings.Repeat("a", 160), 1},
		{"161 GSM", strings.Repeat("a", 161), 2},
		{"306 GSM", strings.Repeat("a", 306), 2},
		{"307 GSM", strings.Repeat("a", 307), 3},
		{"80 extension characters", strings.Repeat("€", 80), 1},
		{"81 extension characters", strings.Repeat("€", 81), 2},
		{"GSM accents", strings.Repeat("é", 160), 1},
		{"70 UCS-2", strings.Repeat("中", 70), 1},
		{"71 UCS-2", strings.Repeat("中", 71), 2},
		{"134 UCS-2", strings.Repeat("中", 134), 2},
		{"135 UCS-2", strings.Repeat("中", 135), 3},
		{"one Chinese character makes it UCS-2", strings.Repeat("a", 70) + "中", 2},
		{"a non-GSM Latin letter makes it UCS-2", strings.Repeat("a", 70) + "ô", 2},
		{"surrogate pairs count twice", strings.Repeat("😀", 35), 1},
		{"36 surrogate pairs", strings.Repeat("😀", 36), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CountParts(tt.text); got != tt.want {
				t.Errorf("CountParts = %d, want %d", got, tt.want)
			}
		})
	}
}

// FuzzWording words itineraries of arbitrary regions, languages and part
// limits: it must never panic, and whatever fits must be whole names.
func FuzzWording(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint8(8), false)
	f.Add([]byte("a long list of places, many of them"), uint8(1), true)
	w := MustWording(f)
	cities := w.Catalog.Regions(KindCity)
	countries := w.Catalog.Regions(KindCountry)
	f.Fuzz(func(t *testing.T, picks []byte, maxParts uint8, english bool) {
		lang := Chinese
		if english {
			lang = English
		}
		var vs []Visit
		for i, b := range picks {
			r := cities[int(b)%len(cities)].Code
			if b%5 == 0 {
				r = countries[int(b)%len(countries)].Code
			}
			vs = append(vs, Visit{Day: last30.Last - Day(i%30), Region: r, Last: 86399})
		}
		w := w
		w.MaxParts = int(maxParts % 10)
		text := w.Itinerary(Build(vs, last30, Rules{MinDwell: time.Hour}), lang)
		newer, older, err := Split(vs, last30, Rules{}, 15)
		if err != nil {
			t.Fatal(err)
		}
		split := w.Split(newer, older, lang)
		// One part may be too few for anything but the shortest reply;
		// from two on, every reply must fit.
		limit := w.MaxParts
		switch limit {
		case 0:
			limit = 8
		case 1:
			limit = 1000
		}
		for _, s := range []string{text, split} {
			if s == "" {
				t.Fatal("empty reply")
			}
			checkWellFormed(t, w, s, lang, limit)
		}
	})
}

func TestWordingNamesOnce(t *testing.T) {
	// 310 and 311 are both the United States; 234 and 235 the United
	// Kingdom: a phone that roams between two networks of one country
	// visited one country.
	w := MustWording(t)
	it := itineraryOf(last15, 310, japan, 311, 234, 235)
	tests := []struct {
		lang Lang
		want string
	}{
		{Chinese, "根据您的授权查询，您于近15天内到达或途经：美国、日本、英国。"},
		{English, "In the last 15 days your phone was in: United States; Japan; United Kingdom."},
	}
	for _, tt := range tests {
		if got := w.Itinerary(it, tt.lang); got != tt.want {
			t.Errorf("Itinerary(lang %d) =\n%s\nwant\n%s", tt.lang, got, tt.want)
		}
	}
}

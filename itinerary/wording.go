package itinerary

import (
	"fmt"
	"strings"
	"unicode/utf16"
)

// Lang is the language of a reply.
type Lang uint8

const (
	Chinese Lang = iota
	English
)

// Wording turns itineraries into SMS text.
type Wording struct {
	Catalog *Catalog
	// MaxParts is the most concatenated SMS parts a reply may take; a longer
	// list of places is summarised, never cut mid-name. The default is 8.
	MaxParts int
	// Parts counts the SMS parts a text takes. The default counts as
	// handsets do: GSM 7-bit, 160 characters alone or 153 per part; UCS-2,
	// 70 alone or 67 per part. A gateway that segments differently passes
	// its own.
	Parts func(text string) int
}

// Itinerary words it for one window, in lang.
func (w Wording) Itinerary(it Itinerary, lang Lang) string {
	return w.fit(func(level int) string {
		if len(it.Places) == 0 {
			return w.none(it.Window.Days(), lang)
		}
		return w.intro(it.Window.Days(), lang) + w.places(it.Places, lang, level) + w.end(lang) +
			w.note(level, lang, it.Places)
	})
}

// Split words a window split in two, as China Mobile's 30-day reply was:
// the most recent days first, then the older ones.
func (w Wording) Split(newer, older Itinerary, lang Lang) string {
	n1, n2 := newer.Window.Days(), older.Window.Days()
	return w.fit(func(level int) string {
		if len(newer.Places) == 0 && len(older.Places) == 0 {
			return w.none(n1+n2, lang)
		}
		note := w.note(level, lang, newer.Places, older.Places)
		if lang == English {
			// Two sentences, not one: places are already separated by
			// semicolons, so a semicolon between the halves would blur them.
			var s string
			if len(newer.Places) == 0 {
				s = fmt.Sprintf("We have no record of your phone in the last %d days.", n1)
			} else {
				s = fmt.Sprintf("In the last %d days your phone was in: %s.", n1, w.places(newer.Places, lang, level))
			}
			if len(older.Places) == 0 {
				s += fmt.Sprintf(" In the %d days before that we have no record of it.", n2)
			} else {
				s += fmt.Sprintf(" In the %d days before that it was in: %s.", n2, w.places(older.Places, lang, level))
			}
			return s + note
		}
		part := func(it Itinerary, from, to int) string {
			if len(it.Places) == 0 {
				return fmt.Sprintf("近%d-%d天内暂无到达或途经的地点记录", from, to)
			}
			return fmt.Sprintf("近%d-%d天内到达或途经：%s", from, to, w.places(it.Places, lang, level))
		}
		return "根据您的授权查询，您于" + part(newer, 1, n1) + "；" + part(older, n1+1, n1+n2) + "。" + note
	})
}

func (w Wording) intro(days int, lang Lang) string {
	if lang == English {
		return fmt.Sprintf("In the last %d days your phone was in: ", days)
	}
	return fmt.Sprintf("根据您的授权查询，您于近%d天内到达或途经：", days)
}

func (w Wording) end(lang Lang) string {
	if lang == English {
		return "."
	}
	return "。"
}

func (w Wording) none(days int, lang Lang) string {
	if lang == English {
		return fmt.Sprintf("We have no record of where your phone was in the last %d days.", days)
	}
	return fmt.Sprintf("根据您的授权查询，近%d天内暂无您到达或途经的地点记录。", days)
}

// note tells the subscriber that cities were folded into their provinces,
// so that "Hebei" is not read as a visit to the province as a whole.
func (w Wording) note(level int, lang Lang, lists ...[]Place) string {
	if level == levelFull {
		return ""
	}
	for _, ps := range lists {
		for _, p := range ps {
			if p.Region.IsCountry() || p.Region.IsProvince() {
				continue
			}
			if lang == English {
				return " Too many places to list: cities are shown by province."
			}
			return "地点较多，已按省份汇总。"
		}
	}
	return ""
}

// Summary levels, tried in turn until the text fits: every place; cities
// folded into their provinces; then the first n provinces and a count of
// the rest.
const (
	levelFull = iota
	levelProvinces
	levelCount // levelCount+k keeps k fewer names
)

func (w Wording) fit(text func(level int) string) string {
	maxParts := w.MaxParts
	if maxParts <= 0 {
		maxParts = 8
	}
	parts := w.Parts
	if parts == nil {
		parts = CountParts
	}
	var s string
	for level := levelFull; level < levelCount+1000; level++ {
		s = text(level)
		if parts(s) <= maxParts {
			return s
		}
	}
	return s
}

// places lists places at a summary level.
func (w Wording) places(ps []Place, lang Lang, level int) string {
	sep := "、"
	if lang == English {
		sep = "; "
	}
	// Names are listed once each, in the order of first mention (the most
	// recent first): a country with several MCCs (310 and 311 are both the
	// United States) is several regions but one name, and folding makes
	// several cities one province.
	var names []string
	seen := make(map[string]bool)
	for _, p := range ps {
		r, withProvince := p.Region, true
		if level != levelFull && !r.IsCountry() {
			r, withProvince = r.Province(), false
		}
		if n := w.name(r, lang, withProvince); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if level == levelFull || level == levelProvinces {
		return strings.Join(names, sep)
	}
	keep := max(len(names)-(level-levelProvinces), 1)
	rest := len(names) - keep
	if rest <= 0 {
		return strings.Join(names, sep)
	}
	if lang == English {
		more := "places"
		if rest == 1 {
			more = "place"
		}
		return strings.Join(names[:keep], sep) + fmt.Sprintf("; and %d more %s", rest, more)
	}
	return strings.Join(names[:keep], sep) + fmt.Sprintf("等%d个地区", len(names))
}

// name is how a reply names a region: a city with its province (河北省石家庄市,
// "Shijiazhuang, Hebei"), a municipality or province alone (北京市, Hebei), a
// country alone (日本, Japan).
func (w Wording) name(r Region, lang Lang, withProvince bool) string {
	info, ok := w.Catalog.Lookup(r)
	if !ok {
		return r.String() // unreachable for stored regions; never blank
	}
	pick := func(i RegionInfo) string {
		if lang == English {
			return i.NameEN
		}
		return i.NameZH
	}
	if info.Kind != KindCity || !withProvince {
		return pick(info)
	}
	prov, ok := w.Catalog.Lookup(info.Province)
	if !ok || prov.NameZH == info.NameZH {
		return pick(info) // a municipality is its own province
	}
	if lang == English {
		return info.NameEN + ", " + prov.NameEN
	}
	return prov.NameZH + info.NameZH
}

// CountParts counts the SMS parts text takes in the usual encoding: GSM 7-bit
// when every character is in the GSM default alphabet (extension characters
// count twice), else UCS-2.
func CountParts(text string) int {
	septets, gsm := 0, true
	for _, r := range text {
		switch n := gsmSeptets(r); n {
		case 0:
			gsm = false
		default:
			septets += n
		}
		if !gsm {
			break
		}
	}
	if gsm {
		if septets <= 160 {
			return 1
		}
		return (septets + 152) / 153
	}
	units := len(utf16.Encode([]rune(text)))
	if units <= 70 {
		return 1
	}
	return (units + 66) / 67
}

const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
const gsmExt = "\f^{}\\[~]|€"

// gsmSeptets is the septets r takes in GSM 03.38, or 0 if it has none.
func gsmSeptets(r rune) int {
	switch {
	case strings.ContainsRune(gsmBasic, r):
		return 1
	case strings.ContainsRune(gsmExt, r):
		return 2
	}
	return 0
}

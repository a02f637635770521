package smsgw

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/NAME.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s:\ngot  %q\nwant %q", name, got, want)
	}
}

func TestRepliesGolden(t *testing.T) {
	for _, lang := range []struct {
		name string
		l    itinerary.Lang
	}{{"zh", itinerary.Chinese}, {"en", itinerary.English}} {
		var b strings.Builder
		for _, r := range []struct{ name, text string }{
			{"prompt 15", promptText(15, lang.l, 10)},
			{"prompt 30", promptText(30, lang.l, 10)},
			{"nothing pending", nothingPendingText(lang.l)},
			{"cancelled", cancelledText(lang.l)},
			{"help", helpText(lang.l)},
			{"limit", limitText(10, lang.l)},
			{"busy", busyText(lang.l)},
			{"opted out", optedOutText(lang.l)},
			{"opted in", optedInText(lang.l)},
			{"recording off", recordingOffText(lang.l)},
			{"no accesses", accessesText(nil, lang.l, shanghai(t), time.Now())},
		} {
			if n := itinerary.CountParts(r.text); n > 1 {
				t.Errorf("%s %s takes %d SMS parts; a dialogue reply should take one", lang.name, r.name, n)
			}
			b.WriteString(r.name + ": " + r.text + "\n")
		}
		golden(t, "replies/"+lang.name, b.String())
	}
}

func shanghai(tb testing.TB) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// TestAccessesGolden words JL's list: self and staff, with and without a
// window, one from last year, and the most it lists.
func TestAccessesGolden(t *testing.T) {
	loc := shanghai(t)
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, loc)
	all := []access{
		{When: time.Date(2026, 11, 27, 8, 15, 0, 0, loc), Days: 15},
		{When: time.Date(2026, 11, 20, 10, 2, 0, 0, loc), Staff: true, Days: 30},
		{When: time.Date(2026, 11, 19, 23, 59, 0, 0, time.UTC), Days: 30}, // 11-20 07:59 in Shanghai
		{When: time.Date(2026, 3, 1, 9, 0, 0, 0, loc), Staff: true},
		{When: time.Date(2025, 12, 31, 18, 30, 0, 0, loc), Days: 15},
	}
	for _, lang := range []struct {
		name string
		l    itinerary.Lang
	}{{"zh", itinerary.Chinese}, {"en", itinerary.English}} {
		var b strings.Builder
		for _, n := range []int{1, 2, len(all)} {
			text := accessesText(all[:n], lang.l, loc, now)
			if parts := itinerary.CountParts(text); parts > 3 {
				t.Errorf("%s, %d accesses: %d SMS parts, want at most 3", lang.name, n, parts)
			}
			b.WriteString(text + "\n")
		}
		golden(t, "replies/accesses-"+lang.name, b.String())
	}
}

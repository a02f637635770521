package smsgw

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		} {
			if n := itinerary.CountParts(r.text); n > 1 {
				t.Errorf("%s %s takes %d SMS parts; a dialogue reply should take one", lang.name, r.name, n)
			}
			b.WriteString(r.name + ": " + r.text + "\n")
		}
		golden(t, "replies/"+lang.name, b.String())
	}
}

package audit_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestEntryEncodingGolden pins the line format auditors' tools read.
func TestEntryEncodingGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k := MustKey(t)
	fixed := func() time.Time { return day0 }
	l, err := audit.Open(dir, audit.Options{Signer: k.signer, Now: fixed, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	e := lookup(0xa1)
	e.Detail = `<a&b> "quoted" 中文`
	MustAppend(t, l, e)
	MustClose(t, l)
	got, _ := os.ReadFile(filepath.Join(dir, logFiles(t, dir)[0]))
	golden := filepath.Join("testdata", "entry.golden")
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("line:\n%s\nwant (testdata/entry.golden; -update rewrites it):\n%s", got, want)
	}
}

func TestScan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	for d := range 3 {
		c.Set(day0.AddDate(0, 0, d))
		MustAppend(t, l, lookup(1))
		MustAppend(t, l, lookup(2))
		e := lookup(1)
		e.Actor, e.Role, e.Action, e.Ticket = audit.ActorSelf, audit.RoleSubscriber, audit.ActSelfQuery, ""
		MustAppend(t, l, e)
	}
	MustClose(t, l)
	ctx := context.Background()
	one := audit.SubjectOf(itinerary.Pseudonym{1})
	for _, tc := range []struct {
		name string
		f    audit.Filter
		want []uint64
	}{
		{"all", audit.Filter{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"subject", audit.Filter{Subject: one}, []uint64{1, 3, 4, 6, 7, 9}},
		{"subject and actor", audit.Filter{Subject: one, Actor: "op-17"}, []uint64{1, 4, 7}},
		{"action", audit.Filter{Action: audit.ActSelfQuery}, []uint64{3, 6, 9}},
		{"since", audit.Filter{Since: day0.AddDate(0, 0, 1).Add(2 * time.Millisecond)}, []uint64{5, 6, 7, 8, 9}},
		{"nobody", audit.Filter{Actor: "op-99"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint64
			err := audit.Scan(ctx, dir, tc.f, func(e audit.Entry) error { got = append(got, e.Seq); return nil })
			if err != nil || !equal(got, tc.want) {
				t.Errorf("Scan: %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	if err := audit.Scan(ctx, dir, audit.Filter{}, func(audit.Entry) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Scan did not stop at fn's error: %v after %d", err, n)
	}
}

func TestLast(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	// Small files and a large count, so that Last crosses files and chunks.
	l := MustOpen(t, dir, k, c, func(o *audit.Options) { o.MaxFileSize = 200 << 10 })
	for i := range 3000 {
		MustAppend(t, l, lookup(byte(i%7)))
	}
	MustAppend(t, l, lookup(100))
	ctx := context.Background()
	three := audit.SubjectOf(itinerary.Pseudonym{3})
	got, err := audit.Last(ctx, dir, three, 5)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range got {
		seqs = append(seqs, e.Seq)
	}
	if want := []uint64{3000, 2993, 2986, 2979, 2972}; !equal(seqs, want) {
		t.Errorf("Last: %v, want %v (newest first)", seqs, want)
	}
	// A subject whose entries are spread over every file.
	all, err := audit.Last(ctx, dir, three, 10000)
	if err != nil || len(all) != 429 || all[len(all)-1].Seq != 4 {
		t.Errorf("Last(all): %d entries, oldest %d, %v; want 429, oldest 4", len(all), all[len(all)-1].Seq, err)
	}
	// A torn line being written is skipped.
	MustClose(t, l)
	files := logFiles(t, dir)
	appendFile(t, filepath.Join(dir, files[len(files)-1]), []byte(`{"seq":3002,"subject":"`+three))
	if got, err := audit.Last(ctx, dir, audit.SubjectOf(itinerary.Pseudonym{100}), 1); err != nil || len(got) != 1 || got[0].Seq != 3001 {
		t.Errorf("Last with a torn tail: %v, %v", got, err)
	}
	if _, err := audit.Last(ctx, dir, "13800138000", 5); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("Last with a number: %v, want ErrInvalid", err)
	}
	if len(files) < 3 {
		t.Errorf("only %d files; the test wants several", len(files))
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

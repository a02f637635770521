package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/privacy/staff"
)

// The concrete types fit what privacy/staff declares.
var (
	_ staff.Itineraries = (*itinerary.Engine)(nil)
	_ staff.Notifier    = (*bindNotifier)(nil)
	_ staff.Notifier    = (*smppNotifier)(nil)
	_ staff.AuditLog    = (*lazyAudit)(nil)
	_ staff.AuditLog    = (*audit.Log)(nil)
)

func init() {
	// Another test file of this package may declare -update too.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite testdata/*.golden")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// golden compares got with testdata/NAME, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update and review the diff):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestPrintItineraryGolden(t *testing.T) {
	var b strings.Builder
	printItinerary(&b, &staff.Itinerary{
		Masked: "138****8000", Ticket: "T-42", Days: 30, First: "2026-10-29", Last: "2026-11-27", Notified: true,
		Places: []staff.PlaceRow{
			{Region: 130100, NameZH: "河北省石家庄市", NameEN: "Shijiazhuang, Hebei", FirstDay: "2026-11-24", LastDay: "2026-11-24"},
			{Region: 110100, NameZH: "北京市", NameEN: "Beijing", FirstDay: "2026-10-29", LastDay: "2026-11-27"},
			{Region: 440, NameZH: "日本", NameEN: "Japan", FirstDay: "2026-11-07", LastDay: "2026-11-07"},
		},
	})
	b.WriteString("--\n")
	printItinerary(&b, &staff.Itinerary{Masked: "138****8000", Ticket: "T-43", Days: 15, First: "2026-11-13", Last: "2026-11-27"})
	golden(t, "staff/itinerary.golden", b.String())
}

func TestPrintEntriesGolden(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)
	var b strings.Builder
	printEntries(&b, []audit.Entry{
		{Seq: 7, Time: at, Actor: "ann", Role: "agent", Action: audit.ActCodeSent, Masked: "138****8000", Window: 15, Ticket: "T-42", Outcome: "ok"},
		{Seq: 8, Time: at.Add(time.Minute), Actor: "ann", Role: "agent", Action: audit.ActCodeFailed, Masked: "138****8000", Window: 15, Ticket: "T-42", Outcome: "failed", Detail: "wrong code, 4 tries left"},
		{Seq: 9, Time: at.Add(2 * time.Minute), Actor: "system", Role: "system", Action: audit.ActPurge, Outcome: "ok", Detail: "retention=30d"},
	})
	printEntries(&b, nil)
	golden(t, "staff/entries.golden", b.String())
}

func TestDisplayWidth(t *testing.T) {
	for s, want := range map[string]int{"": 0, "Beijing": 7, "北京市": 6, "河北省石家庄市 Shijiazhuang, Hebei": 34, "（工单）": 8} {
		if got := displayWidth(s); got != want {
			t.Errorf("displayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"2026-11-26":                time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
		"2026-11-26T08:00:00+08:00": time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
		"24h":                       now.Add(-24 * time.Hour),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "2026-13-01"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) succeeded", bad)
		}
	}
}

// TestStaffUsage checks the arguments each staff command refuses before
// it does anything, and that flags may follow the arguments.
func TestStaffUsage(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lookup", "--data-dir", data, "--ticket", "T", "13800138000"}, "--operator is required"},
		{[]string{"lookup", "--data-dir", data, "--operator", "ann", "13800138000"}, "--ticket is required"},
		{[]string{"lookup", "--data-dir", data, "--operator", "ann", "--ticket", "T"}, "lookup takes one NUMBER"},
		{[]string{"lookup", "--data-dir", data, "13800138000", "--operator"}, "flag needs an argument"},
		{[]string{"lookup", "--data-dir", data, "13800138000", "--nope", "x"}, "not defined: -nope"},
		{[]string{"lookup", "--data-dir", data, "--operator", "ann", "--ticket", "T", "13800138000"}, "no SMSC is configured"},
		{[]string{"lookup", "--data-dir", data, "--operator", "ann", "--ticket", "T", "--smsc", "nohost", "13800138000"}, "--smsc: want HOST:PORT"},
		{[]string{"erase", "--data-dir", data, "--operator", "ann", "13800138000"}, "--ticket is required"},
		{[]string{"operators", "add", "--data-dir", data, "ann"}, "--role is required"},
		{[]string{"operators", "add", "--data-dir", data, "ann", "--role", "god", "--bootstrap"}, "role must be agent, auditor or admin"},
		{[]string{"operators", "remove", "--data-dir", data}, "operators remove takes one ID"},
		{[]string{"audit", "show", "--data-dir", data, "--since", "soon"}, "--since"},
		{[]string{"audit", "verify", "--data-dir", data, "--verifier-key", "nofile"}, "--verifier-key"},
	} {
		_, _, err := runCmd(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "13800138000") {
			t.Errorf("%s: the error shows the number: %v", strings.Join(tc.args, " "), err)
		}
	}
	// Flags after the argument are taken: --bootstrap and --role follow ID.
	out, _, err := runCmd(t, "", "operators", "add", "--data-dir", data, "root", "--role", "admin", "--bootstrap")
	if err != nil || !strings.Contains(out, "added root (admin)") {
		t.Fatalf("operators add ID --role admin --bootstrap: %v\n%s", err, out)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs the command in-process and returns its stdout and stderr.
func runCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"roamtrail"}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func TestGenIngestPurge(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	csv := filepath.Join(dir, "events.csv")
	if _, _, err := runCmd(t, "", "gen", "--subscribers", "200", "--days", "30", "--seed", "7", "--out", csv); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again.csv")
	if _, _, err := runCmd(t, "", "gen", "--subscribers", "200", "--days", "30", "--seed", "7", "--out", again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(csv)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) || len(a) == 0 {
		t.Fatalf("gen is not deterministic for a seed (%d vs %d bytes)", len(a), len(b))
	}

	out, _, err := runCmd(t, "", "ingest", "--data-dir", data, csv)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	written := regexp.MustCompile(`(\d+) subscriber-days written`)
	m := written.FindStringSubmatch(out)
	if m == nil || m[1] == "0" {
		t.Fatalf("first ingest wrote nothing: %s", out)
	}
	if !strings.Contains(out, " 0 rejected") {
		t.Fatalf("generated rows rejected: %s", out)
	}
	// The same file again changes nothing.
	out, _, err = runCmd(t, "", "ingest", "--data-dir", data, csv)
	if err != nil {
		t.Fatal(err)
	}
	if m := written.FindStringSubmatch(out); m == nil || m[1] != "0" {
		t.Fatalf("second ingest wrote: %s", out)
	}
	out, _, err = runCmd(t, "", "purge", "--data-dir", data)
	if err != nil || !strings.Contains(out, "purged everything before") {
		t.Fatalf("purge: %v %s", err, out)
	}
	st, err := os.Stat(filepath.Join(data, "pseudonym.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st.Mode())
	}
}

func TestIngestBadRows(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	in := "msisdn,time,region\n" +
		"+8613800138000,2099-01-01T00:00:00+08:00,130100\n" + // future
		"not-a-number,2026-11-27T08:00:00+08:00,130100\n" +
		"13800138000,yesterday,130100\n" +
		"13800138000,2026-11-27T08:00:00+08:00,999999\n" +
		"13800138000,2026-11-27T08:00:00+08:00\n"
	out, _, err := runCmd(t, in, "ingest", "--data-dir", data, "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"5 rows", "4 rejected", "1 in the future", "line 3: msisdn", "line 4: time", "line 5: region", "line 6: 2 fields"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q: %s", want, out)
		}
	}
	if strings.Contains(out, "13800138000") {
		t.Errorf("summary shows a number: %s", out)
	}
}

func TestFlagErrors(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad tz", []string{"ingest", "--data-dir", data, "--tz", "Mars/Olympus", "-"}, "--tz"},
		{"negative dwell", []string{"ingest", "--data-dir", data, "--min-dwell", "-1h", "-"}, "--min-dwell"},
		{"zero retention", []string{"purge", "--data-dir", data, "--retention", "0"}, "--retention"},
		{"no file", []string{"ingest", "--data-dir", data}, "one FILE"},
		{"gen zero", []string{"gen", "--subscribers", "0"}, "Subscribers"},
		{"gen format", []string{"gen", "--subscribers", "1", "--format", "xml"}, "--format"},
		{"bench lookups", []string{"bench", "--lookups", "1"}, "--lookups"},
		{"log level", []string{"--log-level", "loud", "purge", "--data-dir", data}, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, "", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestDataDirInUse(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	// Hold the data dir open through the same wiring the commands use.
	ctx := context.Background()
	first := make(chan error, 1)
	release := make(chan struct{})
	go func() {
		first <- run(ctx, []string{"roamtrail", "ingest", "--data-dir", data, "-"}, blockingReader{release}, &out, &errb)
	}()
	// Wait until the first ingest holds the lock.
	for i := 0; ; i++ {
		b, _ := os.ReadFile(filepath.Join(data, "LOCK"))
		if len(b) > 0 {
			break
		}
		if i > 2000 {
			t.Fatal("first ingest never locked the data dir")
		}
		sleep()
	}
	_, _, err := runCmd(t, "", "purge", "--data-dir", data)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second opener: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

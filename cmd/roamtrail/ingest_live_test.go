package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/store"
)

// liveRows are events of a subscriber with no history until then.
func liveRows(now time.Time, number string) string {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	d := now.In(loc)
	at := func(hh int) string {
		return time.Date(d.Year(), d.Month(), d.Day(), hh, 0, 0, 0, loc).Add(-24 * time.Hour).Format(time.RFC3339)
	}
	return "msisdn,time,region\n" +
		number + "," + at(8) + ",130100\n" +
		"not-a-number," + at(9) + ",130100\n" +
		number + "," + at(14) + ",130100\n"
}

func TestLiveIngestAndPurge(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)
	bob := phone{t, sim, "8613800138077"}
	bob.say("CXMYD")
	if got := bob.say("Y"); strings.Contains(got, "石家庄") {
		t.Fatalf("before the ingest: %q", got)
	}

	out, stderr, err := runCmd(t, liveRows(time.Now(), "13800138077"), "ingest", "--data-dir", srv.dataDir, "-")
	if err != nil {
		t.Fatalf("live ingest: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("by the running service (pid %d)\n", os.Getpid()),
		"3 rows", "2 accepted, 1 rejected", "line 3: msisdn",
		"acknowledged: every line through 4 (byte ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The service answers from what it was just fed.
	bob.say("CXMYD")
	if got := bob.say("Y"); !strings.Contains(got, "石家庄") {
		t.Errorf("after the live ingest: %q", got)
	}

	out, stderr, err = runCmd(t, "", "purge", "--data-dir", srv.dataDir)
	if err != nil {
		t.Fatalf("live purge: %v\n%s", err, stderr)
	}
	if !strings.HasPrefix(out, fmt.Sprintf("by the running service (pid %d)\npurged everything before ", os.Getpid())) {
		t.Errorf("purge output %q", out)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	es := accessLogEntries(t, srv.dataDir)
	ingests := withAction(es, audit.ActIngest)
	if len(ingests) != 2 || ingests[1].Outcome != "ok" || !strings.Contains(ingests[1].Detail, "rows=3 accepted=2 rejected=1") {
		t.Errorf("ingest entries %+v", ingests)
	}
	if got := withAction(es, audit.ActPurge); len(got) != 2 { // serve's at start, and the live one
		t.Errorf("%d purge entries, want 2: %+v", len(got), got)
	}
	// With serve stopped, the same commands say they ran on the data dir.
	out, _, err = runCmd(t, "", "purge", "--data-dir", srv.dataDir)
	if err != nil || !strings.HasPrefix(out, "on the data dir\n") {
		t.Errorf("offline purge: %v %q", err, out)
	}
	auditVerify(t, srv.dataDir)
}

// genFile writes a generated population's events and returns its path and
// numbers.
func genFile(t *testing.T, subscribers int, seed int64) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.csv")
	if _, stderr, err := runCmd(t, "", "gen", "--subscribers", fmt.Sprint(subscribers), "--days", "30", "--seed", fmt.Sprint(seed), "--out", path); err != nil {
		t.Fatalf("gen: %v\n%s", err, stderr)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	var numbers []string
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		n, _, _ := strings.Cut(sc.Text(), ",")
		if !seen[n] {
			seen[n] = true
			numbers = append(numbers, n)
		}
	}
	return path, numbers
}

// storeDump opens a stopped data dir's store and lists the visits of each
// number over the last 30 days: two stores fed the same events, in any
// way, dump the same.
func storeDump(t *testing.T, dataDir string, numbers []string) string {
	t.Helper()
	key, err := privacy.LoadOrCreateKey(filepath.Join(dataDir, "pseudonym.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := privacy.NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	ctx := context.Background()
	db, err := store.Open(ctx, dataDir, store.Options{Location: loc, Retention: 30, KeyFingerprint: ps.Fingerprint()})
	if err != nil {
		t.Fatalf("the store does not open: %v", err)
	}
	defer db.Close()
	w := itinerary.LastDays(time.Now(), loc, 30)
	var b strings.Builder
	for _, raw := range numbers {
		n, err := msisdn.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := db.Visits(ctx, ps.Pseudonym(n), w, nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %v\n", raw, vs)
	}
	return b.String()
}

// A feeder killed mid-stream leaves what was acknowledged stored, and
// nothing of what was not; sending the whole input again converges to
// the store an offline ingest of it makes.
func TestLiveIngestClientKilled(t *testing.T) {
	file, numbers := genFile(t, 300, 11)
	input, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	numbers = append(numbers, "13800138000") // historyCSV's
	history := historyCSV(time.Now())

	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr(), history: history})
	waitBound(t, sim, 1)

	feeder := exec.Command(buildRoamtrail(t), "--log-level", "debug", "ingest", "--data-dir", srv.dataDir, "--batch", "500", "-")
	stdin, err := feeder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var feederOut syncBuffer
	feeder.Stdout, feeder.Stderr = &feederOut, &feederOut
	if err := feeder.Start(); err != nil {
		t.Fatal(err)
	}
	// Cut mid-line, past many batches: the write returns once the feeder
	// has read all but a pipe's buffer of it, so it is mid-stream.
	cut := len(input) * 3 / 5
	for input[cut] == '\n' {
		cut++
	}
	if _, err := stdin.Write(input[:cut]); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, &feederOut, `"message":"acknowledged"`)
	if err := feeder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	feeder.Wait()
	stdin.Close()

	// The whole file again (the service takes one ingest at a time: this
	// one starts after the cut one is wound up).
	out, stderr, err := runCmd(t, "", "ingest", "--data-dir", srv.dataDir, file)
	if err != nil {
		t.Fatalf("again: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "by the running service") || !strings.Contains(out, fmt.Sprintf("(byte %d)", len(input))) {
		t.Errorf("again: %s", out)
	}
	out, _, err = runCmd(t, "", "ingest", "--data-dir", srv.dataDir, file)
	if err != nil || !strings.Contains(out, " 0 subscriber-days written") {
		t.Errorf("a third time wrote something: %v %s", err, out)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	ingests := withAction(accessLogEntries(t, srv.dataDir), audit.ActIngest)
	outcomes := make([]string, len(ingests))
	for i, e := range ingests {
		outcomes[i] = e.Outcome
	}
	if want := []string{"ok", "failed", "ok", "ok"}; !slices.Equal(outcomes, want) {
		t.Errorf("ingest entries %v, want %v: %+v", outcomes, want, ingests)
	}

	ref := filepath.Join(t.TempDir(), "ref")
	for _, in := range []struct{ stdin, file string }{{history, "-"}, {"", file}} {
		if _, stderr, err := runCmd(t, in.stdin, "ingest", "--data-dir", ref, in.file); err != nil {
			t.Fatalf("reference ingest: %v\n%s", err, stderr)
		}
	}
	if got, want := storeDump(t, srv.dataDir, numbers), storeDump(t, ref, numbers); got != want {
		t.Errorf("the live store differs from an offline ingest of the same input")
	}
}

// When the service goes away mid-stream the feeder exits non-zero and
// names the last line acknowledged.
func TestLiveIngestServiceStops(t *testing.T) {
	file, _ := genFile(t, 100, 5)
	input, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)

	feeder := exec.Command(buildRoamtrail(t), "--log-level", "debug", "ingest", "--data-dir", srv.dataDir, "--batch", "100", "-")
	stdin, err := feeder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var feederOut syncBuffer
	feeder.Stdout, feeder.Stderr = &feederOut, &feederOut
	if err := feeder.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write(input[:len(input)/2]); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, &feederOut, `"message":"acknowledged"`)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	err = feeder.Wait()
	m := regexp.MustCompile(`every line through (\d+) \(byte (\d+)\) is stored; resume from line (\d+)`).FindStringSubmatch(feederOut.String())
	if err == nil || m == nil {
		t.Fatalf("feeder: %v\n%s", err, feederOut.String())
	}
	if !strings.Contains(feederOut.String(), "shutting down") {
		t.Errorf("feeder does not say why: %s", feederOut.String())
	}
}

// waitOutput waits until a process's output holds s.
func waitOutput(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %q in:\n%s", s, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package main

import (
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bench soak and bench overload run serve, ingest, purge and the staff
// commands as processes of this binary (os.Executable). Under `go test`
// that is the test binary: with testMainEnv set it is roamtrail itself.
const testMainEnv = "ROAMTRAIL_TEST_MAIN"

func init() {
	if os.Getenv(testMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// TestBenchSoakShort is `make soak` in 20 seconds at a low rate: every
// side operation runs against serve while it answers, serve survives and
// exits 0 on SIGTERM, every MO gets exactly one reply, and serve's
// goroutines and open files do not grow once warmed up. Nothing here
// measures speed.
func TestBenchSoakShort(t *testing.T) {
	t.Setenv(testMainEnv, "1")
	out := t.TempDir()
	stdout, stderr, err := runCmd(t, "", "bench", "soak", "--duration", "20s", "--sample", "1s", "--rate", "10",
		"--subscribers", "600", "--concurrency", "20", "--staff-every", "4s", "--ingest-every", "5s", "--purge-every", "7s",
		"--out", out, "--json")
	if err != nil {
		t.Fatalf("bench soak: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var res soakResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("bench soak --json: %v\n%s", err, stdout)
	}
	if res.Queries == 0 || res.Errors != 0 || res.Lost != 0 || res.Duplicates != 0 || res.Stray != 0 {
		t.Errorf("queries %d, errors %d (%s), lost %d, duplicated %d, stray %d", res.Queries, res.Errors, res.ErrorKinds, res.Lost, res.Duplicates, res.Stray)
	}
	if res.StaffOK == 0 || res.StaffErrors != 0 || res.Ingests == 0 || res.IngestErrors != 0 || res.Purges == 0 || res.PurgeErrors != 0 {
		t.Errorf("staff %d/%d errors, ingests %d/%d errors, purges %d/%d errors: %v",
			res.StaffOK, res.StaffErrors, res.Ingests, res.IngestErrors, res.Purges, res.PurgeErrors, res.OpErrors)
	}
	if len(res.Samples) < 8 {
		t.Fatalf("%d samples in 20s at one a second", len(res.Samples))
	}
	// The first quarter is the warm-up. Goroutines and files come and go
	// with requests in hand (a staff command, an ingest, a scrape), so the
	// bound is on the averages of the second and last quarters.
	n := len(res.Samples) / 4
	avg := func(ss []soakSample, f func(soakSample) float64) float64 {
		t := 0.0
		for _, s := range ss {
			t += f(s)
		}
		return t / float64(len(ss))
	}
	warm, end := res.Samples[n:2*n], res.Samples[len(res.Samples)-n:]
	for _, c := range []struct {
		name  string
		bound float64
		f     func(soakSample) float64
	}{
		{"goroutines", 20, func(s soakSample) float64 { return s.Goroutines }},
		{"open files", 10, func(s soakSample) float64 { return float64(s.FDs) }},
	} {
		if w, e := avg(warm, c.f), avg(end, c.f); e > w+c.bound {
			t.Errorf("%s grew from %.1f after the warm-up to %.1f at the end", c.name, w, e)
		}
	}
	for _, s := range res.Samples {
		if s.Goroutines == 0 || s.FDs == 0 || s.RSSMB == 0 {
			t.Fatalf("a sample measured nothing: %+v", s)
		}
	}

	f, err := os.Open(filepath.Join(out, "soak.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(res.Samples)+1 || strings.Join(rows[0], ",") != "t_s,rss_mb,go_heap_mb,goroutines,open_fds,p50_ms,p99_ms,queries,errors,backlog" {
		t.Errorf("soak.csv: %d rows for %d samples, header %v", len(rows), len(res.Samples), rows[0])
	}
	pf, err := os.Open(filepath.Join(out, "soak.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if _, err := png.Decode(pf); err != nil {
		t.Errorf("soak.png: %v", err)
	}
}

// TestBenchOverloadShort offers serve three times what it sustains, with
// one MO taken at a time and a handler queue of four, so that the SMSC's
// deliveries are refused with ESME_RX_T_APPN and redelivered; then the
// load drops back. serve must survive, drain its queue, and answer every
// MO it took exactly once. Latency is reported, never asserted.
func TestBenchOverloadShort(t *testing.T) {
	t.Setenv(testMainEnv, "1")
	stdout, stderr, err := runCmd(t, "", "bench", "overload", "--subscribers", "3000",
		"--measure-for", "3s", "--measure-concurrency", "20", "--baseline-for", "2s", "--overload-for", "3s", "--recover-for", "3m", "--after-for", "2s",
		"--redelivery", "200ms", "--smsc-window", "50",
		"--serve-arg=--mo-concurrency=1", "--serve-arg=--workers=2", "--json")
	if err != nil {
		t.Fatalf("bench overload: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var res overloadResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("bench overload --json: %v\n%s", err, stdout)
	}
	if len(res.Phases) != phases {
		t.Fatalf("%d phases: %+v", len(res.Phases), res.Phases)
	}
	if res.Refused == 0 || res.Redelivered == 0 {
		t.Errorf("the overload refused nothing: refused %.0f, redelivered %d", res.Refused, res.Redelivered)
	}
	if res.Accepted == 0 || res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("MOs accepted %d: %d replies lost, %d duplicated", res.Accepted, res.Lost, res.Duplicates)
	}
	if res.Errors != 0 || res.GivenUp != 0 {
		t.Errorf("errors %d (%s), MOs given up %d", res.Errors, res.ErrorKinds, res.GivenUp)
	}
	if res.DrainSeconds <= 0 {
		t.Errorf("the backlog was never seen back to normal after the overload: %v", res.RecoveryNotes)
	}
}

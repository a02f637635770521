package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/journal"
)

// buildRoamtrail builds the binary into a temp dir: the tests that kill a
// process with SIGKILL need it to be a process of its own.
func buildRoamtrail(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roamtrail")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// auditVerify runs `roamtrail audit verify` on a data dir no service
// holds, as an auditor it adds (and the first admin, if there is none).
func auditVerify(t *testing.T, dataDir string) {
	t.Helper()
	if _, _, err := runCmd(t, "", "operators", "add", "--data-dir", dataDir, "--role", "admin", "--bootstrap", "root"); err != nil && !strings.Contains(err.Error(), "admin") {
		t.Fatalf("operators add root: %v", err)
	}
	if _, _, err := runCmd(t, "", "operators", "add", "--data-dir", dataDir, "--operator", "root", "--role", "auditor", "aud"); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatalf("operators add aud: %v", err)
	}
	out, stderr, err := runCmd(t, "", "audit", "verify", "--data-dir", dataDir, "--operator", "aud")
	if err != nil || !strings.Contains(out, "access log verified") {
		t.Fatalf("audit verify: %v\n%s%s", err, out, stderr)
	}
}

// openStopped opens the store of a data dir no process holds, as serve
// opens it, with the pseudonymizer of its key.
func openStopped(t *testing.T, dataDir string) (*store.DB, *privacy.Pseudonymizer) {
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
	db, err := store.Open(context.Background(), dataDir, store.Options{Location: loc, Retention: 30, KeyFingerprint: ps.Fingerprint()})
	if err != nil {
		t.Fatalf("the store does not open: %v", err)
	}
	return db, ps
}

// hasVisits says whether number has any visit in the last 30 days.
func hasVisits(t *testing.T, db *store.DB, ps *privacy.Pseudonymizer, number string) bool {
	t.Helper()
	n, err := msisdn.Parse(number)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := db.Visits(context.Background(), ps.Pseudonym(n), itinerary.LastDays(time.Now(), db.Location(), 30), nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(vs) > 0
}

// serveChild is `roamtrail serve` as a process of its own.
type serveChild struct {
	bin, dataDir, httpAddr string
	args                   []string
	cmd                    *exec.Cmd
	stderr                 *syncBuffer
	exited                 chan error
}

func (s *serveChild) start(t *testing.T) {
	t.Helper()
	s.stderr = &syncBuffer{}
	s.cmd = exec.Command(s.bin, append([]string{"--log-level", "warn", "serve", "--data-dir", s.dataDir, "--http", s.httpAddr}, s.args...)...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(2 * bound)
	for {
		// /healthz says bound; the ingest socket listens before HTTP does.
		resp, err := http.Get("http://" + s.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-s.exited:
			t.Fatalf("serve exited at start: %v\n%s", err, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never bound\n%s", s.stderr.String())
		}
	}
}

func (s *serveChild) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
}

func (s *serveChild) term(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(40*time.Second + bound):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

// chaosSub is a subscriber asking for itineraries in a loop, alternately
// in Chinese and English, so that a reply to one query is never taken for
// the next one's.
type chaosSub struct {
	number string
	// Counts by language (0 zh, 1 en): MOs the SMSC had answered with
	// status 0, and how many of them.
	requests, confirms [2]int
	problems           []string
}

var chaosKeywords = [2]string{"CXMYD", "TRIP"}

// chaosKind tells a reply: "prompt", "itinerary" or what else, and its
// language.
func chaosKind(text string) (string, int) {
	switch text {
	case promptZH15:
		return "prompt", 0
	case promptEN15:
		return "prompt", 1
	}
	if strings.HasPrefix(text, "根据您的授权查询") {
		return "itinerary", 0
	}
	if strings.HasPrefix(text, "In the last 15 days") || strings.HasPrefix(text, "We have no record of where your phone was in the last 15 days") {
		return "itinerary", 1
	}
	return "other", 0
}

// count is how many replies of kind in lang number has had.
func chaosCount(sim *simHarness, number, kind string, lang int) int {
	n := 0
	for _, mt := range sim.to(number) {
		if k, l := chaosKind(mt.Text); k == kind && l == lang {
			n++
		}
	}
	return n
}

func (s *chaosSub) run(ctx context.Context, sim *simHarness) {
	for q := 0; ctx.Err() == nil; q++ {
		lang := q % 2
		if !s.say(sim, chaosKeywords[lang], "prompt", lang, &s.requests[lang]) {
			return
		}
		if !s.say(sim, "Y", "itinerary", lang, &s.confirms[lang]) {
			return
		}
	}
}

// say sends text and waits for its reply; false on a problem. The reply
// awaited is one more than were there before it was sent: a duplicate
// from a job resumed after a kill must not be taken for it, or the next
// MO would go before this one is answered (a Y overtaking its request is
// taken for a redelivery of the last Y, rightly).
func (s *chaosSub) say(sim *simHarness, text, kind string, lang int, sent *int) bool {
	before := chaosCount(sim, s.number, kind, lang)
	ictx, cancel := context.WithTimeout(context.Background(), 3*bound)
	err := sim.InjectMO(ictx, s.number, "10086", text)
	cancel()
	if err != nil {
		s.problems = append(s.problems, fmt.Sprintf("%q not delivered: %v", text, err))
		return false
	}
	*sent++
	deadline := time.Now().Add(3 * bound)
	for n := chaosCount(sim, s.number, kind, lang); n <= before || n < *sent; n = chaosCount(sim, s.number, kind, lang) {
		if time.Now().After(deadline) {
			s.problems = append(s.problems, fmt.Sprintf("%q (number %d of its kind) never answered", text, *sent))
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// chaosFeeder streams files of new subscribers' events to serve with
// `roamtrail ingest --live`, each again until it went through whole,
// logging the acks it got.
type chaosFeeder struct {
	bin, dataDir, dir string
	rows              int

	attempt sync.Mutex // held while an ingest process runs
	mu      sync.Mutex
	files   int           // files started
	acked   map[int]int64 // file: the last line acknowledged
	runs    int
	cut     int // attempts that ended without the service's answer
	err     error
}

var ackLine = regexp.MustCompile(`"line":(\d+)[^\n]*"message":"acknowledged"`)

func chaosNumber(file, row int) string { return fmt.Sprintf("86139%08d", file*100_000+row) }

func (f *chaosFeeder) write(file int) (string, error) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	at := time.Now().In(loc).AddDate(0, 0, -1)
	ts := time.Date(at.Year(), at.Month(), at.Day(), 10, 0, 0, 0, loc).Format(time.RFC3339)
	var b strings.Builder
	b.WriteString("msisdn,time,region\n")
	for r := range f.rows {
		fmt.Fprintf(&b, "%s,%s,110100\n", chaosNumber(file, r), ts)
	}
	path := filepath.Join(f.dir, fmt.Sprintf("feed-%d.csv", file))
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func (f *chaosFeeder) run(ctx context.Context) {
	for file := 0; ctx.Err() == nil; file++ {
		path, err := f.write(file)
		if err != nil {
			f.fail(err)
			return
		}
		f.mu.Lock()
		f.files = file + 1
		f.mu.Unlock()
		for !f.once(file, path) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// once runs one ingest of file; true when the service took all of it.
func (f *chaosFeeder) once(file int, path string) bool {
	f.attempt.Lock()
	defer f.attempt.Unlock()
	cmd := exec.Command(f.bin, "--log-level", "debug", "ingest", "--live", "--batch", "200", "--data-dir", f.dataDir, path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.fail(err)
		return true
	}
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		f.fail(err)
		return true
	}
	var errText strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := ackLine.FindStringSubmatch(sc.Text()); m != nil {
			line, _ := strconv.ParseInt(m[1], 10, 64)
			f.mu.Lock()
			f.acked[file] = max(f.acked[file], line)
			f.mu.Unlock()
			continue
		}
		errText.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs++
	if err == nil {
		if !strings.Contains(out.String(), fmt.Sprintf("every line through %d ", f.rows+1)) {
			f.err = fmt.Errorf("ingest of file %d: %s", file, out.String())
		}
		f.acked[file] = int64(f.rows + 1)
		return true
	}
	switch e := errText.String(); {
	case strings.Contains(e, "no service on the ingest socket"):
	case strings.Contains(e, "stopped"):
		f.cut++
		// The line it names is the last ack it logged.
		if m := regexp.MustCompile(`every line through (\d+) `).FindStringSubmatch(e); m != nil {
			if n, _ := strconv.ParseInt(m[1], 10, 64); n != f.acked[file] {
				f.err = fmt.Errorf("file %d: the error names line %d, the last ack was %d", file, n, f.acked[file])
			}
		}
	default:
		f.err = fmt.Errorf("ingest of file %d: %v\n%s", file, err, e)
		return true
	}
	return false
}

func (f *chaosFeeder) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// checkAcked fails unless every row acknowledged so far is in the store.
func (f *chaosFeeder) checkAcked(t *testing.T, db *store.DB, ps *privacy.Pseudonymizer, when string) int {
	t.Helper()
	f.mu.Lock()
	acked := make(map[int]int64, len(f.acked))
	for k, v := range f.acked {
		acked[k] = v
	}
	f.mu.Unlock()
	rows := 0
	for file, line := range acked {
		for r := 0; int64(r+2) <= line; r++ { // line 1 is the header
			rows++
			if !hasVisits(t, db, ps, chaosNumber(file, r)) {
				t.Errorf("%s: row %d of file %d (line %d) was acknowledged (through line %d) and is not in the store", when, r, file, r+2, line)
				return rows
			}
		}
	}
	return rows
}

// jobsBySub reads the durable job queues of a stopped data dir (the job
// journal, and the visit store's, which serve empties into it at start):
// how many jobs each of numbers has queued, which serve resumes at start.
func jobsBySub(t *testing.T, dataDir string, db *store.DB, ps *privacy.Pseudonymizer, numbers []string) (map[string]int, int) {
	t.Helper()
	byPseud := map[itinerary.Pseudonym]string{}
	for _, n := range numbers {
		p, err := msisdn.Parse(n)
		if err != nil {
			t.Fatal(err)
		}
		byPseud[ps.Pseudonym(p)] = n
	}
	out := map[string]int{}
	total := 0
	count := func(_, value []byte) error {
		// smsgw's forms: a version byte (1) then the pseudonym, or the
		// JSON earlier versions wrote.
		var j struct {
			S itinerary.Pseudonym `json:"s"`
		}
		switch {
		case len(value) > len(j.S) && value[0] == 1:
			copy(j.S[:], value[1:])
		default:
			if err := json.Unmarshal(value, &j); err != nil {
				return fmt.Errorf("a job of unknown form: %w", err)
			}
		}
		total++
		out[byPseud[j.S]]++
		return nil
	}
	if err := db.Jobs(context.Background(), count); err != nil {
		t.Fatalf("reading the visit store's job queue: %v", err)
	}
	jobs, err := journal.Open(filepath.Join(dataDir, "jobs"), journal.Options{})
	if err != nil {
		t.Fatalf("opening the job journal: %v", err)
	}
	defer jobs.Close()
	if err := jobs.Jobs(context.Background(), count); err != nil {
		t.Fatalf("reading the job journal: %v", err)
	}
	return out, total
}

// TestChaosKill9 is the kill -9 loop (issue 5): serve, a process of its
// own with its dialogue state in Redis, answers subscribers (request, then
// Y, continuously) and takes a live ingest while it is SIGKILLed at random
// moments and started again on the same data dir. What the code
// guarantees (smsgw's job lifecycle, --resend-lost off), and what this
// checks, precisely:
//   - never lost: an MO the SMSC had a status-0 deliver_sm_resp for is
//     answered, after the restart at the latest. Its job was in the synced
//     queue before the resp, and leaves it only after its reply went.
//   - answered twice only in one window: a job whose reply went but whose
//     delete was not yet durable at the kill (DeleteJob is not synced on
//     its own; the next synced write or the 100 ms sync loop covers it) is
//     resumed and sends its reply again. So each subscriber's replies beyond
//     one per query are at most their jobs the queue held at the kills,
//     which the test reads from the store between kill and restart. An MO
//     whose submit_sm was on the wire at the kill is one of these: it is
//     sent again, never lost. The SMSC's own redelivery of an MO whose
//     resp the kill ate is never answered twice: the claims in Redis
//     outlive the process.
//   - every ingest batch acknowledged before a kill is in the store, read
//     between kill and restart; the store opens; the access log verifies;
//     SIGTERM at the end leaves no job queued.
func TestChaosKill9(t *testing.T) {
	rounds := 3
	if os.Getenv("ROAMTRAIL_CHAOS") == "full" {
		rounds = 20
	}
	url := redisURL(t)
	bin := buildRoamtrail(t)
	sim := startSim(t, smsc.Options{MaxDeliveryAttempts: 10_000, RedeliveryDelay: 100 * time.Millisecond})
	dataDir := filepath.Join(t.TempDir(), "data")
	if _, stderr, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", dataDir, "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	srv := &serveChild{bin: bin, dataDir: dataDir, httpAddr: freeAddr(t), args: []string{
		"--smsc", sim.Addr(), "--redis-url", url, "--redis-prefix", redisPrefix(t, url),
		// A resumed request counts again against the day's limit.
		"--daily-limit", "1000000",
	}}
	srv.start(t)

	subs := make([]*chaosSub, 12)
	numbers := []string{}
	for i := range subs {
		subs[i] = &chaosSub{number: fmt.Sprintf("86137%08d", i*1111)}
		numbers = append(numbers, subs[i].number)
	}
	feeder := &chaosFeeder{bin: bin, dataDir: dataDir, dir: t.TempDir(), rows: 3000, acked: map[int]int64{}}

	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for _, s := range subs {
		load.Go(func() { s.run(ctx, sim) })
	}
	load.Go(func() { feeder.run(ctx) })

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	resumed := map[string]int{} // by subscriber, over every kill
	var report []string
	for round := 1; round <= rounds; round++ {
		time.Sleep(time.Duration(500+rng.IntN(3500)) * time.Millisecond) // the random moment
		srv.kill(t)
		report = append(report, fmt.Sprintf("kill %d at %s", round, time.Now().Format("15:04:05.000")))
		// The feeder's ingest in hand ends (its connection died); it
		// starts no other until serve is back.
		feeder.attempt.Lock()
		db, ps := openStopped(t, dataDir)
		rows := feeder.checkAcked(t, db, ps, fmt.Sprintf("kill %d", round))
		bySub, total := jobsBySub(t, dataDir, db, ps, numbers)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		for n, c := range bySub {
			resumed[n] += c
		}
		report = append(report, fmt.Sprintf("kill %d: %d jobs queued (to resume), %d acknowledged feed rows checked", round, total, rows))
		srv.start(t)
		feeder.attempt.Unlock()
	}
	stopLoad()
	load.Wait()
	srv.term(t)

	db, ps := openStopped(t, dataDir)
	rows := feeder.checkAcked(t, db, ps, "the end")
	if left, total := jobsBySub(t, dataDir, db, ps, numbers); total != 0 {
		t.Errorf("jobs left after SIGTERM: %v", left)
	}
	db.Close()
	if feeder.err != nil {
		t.Error(feeder.err)
	}

	queries, dups := 0, 0
	for _, s := range subs {
		for _, p := range s.problems {
			t.Errorf("%s: %s", s.number, p)
		}
		if len(s.problems) > 0 {
			for _, mt := range sim.to(s.number) {
				t.Logf("  %s %s %q", mt.Time.Format("15:04:05.000"), mt.To, mt.Text)
			}
		}
		extra := 0
		for lang := range 2 {
			queries += s.confirms[lang]
			for _, k := range []struct {
				kind string
				sent int
			}{{"prompt", s.requests[lang]}, {"itinerary", s.confirms[lang]}} {
				got := chaosCount(sim, s.number, k.kind, lang)
				if got < k.sent {
					t.Errorf("%s: %d %s MOs answered OK, %d %s replies: lost", s.number, k.sent, chaosKeywords[lang], got, k.kind)
				}
				extra += max(got-k.sent, 0)
			}
		}
		for _, mt := range sim.to(s.number) {
			if k, _ := chaosKind(mt.Text); k == "other" {
				t.Errorf("%s: unexpected reply %q", s.number, mt.Text)
			}
		}
		if extra > resumed[s.number] {
			t.Errorf("%s: %d replies more than queries, but only %d of its jobs were queued at the kills", s.number, extra, resumed[s.number])
		}
		dups += extra
	}
	// Every itinerary that went is in the access log: a kill may leave an
	// entry twice (a resumed Y writes its entry again), never none.
	rewritten := 0
	for _, s := range subs {
		n, err := msisdn.Parse(s.number)
		if err != nil {
			t.Fatal(err)
		}
		entries := 0
		err = audit.Scan(context.Background(), auditDir(dataDir), audit.Filter{Subject: audit.SubjectOf(ps.Pseudonym(n)), Action: audit.ActSelfQuery},
			func(e audit.Entry) error {
				entries++
				if e.Detail != "" {
					rewritten++
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if sent := chaosCount(sim, s.number, "itinerary", 0) + chaosCount(sim, s.number, "itinerary", 1); entries < sent {
			t.Errorf("%s: %d itineraries sent, %d self-query entries in the access log", s.number, sent, entries)
		}
	}
	report = append(report, fmt.Sprintf("%d self-query entries written again by resumed jobs", rewritten))
	auditVerify(t, dataDir)
	t.Logf("%d rounds of kill -9; %d queries answered; %d duplicate replies (all from jobs resumed after a kill); feed: %d files, %d ingest runs, %d cut by a kill, %d acknowledged rows checked",
		rounds, queries, dups, feeder.files, feeder.runs, feeder.cut, rows)
	for _, r := range report {
		t.Log(r)
	}
	if queries == 0 || feeder.files < 2 {
		t.Errorf("too little load to say anything: %d queries, %d feed files", queries, feeder.files)
	}
}

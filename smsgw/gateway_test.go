package smsgw

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// The gateway's dialogue with fakes for the SMSC, the store and the queue,
// and a real access log: what a subscriber texts, what the gateway sends
// back, what it logs.

var (
	_ State     = (*state.Memory)(nil)
	_ State     = (*state.Redis)(nil)
	_ AccessLog = logDir{}
)

// logDir is the access log as cmd wires it: a *audit.Log, and audit.Last
// on its dir.
type logDir struct {
	*audit.Log
	dir string
}

func (l logDir) Last(ctx context.Context, subject string, n int) ([]audit.Entry, error) {
	return audit.Last(ctx, l.dir, subject, n)
}

// flakyLog fails every Append and Write while fail is set, and every
// Synced while failSync is; while hold is set, Synced waits for it to be
// closed.
type flakyLog struct {
	AccessLog
	fail, failSync atomic.Bool
	hold           atomic.Pointer[chan struct{}]
}

func (f *flakyLog) Synced(ctx context.Context, seq uint64) error {
	if h := f.hold.Load(); h != nil {
		<-*h
	}
	if f.failSync.Load() {
		return errors.New("fsync failed")
	}
	return f.AccessLog.Synced(ctx, seq)
}

func (f *flakyLog) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if f.fail.Load() {
		return audit.Entry{}, errors.New("disk full")
	}
	return f.AccessLog.Append(ctx, e)
}

func (f *flakyLog) Write(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if f.fail.Load() {
		return audit.Entry{}, errors.New("disk full")
	}
	return f.AccessLog.Write(ctx, e)
}

// fakeConsent is the store's consent, in memory, with the same transitions.
type fakeConsent struct {
	mu     sync.Mutex
	m      map[itinerary.Pseudonym]itinerary.Consent
	erased map[itinerary.Pseudonym]int
}

func (f *fakeConsent) OptOut(_ context.Context, sub itinerary.Pseudonym, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[sub] = f.m[sub].WithOptOut(at)
	f.erased[sub]++
	return nil
}

func (f *fakeConsent) OptIn(_ context.Context, sub itinerary.Pseudonym, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[sub] = f.m[sub].WithOptIn(at)
	return nil
}

func (f *fakeConsent) Consent(_ context.Context, sub itinerary.Pseudonym) (itinerary.Consent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[sub], nil
}

// fakeItineraries has been to Beijing, always.
type fakeItineraries struct{ lookups atomic.Int32 }

func (f *fakeItineraries) Lookup(_ context.Context, _ itinerary.Pseudonym, days int) (itinerary.Itinerary, error) {
	f.lookups.Add(1)
	return itinerary.Itinerary{Window: itinerary.Window{First: 1, Last: itinerary.Day(days)}, Places: []itinerary.Place{{Region: 110100, FirstDay: 1, LastDay: 1}}}, nil
}

func (f *fakeItineraries) LookupSplit(ctx context.Context, sub itinerary.Pseudonym, days, recent int) (itinerary.Itinerary, itinerary.Itinerary, error) {
	a, _ := f.Lookup(ctx, sub, recent)
	b, _ := f.Lookup(ctx, sub, days-recent)
	return a, b, nil
}

// memJobs is the durable queue in memory.
type memJobs struct {
	mu    sync.Mutex
	m     map[string][]byte
	first map[string][]byte // each job as first put: what a crash right after its resp would leave
}

func (q *memJobs) PutJob(_ context.Context, id, v []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.m[string(id)] = slices.Clone(v)
	if q.first == nil {
		q.first = map[string][]byte{}
	}
	if _, ok := q.first[string(id)]; !ok {
		q.first[string(id)] = slices.Clone(v)
	}
	return nil
}

func (q *memJobs) UpdateJob(ctx context.Context, id, v []byte) error { return q.PutJob(ctx, id, v) }

func (q *memJobs) DeleteJob(_ context.Context, id []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.m, string(id))
	return nil
}

func (q *memJobs) Jobs(_ context.Context, fn func(id, v []byte) error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, v := range q.m {
		if err := fn([]byte(id), v); err != nil {
			return err
		}
	}
	return nil
}

func (q *memJobs) SyncJobs(context.Context) error { return nil }

// len is how many jobs are queued.
func (q *memJobs) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.m)
}

// sink is the SMSC: it keeps every message submitted.
type sink struct {
	mu   sync.Mutex
	msgs []*smpp.Message
	more chan struct{}
	lose int // replies to lose with an unknown outcome
}

// sent is a copy of the messages submitted so far.
func (s *sink) sent() []*smpp.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *sink) SubmitParts(_ context.Context, m *smpp.Message) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose > 0 {
		// The link died under the submit: written, never answered, lost.
		s.lose--
		return nil, fmt.Errorf("%w: test", smpp.ErrUnknownOutcome)
	}
	s.msgs = append(s.msgs, m)
	close(s.more)
	s.more = make(chan struct{})
	return []string{"1"}, nil
}

type hashPseudonyms struct{}

func (hashPseudonyms) Pseudonym(n msisdn.Number) itinerary.Pseudonym {
	sum := sha256.Sum256([]byte(n))
	return itinerary.Pseudonym(sum[:16])
}

type testGateway struct {
	t       *testing.T
	g       *Gateway
	opts    Options
	deps    Deps
	jobs    *memJobs
	sink    *sink
	consent *fakeConsent
	itins   *fakeItineraries
	log     *flakyLog
	logDir  string
}

func newTestGateway(t *testing.T, opts Options) *testGateway {
	t.Helper()
	cat, err := itinerary.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := privacy.NewSealer(make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := state.NewMemory(state.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "audit")
	signer, _, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "audit.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(dir, audit.Options{Signer: signer, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	tg := &testGateway{
		t:       t,
		sink:    &sink{more: make(chan struct{})},
		consent: &fakeConsent{m: map[itinerary.Pseudonym]itinerary.Consent{}, erased: map[itinerary.Pseudonym]int{}},
		itins:   &fakeItineraries{},
		log:     &flakyLog{AccessLog: logDir{al, dir}},
		logDir:  dir,
	}
	opts.Wording = itinerary.Wording{Catalog: cat}
	if opts.Backoff == nil {
		opts.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	}
	tg.jobs = &memJobs{m: map[string][]byte{}}
	tg.opts = opts
	tg.deps = Deps{
		Itineraries: tg.itins, Jobs: tg.jobs, State: mem, Sender: tg.sink,
		Pseudonyms: hashPseudonyms{}, Sealer: sealer, Consent: tg.consent, AccessLog: tg.log,
	}
	tg.start()
	return tg
}

// start runs a gateway on tg's queue, state and log: at first, and again
// after a restart.
func (tg *testGateway) start() {
	tg.t.Helper()
	g, err := New(tg.opts, tg.deps)
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.g = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	tg.t.Cleanup(func() { cancel(); g.Shutdown(context.Background()); <-done })
}

// restart stops the gateway and starts another on what it leaves: its
// queue (what a crash leaves stored), the shared state and the log.
func (tg *testGateway) restart() {
	tg.t.Helper()
	if err := tg.g.Shutdown(context.Background()); err != nil {
		tg.t.Fatal(err)
	}
	tg.start()
}

// handle gives the gateway an MO as the session does: Handle, then, the
// resp written, Answered.
func (tg *testGateway) handle(from, text string) smpp.Status {
	d := &smpp.Deliver{Source: smpp.Address{Addr: from}, Text: text}
	st := tg.g.Handle(context.Background(), d)
	if d.Answered != nil {
		d.Answered()
	}
	return st
}

// send texts the gateway from number and returns the replies that came
// before its queue was empty again.
func (tg *testGateway) send(from, text string) []string {
	tg.t.Helper()
	mark := len(tg.sink.sent())
	if st := tg.handle(from, text); st != smpp.StatusOK {
		tg.t.Fatalf("Handle(%q) = %v", text, st)
	}
	tg.waitIdle()
	return tg.textsSince(mark)
}

// textsSince returns the texts of the messages sent after the first mark.
func (tg *testGateway) textsSince(mark int) []string {
	var out []string
	for _, m := range tg.sink.sent()[mark:] {
		out = append(out, m.Text)
	}
	return out
}

// waitJobs waits until n jobs are stored.
func (tg *testGateway) waitJobs(n int) {
	tg.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); tg.jobs.len() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tg.t.Fatalf("%d jobs stored, want %d", tg.jobs.len(), n)
		}
	}
}

// waitIdle waits until no job is queued, in progress or waiting to retry.
func (tg *testGateway) waitIdle() {
	tg.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tg.g.mu.Lock()
		n := tg.g.backlog
		tg.g.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("%d jobs still in hand", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitSent waits until n messages were sent in all.
func (tg *testGateway) waitSent(n int) {
	tg.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(tg.sink.sent()) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tg.t.Fatalf("%d messages sent, want %d", len(tg.sink.sent()), n)
		}
	}
}

// expect sends text and checks the one reply.
func (tg *testGateway) expect(from, text, want string) {
	tg.t.Helper()
	got := tg.send(from, text)
	if len(got) != 1 || got[0] != want {
		tg.t.Fatalf("%s sends %q: got %q, want %q", from, text, got, want)
	}
}

// entries reads the whole access log.
func (tg *testGateway) entries() []audit.Entry {
	tg.t.Helper()
	var es []audit.Entry
	if err := audit.Scan(context.Background(), tg.logDir, audit.Filter{}, func(e audit.Entry) error { es = append(es, e); return nil }); err != nil {
		tg.t.Fatal(err)
	}
	return es
}

const (
	alice       = "8613800138000"
	aliceMasked = "138****8000"
	bob         = "8613900139000"
)

func subOf(t *testing.T, number string) itinerary.Pseudonym {
	t.Helper()
	n, err := msisdn.Parse(number)
	if err != nil {
		t.Fatal(err)
	}
	return hashPseudonyms{}.Pseudonym(n)
}

func TestSelfQueryIsLogged(t *testing.T) {
	tg := newTestGateway(t, Options{})
	tg.expect(alice, "CXMYD30", promptText(30, itinerary.Chinese, 10))
	got := tg.send(alice, "Y")
	if len(got) != 1 || !strings.Contains(got[0], "北京市") {
		t.Fatalf("Y: got %q, want an itinerary", got)
	}
	es := tg.entries()
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1: %+v", len(es), es)
	}
	e := es[0]
	want := audit.Entry{Actor: audit.ActorSelf, Role: audit.RoleSubscriber, Action: audit.ActSelfQuery,
		Subject: audit.SubjectOf(subOf(t, alice)), Masked: aliceMasked, Window: 30, Outcome: "ok"}
	e.Seq, e.Time, e.Prev, e.Hash = 0, time.Time{}, "", ""
	if e != want {
		t.Errorf("entry %+v, want %+v", e, want)
	}
	// No number and no itinerary in the log's files, in any form.
	files, _ := filepath.Glob(filepath.Join(tg.logDir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{"13800138000", "北京", "Beijing", "110100", got[0]} {
			if strings.Contains(string(b), leak) {
				t.Errorf("%s holds %q", filepath.Base(f), leak)
			}
		}
	}
}

func TestAccessLogFailureSendsNothing(t *testing.T) {
	tg := newTestGateway(t, Options{})
	tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
	tg.log.fail.Store(true)
	tg.handle(alice, "Y")
	// The job retries every 20 ms while the log fails: nothing goes out.
	time.Sleep(300 * time.Millisecond)
	n := len(tg.sink.sent())
	if n != 1 {
		t.Fatalf("%d messages with the access log failing, want only the prompt", n)
	}
	// Once the log takes the entry, the itinerary goes, once.
	tg.log.fail.Store(false)
	tg.waitIdle()
	msgs := tg.sink.sent()
	if len(msgs) != 2 || !strings.Contains(msgs[1].Text, "Beijing") {
		t.Fatalf("after the log recovered: %d messages, last %q", len(msgs), msgs[len(msgs)-1].Text)
	}
	if es := tg.entries(); len(es) != 1 || es[0].Action != audit.ActSelfQuery {
		t.Errorf("entries %+v, want one self-query", es)
	}
}

// staleDialog hands the first Dialog read after armed is set back late,
// once the rest of the gateway had 200 ms to change the dialogue.
type staleDialog struct {
	State
	armed   atomic.Bool
	stalled chan struct{}
}

func (s *staleDialog) Dialog(ctx context.Context, sub itinerary.Pseudonym) (state.Dialog, error) {
	d, err := s.State.Dialog(ctx, sub)
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		time.Sleep(200 * time.Millisecond)
	}
	return d, err
}

// A request resumed after a crash (its prompt went, its delete was lost)
// must not replace the subscriber's next request while both are worked on:
// the Y that follows would find the claim of the Y before and go
// unanswered. The kill -9 loop caught this; one subscriber's steps now take
// turns.
func TestResumedRequestDoesNotOvertakeTheNext(t *testing.T) {
	tg := newTestGateway(t, Options{Workers: 4})
	// Answered once, the gateway runs: a restart now cannot race its
	// start (a Run begun after its Shutdown would take up jobs).
	if got := tg.send(bob, "HELP"); len(got) != 1 {
		t.Fatalf("HELP: got %q", got)
	}
	stale := &staleDialog{State: tg.deps.State, stalled: make(chan struct{})}
	tg.deps.State = stale
	tg.restart()
	tg.expect(alice, "CXMYD", promptText(15, itinerary.Chinese, 10))
	tg.jobs.mu.Lock()
	var requestID string
	for id := range tg.jobs.first {
		requestID = max(requestID, id) // job ids are time-ordered: the CXMYD's
	}
	request := tg.jobs.first[requestID]
	tg.jobs.mu.Unlock()
	if got := tg.send(alice, "Y"); len(got) != 1 {
		t.Fatalf("Y: got %q, want the itinerary", got)
	}

	// A crash left the request queued; it resumes beside the subscriber's
	// next request, reading the dialogue before that one changes it.
	tg.jobs.PutJob(context.Background(), []byte(requestID), request)
	stale.armed.Store(true)
	tg.restart()
	<-stale.stalled
	tg.handle(alice, "TRIP")
	tg.waitIdle()
	if got := tg.send(alice, "Y"); len(got) != 1 || !strings.Contains(got[0], "Beijing") {
		t.Fatalf("Y after TRIP: got %q, want the English itinerary", got)
	}
}

// A Y whose job resumes as Handle stored it, though its last run had
// resolved the request (a kill before the job's update, which is not
// synced on its own, reached the disk), still answers with the itinerary:
// it finds its own done claim, and Resolve gives the same taker the same
// request again. Had the kill come before the itinerary went, this is the
// subscriber's only answer.
func TestResumedYResolvedBeforeACrashStillSendsTheItinerary(t *testing.T) {
	tg := newTestGateway(t, Options{})
	tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
	tg.jobs.mu.Lock()
	before := maps.Clone(tg.jobs.first)
	tg.jobs.mu.Unlock()
	if got := tg.send(alice, "Y"); len(got) != 1 || !strings.Contains(got[0], "Beijing") {
		t.Fatalf("Y: got %q, want the itinerary", got)
	}
	tg.jobs.mu.Lock()
	var yID string
	for id := range tg.jobs.first {
		if _, ok := before[id]; !ok {
			yID = id
		}
	}
	first := tg.jobs.first[yID]
	tg.jobs.mu.Unlock()

	tg.jobs.PutJob(context.Background(), []byte(yID), first)
	mark := len(tg.sink.sent())
	tg.restart()
	tg.waitJobs(0) // the resumed Y is done
	tg.waitIdle()
	if got := tg.textsSince(mark); len(got) != 1 || !strings.Contains(got[0], "Beijing") {
		t.Fatalf("the resumed Y sent %q, want its itinerary again", got)
	}
	// The subscriber's next request and Y are answered as usual.
	tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
	if got := tg.send(alice, "Y"); len(got) != 1 || !strings.Contains(got[0], "Beijing") {
		t.Fatalf("the next Y: got %q, want the itinerary", got)
	}
}

// A Y that comes before the request now pending is not consent to it: the
// SMSC's redelivery of a Y whose resp a kill lost, worked on only after
// the resumed original answered and the subscriber made a new request,
// used to take that request and the claim the subscriber's own Y for it
// needs, so that their Y got nothing (TestChaosKill9, 2026-11-28).
func TestEarlierYDoesNotConfirmALaterRequest(t *testing.T) {
	for _, c := range []struct {
		name string
		// pendingAtArrival: whether the earlier Y came while the first
		// request was still pending (its Intent), or after it was resolved
		pendingAtArrival bool
	}{
		{"came while the first was pending", true},
		{"came after the first was resolved", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := newTestGateway(t, Options{})
			tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
			// The earlier Y: Handle stored it and wrote its resp, but it is
			// worked on only when Answered runs.
			early := &smpp.Deliver{Source: smpp.Address{Addr: alice}, Text: "Y"}
			if c.pendingAtArrival {
				if st := tg.g.Handle(context.Background(), early); st != smpp.StatusOK {
					t.Fatal(st)
				}
			}
			if got := tg.send(alice, "Y"); len(got) != 1 || !strings.Contains(got[0], "Beijing") {
				t.Fatalf("Y: got %q, want the itinerary", got)
			}
			if !c.pendingAtArrival {
				if st := tg.g.Handle(context.Background(), early); st != smpp.StatusOK {
					t.Fatal(st)
				}
			}
			tg.expect(alice, "CXMYD", promptText(15, itinerary.Chinese, 10))
			mark := len(tg.sink.sent())
			early.Answered()
			tg.waitIdle()
			if got := tg.textsSince(mark); len(got) != 0 {
				t.Fatalf("the earlier Y, worked on after CXMYD: got %q, want no reply", got)
			}
			if got := tg.send(alice, "Y"); len(got) != 1 || !strings.Contains(got[0], "北京") {
				t.Fatalf("the subscriber's Y for CXMYD: got %q, want the Chinese itinerary", got)
			}
		})
	}
}

// The fsync of a Y's entry holds its stored job, not a worker: with one
// worker, the next subscriber is answered while it runs, and Shutdown
// waits for it.
func TestEntrysFsyncHoldsNoWorker(t *testing.T) {
	tg := newTestGateway(t, Options{Workers: 1})
	tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release) // first: a failure must not leave the gateway stuck
	tg.log.hold.Store(&hold)
	tg.handle(alice, "Y")
	tg.waitSent(2) // the itinerary goes while the entry's fsync is held
	tg.handle(bob, "TRIP")
	tg.waitSent(3)
	if msgs := tg.sink.sent(); msgs[2].Text != promptText(15, itinerary.English, 10) {
		t.Fatalf("bob got %q, want the prompt", msgs[2].Text)
	}
	if left := tg.jobs.len(); left != 1 {
		t.Fatalf("%d jobs stored while the entry's fsync is held, want the Y's", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tg.g.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned while a job awaited its entry's fsync")
	}
	release()
	if err := tg.g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := tg.jobs.len(); left != 0 {
		t.Fatalf("%d jobs stored after the fsync and Shutdown, want none", left)
	}
}

// The finisher lets jobs go at most once per FinishEvery, so that the
// access-log entries of the Ys that come meanwhile share one fsync; a
// shutdown does not wait the interval out.
func TestFinisherWaitsOutItsIntervalButNotAShutdown(t *testing.T) {
	tg := newTestGateway(t, Options{FinishEvery: time.Hour})
	tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
	tg.send(alice, "Y")
	tg.waitJobs(0) // the first batch goes at once
	tg.expect(bob, "TRIP", promptText(15, itinerary.English, 10))
	tg.handle(bob, "Y")
	tg.waitSent(4) // his itinerary goes at once
	time.Sleep(50 * time.Millisecond)
	if n := tg.jobs.len(); n != 1 {
		t.Fatalf("%d jobs stored within the interval, want bob's Y", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tg.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := tg.jobs.len(); n != 0 {
		t.Fatalf("%d jobs stored after Shutdown, want none", n)
	}
	if es := tg.entries(); len(es) != 2 {
		t.Fatalf("%d entries, want two self-queries", len(es))
	}
}

// A Y's entry is written before its itinerary goes and synced while it
// goes; the job, the entry's durable record until then, stays queued if
// the fsync fails, and the next start writes the entry again rather than
// leave an itinerary sent with no synced entry.
func TestUnsyncedEntryIsWrittenAgainAfterARestart(t *testing.T) {
	tg := newTestGateway(t, Options{})
	tg.expect(alice, "TRIP 30", promptText(30, itinerary.English, 10))
	tg.log.failSync.Store(true)
	if got := tg.send(alice, "Y"); len(got) != 1 || !strings.Contains(got[0], "Beijing") {
		t.Fatalf("Y: got %q, want the itinerary", got)
	}
	if es := tg.entries(); len(es) != 1 || es[0].Action != audit.ActSelfQuery || es[0].Window != 30 {
		t.Fatalf("entries %+v, want the self-query, written before the itinerary went", es)
	}
	if left := tg.jobs.len(); left != 1 {
		t.Fatalf("%d jobs queued after an unsynced entry, want the Y's", left)
	}

	tg.log.failSync.Store(false)
	tg.restart()
	tg.waitJobs(0) // the resumed job is done
	tg.waitIdle()
	es := tg.entries()
	if len(es) != 2 || es[1].Action != audit.ActSelfQuery || es[1].Window != 30 || es[1].Detail != "written again after a restart" || es[1].Subject != es[0].Subject {
		t.Fatalf("entries after the restart %+v, want the self-query written again", es)
	}
	sent := len(tg.sink.sent())
	if sent != 2 {
		t.Errorf("%d messages after the restart, want the prompt and one itinerary", sent)
	}

	// Synced as usual: one entry, no job left.
	tg.expect(bob, "TRIP", promptText(15, itinerary.English, 10))
	tg.send(bob, "Y")
	if es := tg.entries(); len(es) != 3 || es[2].Detail != "" {
		t.Errorf("entries %+v, want a third, plain self-query", es)
	}
	if left := tg.jobs.len(); left != 0 {
		t.Errorf("%d jobs queued after a synced Y, want none", left)
	}
}

func TestOptOutAndIn(t *testing.T) {
	tg := newTestGateway(t, Options{})
	sub := subOf(t, alice)
	// A pending request is forgotten with the opt-out.
	tg.expect(alice, "CXMYD", promptText(15, itinerary.Chinese, 10))
	tg.expect(alice, "TD", optedOutText(itinerary.Chinese))
	if c, _ := tg.consent.Consent(context.Background(), sub); !c.Out() || tg.consent.erased[sub] != 1 {
		t.Fatalf("after TD: consent %+v, erased %d times", c, tg.consent.erased[sub])
	}
	tg.expect(alice, "Y", nothingPendingText(itinerary.English))
	// A request while opted out says how to opt in, and looks nothing up.
	tg.expect(alice, "CXMYD", recordingOffText(itinerary.Chinese))
	tg.expect(alice, "trip 30", recordingOffText(itinerary.English))
	if n := tg.itins.lookups.Load(); n != 0 {
		t.Errorf("%d lookups for an opted-out subscriber", n)
	}
	// The same TD again (as the SMSC redelivers it) is not answered twice.
	if got := tg.send(alice, "TD"); len(got) != 0 {
		t.Errorf("a repeated TD got %q", got)
	}
	tg.expect(alice, "START", optedInText(itinerary.English))
	if c, _ := tg.consent.Consent(context.Background(), sub); !c.In() {
		t.Fatalf("after START: consent %+v", c)
	}
	if got := tg.send(alice, "START"); len(got) != 0 {
		t.Errorf("a repeated START got %q", got)
	}
	// The same keyword after the dialogue moved on is answered again:
	// recording is on, so this one prompts.
	tg.expect(alice, "CXMYD", promptText(15, itinerary.Chinese, 10))
	tg.expect(alice, "STOP", optedOutText(itinerary.English))
	tg.expect(alice, "开通", optedInText(itinerary.Chinese))

	var actions []string
	for _, e := range tg.entries() {
		if e.Subject != audit.SubjectOf(sub) || e.Masked != aliceMasked || e.Actor != audit.ActorSelf {
			t.Errorf("entry %+v", e)
		}
		actions = append(actions, e.Action)
	}
	if want := []string{audit.ActOptOut, audit.ActOptIn, audit.ActOptOut, audit.ActOptIn}; !slices.Equal(actions, want) {
		t.Errorf("logged %v, want %v", actions, want)
	}
}

func TestOptInRequired(t *testing.T) {
	tg := newTestGateway(t, Options{OptInRequired: true})
	tg.expect(bob, "CXMYD", recordingOffText(itinerary.Chinese))
	tg.expect(bob, "KT", optedInText(itinerary.Chinese))
	tg.expect(bob, "CXMYD", promptText(15, itinerary.Chinese, 10))
}

func TestOptInLoggedFirst(t *testing.T) {
	tg := newTestGateway(t, Options{})
	tg.log.fail.Store(true)
	tg.handle(alice, "KT")
	time.Sleep(200 * time.Millisecond)
	if c, _ := tg.consent.Consent(context.Background(), subOf(t, alice)); c.In() {
		t.Errorf("opted in while the access log refused the entry")
	}
	tg.log.fail.Store(false)
	tg.waitIdle()
	if c, _ := tg.consent.Consent(context.Background(), subOf(t, alice)); !c.In() {
		t.Errorf("not opted in once the log recovered")
	}
}

func TestOptOutDoesNotWaitForTheLog(t *testing.T) {
	tg := newTestGateway(t, Options{})
	tg.log.fail.Store(true)
	tg.handle(alice, "TD")
	time.Sleep(200 * time.Millisecond)
	if c, _ := tg.consent.Consent(context.Background(), subOf(t, alice)); !c.Out() {
		t.Errorf("not opted out while the access log fails")
	}
	n := len(tg.sink.sent())
	if n != 0 {
		t.Errorf("the opt-out was confirmed before it was logged")
	}
	tg.log.fail.Store(false)
	tg.waitIdle()
	if es := tg.entries(); len(es) != 1 || es[0].Action != audit.ActOptOut {
		t.Errorf("entries %+v, want one opt-out", es)
	}
}

func TestAccesses(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	var now atomic.Pointer[time.Time]
	set := func(t time.Time) { now.Store(&t) }
	set(time.Now())
	tg := newTestGateway(t, Options{Location: loc, Now: func() time.Time { return *now.Load() }})
	sub := subOf(t, alice)
	tg.expect(alice, "JL", accessesText(nil, itinerary.Chinese, loc, time.Now()))
	tg.expect(alice, "CXMYD", promptText(15, itinerary.Chinese, 10))
	tg.send(alice, "Y")
	// Staff looked too, and someone else's lookups are not listed.
	if _, err := tg.log.Append(context.Background(), audit.Entry{Actor: "op-17", Role: audit.RoleAgent, Action: audit.ActStaffLookup,
		Subject: audit.SubjectOf(sub), Masked: aliceMasked, Window: 30, Ticket: "T-1", Outcome: "granted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.log.Append(context.Background(), audit.Entry{Actor: "op-17", Role: audit.RoleAgent, Action: audit.ActStaffLookup,
		Subject: audit.SubjectOf(sub), Masked: aliceMasked, Window: 15, Ticket: "T-2", Outcome: "denied"}); err != nil {
		t.Fatal(err)
	}
	tg.expect(bob, "TRIP", promptText(15, itinerary.English, 10))
	tg.send(bob, "Y")

	es := tg.entries()
	got := tg.send(alice, "记录")
	want := accessesText([]access{{When: es[1].Time, Staff: true, Days: 30}, {When: es[0].Time, Days: 15}}, itinerary.Chinese, loc, *now.Load())
	if len(got) != 1 || got[0] != want {
		t.Fatalf("JL: got %q, want %q", got, want)
	}
	if strings.Contains(got[0], "op-17") || strings.Contains(got[0], "T-1") {
		t.Errorf("JL names the operator or the ticket: %q", got[0])
	}

	// The number changes hands: the new holder sees nothing of before.
	tg.consent.mu.Lock()
	tg.consent.m[sub] = tg.consent.m[sub].WithReassigned(time.Now().Add(time.Second)) // past the entries' second
	tg.consent.mu.Unlock()
	set(time.Now().Add(time.Minute))
	tg.expect(alice, "LOG", accessesText(nil, itinerary.English, loc, *now.Load()))
}

func TestAccessesCountTowardTheLimit(t *testing.T) {
	tg := newTestGateway(t, Options{DailyLimit: 2})
	tg.expect(alice, "ACCESS", accessesText(nil, itinerary.English, shanghai(t), time.Now()))
	tg.expect(alice, "TRIP", promptText(15, itinerary.English, 10))
	tg.expect(alice, "JL", limitText(2, itinerary.Chinese))
}

// TestLostReplyResentOnRedelivery: the link dies under a reply (unknown
// outcome) and the SMSC redelivers the MO: on a transceiver bind the reply
// is sent again, once; without ResendLost the redelivery stays suppressed.
func TestLostReplyResentOnRedelivery(t *testing.T) {
	for _, resend := range []bool{true, false} {
		t.Run(fmt.Sprintf("ResendLost=%v", resend), func(t *testing.T) {
			tg := newTestGateway(t, Options{ResendLost: resend})
			const from = "8613800138000"
			tg.sink.mu.Lock()
			tg.sink.lose = 1
			tg.sink.mu.Unlock()
			if got := tg.send(from, "TRIP"); len(got) != 0 {
				t.Fatalf("the lost prompt was delivered: %q", got)
			}
			got := tg.send(from, "TRIP") // the SMSC's redelivery
			if resend && (len(got) != 1 || !strings.Contains(got[0], "Reply Y")) {
				t.Fatalf("redelivery got %q, want the prompt again", got)
			}
			if !resend && len(got) != 0 {
				t.Fatalf("redelivery got %q, want nothing", got)
			}
			if got := tg.send(from, "TRIP"); len(got) != 0 {
				t.Fatalf("a second redelivery got %q: resent more than once", got)
			}
			if resend {
				tg.sink.mu.Lock()
				tg.sink.lose = 1
				tg.sink.mu.Unlock()
				if got := tg.send(from, "Y"); len(got) != 0 {
					t.Fatalf("the lost itinerary was delivered: %q", got)
				}
				got := tg.send(from, "Y")
				if len(got) != 1 || !strings.Contains(got[0], "your phone was in") {
					t.Fatalf("redelivered Y got %q, want the itinerary again", got)
				}
			}
		})
	}
}

// No reply to an MO goes out before its resp is written: the job is worked
// on only once the session calls Answered (see smpp.Deliver.Answered).
func TestWorkWaitsForTheResp(t *testing.T) {
	tg := newTestGateway(t, Options{})
	d := &smpp.Deliver{Source: smpp.Address{Addr: alice}, Text: "TRIP"}
	if st := tg.g.Handle(context.Background(), d); st != smpp.StatusOK || d.Answered == nil {
		t.Fatalf("Handle = %v, Answered set: %v", st, d.Answered != nil)
	}
	time.Sleep(100 * time.Millisecond)
	n := len(tg.sink.sent())
	if n != 0 {
		t.Fatalf("%d replies before the resp was written", n)
	}
	d.Answered()
	tg.waitIdle()
	tg.sink.mu.Lock()
	defer tg.sink.mu.Unlock()
	if len(tg.sink.msgs) != 1 || tg.sink.msgs[0].Text != promptText(15, itinerary.English, 10) {
		t.Fatalf("after the resp: %+v", tg.sink.msgs)
	}
}

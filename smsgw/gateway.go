// Package smsgw is the SMS front door: the dialogue subscribers have with the
// short code, on top of the SMPP session layer in smsgw/smpp.
//
// # Never lose, never double-answer
//
// An MO is written to a durable queue (Jobs) before its deliver_sm_resp says
// OK; a crash after that resumes the job at start. When the gateway cannot
// take an MO (queue full, shared state unreachable, the global flood budget
// spent, shutting down) it answers ESME_RX_T_APPN and the SMSC keeps and
// redelivers the message.
//
// The SMSC may also redeliver a message we did take, when our resp was lost
// with a connection. Such duplicates are suppressed with claims keyed by the
// subscriber, the command and the dialogue's token: the token changes with
// every step of the dialogue (a new pending request, its confirmation), so a
// redelivered CXMYD or Y finds its claim taken, while the same keyword sent
// again after the dialogue moved on is a new request and is answered again.
// Every step a crash may repeat is idempotent by job id.
//
// # Consent and the access log
//
// TD (STOP) opts a subscriber out: the store erases their history at once
// and drops their events from then on, the shared state forgets their
// pending request and counters, and the reply confirms it. KT (START)
// opts them in again, recording from that moment. A request from a
// subscriber who is opted out (or, with Options.OptInRequired, never opted
// in) is answered with how to opt in, never with an itinerary.
//
// Every itinerary sent after a Y is first written to the access log
// (privacy/audit) as a self-query: pseudonym, masked number, window; never
// the number or the itinerary. If the write fails, the itinerary is not
// sent and the job is retried. The entry's fsync runs while the itinerary
// is looked up and sent when the job records the request the Y confirms
// (job.Intent, stored before the MO was acknowledged): the job stays queued
// until the fsync is done (one goroutine, the finisher, waits for it on
// behalf of every such job, not the worker), and one resumed after a crash
// writes its entry again (see AccessLog). An opt-in is logged before it
// takes effect; an opt-out takes effect first (withdrawing consent must not
// wait on the log) and is logged before it is confirmed. JL (ACCESS, LOG)
// lists the newest lookups of the subscriber's data from the log: when, and
// whether by the subscriber or by staff (never which operator), hiding
// anything from before the number last changed hands. JL counts against the
// daily limit like a request: the log search is the dearest thing a
// subscriber can ask for.
//
// Duplicate claims are keyed by the subscriber's consent as well as the
// dialogue's token, so that a TD or KT changes what a keyword sent again is
// taken for; each claims beforehand the key its own redelivery will compute.
package smsgw

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// Pseudonymizer turns a number into a pseudonym (privacy.Pseudonymizer).
type Pseudonymizer interface {
	Pseudonym(n msisdn.Number) itinerary.Pseudonym
}

// Sealer encrypts the number a queued job replies to (privacy.Sealer).
type Sealer interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Options configure a Gateway. Every field's zero value selects its default.
type Options struct {
	// ShortCode is the service number replies come from. Default "10086".
	ShortCode string
	// ShortCodeTON and ShortCodeNPI address the short code. Default 3
	// (network specific) and 0; SMSCs differ, so both are settings.
	ShortCodeTON, ShortCodeNPI byte
	// SubscriberTON and SubscriberNPI address subscribers, in
	// international form. Default 1 and 1.
	SubscriberTON, SubscriberNPI byte
	// Carriage is how long replies travel: UDH (default), SAR TLVs or
	// message_payload.
	Carriage smpp.Carriage

	// Location is the calendar of the daily limit. Default Asia/Shanghai.
	Location *time.Location
	// DailyLimit is the most itinerary requests a subscriber may make in a
	// day; past it one "limit reached" reply a day. Default 10.
	DailyLimit int
	// GlobalLimit and GlobalPer are a budget of MOs taken across every
	// instance, a circuit breaker against floods: past it MOs are left with
	// the SMSC (ESME_RX_T_APPN). Default 120,000 per minute.
	GlobalLimit int
	GlobalPer   time.Duration
	// PendingTTL is how long a request waits for Y. Default 10 minutes.
	PendingTTL time.Duration
	// DedupTTL is how long a claim against redelivery lasts. Default 10
	// minutes.
	DedupTTL time.Duration

	// Workers is how many jobs are worked on at once. Default 16.
	Workers int
	// MaxBacklog is the most jobs queued or in progress; past it MOs are
	// left with the SMSC. Default 10,000.
	MaxBacklog int
	// MaxJobAge is how long a job whose reply keeps failing is retried
	// before it is dropped and counted. Default 1 hour.
	MaxJobAge time.Duration
	// Backoff is the delay before retry n of a failed job. Default 1 s
	// doubling to 60 s.
	Backoff func(attempt int) time.Duration
	// FinishEvery is the least time between two fsyncs of the access log
	// that let finished jobs go (see finisher): the entries written
	// meanwhile share the next one. No reply waits for it, only the
	// delete of jobs whose itinerary went. Longer saves fsyncs and their
	// CPU; a crash then finds more such jobs, whose entries the next
	// start writes again (an entry twice, never an itinerary with none).
	// Default 20 ms.
	FinishEvery time.Duration

	// ResendLost sends a reply again when its submit_sm was written but
	// never answered (the link died) and the SMSC then redelivers the MO
	// it answers. Only on a transceiver bind, where the redelivery says
	// our deliver_sm_resp, written before the reply on the same
	// connection, did not arrive in time: when it was lost, the reply was
	// too, and this saves it; when it was only late (past the SMSC's resp
	// timeout) the reply may have arrived, and this sends a duplicate.
	// Which is likelier depends on the SMSC, so it is the operator's
	// choice (serve --resend-lost). Default false: never resend.
	ResendLost bool

	// Wording words itineraries. Its Catalog is required.
	Wording itinerary.Wording

	// OptInRequired says the store records only subscribers who opted in
	// (store.CollectOptedIn): a request from one who did not is answered
	// with how to opt in rather than with an empty itinerary. Default
	// false: everyone is recorded unless they opted out.
	OptInRequired bool

	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger gets the gateway's events; numbers appear masked. Default
	// zerolog.Nop().
	Logger *zerolog.Logger
	// Registerer gets the metrics. Default nil: kept, not registered.
	Registerer prometheus.Registerer
}

// Deps are the gateway's collaborators. All are required.
type Deps struct {
	Itineraries Itineraries
	Jobs        Jobs
	State       State
	Sender      Sender
	Pseudonyms  Pseudonymizer
	Sealer      Sealer
	Consent     Consent
	AccessLog   AccessLog
}

// ErrOptions reports a bad Option or a missing dependency.
var ErrOptions = errors.New("smsgw: bad options")

func (o Options) withDefaults() (Options, error) {
	if o.ShortCode == "" {
		o.ShortCode = "10086"
	}
	if o.ShortCodeTON == 0 && o.ShortCodeNPI == 0 {
		o.ShortCodeTON = 3
	}
	if o.SubscriberTON == 0 && o.SubscriberNPI == 0 {
		o.SubscriberTON, o.SubscriberNPI = 1, 1
	}
	if o.Location == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			return o, fmt.Errorf("%w: Location: %w", ErrOptions, err)
		}
		o.Location = loc
	}
	setDefault(&o.DailyLimit, 10)
	setDefault(&o.GlobalLimit, 120_000)
	setDefault(&o.GlobalPer, time.Minute)
	setDefault(&o.PendingTTL, 10*time.Minute)
	setDefault(&o.DedupTTL, 10*time.Minute)
	setDefault(&o.Workers, 16)
	setDefault(&o.MaxBacklog, 10_000)
	setDefault(&o.MaxJobAge, time.Hour)
	setDefault(&o.FinishEvery, 20*time.Millisecond)
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration { return min(time.Second<<min(n, 6), time.Minute) }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		l := zerolog.Nop()
		o.Logger = &l
	}
	switch {
	case o.Wording.Catalog == nil:
		return o, fmt.Errorf("%w: Wording.Catalog is required", ErrOptions)
	case o.DailyLimit < 0, o.GlobalLimit < 0, o.Workers < 0, o.MaxBacklog < 0:
		return o, fmt.Errorf("%w: limits must not be negative", ErrOptions)
	}
	return o, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Gateway is the SMS dialogue. Handle is its smpp.Handler; Run works the
// queue; Shutdown stops it.
type Gateway struct {
	opts Options
	deps Deps
	log  zerolog.Logger
	m    *metrics

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*job
	backlog int // queued + in progress + waiting to retry
	closing bool
	timers  map[*time.Timer]struct{}
	inHand  map[string]struct{} // ids of the jobs Handle took and not yet finished
	workers sync.WaitGroup
	running atomic.Bool

	stateDownUntil atomic.Int64 // unix nanos: refuse MOs while the state store is failing

	subLocks [subLockStripes]sync.Mutex // see step

	// Jobs whose access-log entry awaits its fsync, for the finisher.
	finMu     sync.Mutex
	finCond   *sync.Cond
	finQ      []*job
	finStop   bool // the workers are done: drain finQ and return
	finishing sync.WaitGroup

	parkMu   sync.Mutex
	parked   map[string]*parked // by claim key; see park
	unsynced atomic.Bool        // a job delete awaits an fsync
	numbers  *msisdn.Parser
}

// New returns a Gateway.
func New(opts Options, deps Deps) (*Gateway, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Itineraries == nil || deps.Jobs == nil || deps.State == nil || deps.Sender == nil || deps.Pseudonyms == nil || deps.Sealer == nil ||
		deps.Consent == nil || deps.AccessLog == nil {
		return nil, fmt.Errorf("%w: every dependency is required", ErrOptions)
	}
	g := &Gateway{opts: o, deps: deps, log: o.Logger.With().Str("component", "gateway").Logger(), m: newMetrics(o.Registerer), timers: make(map[*time.Timer]struct{}), inHand: make(map[string]struct{}), numbers: msisdn.NewParser(0), parked: make(map[string]*parked)}
	g.cond = sync.NewCond(&g.mu)
	g.finCond = sync.NewCond(&g.finMu)
	return g, nil
}

// Log field names.
const (
	fieldNumber  = "number" // always masked
	fieldCommand = "command"
	fieldJob     = "job"
)

// Handle takes one inbound message. It returns within the time of one
// synced write: the work happens on the gateway's workers, from when the
// session calls d.Answered after writing the deliver_sm_resp.
func (g *Gateway) Handle(ctx context.Context, d *smpp.Deliver) smpp.Status {
	if d.IsReceipt() {
		g.m.receipts.WithLabelValues(receiptState(d.Receipt)).Inc()
		return smpp.StatusOK
	}
	n, err := g.numbers.Parse(d.Source.Addr)
	if err != nil {
		// Nobody to answer: acknowledge so the SMSC does not redeliver
		// forever, and count it.
		g.log.Warn().Str(fieldNumber, msisdn.Mask(d.Source.Addr)).Err(err).Msg("MO from a sender that is not a number")
		g.m.replies.WithLabelValues("bad_sender").Inc()
		return smpp.StatusOK
	}
	cmd := ParseKeyword(d.Text)
	if d.Binary {
		cmd = Command{Kind: KindHelp, Lang: itinerary.Chinese}
	}
	if reason := g.refuse(ctx); reason != "" {
		g.m.refused.WithLabelValues(reason).Inc()
		return smpp.StatusRxTAppn
	}
	now := g.opts.Now()
	id, err := newJobID(now)
	if err != nil {
		g.m.refused.WithLabelValues("internal").Inc()
		return smpp.StatusRxTAppn
	}
	sealed, err := g.deps.Sealer.Seal([]byte(n), []byte(id))
	if err != nil {
		g.m.refused.WithLabelValues("internal").Inc()
		return smpp.StatusRxTAppn
	}
	j := &job{ID: id, Sub: g.deps.Pseudonyms.Pseudonym(n), Sealed: sealed, Masked: n.Masked(), Cmd: cmd, Received: now}
	if cmd.Kind == KindConfirm {
		// Stored with the job, the request this Y is likely to confirm
		// lets its itinerary go without waiting on the access log's fsync
		// (see AccessLog).
		d, err := g.deps.State.Dialog(ctx, j.Sub)
		if err != nil {
			g.stateFailed(err)
			g.m.refused.WithLabelValues("state").Inc()
			return smpp.StatusRxTAppn
		}
		j.Intent = d.Pending
	}
	// In hand before it is stored: Run, resuming what the store holds,
	// must not take up a job that Handle is about to enqueue.
	g.mu.Lock()
	g.inHand[j.ID] = struct{}{}
	g.mu.Unlock()
	if err := g.put(ctx, j); err != nil {
		g.mu.Lock()
		delete(g.inHand, j.ID)
		g.mu.Unlock()
		g.log.Error().Err(err).Msg("cannot queue an MO; the SMSC keeps it")
		g.m.refused.WithLabelValues("store").Inc()
		return smpp.StatusRxTAppn
	}
	g.m.mo.WithLabelValues(cmd.Kind.String()).Inc()
	// Worked on once our resp is written (see smpp.Deliver.Answered).
	d.Answered = func() { g.enqueue(j, true) }
	return smpp.StatusOK
}

// receiptState is a receipt's state as a metric label: one of the eight
// SMPP message states, else "unknown". A receipt's text is the SMSC's to
// write, and every label value is a time series of its own.
func receiptState(r *smpp.Receipt) string {
	switch r.State {
	case "ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD":
		return r.State
	}
	return "unknown"
}

// refuse says why an MO cannot be taken now, or "".
func (g *Gateway) refuse(ctx context.Context) string {
	if why := g.Refusing(); why != "" {
		return why
	}
	ok, err := g.deps.State.AllowGlobal(ctx, g.opts.GlobalLimit, g.opts.GlobalPer)
	switch {
	case err != nil:
		g.stateFailed(err)
		return "state"
	case !ok:
		g.m.limited.WithLabelValues("global").Inc()
		return "flood"
	}
	return ""
}

// Refusing says why the gateway would refuse an MO now ("shutdown",
// "backlog", "state"), or "" when it takes them; for a health check, so it
// asks nothing of the shared state.
func (g *Gateway) Refusing() string {
	g.mu.Lock()
	closing, full := g.closing, g.backlog >= g.opts.MaxBacklog
	g.mu.Unlock()
	switch {
	case closing:
		return "shutdown"
	case full:
		return "backlog"
	case time.Now().UnixNano() < g.stateDownUntil.Load():
		return "state"
	}
	return ""
}

// stateFailed makes Handle refuse MOs for a moment: while the shared state
// is unreachable nothing can be answered safely (no duplicate claims, no
// consent step), so the SMSC keeps the messages.
func (g *Gateway) stateFailed(err error) {
	g.log.Warn().Err(err).Msg("shared state unavailable; refusing MOs for 2s")
	g.stateDownUntil.Store(time.Now().Add(2 * time.Second).UnixNano())
}

func (g *Gateway) put(ctx context.Context, j *job) error {
	b, err := j.encode()
	if err != nil {
		return err
	}
	return g.deps.Jobs.PutJob(ctx, []byte(j.ID), b)
}

// enqueue hands j to the workers; fresh counts it into the backlog.
func (g *Gateway) enqueue(j *job, fresh bool) {
	g.mu.Lock()
	if fresh {
		g.backlog++
		g.m.backlog.Set(float64(g.backlog))
	}
	g.queue = append(g.queue, j)
	g.mu.Unlock()
	g.cond.Signal()
}

// Run loads the jobs a previous run left and works the queue until ctx ends
// or Shutdown. It returns after every worker stopped.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrOptions)
	}
	resumed := 0
	err := g.deps.Jobs.Jobs(ctx, func(id, value []byte) error {
		g.mu.Lock()
		_, taken := g.inHand[string(id)]
		g.mu.Unlock()
		if taken {
			return nil // an MO that came in while we resumed
		}
		j, err := decodeJob(id, value)
		if err != nil {
			g.log.Error().Err(err).Msg("dropping an unreadable job")
			return g.deps.Jobs.DeleteJob(ctx, id)
		}
		j.resumed = true
		g.enqueue(j, true)
		resumed++
		return nil
	})
	if err != nil {
		return fmt.Errorf("smsgw: resume jobs: %w", err)
	}
	if resumed > 0 {
		g.log.Info().Int("jobs", resumed).Msg("resuming jobs left by the last run")
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	g.finishing.Go(func() { g.finisher(wctx) })
	for range g.opts.Workers {
		g.workers.Go(func() { g.work(wctx) })
	}
	workersDone := make(chan struct{})
	var syncer sync.WaitGroup
	syncer.Go(func() { g.syncLoop(wctx, workersDone) })
	defer func() { close(workersDone); syncer.Wait() }()
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.closing = true
		g.mu.Unlock()
		g.cond.Broadcast()
	})
	defer stop()
	g.workers.Wait()
	g.finMu.Lock()
	g.finStop = true
	g.finMu.Unlock()
	g.finCond.Signal()
	g.finishing.Wait()
	return nil
}

// Shutdown stops taking MOs, lets the workers finish the jobs queued, and
// returns when they did or ctx ended; what is left stays in the durable
// queue for the next start. It is safe to call more than once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	for t := range g.timers {
		t.Stop() // a job waiting to retry stays stored for the next start
	}
	clear(g.timers)
	g.mu.Unlock()
	g.cond.Broadcast()
	done := make(chan struct{})
	go func() { g.workers.Wait(); g.finishing.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gateway) work(ctx context.Context) {
	for {
		g.mu.Lock()
		for len(g.queue) == 0 && !g.closing {
			g.cond.Wait()
		}
		if len(g.queue) == 0 {
			g.mu.Unlock()
			return
		}
		j := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		g.mu.Unlock()
		g.process(ctx, j)
	}
}

// syncLoop makes finished jobs' deletes durable. They are not synced one
// by one (see store.DeleteJob): under load the next MO's synced write
// covers them; when traffic stops, this does within syncEvery.
func (g *Gateway) syncLoop(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			g.syncJobs(ctx)
			return
		case <-t.C:
			g.syncJobs(ctx)
		}
	}
}

const syncEvery = 100 * time.Millisecond

func (g *Gateway) syncJobs(ctx context.Context) {
	if g.unsynced.Swap(false) {
		if err := g.deps.Jobs.SyncJobs(ctx); err != nil {
			g.log.Error().Err(err).Msg("cannot sync finished jobs")
		}
	}
}

// retryable marks errors after which a job is tried again later.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func (g *Gateway) process(ctx context.Context, j *job) {
	err := g.step(ctx, j)
	var r retryable
	if errors.As(err, &r) && g.opts.Now().Sub(j.Received) < g.opts.MaxJobAge {
		log := g.jobLog(j)
		j.Attempts++
		if perr := g.put(ctx, j); perr != nil {
			log.Error().Err(perr).Msg("cannot save a job's progress")
		}
		delay := g.opts.Backoff(j.Attempts - 1)
		log.Warn().Err(err).Int("attempt", j.Attempts).Dur("retry_in", delay).Msg("job failed; will retry")
		g.mu.Lock()
		if !g.closing {
			var t *time.Timer
			t = time.AfterFunc(delay, func() {
				g.mu.Lock()
				delete(g.timers, t)
				g.mu.Unlock()
				g.enqueue(j, false)
			})
			g.timers[t] = struct{}{}
		}
		g.mu.Unlock()
		return
	}
	if err != nil {
		log := g.jobLog(j)
		log.Error().Err(err).Msg("job dropped")
		g.m.replies.WithLabelValues("dropped").Inc()
	}
	if j.unsynced != 0 {
		// The entry's fsync is the finisher's to wait for: a worker held
		// here could not take the next job meanwhile.
		g.finMu.Lock()
		g.finQ = append(g.finQ, j)
		g.finMu.Unlock()
		g.finCond.Signal()
		return
	}
	g.finish(ctx, j, nil)
}

// finisher lets go of the jobs process handed it once the fsync of their
// access-log entries is done: one Synced for all the jobs that came since
// the last, at most one every Options.FinishEvery. It returns once the
// workers stopped and it has let go of every job they handed it.
//
// Why not on the workers: a worker waiting through an fsync after its reply
// takes no other job meanwhile. While the disk is slow (an fdatasync of
// 119 ms was seen on this project's machine) every worker would soon be
// waiting on the access log and no reply, not even a prompt, would go out;
// now only the deletes of finished jobs wait. At saturation on a healthy
// disk bench sms measured no difference (2026-11-28, three runs each:
// 0.70, 0.60, 0.52 of the echo against 0.66, 0.65, 0.56 before).
func (g *Gateway) finisher(ctx context.Context) {
	var (
		batch []*job
		last  time.Time // when the last batch was taken
	)
	for {
		g.finMu.Lock()
		for len(g.finQ) == 0 && !g.finStop {
			g.finCond.Wait()
		}
		if wait := g.opts.FinishEvery - time.Since(last); wait > 0 && !g.finStop {
			// The jobs that come meanwhile share the next fsync; a stop
			// cuts the wait short.
			due := false
			t := time.AfterFunc(wait, func() {
				g.finMu.Lock()
				due = true
				g.finMu.Unlock()
				g.finCond.Signal()
			})
			for !due && !g.finStop {
				g.finCond.Wait()
			}
			t.Stop()
		}
		if len(g.finQ) == 0 {
			g.finMu.Unlock()
			return
		}
		batch, g.finQ = g.finQ, batch[:0]
		g.finMu.Unlock()
		last = time.Now()
		var upto uint64
		for _, j := range batch {
			upto = max(upto, j.unsynced) // an fsync covers every entry before the one it was for
		}
		err := g.entriesSynced(ctx, upto)
		for i, j := range batch {
			g.finish(ctx, j, err)
			batch[i] = nil
		}
	}
}

// finish lets go of j, done: its stored job is deleted, or, when the fsync
// of the access-log entry it wrote failed (entryErr), kept marked done.
func (g *Gateway) finish(ctx context.Context, j *job, entryErr error) {
	if entryErr != nil {
		// The stored job is the entry's only durable record: it stays,
		// marked done, and the next start writes the entry again.
		log := g.jobLog(j)
		log.Error().Err(entryErr).Msg("access-log entry not synced; the job stays queued for the next start to write it again")
		j.Done = true
		if perr := g.put(ctx, j); perr != nil {
			log.Error().Err(perr).Msg("cannot mark a job done")
		}
	} else if derr := g.deps.Jobs.DeleteJob(ctx, []byte(j.ID)); derr != nil {
		log := g.jobLog(j)
		log.Error().Err(derr).Msg("cannot delete a finished job")
	}
	g.unsynced.Store(true)
	g.mu.Lock()
	g.backlog--
	delete(g.inHand, j.ID)
	g.m.backlog.Set(float64(g.backlog))
	g.mu.Unlock()
}

// entriesSynced waits for the fsync of the access-log entries written
// without waiting (AccessLog.Write) up to the one numbered seq.
func (g *Gateway) entriesSynced(ctx context.Context, seq uint64) error {
	start := time.Now()
	err := g.deps.AccessLog.Synced(ctx, seq)
	g.m.auditSync.Observe(time.Since(start).Seconds())
	if err != nil {
		g.m.auditFailed.Inc()
		return fmt.Errorf("smsgw: access log: %w", err)
	}
	return nil
}

// jobLog is the logger for j's events, made only when there is one to log.
func (g *Gateway) jobLog(j *job) zerolog.Logger {
	return g.log.With().Str(fieldJob, j.ID).Str(fieldNumber, j.Masked).Str(fieldCommand, j.Cmd.Kind.String()).Logger()
}

// claimKey keys duplicate suppression: subscriber, command, and the
// subscriber's token (tokenOf). The hashed bytes are fmt's
// "%s|%d|%d|%d|%s" of them, built without fmt (it runs a few times a
// query); they must not change between versions, so that a claim taken
// before an upgrade still stops a redelivery after it.
func claimKey(sub itinerary.Pseudonym, c Command, token string) string {
	b := make([]byte, 0, len(sub)+16+len(token))
	b = append(b, sub[:]...)
	b = append(b, '|')
	b = strconv.AppendUint(b, uint64(c.Kind), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(c.Days), 10)
	b = append(b, '|')
	b = strconv.AppendUint(b, uint64(c.Lang), 10)
	b = append(b, '|')
	b = append(b, token...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// tokenOf is what changes when a subscriber's dialogue moves on: the
// dialogue's token (a new pending request, its confirmation) and their
// consent (TD, KT, a reassignment). A redelivered message finds the same
// token and its claim taken; the same keyword sent after either changed is
// a new message. The form is fmt's "%s|%d.%d.%d" of the token and the
// three times in Unix seconds (0 for none).
func tokenOf(dialog string, c itinerary.Consent) string {
	u := func(b []byte, t time.Time) []byte {
		if t.IsZero() {
			return append(b, '0')
		}
		return strconv.AppendInt(b, t.Unix(), 10)
	}
	b := make([]byte, 0, len(dialog)+40)
	b = append(b, dialog...)
	b = append(b, '|')
	b = u(b, c.OptedOut)
	b = append(b, '.')
	b = u(b, c.OptedIn)
	b = append(b, '.')
	b = u(b, c.Reassigned)
	return string(b)
}

func (g *Gateway) stateErr(err error) error {
	g.stateFailed(err)
	return retryable{err}
}

// subLockStripes is how many locks serialize subscribers' steps: a
// subscriber's jobs share one, and with 64 workers two others share one
// rarely (32 KiB).
const subLockStripes = 4096

// step does the job's work up to its reply.
//
// One subscriber's jobs take their steps one at a time. A step reads the
// dialogue, decides, and changes it; two interleaved could each decide on
// what the other is about to change. The kill -9 loop caught it: a request
// resumed after a kill read the dialogue, the subscriber's next request
// made itself pending, then the resumed one replaced it; the subscriber's Y
// was taken for a redelivery of their last Y (its claim is keyed on the
// pending request's token) and never answered. The lock is per process:
// instances sharing Redis are not serialized against each other.
func (g *Gateway) step(ctx context.Context, j *job) error {
	mu := &g.subLocks[binary.BigEndian.Uint16(j.Sub[:2])%subLockStripes]
	mu.Lock()
	defer mu.Unlock()
	st := g.deps.State
	if j.resumed && j.Intent != nil && !j.rewritten {
		// The last run may have sent this Y's itinerary before the fsync
		// of its access-log entry (see AccessLog), then stopped: the entry
		// is written again, and synced, before anything else. A crash
		// leaves an entry twice, or one for a Y that sent nothing, rather
		// than an itinerary sent with none.
		if _, err := g.appendAccess(ctx, j, audit.ActSelfQuery, j.Intent.Days, "written again after a restart"); err != nil {
			return err
		}
		j.rewritten = true
	}
	if j.Done {
		return nil
	}
	c, err := g.deps.Consent.Consent(ctx, j.Sub)
	if err != nil {
		return retryable{err}
	}
	if !j.Claimed {
		d, err := st.Dialog(ctx, j.Sub)
		if err != nil {
			return g.stateErr(err)
		}
		if j.resumed && (j.Cmd.Kind == KindRequest || j.Cmd.Kind == KindConfirm || j.Cmd.Kind == KindCancel) && strings.TrimPrefix(d.Token, "done:") > j.ID {
			// Resumed after a crash, and the subscriber has made a new
			// request since this MO came (job ids are time-ordered): its
			// reply went before the crash, or the subscriber moved on. A
			// Y must not be taken for consent to the newer request, nor
			// an old request replace it.
			g.m.duplicates.Inc()
			return nil
		}
		if j.Cmd.Kind == KindConfirm && d.Pending != nil && (j.Intent == nil || j.Intent.Nonce != d.Pending.Nonce) {
			// This Y came before the request now pending (Handle recorded
			// what was pending then): it was sent for an earlier request,
			// or for none, or it is the SMSC's redelivery of a Y whose resp
			// a crash lost, worked on only after the resumed original had
			// answered and the subscriber had made a new request. It is
			// not consent to that request, and it must not take the claim
			// that the subscriber's own Y for it will need. No reply
			// either: a redelivery's original has had its answer, and a Y
			// sent with nothing pending just before a request is answered
			// by that request's prompt.
			g.m.duplicates.Inc()
			return nil
		}
		first, err := g.claim(ctx, j, claimKey(j.Sub, j.Cmd, tokenOf(d.Token, c)))
		if err != nil {
			return g.stateErr(err)
		}
		if !first {
			g.m.duplicates.Inc()
			// On a transceiver bind, a redelivered MO means our
			// deliver_sm_resp never reached the SMSC, so nothing we wrote
			// after it did either: a reply whose outcome was unknown was
			// lost, and is sent again, once.
			return g.resendParked(ctx, j.claims[len(j.claims)-1])
		}
		j.Claimed = true
	}
	switch j.Cmd.Kind {
	case KindRequest:
		if g.off(c) {
			return g.reply(ctx, j, "recording_off", recordingOffText(j.Cmd.Lang))
		}
		if ok, err := g.admit(ctx, j); !ok {
			return err
		}
		// A redelivery of this request will see the token this sets:
		// claim it first, so the redelivery finds it taken.
		if _, err := g.claim(ctx, j, claimKey(j.Sub, j.Cmd, tokenOf(j.ID, c))); err != nil {
			return g.stateErr(err)
		}
		p := state.Request{Nonce: j.ID, Days: j.Cmd.Days, Lang: j.Cmd.Lang}
		if err := st.Ask(ctx, j.Sub, p, g.opts.PendingTTL); err != nil {
			return g.stateErr(err)
		}
		return g.reply(ctx, j, "prompt", promptText(p.Days, p.Lang, int(g.opts.PendingTTL/time.Minute)))

	case KindConfirm, KindCancel:
		p := j.Resolved
		if p == nil {
			d, err := st.Dialog(ctx, j.Sub)
			if err != nil {
				return g.stateErr(err)
			}
			if d.Pending != nil {
				if _, err := g.claim(ctx, j, claimKey(j.Sub, j.Cmd, tokenOf("done:"+d.Pending.Nonce, c))); err != nil {
					return g.stateErr(err)
				}
			}
			rp, ok, err := st.Resolve(ctx, j.Sub, j.ID, g.opts.DedupTTL)
			if err != nil {
				return g.stateErr(err)
			}
			if !ok {
				// A Y with nothing pending reveals nothing.
				return g.reply(ctx, j, "nothing_pending", nothingPendingText(j.Cmd.Lang))
			}
			p = &rp
			j.Resolved = p
			// Saved before the itinerary goes: resolving again after a
			// crash would take whatever is pending then, and once the
			// subscriber had this itinerary that may be their next
			// request, taken without its Y. Not synced on its own (the
			// next MO's synced write covers it, or syncLoop within
			// syncEvery): should a crash lose it, the resumed job still
			// finds the newer request newer than itself and does nothing
			// (the check in step), so a synced write per Y, on the path
			// of every itinerary, would buy little.
			b, err := j.encode()
			if err != nil {
				return err
			}
			if err := g.deps.Jobs.UpdateJob(ctx, []byte(j.ID), b); err != nil {
				return retryable{err}
			}
			g.unsynced.Store(true)
		}
		if j.Cmd.Kind == KindCancel {
			return g.reply(ctx, j, "cancelled", cancelledText(p.Lang))
		}
		if g.off(c) {
			// A TD overtook the request's Y: nothing is recorded to send.
			return g.reply(ctx, j, "recording_off", recordingOffText(p.Lang))
		}
		// The access is on record before the itinerary leaves, or it
		// does not leave. When the stored job records this very request
		// (Intent), the entry's fsync runs while the itinerary is looked
		// up and sent, and the job stays stored until it is done.
		switch {
		case j.rewritten && j.Intent.Nonce == p.Nonce:
			// Written again on resuming, synced.
		case j.Intent != nil && j.Intent.Nonce == p.Nonce:
			if err := g.writeAccess(ctx, j, p.Days); err != nil {
				return err
			}
		default:
			if err := g.logAccess(ctx, j, audit.ActSelfQuery, p.Days); err != nil {
				return err
			}
		}
		text, err := g.itineraryText(ctx, j.Sub, p)
		if err != nil {
			return retryable{err}
		}
		return g.reply(ctx, j, "itinerary", text)

	case KindOptOut:
		// A redelivery of this TD will find no dialogue and the opt-out:
		// claim that first, so the redelivery finds it taken.
		if _, err := g.claim(ctx, j, claimKey(j.Sub, j.Cmd, tokenOf("", c.WithOptOut(j.Received)))); err != nil {
			return g.stateErr(err)
		}
		// The erasure comes first and waits on nothing: withdrawing
		// consent must not depend on the access log being writable. The
		// store keeps the opt-out's time as its own record; the log entry
		// follows, and the confirmation only once it is written.
		if err := g.deps.Consent.OptOut(ctx, j.Sub, j.Received); err != nil {
			return retryable{err}
		}
		if err := st.Forget(ctx, j.Sub); err != nil {
			return g.stateErr(err)
		}
		if err := g.logAccess(ctx, j, audit.ActOptOut, 0); err != nil {
			return err
		}
		return g.reply(ctx, j, "opted_out", optedOutText(j.Cmd.Lang))

	case KindOptIn:
		d, err := st.Dialog(ctx, j.Sub)
		if err != nil {
			return g.stateErr(err)
		}
		if _, err := g.claim(ctx, j, claimKey(j.Sub, j.Cmd, tokenOf(d.Token, c.WithOptIn(j.Received)))); err != nil {
			return g.stateErr(err)
		}
		// Consent to recording is on record before recording starts.
		if err := g.logAccess(ctx, j, audit.ActOptIn, 0); err != nil {
			return err
		}
		if err := g.deps.Consent.OptIn(ctx, j.Sub, j.Received); err != nil {
			return retryable{err}
		}
		return g.reply(ctx, j, "opted_in", optedInText(j.Cmd.Lang))

	case KindAccesses:
		if ok, err := g.admit(ctx, j); !ok {
			return err
		}
		outcome, text, err := g.accesses(ctx, j, c)
		if err != nil {
			return retryable{err}
		}
		return g.reply(ctx, j, outcome, text)

	default:
		return g.reply(ctx, j, "help", helpText(j.Cmd.Lang))
	}
}

// off reports whether nothing is recorded for a subscriber with consent c.
func (g *Gateway) off(c itinerary.Consent) bool {
	return c.Out() || g.opts.OptInRequired && !c.In()
}

// admit counts j against its subscriber's daily limit. When it returns
// false the job is done: over the limit, with the day's one "limit
// reached" reply (or none), or err says why it must be retried.
func (g *Gateway) admit(ctx context.Context, j *job) (bool, error) {
	if !j.Counted {
		day := g.opts.Now().In(g.opts.Location).Format(time.DateOnly)
		allowed, notify, err := g.deps.State.CountRequest(ctx, j.Sub, day, g.opts.DailyLimit)
		if err != nil {
			return false, g.stateErr(err)
		}
		j.Counted, j.Allowed, j.Notify = true, allowed, notify
	}
	if j.Allowed {
		return true, nil
	}
	g.m.limited.WithLabelValues("daily").Inc()
	if !j.Notify {
		return false, nil // one "limit reached" a day is enough
	}
	return false, g.reply(ctx, j, "limit", limitText(g.opts.DailyLimit, j.Cmd.Lang))
}

// logAccess appends the subscriber's own action to the access log, once:
// a job retried after the append (its reply failed) does not append again,
// though one resumed after a crash may. The entry holds the pseudonym and
// the masked number, never the number or the itinerary.
func (g *Gateway) logAccess(ctx context.Context, j *job, action string, days int) error {
	if j.Logged {
		return nil
	}
	if _, err := g.appendAccess(ctx, j, action, days, ""); err != nil {
		return err
	}
	j.Logged = true
	return nil
}

// writeAccess is logAccess for a self-query whose request the stored job
// records (Intent): the entry is written without waiting for its fsync,
// which process waits for before it deletes the job.
func (g *Gateway) writeAccess(ctx context.Context, j *job, days int) error {
	if j.Logged {
		return nil
	}
	start := time.Now()
	e, err := g.deps.AccessLog.Write(ctx, g.accessEntry(j, audit.ActSelfQuery, days, ""))
	g.m.audit.Observe(time.Since(start).Seconds())
	if err != nil {
		return g.accessErr(err)
	}
	j.Logged, j.unsynced = true, e.Seq
	return nil
}

// appendAccess appends an entry of j's subscriber and waits for its fsync.
func (g *Gateway) appendAccess(ctx context.Context, j *job, action string, days int, detail string) (audit.Entry, error) {
	start := time.Now()
	e, err := g.deps.AccessLog.Append(ctx, g.accessEntry(j, action, days, detail))
	g.m.audit.Observe(time.Since(start).Seconds())
	if err != nil {
		return e, g.accessErr(err)
	}
	return e, nil
}

// accessEntry is the subscriber's own action: the pseudonym and the masked
// number, never the number or the itinerary.
func (g *Gateway) accessEntry(j *job, action string, days int, detail string) audit.Entry {
	return audit.Entry{
		Actor: audit.ActorSelf, Role: audit.RoleSubscriber, Action: action,
		Subject: audit.SubjectOf(j.Sub), Masked: j.Masked, Window: days, Outcome: "ok", Detail: detail,
	}
}

func (g *Gateway) accessErr(err error) error {
	g.m.auditFailed.Inc()
	err = fmt.Errorf("smsgw: access log: %w", err)
	if errors.Is(err, audit.ErrInvalid) || errors.Is(err, audit.ErrNumber) {
		return err // the same entry would be refused again
	}
	return retryable{err}
}

// Accesses (JL) lists the newest maxAccesses lookups of the subscriber's
// data. The log is searched from its end for the subscriber's newest
// scanEntries entries (opt-outs and opt-ins among them) for at most
// lastTimeout: the search costs the bytes written since those entries, and
// must not hold a worker for long.
const (
	maxAccesses = 5
	scanEntries = 4 * maxAccesses
	lastTimeout = 2 * time.Second
)

// accesses words the subscriber's last accesses, as the current holder of
// the number may see them: nothing from before a reassignment.
func (g *Gateway) accesses(ctx context.Context, j *job, c itinerary.Consent) (outcome, text string, err error) {
	lctx, cancel := context.WithTimeout(ctx, lastTimeout)
	defer cancel()
	es, err := g.deps.AccessLog.Last(lctx, audit.SubjectOf(j.Sub), scanEntries)
	timedOut := err != nil && lctx.Err() != nil && ctx.Err() == nil
	if err != nil && !timedOut {
		return "", "", fmt.Errorf("smsgw: access log: %w", err)
	}
	var list []access
	for _, e := range es {
		if len(list) == maxAccesses {
			break
		}
		if e.Time.Before(c.Reassigned) {
			break // newest first: the rest is the previous holder's
		}
		switch {
		case e.Action == audit.ActSelfQuery && e.Outcome == "ok":
			list = append(list, access{When: e.Time, Days: e.Window})
		case e.Action == audit.ActStaffLookup && (e.Outcome == "granted" || e.Outcome == "ok"):
			list = append(list, access{When: e.Time, Staff: true, Days: e.Window})
		}
	}
	if timedOut && len(list) == 0 {
		// "None" would be a guess: the search did not finish.
		return "busy", busyText(j.Cmd.Lang), nil
	}
	return "accesses", accessesText(list, j.Cmd.Lang, g.opts.Location, g.opts.Now()), nil
}

func (g *Gateway) itineraryText(ctx context.Context, sub itinerary.Pseudonym, p *state.Request) (string, error) {
	start := time.Now()
	defer func() { g.m.lookup.Observe(time.Since(start).Seconds()) }()
	if p.Days > 15 {
		newer, older, err := g.deps.Itineraries.LookupSplit(ctx, sub, p.Days, 15)
		if err != nil {
			return "", err
		}
		return g.opts.Wording.Split(newer, older, p.Lang), nil
	}
	it, err := g.deps.Itineraries.Lookup(ctx, sub, p.Days)
	if err != nil {
		return "", err
	}
	return g.opts.Wording.Itinerary(it, p.Lang), nil
}

// reply sends text to the job's sender from the short code.
func (g *Gateway) reply(ctx context.Context, j *job, outcome, text string) error {
	number, err := g.deps.Sealer.Open(j.Sealed, []byte(j.ID))
	if err != nil {
		return err // not retryable: the job cannot be answered
	}
	_, err = g.deps.Sender.SubmitParts(ctx, &smpp.Message{
		Source:   smpp.Address{Addr: g.opts.ShortCode, TON: g.opts.ShortCodeTON, NPI: g.opts.ShortCodeNPI},
		Dest:     smpp.Address{Addr: msisdn.Number(number).Digits(), TON: g.opts.SubscriberTON, NPI: g.opts.SubscriberNPI},
		Text:     text,
		Carriage: g.opts.Carriage,
	})
	var pe *smpp.PartsError
	var se *smpp.StatusError
	switch {
	case err == nil:
		g.m.replies.WithLabelValues(outcome).Inc()
		g.m.endToEnd.WithLabelValues(j.Cmd.Kind.String()).Observe(g.opts.Now().Sub(j.Received).Seconds())
		return nil
	case errors.As(err, &pe) && len(pe.Accepted) > 0:
		// Some parts went: sending again would repeat them.
		g.m.replies.WithLabelValues("partial").Inc()
		return nil
	case errors.Is(err, smpp.ErrUnknownOutcome):
		// Written, unanswered: the SMSC may have it. Never resend blindly;
		// park it in case a redelivery of the MO proves it lost.
		g.m.replies.WithLabelValues("unknown").Inc()
		g.park(j, text)
		return nil
	case errors.As(err, &se) && !se.Temporary():
		g.m.replies.WithLabelValues("rejected").Inc()
		return nil
	default:
		return retryable{err}
	}
}

// claim takes key for j (see State.Claim) and remembers it, so that a
// reply parked for j can be found by the claim a redelivery runs into.
func (g *Gateway) claim(ctx context.Context, j *job, key string) (bool, error) {
	j.claims = append(j.claims, key)
	return g.deps.State.Claim(ctx, key, j.ID, g.opts.DedupTTL)
}

// parked is a reply whose submit_sm was written but never answered.
type parked struct {
	id      string // the job, whose id sealed the number
	sealed  []byte
	masked  string
	text    string
	expires time.Time
}

// maxParked bounds the replies kept in case they were lost.
const maxParked = 10_000

// park keeps j's reply under every claim j took, for DedupTTL: a
// redelivered MO runs into one of them. Only on a transceiver bind
// (Options.ResendLost), where a redelivery proves the reply lost.
func (g *Gateway) park(j *job, text string) {
	if !g.opts.ResendLost || len(j.claims) == 0 {
		return
	}
	p := &parked{id: j.ID, sealed: j.Sealed, masked: j.Masked, text: text, expires: g.opts.Now().Add(g.opts.DedupTTL)}
	g.parkMu.Lock()
	defer g.parkMu.Unlock()
	now := g.opts.Now()
	if len(g.parked) >= maxParked {
		for k, q := range g.parked {
			if now.After(q.expires) {
				delete(g.parked, k)
			}
		}
	}
	if len(g.parked) >= maxParked {
		return // a flood of lost links: these stay unknown
	}
	for _, k := range j.claims {
		g.parked[k] = p
	}
}

// resendParked sends again the reply parked under key, if any, once.
func (g *Gateway) resendParked(ctx context.Context, key string) error {
	g.parkMu.Lock()
	p := g.parked[key]
	if p != nil {
		for k, q := range g.parked {
			if q == p {
				delete(g.parked, k)
			}
		}
	}
	g.parkMu.Unlock()
	if p == nil || g.opts.Now().After(p.expires) {
		return nil
	}
	j := &job{ID: p.id, Sealed: p.sealed, Masked: p.masked, Received: g.opts.Now()}
	g.log.Info().Str(fieldJob, p.id).Str(fieldNumber, p.masked).Msg("MO redelivered after a reply of unknown outcome: sending the reply again")
	return g.reply(ctx, j, "resent", p.text)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

func (e *env) benchOverloadCommand() *cli.Command {
	return &cli.Command{
		Name:      "overload",
		Usage:     "measure what serve sustains, offer it several times that, drop back, and check that it recovers",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "subscribers", Value: 50_000, Usage: "population with 30 days of history; each queries one at a time"},
			&cli.Float64Flag{Name: "sustained", Usage: "queries/s serve sustains; default: measured first"},
			&cli.DurationFlag{Name: "measure-for", Value: 15 * time.Second, Usage: "how long the sustained rate is measured"},
			&cli.IntFlag{Name: "measure-concurrency", Value: 200, Usage: "subscribers querying at once while measuring"},
			&cli.Float64Flag{Name: "normal", Value: 0.5, Usage: "normal load, as a fraction of the sustained rate (before and after the overload)"},
			&cli.DurationFlag{Name: "baseline-for", Value: 15 * time.Second, Usage: "how long the normal load runs before the overload"},
			&cli.Float64Flag{Name: "factor", Value: 3, Usage: "the overload, as a multiple of the sustained rate"},
			&cli.DurationFlag{Name: "overload-for", Value: 20 * time.Second, Usage: "how long the overload is offered"},
			&cli.DurationFlag{Name: "recover-for", Value: 5 * time.Minute, Usage: "the most the normal load runs after it while the queues drain (the SMSC's held MOs and the gateway's backlog)"},
			&cli.DurationFlag{Name: "after-for", Value: 15 * time.Second, Usage: "how long the normal load runs once they drained"},
			&cli.DurationFlag{Name: "redelivery", Value: time.Second, Usage: "the SMSC's wait before redelivering an MO refused with ESME_RX_T_APPN"},
			&cli.IntFlag{Name: "smsc-window", Value: 200, Usage: "most deliver_sm the SMSC has outstanding on the bind (0: no bound, every held MO redelivered at once)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			serveArgFlag(),
		},
		Action: func(c *cli.Context) error {
			cfg := overloadConfig{
				serveArgs:   c.StringSlice("serve-arg"),
				subscribers: c.Int("subscribers"), sustained: c.Float64("sustained"),
				measureFor: c.Duration("measure-for"), measureConc: c.Int("measure-concurrency"),
				normal: c.Float64("normal"), baselineFor: c.Duration("baseline-for"),
				factor: c.Float64("factor"), overloadFor: c.Duration("overload-for"), recoverFor: c.Duration("recover-for"), afterFor: c.Duration("after-for"),
				redelivery: c.Duration("redelivery"), window: c.Int("smsc-window"),
			}
			switch {
			case cfg.sustained < 0:
				return fmt.Errorf("--sustained: want 0 (measure) or more")
			case cfg.normal <= 0 || cfg.normal >= 1:
				return fmt.Errorf("--normal: want a fraction between 0 and 1")
			case cfg.factor <= 1:
				return fmt.Errorf("--factor: want more than 1")
			case cfg.redelivery <= 0:
				return fmt.Errorf("--redelivery: want more than 0")
			case cfg.window < 0:
				return fmt.Errorf("--smsc-window: want 0 (no bound) or more")
			case cfg.measureConc < 1 || cfg.measureConc > cfg.subscribers:
				return fmt.Errorf("--measure-concurrency: want 1..--subscribers")
			case cfg.sustained == 0 && cfg.measureFor < time.Second, cfg.baselineFor < time.Second, cfg.overloadFor < time.Second, cfg.recoverFor < time.Second, cfg.afterFor < time.Second:
				return fmt.Errorf("phases: want --measure-for, --baseline-for, --overload-for, --recover-for and --after-for of 1s or more")
			}
			res, err := e.runOverload(c.Context, cfg)
			if res != nil {
				if perr := e.printBench(c.Bool("json"), res); perr != nil {
					return errors.Join(err, perr)
				}
			}
			return err
		},
	}
}

type overloadConfig struct {
	subscribers, measureConc, window                 int
	sustained, normal, factor                        float64
	measureFor, baselineFor, overloadFor, recoverFor time.Duration
	afterFor                                         time.Duration
	redelivery                                       time.Duration
	serveArgs                                        []string
}

// The phases, in order: after the overload, the normal load runs until
// the queues drained, then for a while longer to see the latency.
const (
	phMeasure = iota
	phBaseline
	phOverload
	phRecovery1
	phRecovery2
	phases
)

var phaseNames = [phases]string{"measure", "baseline", "overload", "recovery (draining)", "after the drain"}

type overloadPhase struct {
	Name            string  `json:"name"`
	Seconds         float64 `json:"seconds"`
	OfferedPerSec   float64 `json:"offered_per_s"` // queries asked for (open loop) or started (closed loop)
	StartedPerSec   float64 `json:"started_per_s"`
	CompletedPerSec float64 `json:"completed_per_s"` // queries whose itinerary came in the phase
	RepliesPerSec   float64 `json:"replies_per_s"`   // every reply serve sent in the phase: its throughput
	P50ms           float64 `json:"mo_to_reply_p50_ms"`
	P99ms           float64 `json:"mo_to_reply_p99_ms"`
	Replies         int     `json:"replies_timed"` // of queries started in the phase
	RefusedBacklog  float64 `json:"refused_backlog"`
	RefusedQueue    float64 `json:"refused_handler_queue"`
	RefusedOther    float64 `json:"refused_other"`
	MaxBacklog      float64 `json:"max_backlog"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	ServeCPU        float64 `json:"serve_cpu_cores"` // CPU seconds per second
	BenchCPU        float64 `json:"bench_cpu_cores"` // the simulator and the load
}

type overloadResult struct {
	Sustained     float64         `json:"sustained_per_s"`
	Window        int             `json:"smsc_window"`
	Measured      bool            `json:"sustained_measured"`
	Phases        []overloadPhase `json:"phases"`
	Refused       float64         `json:"refused_rx_t_appn"`
	Redelivered   int             `json:"redeliveries"`
	GivenUp       int64           `json:"mo_given_up"` // refused until the simulator stopped trying, or unsure
	Busy          int64           `json:"busy_replies"`
	Skipped       int64           `json:"skipped"`
	Errors        int64           `json:"errors"`
	Accepted      int64           `json:"mo_accepted"`
	Lost          int64           `json:"lost_replies"`
	Duplicates    int64           `json:"duplicate_replies"`
	Suppressed    float64         `json:"redeliveries_suppressed"`
	PeakRSSMB     float64         `json:"peak_rss_mb"`
	DrainSeconds  float64         `json:"drain_seconds"` // from the end of the overload until the queues were back to normal (overloadWatch)
	ErrorKinds    string          `json:"error_kinds,omitempty"`
	Recovered     bool            `json:"recovered"`
	RecoveryNotes []string        `json:"recovery_notes"`
}

func (r *overloadResult) table() string {
	var b strings.Builder
	how := "measured"
	if !r.Measured {
		how = "given"
	}
	win := fmt.Sprintf("the SMSC keeps at most %d deliver_sm outstanding", r.Window)
	if r.Window == 0 {
		win = "no bound on the SMSC's deliver_sm outstanding"
	}
	fmt.Fprintf(&b, "roamtrail bench overload: sustained %.0f queries/s (%s); serve as its own process; %s\n", r.Sustained, how, win)
	fmt.Fprintf(&b, "  %-19s %5s %9s %9s %7s %9s %8s %8s %8s %9s %7s %5s %5s\n", "phase", "secs", "offered/s", "started/s", "done/s", "replies/s", "p50 ms", "p99 ms", "refused", "max queue", "RSS MB", "cpu s", "cpu b")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "  %-19s %5.1f %9.0f %9.0f %7.0f %9.0f %8.1f %8.1f %8.0f %9.0f %7.1f %5.2f %5.2f\n", p.Name, p.Seconds, p.OfferedPerSec, p.StartedPerSec, p.CompletedPerSec, p.RepliesPerSec, p.P50ms, p.P99ms,
			p.RefusedBacklog+p.RefusedQueue+p.RefusedOther, p.MaxBacklog, p.PeakRSSMB, p.ServeCPU, p.BenchCPU)
	}
	fmt.Fprintf(&b, "  (queries/s offered, started, completed; replies/s: every SMS serve sent; p50/p99: MO to reply, of queries started in the phase;\n")
	fmt.Fprintf(&b, "   max queue: the gateway's backlog; cpu s/b: cores used by serve / by the simulator and load generator)\n")
	fmt.Fprintf(&b, "  refused with ESME_RX_T_APPN: %.0f (gateway backlog %.0f, handler queue %.0f, other %.0f); simulator redeliveries %d\n", r.Refused, r.sum(func(p overloadPhase) float64 { return p.RefusedBacklog }),
		r.sum(func(p overloadPhase) float64 { return p.RefusedQueue }), r.sum(func(p overloadPhase) float64 { return p.RefusedOther }), r.Redelivered)
	fmt.Fprintf(&b, "  polite busy replies: %d; MOs given up by the simulator: %d; queries skipped (no idle subscriber): %d; errors: %d\n", r.Busy, r.GivenUp, r.Skipped, r.Errors)
	if r.Errors > 0 {
		fmt.Fprintf(&b, "  errors: %s\n", r.ErrorKinds)
	}
	fmt.Fprintf(&b, "  MOs accepted %d: replies lost %d, duplicated %d (redeliveries suppressed by the gateway: %.0f)\n", r.Accepted, r.Lost, r.Duplicates, r.Suppressed)
	fmt.Fprintf(&b, "  peak RSS %.1f MB\n", r.PeakRSSMB)
	verdict := "recovered"
	if !r.Recovered {
		verdict = "NOT recovered"
	}
	fmt.Fprintf(&b, "  %s: %s\n", verdict, strings.Join(r.RecoveryNotes, "; "))
	return b.String()
}

func (r *overloadResult) sum(f func(overloadPhase) float64) float64 {
	t := 0.0
	for _, p := range r.Phases {
		t += f(p)
	}
	return t
}

// overloadWatch samples serve every 250 ms: the phase's peak RSS and
// backlog, and when the queues were back to normal after the overload:
// the gateway's backlog and the queries in flight (the MOs the SMSC holds
// among them) both within twice the most seen in the baseline.
type overloadWatch struct {
	mu          sync.Mutex
	phase       int
	peakRSS     [phases]float64
	maxBacklog  [phases]float64
	maxInflight [phases]float64
	overEnd     time.Time // when the overload ended
	drainedAt   time.Time
	drained     chan struct{} // closed at drainedAt
}

func (w *overloadWatch) run(ctx context.Context, r *rig, ql *queryLoad) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, perr := r.proc()
		m, merr := r.metrics(ctx)
		w.mu.Lock()
		if perr == nil {
			w.peakRSS[w.phase] = max(w.peakRSS[w.phase], float64(p.RSS)/(1<<20))
		}
		inflight := float64(ql.inflight.Load())
		w.maxInflight[w.phase] = max(w.maxInflight[w.phase], inflight)
		if merr == nil {
			q := m["roamtrail_jobs_backlog"]
			w.maxBacklog[w.phase] = max(w.maxBacklog[w.phase], q)
			if !w.overEnd.IsZero() && w.drainedAt.IsZero() &&
				q <= max(2*w.maxBacklog[phBaseline], 10) && inflight <= max(2*w.maxInflight[phBaseline], 10) {
				w.drainedAt = time.Now()
				close(w.drained)
			}
		}
		w.mu.Unlock()
	}
}

func (w *overloadWatch) setPhase(p int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.phase == phOverload {
		w.overEnd = time.Now()
	}
	w.phase = p
}

func (e *env) runOverload(ctx context.Context, cfg overloadConfig) (*overloadResult, error) {
	r, err := startRig(ctx, rigConfig{
		subscribers: cfg.subscribers, progress: e.stderr,
		// The refusals under test are the backlog's and the handler
		// queue's; the daily limit and the flood breaker stay out of it.
		serveArgs: append([]string{"--daily-limit", "1000000000", "--global-limit", "1000000000"}, cfg.serveArgs...),
		// An SMSC keeps a refused MO and retries it for a long while.
		sim: simSchedule(cfg.window, cfg.redelivery),
	})
	if err != nil {
		return nil, err
	}
	defer r.close(ctx)
	res, err := overload(ctx, r, cfg, e)
	if serr := r.stopServe(); serr != nil {
		err = errors.Join(err, serr)
	}
	return res, err
}

// keepFor is how long the SMSC keeps retrying a refused MO.
const keepFor = 10 * time.Minute

// simSchedule is the simulator's redelivery: its own when the bind has no
// window, else one attempt per delivery, the bench retrying (queryLoad.inject).
func simSchedule(window int, redelivery time.Duration) smsc.Options {
	if window > 0 {
		return smsc.Options{MaxDeliveryAttempts: 1}
	}
	return smsc.Options{RedeliveryDelay: redelivery, MaxDeliveryAttempts: int(keepFor/redelivery) + 1}
}

func overload(ctx context.Context, r *rig, cfg overloadConfig, e *env) (*overloadResult, error) {
	numbers := make([]string, cfg.subscribers)
	for i := range numbers {
		numbers[i] = strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i), 10)
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(numbers), func(i, j int) { numbers[i], numbers[j] = numbers[j], numbers[i] })
	q := newQueryLoad(r, numbers, len(numbers))
	if cfg.window > 0 {
		q.window, q.redelivery, q.attempts = make(chan struct{}, cfg.window), cfg.redelivery, int(keepFor/cfg.redelivery)+1
	}
	res := &overloadResult{Sustained: cfg.sustained, Measured: cfg.sustained == 0, Window: cfg.window}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	w := overloadWatch{drained: make(chan struct{})}
	var watchWG sync.WaitGroup
	watchWG.Go(func() { w.run(loadCtx, r, q) })
	defer func() { stopLoad(); watchWG.Wait() }()

	type mark struct {
		at                   time.Time
		started, completed   int64
		backlog, queue, othr float64
		serveCPU, benchCPU   float64
		replies              float64
	}
	snap := func() (mark, error) {
		m, err := r.metrics(ctx)
		if err != nil {
			return mark{}, fmt.Errorf("bench: serve's /metrics: %w", err)
		}
		all := m.sum("roamtrail_mo_refused_total")
		bl := m[`roamtrail_mo_refused_total{reason="backlog"}`]
		qf := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, "roamtrail_smpp_inbound_total{") && strings.Contains(k, `kind="busy"`) {
				qf += v
			}
		}
		return mark{at: time.Now(), started: q.started.Load(), completed: q.completed.Load(), backlog: bl, queue: qf, othr: all - bl,
			serveCPU: cpuSeconds(r.serve.Process.Pid), benchCPU: cpuSeconds(os.Getpid()), replies: m.sum("roamtrail_replies_total")}, nil
	}
	phase := func(p int, offered float64, run func()) error {
		if err := r.crashed(); err != nil {
			return err
		}
		q.phase.Store(int32(p))
		w.setPhase(p)
		a, err := snap()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "bench overload: %s...\n", phaseNames[p])
		run()
		b, err := snap()
		if err != nil {
			return err
		}
		secs := b.at.Sub(a.at).Seconds()
		ph := overloadPhase{
			Name: phaseNames[p], Seconds: secs, OfferedPerSec: offered,
			StartedPerSec: float64(b.started-a.started) / secs, CompletedPerSec: float64(b.completed-a.completed) / secs,
			RefusedBacklog: b.backlog - a.backlog, RefusedQueue: b.queue - a.queue, RefusedOther: b.othr - a.othr,
			ServeCPU: (b.serveCPU - a.serveCPU) / secs, BenchCPU: (b.benchCPU - a.benchCPU) / secs,
			RepliesPerSec: (b.replies - a.replies) / secs,
		}
		if offered == 0 {
			ph.OfferedPerSec = ph.StartedPerSec
		}
		res.Phases = append(res.Phases, ph)
		return nil
	}
	// paced runs rate queries a second for d, or until until closes.
	paced := func(rate float64, d time.Duration, until <-chan struct{}) func() {
		return func() {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { q.pace(loadCtx, rate, stop) })
			select {
			case <-time.After(d):
			case <-until:
			case <-r.exited:
			case <-ctx.Done():
			}
			close(stop)
			wg.Wait()
		}
	}

	if cfg.sustained == 0 {
		err := phase(phMeasure, 0, func() {
			var wg sync.WaitGroup
			deadline := time.Now().Add(cfg.measureFor)
			for range cfg.measureConc {
				wg.Go(func() {
					for time.Now().Before(deadline) && loadCtx.Err() == nil {
						ln := <-q.pool
						q.started.Add(1)
						if q.query(loadCtx, ln) {
							q.pool <- ln
						}
					}
				})
			}
			wg.Wait()
		})
		if err != nil {
			return res, err
		}
		res.Sustained = res.Phases[0].CompletedPerSec
		if res.Sustained <= 0 {
			return res, errors.New("bench: no query completed while measuring the sustained rate")
		}
		fmt.Fprintf(e.stderr, "bench overload: serve sustained %.0f queries/s\n", res.Sustained)
	}
	normal := cfg.normal * res.Sustained
	over := cfg.factor * res.Sustained
	steps := []struct {
		p     int
		rate  float64
		d     time.Duration
		until <-chan struct{}
	}{
		{phBaseline, normal, cfg.baselineFor, nil},
		{phOverload, over, cfg.overloadFor, nil},
		{phRecovery1, normal, cfg.recoverFor, w.drained},
		{phRecovery2, normal, cfg.afterFor, nil},
	}
	for _, s := range steps {
		if err := phase(s.p, s.rate, paced(s.rate, s.d, s.until)); err != nil {
			return res, err
		}
	}
	// The load stops; what is in flight finishes, the queue drains.
	w.setPhase(phRecovery2)
	if !waitDone(&q.wg, q.replyWait+q.injectWait) {
		res.RecoveryNotes = append(res.RecoveryNotes, "queries still in flight long after the load stopped")
	}
	if err := r.crashed(); err != nil {
		return res, err
	}
	drainErr := r.drain(ctx)
	stopLoad()
	watchWG.Wait()

	for i := range res.Phases {
		p := phMeasure + i
		if !res.Measured {
			p = phBaseline + i
		}
		ds := q.lat.phase(p)
		res.Phases[i].Replies = len(ds)
		res.Phases[i].P50ms, res.Phases[i].P99ms = quantiles(ds)
		res.Phases[i].MaxBacklog, res.Phases[i].PeakRSSMB = w.maxBacklog[p], w.peakRSS[p]
	}
	if m, err := r.metrics(ctx); err == nil {
		res.Suppressed = m["roamtrail_mo_duplicates_total"]
	}
	if p, err := r.proc(); err == nil {
		res.PeakRSSMB = float64(p.HWM) / (1 << 20)
	}
	st := r.sim.Stats()
	res.Redelivered = st.MORedelivered + int(q.redelivered.Load())
	res.Refused = res.sum(func(p overloadPhase) float64 { return p.RefusedBacklog + p.RefusedQueue + p.RefusedOther })
	res.GivenUp, res.Busy, res.Skipped, res.Errors = q.notTaken.Load(), q.busy.Load(), q.skipped.Load(), q.errs.Load()
	res.ErrorKinds = q.why()
	res.Lost, res.Duplicates = r.lines.account()
	for _, ln := range r.lines.snapshot() {
		res.Accepted += ln.want.Load()
	}
	if !w.drainedAt.IsZero() {
		res.DrainSeconds = w.drainedAt.Sub(w.overEnd).Seconds()
	}

	// Recovered: the queues drained, the load after that was answered
	// about as quickly as in the baseline (p50 within 2x + 5 ms, p99
	// within 3x + 50 ms: the machine is shared and a p99 over seconds is
	// one GC or one neighbour), and every MO taken got exactly one reply.
	res.Recovered = true
	note := func(ok bool, s string) {
		if !ok {
			res.Recovered = false
			s = "NOT " + s
		}
		res.RecoveryNotes = append(res.RecoveryNotes, s)
	}
	note(drainErr == nil && !w.drainedAt.IsZero(), fmt.Sprintf("queues drained under the normal load (%.1fs after the overload)", res.DrainSeconds))
	base, rec := res.phase(phaseNames[phBaseline]), res.phase(phaseNames[phRecovery2])
	latOK := base != nil && rec != nil && rec.Replies > 0 && rec.P50ms <= 2*base.P50ms+5 && rec.P99ms <= 3*base.P99ms+50
	s := "latency back to normal"
	if base != nil && rec != nil {
		s += fmt.Sprintf(" (p50 %.1f ms, p99 %.1f ms; before the overload %.1f and %.1f)", rec.P50ms, rec.P99ms, base.P50ms, base.P99ms)
	}
	note(latOK, s)
	note(res.Lost == 0 && res.Duplicates == 0, fmt.Sprintf("every accepted MO answered exactly once (%d lost, %d duplicated)", res.Lost, res.Duplicates))
	return res, drainErr
}

func (r *overloadResult) phase(name string) *overloadPhase {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

func (l *mtLines) snapshot() []*mtLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*mtLine, 0, len(l.lines))
	for _, ln := range l.lines {
		out = append(out, ln)
	}
	return out
}

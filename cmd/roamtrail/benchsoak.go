package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/cmd/roamtrail/internal/plot"
	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// bench soak and bench overload drive `roamtrail serve` run as a process of
// its own (this binary, os.Executable), bound over loopback TCP to the SMSC
// simulator running in the bench process, with a generated population
// ingested first. The staff, ingest and purge commands are run as
// processes too, as an operator runs them, while serve runs: they reach it
// over its admin socket. What is measured of serve is read from outside:
// /proc/PID for memory and open files, its /metrics for goroutines and
// queue depths.

func (e *env) benchSoakCommand() *cli.Command {
	return &cli.Command{
		Name:      "soak",
		Usage:     "run serve for a long while under a steady mixed load and record its memory, goroutines, open files and latency",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Minute, Usage: "how long the load runs"},
			&cli.StringFlag{Name: "out", Usage: "dir for soak.csv and soak.png (created); default: none written"},
			&cli.IntFlag{Name: "subscribers", Value: 10_000, Usage: "population with 30 days of history"},
			&cli.Float64Flag{Name: "rate", Value: 50, Usage: "SMS queries started per second (each is a request and a Y)"},
			&cli.IntFlag{Name: "concurrency", Value: 200, Usage: "most queries in flight; a query due past it is counted as skipped"},
			&cli.DurationFlag{Name: "sample", Value: 5 * time.Second, Usage: "how often serve is measured"},
			&cli.DurationFlag{Name: "staff-every", Value: 10 * time.Second, Usage: "a staff lookup (code by SMS, then the itinerary) this often; 0: none"},
			&cli.DurationFlag{Name: "ingest-every", Value: 30 * time.Second, Usage: "an ingest of new events into the running service this often; 0: none"},
			&cli.DurationFlag{Name: "purge-every", Value: 2 * time.Minute, Usage: "a purge through the running service this often; 0: none"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object"},
			serveArgFlag(),
		},
		Action: func(c *cli.Context) error {
			cfg := soakConfig{
				duration: c.Duration("duration"), out: c.String("out"), subscribers: c.Int("subscribers"),
				rate: c.Float64("rate"), concurrency: c.Int("concurrency"), sample: c.Duration("sample"),
				serveArgs:  c.StringSlice("serve-arg"),
				staffEvery: c.Duration("staff-every"), ingestEvery: c.Duration("ingest-every"), purgeEvery: c.Duration("purge-every"),
			}
			switch {
			case cfg.duration < time.Second:
				return fmt.Errorf("--duration: want at least 1s")
			case cfg.sample < 100*time.Millisecond || cfg.sample > cfg.duration:
				return fmt.Errorf("--sample: want 100ms..--duration")
			case cfg.rate <= 0:
				return fmt.Errorf("--rate: want more than 0")
			case cfg.concurrency < 1:
				return fmt.Errorf("--concurrency: want 1 or more")
			case cfg.subscribers < cfg.concurrency+staffNumbers+1:
				return fmt.Errorf("--subscribers: want more than --concurrency + %d", staffNumbers)
			}
			res, err := e.runSoak(c.Context, cfg)
			if res != nil {
				if perr := e.printBench(c.Bool("json"), res); perr != nil {
					return errors.Join(err, perr)
				}
			}
			return err
		},
	}
}

type soakConfig struct {
	duration, sample                    time.Duration
	staffEvery, ingestEvery, purgeEvery time.Duration
	out                                 string
	serveArgs                           []string
	subscribers, concurrency            int
	rate                                float64
}

// serveArgFlag passes more flags to serve (--serve-arg=--redis-url=URL).
func serveArgFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "serve-arg", Usage: "one more flag for serve, e.g. --serve-arg=--redis-url=redis://127.0.0.1:6379/0 (repeatable)"}
}

// staffNumbers subscribers at the end of the population are the subjects
// of staff lookups, never SMS senders: a number gets at most 3 codes an
// hour, and their MTs (codes, notices) must not be taken for query
// replies.
const staffNumbers = 200

// rigConfig sets up a rig.
type rigConfig struct {
	subscribers int
	serveArgs   []string     // beyond --smsc, --data-dir, --http
	sim         smsc.Options // RedeliveryDelay and MaxDeliveryAttempts matter
	progress    io.Writer
}

// rig is the simulator, a data dir with a population, and serve running
// as its own process.
type rig struct {
	exe      string
	tmp      string
	dataDir  string
	httpAddr string
	progress io.Writer
	sim      *smsc.Server
	simStop  func()
	lines    *mtLines

	serve    *exec.Cmd
	serveLog string
	exited   chan struct{} // closed when serve exited
	exitErr  error         // serve's exit, after exited
	stopping atomic.Bool
}

// startRig makes the data dir, ingests the population with `roamtrail
// ingest`, starts the simulator and serve, and waits for the bind.
func startRig(ctx context.Context, cfg rigConfig) (_ *rig, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: this binary's path, to run serve: %w", err)
	}
	r := &rig{exe: exe, progress: cfg.progress, lines: &mtLines{lines: map[string]*mtLine{}}}
	defer func() {
		if err != nil {
			r.close(context.WithoutCancel(ctx))
		}
	}()
	if r.tmp, err = os.MkdirTemp("", "roamtrail-soak-"); err != nil {
		return nil, err
	}
	r.dataDir = filepath.Join(r.tmp, "data")
	r.serveLog = filepath.Join(r.tmp, "serve.log")

	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return nil, err
	}
	pop := fixtures.Config{Subscribers: cfg.subscribers, Days: 30, Seed: 1, End: time.Now(), Location: loc}
	if err := pop.Validate(); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.progress, "bench: ingesting %d subscribers x 30 days with roamtrail ingest...\n", cfg.subscribers)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fixtures.WriteCSV(ctx, pw, pop)) }()
	out, err := r.runIn(ctx, pr, "ingest", "--data-dir", r.dataDir, "-")
	pr.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: ingest: %w\n%s", err, out)
	}

	simOpts := cfg.sim
	simOpts.OnMT = r.lines.onMT
	simOpts.MTLog = 16 // the bench keeps its own account of MTs
	if simOpts.Logger == nil {
		nop := zerolog.Nop()
		simOpts.Logger = &nop
	}
	if r.sim, err = smsc.Listen("127.0.0.1:0", simOpts); err != nil {
		return nil, err
	}
	simCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var simWG sync.WaitGroup
	simWG.Go(func() { r.sim.Serve(simCtx) })
	r.simStop = func() { r.sim.Close(); cancel(); simWG.Wait() }

	if r.httpAddr, err = loopbackPort(); err != nil {
		return nil, err
	}
	logf, err := os.Create(r.serveLog)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--log-level", "warn", "serve", "--smsc", r.sim.Addr(), "--data-dir", r.dataDir, "--http", r.httpAddr}, cfg.serveArgs...)
	r.serve = exec.Command(r.exe, args...)
	r.serve.Stdout, r.serve.Stderr = logf, logf
	if err := r.serve.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start serve: %w", err)
	}
	r.exited = make(chan struct{})
	go func() {
		r.exitErr = r.serve.Wait()
		logf.Close()
		close(r.exited)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := r.waitHealthy(wctx); err != nil {
		return nil, err
	}
	return r, nil
}

// loopbackPort is a loopback address nobody listens on right now.
func loopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy waits until serve's /healthz says it is bound.
func (r *rig) waitHealthy(ctx context.Context) error {
	for {
		resp, err := http.Get("http://" + r.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.exited:
			return fmt.Errorf("bench: serve exited at start: %v\n%s", r.exitErr, r.logTail())
		case <-ctx.Done():
			return fmt.Errorf("bench: serve never bound: %w\n%s", ctx.Err(), r.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// crashed says why serve exited if it did while nobody stopped it.
func (r *rig) crashed() error {
	select {
	case <-r.exited:
		if !r.stopping.Load() {
			return fmt.Errorf("bench: serve exited under load: %v\n%s", r.exitErr, r.logTail())
		}
	default:
	}
	return nil
}

// stopServe sends SIGTERM and waits: serve must finish what it took and
// exit 0.
func (r *rig) stopServe() error {
	if r.serve == nil || r.serve.Process == nil {
		return nil
	}
	r.stopping.Store(true)
	select {
	case <-r.exited:
		return r.exitErr
	default:
	}
	r.serve.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if r.exitErr != nil {
			return fmt.Errorf("bench: serve after SIGTERM: %w\n%s", r.exitErr, r.logTail())
		}
		return nil
	case <-time.After(90 * time.Second):
		r.serve.Process.Kill()
		<-r.exited
		return fmt.Errorf("bench: serve did not exit within 90s of SIGTERM\n%s", r.logTail())
	}
}

// close stops serve and the simulator and removes the temporary dir.
func (r *rig) close(ctx context.Context) error {
	err := r.stopServe()
	if r.simStop != nil {
		r.simStop()
	}
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
	return err
}

// logTail is the end of serve's log, for an error.
func (r *rig) logTail() string {
	b, _ := os.ReadFile(r.serveLog)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// runIn runs this binary with args (a command against the data dir) and
// returns what it printed.
func (r *rig) runIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.exe, append([]string{"--log-level", "warn"}, args...)...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// proc is what /proc says of serve now.
type proc struct {
	RSS, HWM int64 // bytes
	FDs      int
}

// cpuSeconds is the user and system CPU time pid used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th after it, in ticks
	// (USER_HZ, 100 on Linux).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return math.NaN()
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

func (r *rig) proc() (proc, error) {
	var p proc
	pid := r.serve.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, f := range []struct {
			name string
			v    *int64
		}{{"VmRSS:", &p.RSS}, {"VmHWM:", &p.HWM}} {
			if rest, ok := strings.CutPrefix(line, f.name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				*f.v = kb << 10
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return p, err
	}
	p.FDs = len(fds)
	return p, nil
}

// promSamples is one read of /metrics: "name{labels}" to value.
type promSamples map[string]float64

// sum adds every sample of name, whatever its labels.
func (m promSamples) sum(name string) float64 {
	t := 0.0
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}

func (r *rig) metrics(ctx context.Context) (promSamples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := promSamples{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// mtLines accounts for every MT by the number it went to: each number the
// bench drives expects exactly one MT for each MO the gateway took (and
// each staff step that texts it). onMT runs on the simulator's connection
// goroutine and never blocks.
type mtLines struct {
	mu    sync.Mutex
	lines map[string]*mtLine
	stray atomic.Int64 // MTs to a number the bench does not drive
}

type mtLine struct {
	number    string // as the SMSC addresses it: 86...
	national  string // as staff type it
	ch        chan smsc.MT
	got       atomic.Int64 // MTs that came
	want      atomic.Int64 // MTs owed: MOs taken, staff steps that text
	uncertain atomic.Int64 // MOs whose fate the bench does not know (0 or 1 MT)
	overflow  atomic.Int64 // MTs nobody read in time
}

func (l *mtLines) line(national string) *mtLine {
	ln := &mtLine{number: "86" + national, national: national, ch: make(chan smsc.MT, 16)}
	l.mu.Lock()
	l.lines[ln.number] = ln
	l.mu.Unlock()
	return ln
}

func (l *mtLines) onMT(mt smsc.MT) {
	l.mu.Lock()
	ln := l.lines[mt.To]
	l.mu.Unlock()
	if ln == nil {
		l.stray.Add(1)
		return
	}
	ln.got.Add(1)
	select {
	case ln.ch <- mt:
	default:
		ln.overflow.Add(1)
	}
}

// account compares MTs with what was owed, number by number.
func (l *mtLines) account() (lost, dup int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lines {
		got, want, unc := ln.got.Load(), ln.want.Load(), ln.uncertain.Load()
		if got < want {
			lost += want - got
		}
		if got > want+unc {
			dup += got - want - unc
		}
	}
	return lost, dup
}

// wait reads the next MT to ln, or gives up after d.
func (ln *mtLine) wait(ctx context.Context, d time.Duration) (smsc.MT, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case mt := <-ln.ch:
		return mt, nil
	case <-t.C:
		return smsc.MT{}, errNoReply
	case <-ctx.Done():
		return smsc.MT{}, ctx.Err()
	}
}

var errNoReply = errors.New("no reply")

// The replies a query expects, and the polite refusal.
const (
	promptPrefix    = "您正在查询"
	itineraryPrefix = "根据您的授权查询"
	busyReply       = "系统繁忙，请稍后再试。"
)

// latencies collects MO-to-reply times: per sampling interval, and per
// phase (bench overload).
type latencies struct {
	mu      sync.Mutex
	cur     []time.Duration
	byPhase map[int][]time.Duration
}

func (l *latencies) add(phase int, d time.Duration) {
	l.mu.Lock()
	l.cur = append(l.cur, d)
	if l.byPhase == nil {
		l.byPhase = map[int][]time.Duration{}
	}
	l.byPhase[phase] = append(l.byPhase[phase], d)
	l.mu.Unlock()
}

// interval returns and resets what came since the last call.
func (l *latencies) interval() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cur
	l.cur = nil
	return c
}

func (l *latencies) phase(p int) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byPhase[p])
}

// quantiles returns p50 and p99 in milliseconds; NaN when there is none.
func quantiles(ds []time.Duration) (p50, p99 float64) {
	if len(ds) == 0 {
		return math.NaN(), math.NaN()
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1e3 }
	return q(0.5), q(0.99)
}

// queryLoad drives SMS queries (a request, its prompt, Y, the itinerary)
// from a pool of subscribers, one query at a time per subscriber.
type queryLoad struct {
	rig        *rig
	pool       chan *mtLine // idle subscribers
	lat        latencies
	phase      atomic.Int32 // tags latencies with the phase a query started in
	limit      int64        // queries in flight at most
	replyWait  time.Duration
	injectWait time.Duration

	// window, when set, makes the bench the SMSC's delivery schedule: at
	// most cap(window) deliver_sm outstanding on the bind, as an SMSC's
	// window allows, each MO tried once by the simulator and, when
	// refused, again after redelivery. Unset: the simulator's own
	// redelivery, with no bound on deliver_sm outstanding.
	window      chan struct{}
	redelivery  time.Duration
	attempts    int
	redelivered atomic.Int64

	started, completed, skipped  atomic.Int64
	errs                         atomic.Int64 // queries that failed, any reason
	notTaken, noReply, wrongText atomic.Int64 // why
	busy                         atomic.Int64 // polite "busy" replies
	inflight                     atomic.Int64
	wg                           sync.WaitGroup

	wrongMu sync.Mutex
	wrong   []string // the first unexpected replies
}

// newQueryLoad makes a pool of numbers, of which at most limit query at
// once.
func newQueryLoad(r *rig, numbers []string, limit int) *queryLoad {
	// An MO is given up only after the SMSC's own keepFor of redeliveries.
	q := &queryLoad{rig: r, pool: make(chan *mtLine, len(numbers)), limit: int64(limit), replyWait: 2 * time.Minute, injectWait: keepFor + time.Minute}
	for _, n := range numbers {
		q.pool <- r.lines.line(n)
	}
	return q
}

// start begins one query if fewer than limit are in flight and a
// subscriber is idle; false counts it skipped.
func (q *queryLoad) start(ctx context.Context) bool {
	if q.inflight.Load() >= q.limit {
		q.skipped.Add(1)
		return false
	}
	select {
	case ln := <-q.pool:
		q.started.Add(1)
		q.inflight.Add(1)
		q.wg.Go(func() {
			defer q.inflight.Add(-1)
			if q.query(ctx, ln) {
				q.pool <- ln
			}
		})
		return true
	default:
		q.skipped.Add(1)
		return false
	}
}

// query runs one query; it reports whether the subscriber may be used
// again (a subscriber whose reply went missing might still get it late).
func (q *queryLoad) query(ctx context.Context, ln *mtLine) bool {
	phase := int(q.phase.Load())
	for i, text := range []string{"CXMYD", "Y"} {
		t0 := time.Now()
		ictx, cancel := context.WithTimeout(ctx, q.injectWait)
		err := q.inject(ictx, ln.number, text)
		cancel()
		if err != nil {
			// Refused until the simulator gave up, or our own deadline:
			// whether the gateway took it in the end is not known.
			ln.uncertain.Add(1)
			q.errs.Add(1)
			q.notTaken.Add(1)
			return false
		}
		ln.want.Add(1)
		mt, err := ln.wait(ctx, q.replyWait)
		if err != nil {
			q.errs.Add(1)
			q.noReply.Add(1)
			return false
		}
		q.lat.add(phase, time.Since(t0))
		switch {
		case mt.Text == busyReply:
			q.busy.Add(1)
			return true
		case i == 0 && !strings.HasPrefix(mt.Text, promptPrefix), i == 1 && !strings.HasPrefix(mt.Text, itineraryPrefix):
			q.errs.Add(1)
			q.wrongText.Add(1)
			q.sampleWrong(text, mt.Text)
			return true
		}
	}
	q.completed.Add(1)
	return true
}

// inject delivers one MO to the gateway, retrying while it is refused.
func (q *queryLoad) inject(ctx context.Context, from, text string) error {
	if q.window == nil {
		return q.rig.sim.InjectMO(ctx, from, "10086", text)
	}
	for attempt := 1; ; attempt++ {
		select {
		case q.window <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := q.rig.sim.InjectMO(ctx, from, "10086", text)
		<-q.window
		if err == nil || !errors.Is(err, smsc.ErrNotDelivered) || attempt >= q.attempts {
			return err
		}
		q.redelivered.Add(1)
		select {
		case <-time.After(q.redelivery):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sampleWrong keeps the first few unexpected replies (the service's own
// wording, never a number) for the report.
func (q *queryLoad) sampleWrong(mo, mt string) {
	q.wrongMu.Lock()
	defer q.wrongMu.Unlock()
	if len(q.wrong) < 5 {
		q.wrong = append(q.wrong, fmt.Sprintf("%s -> %q", mo, mt))
	}
}

// why says what the errors were.
func (q *queryLoad) why() string {
	q.wrongMu.Lock()
	defer q.wrongMu.Unlock()
	s := fmt.Sprintf("MO not taken %d, no reply in %s %d, unexpected reply %d", q.notTaken.Load(), q.replyWait, q.noReply.Load(), q.wrongText.Load())
	if len(q.wrong) > 0 {
		s += ": " + strings.Join(q.wrong, ", ")
	}
	return s
}

// pace starts queries at rate per second until ctx ends or stop closes.
func (q *queryLoad) pace(ctx context.Context, rate float64, stop <-chan struct{}) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	begin, due := time.Now(), int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		target := int64(time.Since(begin).Seconds() * rate)
		for ; due < target; due++ {
			q.start(ctx)
		}
	}
}

// soakSample is one row of soak.csv.
type soakSample struct {
	Seconds    float64 `json:"t_s"`
	RSSMB      float64 `json:"rss_mb"`
	HeapMB     float64 `json:"go_heap_mb"` // in use, from go_memstats_heap_inuse_bytes
	Goroutines float64 `json:"goroutines"`
	FDs        int     `json:"open_fds"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Queries    int64   `json:"queries"`
	Errors     int64   `json:"errors"`
	Backlog    float64 `json:"backlog"`
}

type seriesSummary struct {
	Series  string  `json:"series"`
	Q1      float64 `json:"first_quarter_avg"`
	Q3      float64 `json:"third_quarter_avg"`
	Q4      float64 `json:"last_quarter_avg"`
	Verdict string  `json:"verdict"`
}

type soakResult struct {
	Seconds      float64         `json:"seconds"`
	Rate         float64         `json:"rate_per_s"`
	Subscribers  int             `json:"subscribers"`
	Queries      int64           `json:"queries"`
	Errors       int64           `json:"errors"`
	Skipped      int64           `json:"skipped"`
	Busy         int64           `json:"busy_replies"`
	Lost         int64           `json:"lost_replies"`
	Duplicates   int64           `json:"duplicate_replies"`
	Stray        int64           `json:"stray_mts"`
	StaffOK      int64           `json:"staff_lookups"`
	StaffErrors  int64           `json:"staff_errors"`
	Ingests      int64           `json:"ingests"`
	IngestErrors int64           `json:"ingest_errors"`
	Purges       int64           `json:"purges"`
	PurgeErrors  int64           `json:"purge_errors"`
	PeakRSSMB    float64         `json:"peak_rss_mb"`
	Summary      []seriesSummary `json:"summary"`
	Verdict      string          `json:"verdict"`
	Samples      []soakSample    `json:"samples"`
	ErrorKinds   string          `json:"error_kinds,omitempty"`
	OpErrors     []string        `json:"op_errors,omitempty"`
}

func (r *soakResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "roamtrail bench soak: %.0fs at %.0f queries/s, %d subscribers, serve as its own process\n", r.Seconds, r.Rate, r.Subscribers)
	fmt.Fprintf(&b, "  queries %d, errors %d, skipped %d, busy replies %d; replies lost %d, duplicated %d\n", r.Queries, r.Errors, r.Skipped, r.Busy, r.Lost, r.Duplicates)
	fmt.Fprintf(&b, "  staff lookups %d (errors %d), ingests %d (errors %d), purges %d (errors %d); peak RSS %.1f MB\n", r.StaffOK, r.StaffErrors, r.Ingests, r.IngestErrors, r.Purges, r.PurgeErrors, r.PeakRSSMB)
	fmt.Fprintf(&b, "  %-12s %14s %14s %14s  %s\n", "series", "first quarter", "third quarter", "last quarter", "verdict")
	for _, s := range r.Summary {
		fmt.Fprintf(&b, "  %-12s %14.2f %14.2f %14.2f  %s\n", s.Series, s.Q1, s.Q3, s.Q4, s.Verdict)
	}
	fmt.Fprintf(&b, "  verdict: %s\n", r.Verdict)
	if r.Errors > 0 {
		fmt.Fprintf(&b, "  query errors: %s\n", r.ErrorKinds)
	}
	for _, e := range r.OpErrors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	return b.String()
}

// soakOps counts the side operations and keeps their first errors.
type soakOps struct {
	staffOK, staffErr, ingests, ingestErr, purges, purgeErr atomic.Int64

	mu   sync.Mutex
	errs []string
}

func (o *soakOps) fail(what string, err error, out string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) < 10 {
		o.errs = append(o.errs, fmt.Sprintf("%s: %v: %s", what, err, strings.TrimSpace(out)))
	}
}

func (e *env) runSoak(ctx context.Context, cfg soakConfig) (*soakResult, error) {
	if cfg.out != "" {
		if err := os.MkdirAll(cfg.out, 0o755); err != nil {
			return nil, fmt.Errorf("--out: %w", err)
		}
	}
	r, err := startRig(ctx, rigConfig{
		subscribers: cfg.subscribers, progress: e.stderr,
		// The load repeats queries all day and may burst: neither the
		// daily limit nor the flood breaker is what a soak looks at.
		serveArgs: append([]string{"--daily-limit", "1000000000", "--global-limit", "1000000000"}, cfg.serveArgs...),
	})
	if err != nil {
		return nil, err
	}
	defer r.close(ctx)

	var ops soakOps
	if cfg.staffEvery > 0 {
		for _, args := range [][]string{
			{"operators", "add", "--data-dir", r.dataDir, "root", "--role", "admin", "--bootstrap"},
			{"operators", "add", "--data-dir", r.dataDir, "--operator", "root", "soak", "--role", "agent"},
		} {
			if out, err := r.runIn(ctx, nil, args...); err != nil {
				return nil, fmt.Errorf("bench: %s: %w\n%s", strings.Join(args[:2], " "), err, out)
			}
		}
	}
	numbers := make([]string, cfg.subscribers-staffNumbers)
	for i := range numbers {
		numbers[i] = strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i), 10)
	}
	// A shuffled pool spreads the queries over the population.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(numbers), func(i, j int) { numbers[i], numbers[j] = numbers[j], numbers[i] })
	q := newQueryLoad(r, numbers, cfg.concurrency)

	res := &soakResult{Rate: cfg.rate, Subscribers: cfg.subscribers}
	var csvw *csv.Writer
	if cfg.out != "" {
		f, err := os.Create(filepath.Join(cfg.out, "soak.csv"))
		if err != nil {
			return nil, fmt.Errorf("--out: %w", err)
		}
		defer f.Close()
		csvw = csv.NewWriter(f)
		csvw.Write([]string{"t_s", "rss_mb", "go_heap_mb", "goroutines", "open_fds", "p50_ms", "p99_ms", "queries", "errors", "backlog"})
	}

	fmt.Fprintf(e.stderr, "bench soak: serve is pid %d; %s of load at %.0f queries/s, measured every %s...\n", r.serve.Process.Pid, cfg.duration, cfg.rate, cfg.sample)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Go(func() { q.pace(loadCtx, cfg.rate, stop) })
	every := func(d time.Duration, f func(i int)) {
		if d <= 0 {
			return
		}
		side.Go(func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-loadCtx.Done():
					return
				case <-t.C:
				}
				f(i)
			}
		})
	}
	staffSubjects := make([]*mtLine, staffNumbers)
	for i := range staffSubjects {
		staffSubjects[i] = r.lines.line(strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(cfg.subscribers-staffNumbers+i), 10))
	}
	every(cfg.staffEvery, func(i int) { r.staffLookup(loadCtx, &ops, staffSubjects[i%len(staffSubjects)], i) })
	every(cfg.ingestEvery, func(i int) { r.ingestNew(loadCtx, &ops, numbers, i) })
	every(cfg.purgeEvery, func(int) {
		out, err := r.runIn(loadCtx, nil, "purge", "--data-dir", r.dataDir)
		if err == nil && !strings.Contains(out, "by the running service") {
			err = errors.New("not done by the running service")
		}
		if err != nil {
			ops.purgeErr.Add(1)
			ops.fail("purge", err, out)
			return
		}
		ops.purges.Add(1)
	})

	start := time.Now()
	tick := time.NewTicker(cfg.sample)
	defer tick.Stop()
	var lastQ, lastE int64
	var runErr error
	for time.Since(start) < cfg.duration && runErr == nil {
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			continue
		case <-tick.C:
		}
		if runErr = r.crashed(); runErr != nil {
			break
		}
		s, err := r.sampleNow(ctx, q, start, &lastQ, &lastE)
		if err != nil {
			runErr = err
			break
		}
		res.Samples = append(res.Samples, s)
		if csvw != nil {
			csvw.Write(s.csv())
			csvw.Flush()
		}
	}
	close(stop)
	side.Wait()
	// Let the queries in flight finish, then the gateway's queue drain.
	waitDone(&q.wg, q.replyWait+q.injectWait)
	stopLoad()
	if runErr == nil {
		runErr = r.crashed()
	}
	if runErr == nil {
		runErr = r.drain(ctx)
	}
	if p, err := r.proc(); err == nil {
		res.PeakRSSMB = float64(p.HWM) / (1 << 20)
	}
	res.Seconds = time.Since(start).Seconds()
	res.Queries, res.Errors, res.Skipped, res.Busy = q.completed.Load(), q.errs.Load(), q.skipped.Load(), q.busy.Load()
	res.Lost, res.Duplicates = r.lines.account()
	res.Stray = r.lines.stray.Load()
	res.StaffOK, res.StaffErrors = ops.staffOK.Load(), ops.staffErr.Load()
	res.Ingests, res.IngestErrors = ops.ingests.Load(), ops.ingestErr.Load()
	res.Purges, res.PurgeErrors = ops.purges.Load(), ops.purgeErr.Load()
	res.OpErrors = ops.errs
	res.ErrorKinds = q.why()
	res.Summary, res.Verdict = summarise(res.Samples)
	if err := r.stopServe(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if cfg.out != "" && len(res.Samples) > 0 {
		if err := writeSoakPNG(filepath.Join(cfg.out, "soak.png"), res, cfg); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	return res, runErr
}

func (s soakSample) csv() []string {
	f := func(v float64, dec int) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'f', dec, 64)
	}
	return []string{f(s.Seconds, 1), f(s.RSSMB, 1), f(s.HeapMB, 1), f(s.Goroutines, 0), strconv.Itoa(s.FDs), f(s.P50ms, 2), f(s.P99ms, 2),
		strconv.FormatInt(s.Queries, 10), strconv.FormatInt(s.Errors, 10), f(s.Backlog, 0)}
}

// sampleNow measures serve and the interval's queries.
func (r *rig) sampleNow(ctx context.Context, q *queryLoad, start time.Time, lastQ, lastE *int64) (soakSample, error) {
	s := soakSample{Seconds: time.Since(start).Seconds()}
	p, err := r.proc()
	if err != nil {
		return s, fmt.Errorf("bench: /proc of serve: %w", err)
	}
	s.RSSMB, s.FDs = float64(p.RSS)/(1<<20), p.FDs
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m, err := r.metrics(mctx)
	cancel()
	if err != nil {
		return s, fmt.Errorf("bench: serve's /metrics: %w", err)
	}
	s.Goroutines, s.Backlog = m["go_goroutines"], m["roamtrail_jobs_backlog"]
	s.HeapMB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
	s.P50ms, s.P99ms = quantiles(q.lat.interval())
	qn, en := q.completed.Load(), q.errs.Load()
	s.Queries, s.Errors = qn-*lastQ, en-*lastE
	*lastQ, *lastE = qn, en
	return s, nil
}

// drain waits until the gateway's backlog is empty and no MT came for a
// while: every reply that will come has come.
func (r *rig) drain(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Minute)
	var lastGot int64
	quietSince := time.Now()
	for time.Now().Before(deadline) {
		if err := r.crashed(); err != nil {
			return err
		}
		got := r.lines.total()
		if got != lastGot {
			lastGot, quietSince = got, time.Now()
		}
		m, err := r.metrics(ctx)
		if err == nil && m["roamtrail_jobs_backlog"] == 0 && time.Since(quietSince) > 2*time.Second {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("bench: the gateway's backlog did not drain within 5 minutes")
}

func (l *mtLines) total() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.stray.Load()
	for _, ln := range l.lines {
		t += ln.got.Load()
	}
	return t
}

// waitDone waits for wg, at most d.
func waitDone(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

var staffCodeRE = regexp.MustCompile(`验证码(\d{6})`)

// staffLookup is what an agent does: lookup texts the subscriber a code,
// the subscriber tells it, lookup --code shows the itinerary and texts the
// subscriber that it was viewed. Both run while serve runs, over its admin
// socket.
func (r *rig) staffLookup(ctx context.Context, ops *soakOps, ln *mtLine, i int) {
	ticket := fmt.Sprintf("SOAK-%d", i)
	fail := func(err error, out string) {
		ops.staffErr.Add(1)
		ops.fail("staff lookup", err, out)
	}
	ln.want.Add(1)
	out, err := r.runIn(ctx, nil, "lookup", "--data-dir", r.dataDir, "--operator", "soak", "--ticket", ticket, ln.national)
	if err != nil || !strings.Contains(out, "via the running service") {
		ln.want.Add(-1)
		fail(err, out)
		return
	}
	mt, err := ln.wait(ctx, time.Minute)
	if err != nil {
		fail(fmt.Errorf("code SMS: %w", err), "")
		return
	}
	m := staffCodeRE.FindStringSubmatch(mt.Text)
	if m == nil {
		fail(errors.New("no code in the SMS"), "")
		return
	}
	ln.want.Add(1)
	out, err = r.runIn(ctx, nil, "lookup", "--data-dir", r.dataDir, "--operator", "soak", "--ticket", ticket, "--code", m[1], ln.national)
	if err != nil || !strings.Contains(out, "itinerary of") {
		ln.want.Add(-1)
		fail(err, out)
		return
	}
	if _, err := ln.wait(ctx, time.Minute); err != nil {
		fail(fmt.Errorf("viewed notice: %w", err), "")
		return
	}
	ops.staffOK.Add(1)
}

// ingestNew feeds a small file of today's sightings of some subscribers
// to the running service with `roamtrail ingest`.
func (r *rig) ingestNew(ctx context.Context, ops *soakOps, numbers []string, i int) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	rng := rand.New(rand.NewPCG(uint64(i), 9))
	var b strings.Builder
	b.WriteString("msisdn,time,region\n")
	regions := []string{"130100", "310000", "110000", "440"}
	now := time.Now().In(loc)
	for range 200 {
		at := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
		fmt.Fprintf(&b, "%s,%s,%s\n", numbers[rng.IntN(len(numbers))], at.Format(time.RFC3339), regions[rng.IntN(len(regions))])
	}
	file := filepath.Join(r.tmp, fmt.Sprintf("events-%d.csv", i))
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		ops.ingestErr.Add(1)
		ops.fail("ingest", err, "")
		return
	}
	defer os.Remove(file)
	out, err := r.runIn(ctx, nil, "ingest", "--data-dir", r.dataDir, file)
	if err == nil && !strings.Contains(out, "by the running service") {
		err = errors.New("not done by the running service")
	}
	if err != nil {
		ops.ingestErr.Add(1)
		ops.fail("ingest", err, out)
		return
	}
	ops.ingests.Add(1)
}

// summarise compares the first and last quarter of each series. A series
// is "growing" when its last-quarter average exceeds the first's by more
// than 10% plus an allowance for noise (5 MB of memory, 10 goroutines, 5
// open files, 5 ms of latency), unless it no longer grows between the
// third quarter and the last: then it "grew, then levelled off" (memory
// filling a bounded cache does that). The verdict is about the resources
// only, latency being at the mercy of a shared machine.
func summarise(ss []soakSample) ([]seriesSummary, string) {
	if len(ss) < 4 {
		return nil, "too short to tell (fewer than 4 samples)"
	}
	n := len(ss) / 4
	series := []struct {
		name  string
		slack float64
		v     func(soakSample) float64
		res   bool
	}{
		{"rss_mb", 5, func(s soakSample) float64 { return s.RSSMB }, true},
		{"go_heap_mb", 5, func(s soakSample) float64 { return s.HeapMB }, true},
		{"goroutines", 10, func(s soakSample) float64 { return s.Goroutines }, true},
		{"open_fds", 5, func(s soakSample) float64 { return float64(s.FDs) }, true},
		{"p50_ms", 5, func(s soakSample) float64 { return s.P50ms }, false},
		{"p99_ms", 5, func(s soakSample) float64 { return s.P99ms }, false},
		{"queries", math.Inf(1), func(s soakSample) float64 { return float64(s.Queries) }, false},
		{"errors", 0, func(s soakSample) float64 { return float64(s.Errors) }, false},
	}
	avg := func(part []soakSample, v func(soakSample) float64) float64 {
		t, k := 0.0, 0
		for _, s := range part {
			if x := v(s); !math.IsNaN(x) {
				t += x
				k++
			}
		}
		if k == 0 {
			return math.NaN()
		}
		return t / float64(k)
	}
	var out []seriesSummary
	var growing, levelled []string
	for _, s := range series {
		q1, q3, q4 := avg(ss[:n], s.v), avg(ss[len(ss)-2*n:len(ss)-n], s.v), avg(ss[len(ss)-n:], s.v)
		verdict := "flat"
		switch up := func(a, b float64) bool { return b > a*1.1+s.slack }; {
		case up(q1, q4) && !up(q3, q4):
			verdict = "grew, then levelled off"
			if s.res {
				levelled = append(levelled, s.name)
			}
		case up(q1, q4):
			verdict = "growing"
			if s.res {
				growing = append(growing, s.name)
			}
		}
		out = append(out, seriesSummary{Series: s.name, Q1: q1, Q3: q3, Q4: q4, Verdict: verdict})
	}
	switch {
	case len(growing) > 0:
		return out, "growing: " + strings.Join(growing, ", ")
	case len(levelled) > 0:
		return out, "flat by the end: " + strings.Join(levelled, ", ") + " grew, then levelled off; goroutines and open files did not grow"
	}
	return out, "flat: memory, goroutines and open files did not grow"
}

// writeSoakPNG draws one panel per series against minutes.
func writeSoakPNG(path string, res *soakResult, cfg soakConfig) error {
	var x []float64
	cols := make([][]float64, 8)
	for _, s := range res.Samples {
		x = append(x, s.Seconds/60)
		for i, v := range []float64{s.RSSMB, s.HeapMB, s.Goroutines, float64(s.FDs), s.P50ms, s.P99ms, float64(s.Queries) / cfg.sample.Seconds(), float64(s.Errors)} {
			cols[i] = append(cols[i], v)
		}
	}
	titles := []string{"serve RSS (MB)", "Go heap in use (MB)", "goroutines", "open files", "MO to reply p50 (ms)", "MO to reply p99 (ms)", "queries/s completed", "errors per sample"}
	var series []plot.Series
	for i, t := range titles {
		series = append(series, plot.Series{Title: t, X: x, Y: cols[i]})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("roamtrail bench soak: %g min at %.0f queries/s, %d subscribers: %s", cfg.duration.Minutes(), res.Rate, res.Subscribers, strings.SplitN(res.Verdict, ":", 2)[0])
	if err := plot.Write(f, plot.Options{Title: title, XLabel: "minutes", XMax: cfg.duration.Minutes()}, series); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/store/feed"
)

func (e *env) benchSMSCommand() *cli.Command {
	return &cli.Command{
		Name:        "sms",
		Usage:       "drive the gateway through the SMSC simulator on loopback, beside bare echo ESMEs on the same simulator",
		ArgsUsage:   " ",
		Subcommands: []*cli.Command{e.benchGoSMPPEchoCommand()},
		Flags: append(storeFlags(),
			&cli.IntFlag{Name: "subscribers", Value: 10_000, Usage: "population with history"},
			&cli.IntFlag{Name: "concurrency", Value: 200, Usage: "subscribers texting at once"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long each side is driven"},
			&cli.IntFlag{Name: "rounds", Value: 4, Usage: "at saturation, the sides take turns in this many rounds each (G E E G G E E G ...), --duration in all"},
			&cli.Float64Flag{Name: "rate", Value: 2000, Usage: "then offer this many queries a second, open loop, and measure latency at that load (0: skip)"},
			// The gateway runs with serve's defaults unless told otherwise.
			&cli.IntFlag{Name: "window", Value: 50, Usage: "outstanding submit_sm per bind (serve --window)"},
			&cli.IntFlag{Name: "workers", Value: 64, Usage: "gateway jobs worked on at once (serve --workers)"},
			&cli.IntFlag{Name: "mo-concurrency", Value: 64, Usage: "MOs taken at once (serve --mo-concurrency)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the gateway side to this file"},
			&cli.StringFlag{Name: "echo-cpuprofile", Usage: "write a CPU profile of the echo side to this file (compare: go tool pprof -diff_base ECHO GATEWAY)"},
			procsFlag(),
		),
		Action: func(c *cli.Context) error {
			log, err := e.logger(c)
			if err != nil {
				return err
			}
			log = log.Level(zerolog.ErrorLevel)
			cleanup, err := tempDataDir(c, "benchsms")
			if err != nil {
				return err
			}
			defer cleanup()

			cfg := smsBenchConfig{subscribers: c.Int("subscribers"), concurrency: c.Int("concurrency"), duration: c.Duration("duration"), rounds: c.Int("rounds"),
				window: c.Int("window"), workers: c.Int("workers"), handlers: c.Int("mo-concurrency"), rate: c.Float64("rate")}
			if cfg.concurrency < 1 || cfg.concurrency > cfg.subscribers {
				return fmt.Errorf("--concurrency: want 1..--subscribers")
			}
			if cfg.rounds < 1 || cfg.rounds > 100 {
				return fmt.Errorf("--rounds: want 1..100")
			}
			if cfg.window < 1 || cfg.workers < 1 || cfg.handlers < 1 {
				return fmt.Errorf("--window, --workers, --mo-concurrency: want 1 or more")
			}
			if cfg.rate < 0 || cfg.rate > 1e6 {
				return fmt.Errorf("--rate: want 0..1000000")
			}
			res, err := e.runSMSBench(c, log, cfg)
			if err != nil {
				return err
			}
			return e.printBench(c.Bool("json"), res)
		},
	}
}

type smsBenchConfig struct {
	subscribers, concurrency, window, workers, handlers int
	duration                                            time.Duration
	rounds                                              int     // each side's at saturation (turns)
	rate                                                float64 // open-loop queries a second; 0 skips that phase
}

type smsSide struct {
	Queries       int64   `json:"queries"`
	QueriesPerSec float64 `json:"queries_per_sec"`
	P50ms         float64 `json:"mo_to_reply_p50_ms"`
	P99ms         float64 `json:"mo_to_reply_p99_ms"`
	Errors        int64   `json:"errors"`
	// Skipped counts open-loop queries that found every subscriber still
	// busy with an earlier one: the side fell behind the offered rate.
	Skipped int64 `json:"skipped,omitempty"`
	// Lost counts MOs the SMSC delivered (deliver_sm_resp OK) whose reply
	// did not come within the wait.
	Lost int64 `json:"lost,omitempty"`
	// CPUCores is the CPU time spent during the phase over its length:
	// the bench's process (simulator, load generator, and the gateway or
	// our echo, which run in it), plus the go-smpp echo's own process.
	// Under 2 on this machine's 2 cores, the side waited on something
	// other than the CPU. 0 where /proc cannot be read.
	CPUCores float64 `json:"cpu_cores,omitempty"`
}

type smsBenchResult struct {
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	// Rounds is how many rounds each side had at saturation, in turns
	// (turns); the Turns are each turn's queries a second, in order.
	Rounds       int       `json:"rounds"`
	GatewayTurns []float64 `json:"gateway_turns_qps,omitempty"`
	EchoTurns    []float64 `json:"echo_turns_qps,omitempty"`
	Window       int       `json:"window"`
	Workers      int       `json:"workers"`
	Handlers     int       `json:"mo_concurrency"`
	// Procs is GOMAXPROCS while both sides ran (serve's --procs; the
	// echo runs in the same process).
	Procs   int     `json:"procs"`
	Gateway smsSide `json:"gateway"`
	Echo    smsSide `json:"echo"`
	Ratio   float64 `json:"ratio"`
	// At a fixed offered rate (open loop): latency at a stated load,
	// which a closed loop at saturation cannot show (there latency is
	// just concurrency over throughput).
	Rate        float64  `json:"rate,omitempty"`
	GatewayRate *smsSide `json:"gateway_at_rate,omitempty"`
	EchoRate    *smsSide `json:"echo_at_rate,omitempty"`
	// GoSMPP is a bare echo on go-smpp's own Transceiver (benchgosmpp.go).
	GoSMPP      *goSMPPSide `json:"gosmpp_echo,omitempty"`
	GoSMPPRatio float64     `json:"gateway_to_gosmpp_ratio,omitempty"`
}

func (r *smsBenchResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "roamtrail bench sms: loopback, %.0fs per phase and side; window %d, workers %d, mo-concurrency %d, GOMAXPROCS %d\n", r.Seconds, r.Window, r.Workers, r.Handlers, r.Procs)
	fmt.Fprintf(&b, "  %d subscribers texting at once (closed loop, saturation), the sides taking turns in %d rounds each:\n", r.Concurrency, r.Rounds)
	row := func(name string, s smsSide) {
		fmt.Fprintf(&b, "    %-8s %8d %12.0f %11.2f ms %11.2f ms %7d %6.2f", name, s.Queries, s.QueriesPerSec, s.P50ms, s.P99ms, s.Errors, s.CPUCores)
		if s.Skipped > 0 {
			fmt.Fprintf(&b, "  (%d fell behind)", s.Skipped)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "    %-8s %8s %12s %14s %14s %7s %6s\n", "", "queries", "queries/s", "MO->reply p50", "MO->reply p99", "errors", "cores")
	row("gateway", r.Gateway)
	row("echo", r.Echo)
	if g := r.GoSMPP; g != nil {
		fmt.Fprintf(&b, "    %-8s %8d %12.0f %11.2f ms %11.2f ms %7d %6.2f  (go-smpp Transceiver)\n", "go-smpp", g.Queries, g.QueriesPerSec, g.P50ms, g.P99ms, g.Errors, g.CPUCores)
	}
	fmt.Fprintf(&b, "    gateway/echo: %.2f (a query is two MOs and two replies: request, prompt, Y, itinerary)\n", r.Ratio)
	if len(r.GatewayTurns) > 0 {
		fmt.Fprintf(&b, "    queries/s by turn: gateway %v, echo %v\n", r.GatewayTurns, r.EchoTurns)
	}
	if g := r.GoSMPP; g != nil {
		fmt.Fprintf(&b, "    gateway/go-smpp: %.2f; go-smpp lost %d MOs (acknowledged, no reply within %.0fs); its handler saw %d MOs, %d replies accepted, %d failed\n",
			r.GoSMPPRatio, g.Lost, g.WaitSeconds, g.Handled, g.Replied, g.Failed)
		for _, why := range slices.Sorted(maps.Keys(g.FailedBy)) {
			fmt.Fprintf(&b, "      %d failed: %s\n", g.FailedBy[why], why)
		}
	}
	if r.GatewayRate != nil && r.EchoRate != nil {
		fmt.Fprintf(&b, "  %.0f queries a second offered (open loop):\n", r.Rate)
		row("gateway", *r.GatewayRate)
		row("echo", *r.EchoRate)
	}
	return b.String()
}

// mtRouter hands each MT to the subscriber waiting for it.
type mtRouter struct {
	mu   sync.Mutex
	wait map[string]chan smsc.MT
}

func (r *mtRouter) onMT(mt smsc.MT) {
	r.mu.Lock()
	ch := r.wait[mt.To]
	r.mu.Unlock()
	if ch != nil {
		select {
		case ch <- mt:
		default: // an MT nobody waits for (a late duplicate): drop it
		}
	}
}

func (r *mtRouter) register(to string) chan smsc.MT {
	ch := make(chan smsc.MT, 8)
	r.mu.Lock()
	r.wait[to] = ch
	r.mu.Unlock()
	return ch
}

func (e *env) runSMSBench(c *cli.Context, log zerolog.Logger, cfg smsBenchConfig) (*smsBenchResult, error) {
	ctx := c.Context
	router := &mtRouter{wait: make(map[string]chan smsc.MT)}
	sim, err := smsc.Listen("127.0.0.1:0", smsc.Options{Logger: &log, OnMT: router.onMT, MTLog: 16})
	if err != nil {
		return nil, err
	}
	simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
	var simWG sync.WaitGroup
	simWG.Go(func() { sim.Serve(simCtx) })
	defer func() { sim.Close(); stopSim(); simWG.Wait() }()

	gc := gatewayConfig{shortCode: "10086"}
	gc.smpp.Addr, gc.smpp.SystemID, gc.smpp.Window = sim.Addr(), "roamtrail", cfg.window
	gc.smpp.HandlerWorkers, gc.smpp.HandlerQueue = cfg.handlers, 4*cfg.handlers
	gc.gw.ShortCode, gc.gw.Workers = "10086", cfg.workers
	gc.gw.DailyLimit, gc.gw.GlobalLimit = 1<<30, 1<<30 // the bench repeats queries all day
	gc.gw.MaxBacklog = 100_000
	// The sides take turns at saturation (turns): each is started before
	// its turn and stopped after it, so that one alone is bound and in
	// memory at a time, as when they ran one after the other.
	var (
		st       *stack       // the gateway, while it runs
		stopEcho func() error // our echo, while it runs
	)
	stopGateway := func() error {
		if st == nil {
			return nil
		}
		err := st.stop(context.WithoutCancel(ctx))
		st = nil
		return err
	}
	stopOurEcho := func() error {
		if stopEcho == nil {
			return nil
		}
		err := stopEcho()
		stopEcho = nil
		return err
	}
	startGateway := func() error {
		if err := stopOurEcho(); err != nil {
			return err
		}
		if st != nil {
			return nil
		}
		s, err := e.startStack(c, log, gc)
		if err != nil {
			return err
		}
		st = s
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return st.session.WaitBound(wctx)
	}
	startOurEcho := func() error {
		if err := stopGateway(); err != nil {
			return err
		}
		if stopEcho != nil {
			return nil
		}
		stop, err := startEcho(ctx, sim, cfg, log)
		stopEcho = stop
		return err
	}
	defer func() {
		stopGateway()
		stopOurEcho()
	}()
	if err := startGateway(); err != nil {
		return nil, err
	}
	pop := fixtures.Config{Subscribers: cfg.subscribers, Days: 30, Seed: 1, End: time.Now(), Location: st.svc.loc}
	if err := pop.Validate(); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fixtures.WriteCSV(ctx, pw, pop)) }()
	if _, err := feed.Ingest(ctx, pr, st.svc.catalog, st.svc.ps, st.svc.db, feed.Options{}); err != nil {
		return nil, err
	}
	numbers := make([]string, cfg.concurrency)
	for i := range numbers {
		numbers[i] = "86" + strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i), 10)
	}
	// The open-loop phase takes its subscribers from the whole
	// population: one still busy is not given a second query at once.
	everyone := make([]string, cfg.subscribers)
	for i := range everyone {
		everyone[i] = "86" + strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i), 10)
	}
	res := &smsBenchResult{Concurrency: cfg.concurrency, Seconds: cfg.duration.Seconds(), Rounds: cfg.rounds, Window: cfg.window, Workers: cfg.workers, Handlers: cfg.handlers, Rate: cfg.rate, Procs: runtime.GOMAXPROCS(0)}

	// Saturation, in turns.
	var gwRun, echoRun driveRun
	per := cfg.duration / time.Duration(cfg.rounds)
	profiles := map[string]int{}
	for _, t := range turns(cfg.rounds) {
		name, flag, start, sum := "the gateway", "cpuprofile", startGateway, &gwRun
		if !t.gateway {
			name, flag, start, sum = "the echo ESME", "echo-cpuprofile", startOurEcho, &echoRun
		}
		if err := start(); err != nil {
			return nil, err
		}
		profiles[flag]++
		stopProfile, err := startProfile(c, flag, profiles[flag])
		if err != nil {
			return nil, err
		}
		d := per * time.Duration(t.rounds)
		fmt.Fprintf(e.stderr, "bench sms: driving %s for %s...\n", name, d)
		r := drive(ctx, sim, router, numbers, []string{"CXMYD", "Y"}, d, driveWait)
		stopProfile()
		sum.add(r)
		if t.gateway {
			res.GatewayTurns = append(res.GatewayTurns, math.Round(r.perSec()))
		} else {
			res.EchoTurns = append(res.EchoTurns, math.Round(r.perSec()))
		}
	}
	res.Gateway, res.Echo = gwRun.side(), echoRun.side()
	if res.Echo.QueriesPerSec > 0 {
		res.Ratio = res.Gateway.QueriesPerSec / res.Echo.QueriesPerSec
	}

	// At a fixed rate: the gateway, then the echo.
	if cfg.rate > 0 {
		if err := startGateway(); err != nil {
			return nil, err
		}
		fmt.Fprintf(e.stderr, "bench sms: offering the gateway %.0f queries a second for %s...\n", cfg.rate, cfg.duration)
		gs := driveRate(ctx, sim, router, everyone, []string{"CXMYD", "Y"}, cfg.rate, cfg.duration)
		res.GatewayRate = &gs
		if err := startOurEcho(); err != nil {
			return nil, err
		}
		fmt.Fprintf(e.stderr, "bench sms: offering the echo ESME %.0f queries a second for %s...\n", cfg.rate, cfg.duration)
		es := driveRate(ctx, sim, router, everyone, []string{"CXMYD", "Y"}, cfg.rate, cfg.duration)
		res.EchoRate = &es
	}
	// Ours unbind first: the simulator spreads MOs over every bound
	// receiver.
	if err := stopGateway(); err != nil {
		return nil, err
	}
	if err := stopOurEcho(); err != nil {
		return nil, err
	}
	if err := e.goSMPPPhase(ctx, sim, router, numbers, cfg.duration, res); err != nil {
		return nil, err
	}
	return res, nil
}

// turn is a side's turn at saturation, rounds long.
type turn struct {
	gateway bool
	rounds  int
}

// turns orders rounds rounds of each side as G E E G G E E G ... (each
// pair of rounds mirrors the one before), joining a side's consecutive
// rounds into one turn: a drift of the machine's speed over the run then
// weighs on both sides alike, which one long phase each, one after the
// other, did not (runs of this machine's echo alone differed by a
// quarter from one minute to the next).
func turns(rounds int) []turn {
	var ts []turn
	for i := range 2 * rounds {
		g := (i+1)/2%2 == 0
		if n := len(ts); n > 0 && ts[n-1].gateway == g {
			ts[n-1].rounds++
			continue
		}
		ts = append(ts, turn{gateway: g, rounds: 1})
	}
	return ts
}

// startEcho binds a bare echo ESME to sim, with the gateway's window and
// MO concurrency, answering every MO with "OK"; stop unbinds it.
func startEcho(ctx context.Context, sim *smsc.Server, cfg smsBenchConfig, log zerolog.Logger) (stop func() error, err error) {
	echo, err := smpp.NewEcho(smpp.EchoOptions{Session: smpp.Options{Addr: sim.Addr(), SystemID: "echo", Window: cfg.window, HandlerWorkers: cfg.handlers, HandlerQueue: 4 * cfg.handlers, Logger: &log}, Reply: "OK", Queue: 100_000})
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { echo.Serve(ectx) })
	stop = func() error {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer scancel()
		err := echo.Shutdown(sctx)
		cancel()
		wg.Wait()
		return err
	}
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	if err := echo.Session().WaitBound(bctx); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// driveWait bounds each MO's delivery and reply for the gateway and our
// echo: neither loses one, so running out is an error worth its wait.
const driveWait = 30 * time.Second

// startProfile starts a CPU profile into the file the flag names, if
// any, and returns what stops it and closes the file. The two sides are
// profiled alike so that one can be read against the other. A side's
// turn n after the first writes FILE.n: go tool pprof merges the files it
// is given.
func startProfile(c *cli.Context, flag string, n int) (stop func(), err error) {
	path := c.String(flag)
	if path == "" {
		return func() {}, nil
	}
	if n > 1 {
		path += "." + strconv.Itoa(n)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// drive runs one goroutine per number; each sends the script's MOs in turn,
// waiting up to wait for each to be delivered and answered, until d passes.
// A completed script is one query. The CPU of the processes pids (an ESME
// run apart) counts with this one's.
func drive(ctx context.Context, sim *smsc.Server, router *mtRouter, numbers, script []string, d, wait time.Duration, pids ...int) driveRun {
	var (
		queries, errs, lost atomic.Int64
		lastDone            atomic.Int64 // since start, of the last query completed
		mu                  sync.Mutex
		lat                 []time.Duration
		wg                  sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	cpu := startCPU(pids)
	start := time.Now()
	for _, num := range numbers {
		ch := router.register(num)
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				// A reply that came after its wait ran out is not the
				// answer to the next MO.
				for drained := false; !drained; {
					select {
					case <-ch:
					default:
						drained = true
					}
				}
				ok := true
				for _, text := range script {
					t0 := time.Now()
					ictx, cancel := context.WithTimeout(ctx, wait)
					err := sim.InjectMO(ictx, num, "10086", text)
					if err == nil {
						select {
						case <-ch:
						case <-ictx.Done():
							err = ictx.Err()
							if ctx.Err() == nil {
								lost.Add(1)
							}
						}
					}
					cancel()
					if err != nil {
						errs.Add(1)
						ok = false
						break
					}
					mine = append(mine, time.Since(t0))
				}
				if ok {
					queries.Add(1)
					lastDone.Store(int64(time.Since(start)))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	// Until the last query completed: a worker still waiting out a lost
	// reply after that does not count as time spent answering.
	took := time.Duration(lastDone.Load())
	if took == 0 {
		took = time.Since(start)
	}
	return driveRun{queries: queries.Load(), errs: errs.Load(), lost: lost.Load(), took: took, cpu: cpu.spentSince(), lat: lat}
}

// driveRun is what one or more drives of a side counted.
type driveRun struct {
	queries, errs, lost int64
	took                time.Duration // driving, in all
	cpu                 float64       // seconds of CPU meanwhile
	lat                 []time.Duration
}

func (r *driveRun) add(o driveRun) {
	r.queries += o.queries
	r.errs += o.errs
	r.lost += o.lost
	r.took += o.took
	r.cpu += o.cpu
	r.lat = append(r.lat, o.lat...)
}

func (r driveRun) perSec() float64 { return float64(r.queries) / r.took.Seconds() }

// side sums r up: the rate over the time driven, the CPU over that time,
// the latencies' quantiles.
func (r driveRun) side() smsSide {
	s := smsSide{Queries: r.queries, Errors: r.errs, Lost: r.lost, QueriesPerSec: r.perSec(), CPUCores: coresOf(r.cpu, r.took)}
	if len(r.lat) > 0 {
		slices.Sort(r.lat)
		q := func(p float64) float64 { return float64(r.lat[int(p*float64(len(r.lat)-1))].Microseconds()) / 1e3 }
		s.P50ms, s.P99ms = q(0.5), q(0.99)
	}
	return s
}

// driveRate starts a query (the script, one MO after the reply to the
// last) every 1/rate seconds for d, each from a subscriber not busy with
// one, whether or not earlier queries finished: an open loop. The first
// MO's latency counts from when it was due, not when it went out, so a
// side that falls behind shows it in its latency (no coordinated
// omission); a query due when every subscriber is busy is counted as
// skipped.
func driveRate(ctx context.Context, sim *smsc.Server, router *mtRouter, numbers, script []string, rate float64, d time.Duration) smsSide {
	type sub struct {
		num string
		ch  chan smsc.MT
	}
	free := make(chan sub, len(numbers))
	for _, num := range numbers {
		free <- sub{num, router.register(num)}
	}
	var (
		queries, errs, skipped atomic.Int64
		mu                     sync.Mutex
		lat                    []time.Duration
		wg                     sync.WaitGroup
	)
	query := func(s sub, due time.Time) {
		defer func() { free <- s }()
		mine := make([]time.Duration, 0, len(script))
		t0 := due
		for _, text := range script {
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := sim.InjectMO(ictx, s.num, "10086", text)
			if err == nil {
				select {
				case <-s.ch:
				case <-ictx.Done():
					err = ictx.Err()
				}
			}
			cancel()
			if err != nil {
				errs.Add(1)
				return
			}
			mine = append(mine, time.Since(t0))
			t0 = time.Now()
		}
		queries.Add(1)
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	}
	cpu := startCPU(nil)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for k := 0; ctx.Err() == nil; k++ {
		due := start.Add(time.Duration(k) * interval)
		if due.Sub(start) >= d {
			break
		}
		if w := time.Until(due); w > 0 {
			time.Sleep(w) // wakes late by up to a timer tick: the next ones are then due at once
		}
		select {
		case s := <-free:
			wg.Go(func() { query(s, due) })
		default:
			skipped.Add(1)
		}
	}
	wg.Wait()
	took := time.Since(start)
	s := smsSide{Queries: queries.Load(), Errors: errs.Load(), Skipped: skipped.Load(), QueriesPerSec: float64(queries.Load()) / took.Seconds(), CPUCores: cpu.cores(took)}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1e3 }
		s.P50ms, s.P99ms = q(0.5), q(0.99)
	}
	return s
}

// smsBenchDefaults is bench sms's configuration at its defaults, for the
// commands that run it (bench compare).
func smsBenchDefaults() smsBenchConfig {
	return smsBenchConfig{subscribers: 10_000, concurrency: 200, duration: 10 * time.Second, rounds: 4, window: 10, workers: 64, handlers: 256}
}

// cpuMeter is the CPU time of this process and of pids since it started.
type cpuMeter struct {
	pids  []int
	spent float64 // seconds at start
}

func startCPU(pids []int) cpuMeter {
	m := cpuMeter{pids: append([]int{os.Getpid()}, pids...)}
	m.spent = m.read()
	return m
}

func (m cpuMeter) read() float64 {
	var sum float64
	for _, pid := range m.pids {
		sum += cpuSeconds(pid) // NaN off Linux
	}
	return sum
}

// cores is the CPU time spent since start over took, the phase's length
// (which leaves out a wait for late replies at its end), in cores, to 0.01
// (/proc counts in ticks of 10 ms); 0 when /proc cannot be read.
func (m cpuMeter) cores(took time.Duration) float64 { return coresOf(m.spentSince(), took) }

// spentSince is the CPU time spent since start, in seconds; NaN when
// /proc cannot be read.
func (m cpuMeter) spentSince() float64 { return m.read() - m.spent }

func coresOf(cpu float64, took time.Duration) float64 {
	c := cpu / took.Seconds()
	if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
		return 0
	}
	return math.Round(c*100) / 100
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/store"
)

func (e *env) benchCommand() *cli.Command {
	return &cli.Command{
		Name:        "bench",
		Usage:       "generate a population, ingest it into a fresh store and measure ingest, lookups, disk and purge",
		ArgsUsage:   " ",
		Subcommands: []*cli.Command{e.benchSMSCommand(), e.benchCompareCommand(), e.benchSoakCommand(), e.benchOverloadCommand()},
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "subscribers", Value: 100_000, Usage: "population size"},
			&cli.IntFlag{Name: "days", Value: 30, Usage: "days of history"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "population seed"},
			&cli.IntFlag{Name: "lookups", Value: 200_000, Usage: "lookups timed one by one per window"},
			&cli.DurationFlag{Name: "throughput-for", Value: 3 * time.Second, Usage: "how long the all-cores throughput run lasts"},
			&cli.StringFlag{Name: "dir", Usage: "where the store goes (must not exist); default a temporary dir, removed after"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"},
		},
		Action: func(c *cli.Context) error {
			cfg := benchConfig{
				subscribers: c.Int("subscribers"), days: c.Int("days"), seed: c.Int64("seed"),
				lookups: c.Int("lookups"), throughputFor: c.Duration("throughput-for"), dir: c.String("dir"),
			}
			if cfg.lookups < 100 {
				return fmt.Errorf("--lookups: want at least 100")
			}
			if cfg.days < 15 || cfg.days > fixtures.MaxDays {
				return fmt.Errorf("--days: want 15..%d", fixtures.MaxDays)
			}
			res, err := runStoreBench(c.Context, cfg, e.stderr)
			if err != nil {
				return err
			}
			return e.printBench(c.Bool("json"), res)
		},
	}
}

type benchConfig struct {
	subscribers, days, lookups int
	seed                       int64
	throughputFor              time.Duration
	dir                        string
}

type latency struct {
	P50    float64 `json:"p50_us"`
	P99    float64 `json:"p99_us"`
	P999   float64 `json:"p999_us"`
	PerSec float64 `json:"per_sec"`
	Cold   *struct {
		P50  float64 `json:"p50_us"`
		P99  float64 `json:"p99_us"`
		P999 float64 `json:"p999_us"`
	} `json:"cold,omitempty"`
}

type benchResult struct {
	Subscribers int `json:"subscribers"`
	Days        int `json:"days"`
	Cores       int `json:"cores"`
	Ingest      struct {
		Events       int64   `json:"events"`
		Seconds      float64 `json:"seconds"`
		EventsPerSec float64 `json:"events_per_sec"`
	} `json:"ingest"`
	Lookup30              latency `json:"lookup30"`
	Lookup15              latency `json:"lookup15"`
	Visits                int     `json:"visits"`
	DiskBytes             int64   `json:"disk_bytes"`
	DiskBytesUnsettled    int64   `json:"disk_bytes_before_compaction"`
	BytesPerSubscriberDay float64 `json:"bytes_per_subscriber_day"`
	HeapBytes             uint64  `json:"heap_bytes"`
	PeakRSSBytes          int64   `json:"peak_rss_bytes"`
	ReopenSeconds         float64 `json:"reopen_seconds"`
	Purge                 struct {
		Seconds    float64 `json:"seconds"`
		MemVisits  int     `json:"mem_visits"`
		DiskBefore int64   `json:"disk_before"`
		DiskAfter  int64   `json:"disk_after"`
	} `json:"purge"`
}

func runStoreBench(ctx context.Context, cfg benchConfig, progress io.Writer) (*benchResult, error) {
	res := &benchResult{Subscribers: cfg.subscribers, Days: cfg.days, Cores: runtime.GOMAXPROCS(0)}
	dir := cfg.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "roamtrail-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "data")
	} else if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("--dir: %s exists; the bench wants a fresh store", dir)
	}
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return nil, err
	}
	// The clock is the bench's own, so that the purge step can move it a day
	// on; it starts at noon of the last generated day.
	start := time.Now().In(loc)
	base := time.Date(start.Year(), start.Month(), start.Day(), 12, 0, 0, 0, loc)
	var shift atomic.Int64
	now := func() time.Time { return base.Add(time.Duration(shift.Load())) }

	key := make([]byte, privacy.KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	ps, err := privacy.NewPseudonymizer(key)
	if err != nil {
		return nil, err
	}
	opts := store.Options{Location: loc, Now: now, KeyFingerprint: ps.Fingerprint()}
	db, err := store.Open(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	defer func() { db.Close() }()

	fmt.Fprintf(progress, "bench: generating and ingesting %d subscribers x %d days...\n", cfg.subscribers, cfg.days)
	events, took, err := benchIngest(ctx, db, ps, fixtures.Config{Subscribers: cfg.subscribers, Days: cfg.days, Seed: cfg.seed, End: base, Location: loc})
	if err != nil {
		return nil, err
	}
	res.Ingest.Events, res.Ingest.Seconds = events, took.Seconds()
	res.Ingest.EventsPerSec = float64(events) / took.Seconds()
	if err := db.Flush(); err != nil {
		return nil, err
	}
	res.DiskBytesUnsettled = db.Stats().DiskBytes
	if err := db.Compact(ctx); err != nil {
		return nil, err
	}
	st := db.Stats()
	res.Visits, res.DiskBytes = st.Visits, st.DiskBytes
	res.BytesPerSubscriberDay = float64(st.DiskBytes) / float64(cfg.subscribers*cfg.days)

	// Pseudonyms are computed up front: the lookup figures are the store's
	// and the rules', not the HMAC's (about 1 us, paid once per SMS).
	subs := make([]itinerary.Pseudonym, cfg.subscribers)
	for i := range subs {
		subs[i] = ps.Pseudonym(msisdn.Number("+86" + strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i), 10)))
	}
	engine := &itinerary.Engine{Source: db, Rules: itinerary.Rules{MinDwell: itinerary.DefaultMinDwell}, Location: loc, Now: now}
	fmt.Fprintf(progress, "bench: %d events ingested in %.1fs; timing lookups...\n", events, took.Seconds())
	for _, w := range []struct {
		days int
		l    *latency
	}{{30, &res.Lookup30}, {15, &res.Lookup15}} {
		p := timeLookups(ctx, engine, subs, w.days, cfg.lookups, cfg.seed)
		w.l.P50, w.l.P99, w.l.P999 = p[0], p[1], p[2]
		w.l.PerSec = lookupThroughput(ctx, engine, subs, w.days, cfg.throughputFor)
	}
	var ms runtime.MemStats
	runtime.GC() // count what is live, not what awaits collection
	runtime.ReadMemStats(&ms)
	res.HeapBytes = ms.HeapInuse

	// Cold: close, reopen (the index is rebuilt from disk), and time the
	// first lookups.
	if err := db.Close(); err != nil {
		return nil, err
	}
	db = nil
	runtime.GC()
	t0 := time.Now()
	if db, err = store.Open(ctx, dir, opts); err != nil {
		return nil, err
	}
	res.ReopenSeconds = time.Since(t0).Seconds()
	engine.Source = db
	for _, w := range []struct {
		days int
		l    *latency
	}{{30, &res.Lookup30}, {15, &res.Lookup15}} {
		p := timeLookups(ctx, engine, subs, w.days, min(cfg.lookups, 50_000), cfg.seed+int64(w.days))
		w.l.Cold = &struct {
			P50  float64 `json:"p50_us"`
			P99  float64 `json:"p99_us"`
			P999 float64 `json:"p999_us"`
		}{p[0], p[1], p[2]}
	}

	// Purge: a day later, the oldest day expires.
	shift.Store(int64(24 * time.Hour))
	fmt.Fprintf(progress, "bench: purging the day that expired...\n")
	pst, err := db.Purge(ctx)
	if err != nil {
		return nil, err
	}
	res.Purge.Seconds, res.Purge.MemVisits, res.Purge.DiskBefore, res.Purge.DiskAfter = pst.Took.Seconds(), pst.MemVisits, pst.DiskBefore, pst.DiskAfter
	res.PeakRSSBytes = peakRSS()
	return res, nil
}

// benchIngest streams a generated population into db the way feed.Ingest
// does a file: numbers normalised and pseudonymised (both cached), batches
// applied with fsync, generation and apply on separate goroutines.
func benchIngest(ctx context.Context, db *store.DB, ps *privacy.Pseudonymizer, cfg fixtures.Config) (int64, time.Duration, error) {
	const batchSize = 1 << 16
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan []store.Sighting, 2)
	free := make(chan []store.Sighting, 3)
	for range 3 {
		free <- make([]store.Sighting, 0, batchSize)
	}
	var events int64
	start := time.Now()
	genErr := make(chan error, 1)
	go func() {
		defer close(full)
		numbers := make(map[string]itinerary.Pseudonym, cfg.Subscribers)
		cur := <-free
		err := fixtures.Generate(ctx, cfg, func(batch []itinerary.Event) error {
			for _, ev := range batch {
				p, ok := numbers[ev.MSISDN]
				if !ok {
					n, err := msisdn.Parse(ev.MSISDN)
					if err != nil {
						return err
					}
					p = ps.Pseudonym(n)
					numbers[ev.MSISDN] = p
				}
				cur = append(cur, store.Sighting{Sub: p, Time: ev.Time, Region: ev.Region})
				if len(cur) == batchSize {
					select {
					case full <- cur:
					case <-ctx.Done():
						return ctx.Err()
					}
					cur = (<-free)[:0]
				}
			}
			return nil
		})
		if err == nil && len(cur) > 0 {
			full <- cur
		}
		genErr <- err
	}()
	var applyErr error
	for b := range full {
		if applyErr == nil {
			_, applyErr = db.Apply(ctx, b, nil)
			events += int64(len(b))
			if applyErr != nil {
				cancel()
			}
		}
		free <- b[:0]
	}
	return events, time.Since(start), errors.Join(applyErr, <-genErr)
}

// timeLookups times n lookups of random subscribers one by one and returns
// p50, p99 and p99.9 in microseconds.
func timeLookups(ctx context.Context, e *itinerary.Engine, subs []itinerary.Pseudonym, days, n int, seed int64) [3]float64 {
	r := rand.New(rand.NewPCG(uint64(seed), 42))
	lat := make([]time.Duration, n)
	for i := range lat {
		sub := subs[r.IntN(len(subs))]
		t0 := time.Now()
		if _, err := e.Lookup(ctx, sub, days); err != nil {
			panic(err) // the bench's own store: an error is a bug
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(n-1))].Nanoseconds()) / 1e3 }
	return [3]float64{q(0.50), q(0.99), q(0.999)}
}

// lookupThroughput runs lookups on every core for d and returns lookups/s.
func lookupThroughput(ctx context.Context, e *itinerary.Engine, subs []itinerary.Pseudonym, days int, d time.Duration) float64 {
	var total atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			n := int64(0)
			for !stop.Load() {
				for range 256 {
					e.Lookup(ctx, subs[r.IntN(len(subs))], days)
				}
				n += 256
			}
			total.Add(n)
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds()
}

// peakRSS reads the process's peak resident set (VmHWM) on Linux; 0
// elsewhere.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (r *benchResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "roamtrail bench: %d subscribers x %d days, %d cores\n", r.Subscribers, r.Days, r.Cores)
	fmt.Fprintf(&b, "  ingest            %d events in %.1fs: %.0f events/s\n", r.Ingest.Events, r.Ingest.Seconds, r.Ingest.EventsPerSec)
	for _, l := range []struct {
		name string
		l    latency
	}{{"lookup30", r.Lookup30}, {"lookup15", r.Lookup15}} {
		fmt.Fprintf(&b, "  %-10s warm   p50 %.2f us  p99 %.2f us  p99.9 %.2f us  %.0f lookups/s on all cores\n", l.name, l.l.P50, l.l.P99, l.l.P999, l.l.PerSec)
		if l.l.Cold != nil {
			fmt.Fprintf(&b, "  %-10s cold   p50 %.2f us  p99 %.2f us  p99.9 %.2f us  (first lookups after reopen)\n", l.name, l.l.Cold.P50, l.l.Cold.P99, l.l.Cold.P999)
		}
	}
	fmt.Fprintf(&b, "  disk              %d bytes compacted (%d before), %.1f bytes per subscriber-day (%d visits)\n", r.DiskBytes, r.DiskBytesUnsettled, r.BytesPerSubscriberDay, r.Visits)
	fmt.Fprintf(&b, "  memory            heap %d MiB, peak RSS %d MiB\n", r.HeapBytes>>20, r.PeakRSSBytes>>20)
	fmt.Fprintf(&b, "  reopen            %.2fs (index rebuilt from disk)\n", r.ReopenSeconds)
	fmt.Fprintf(&b, "  purge of one day  %.2fs: %d visits, disk %d -> %d bytes\n", r.Purge.Seconds, r.Purge.MemVisits, r.Purge.DiskBefore, r.Purge.DiskAfter)
	return b.String()
}

// printBench prints a benchmark's result: one JSON object, or its table.
func (e *env) printBench(asJSON bool, res interface{ table() string }) error {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	_, err := fmt.Fprint(e.stdout, res.table())
	return err
}

// tempDataDir points --data-dir at a new temporary dir unless it was
// given, for the commands that make their own data (demo, bench sms); the
// returned func removes it.
func tempDataDir(c *cli.Context, name string) (cleanup func(), err error) {
	if c.IsSet("data-dir") {
		return func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "roamtrail-"+name+"-")
	if err != nil {
		return nil, err
	}
	if err := c.Set("data-dir", filepath.Join(tmp, "data")); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return func() { os.RemoveAll(tmp) }, nil
}

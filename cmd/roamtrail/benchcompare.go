package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/compare"
)

func (e *env) benchCompareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "roamtrail's store beside PostgreSQL and Redis on the same visits and lookups, and the SMS path beside bare echo ESMEs",
		ArgsUsage: " ",
		Flags: append(storeFlags(),
			&cli.IntFlag{Name: "subscribers", Value: 100_000, Usage: "population size"},
			&cli.IntFlag{Name: "days", Value: 30, Usage: "days of history (15..30)"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "population and query seed"},
			&cli.IntFlag{Name: "queries", Value: 20_000, Usage: "lookups timed one by one per window and backend"},
			&cli.DurationFlag{Name: "throughput-for", Value: 3 * time.Second, Usage: "how long each backend is driven per window for lookups/s"},
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "concurrent lookups for lookups/s"},
			&cli.StringFlag{Name: "postgres-url", Value: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", Usage: "PostgreSQL to compare with", EnvVars: []string{"ROAMTRAIL_POSTGRES_URL"}},
			&cli.StringFlag{Name: "postgres-table", Value: "roamtrail_compare", Usage: "the table made, filled and dropped (must be the bench's own)"},
			&cli.StringFlag{Name: "redis-url", Value: "redis://127.0.0.1:6379/0", Usage: "Redis to compare with"},
			&cli.StringFlag{Name: "redis-prefix", Value: "rtcmp:", Usage: "the key prefix written and deleted (must be the bench's own)"},
			&cli.DurationFlag{Name: "sms-duration", Value: 10 * time.Second, Usage: "how long each SMS side is driven (0 skips the SMS path)"},
			&cli.IntFlag{Name: "sms-subscribers", Value: 10_000, Usage: "population of the SMS path"},
			&cli.IntFlag{Name: "sms-concurrency", Value: 200, Usage: "subscribers texting at once"},
			&cli.StringFlag{Name: "json", Usage: "also write the result as JSON to this file (docs/bench/compare.json)"},
		),
		Action: func(c *cli.Context) error {
			cfg := compareConfig{
				subscribers: c.Int("subscribers"), days: c.Int("days"), seed: c.Int64("seed"), queries: c.Int("queries"),
				throughputFor: c.Duration("throughput-for"), workers: c.Int("workers"),
				pgURL: c.String("postgres-url"), pgTable: c.String("postgres-table"),
				redisURL: c.String("redis-url"), redisPrefix: c.String("redis-prefix"),
			}
			switch {
			case cfg.subscribers < 1:
				return fmt.Errorf("--subscribers: want 1 or more")
			case cfg.days < 15 || cfg.days > itinerary.MaxDays:
				return fmt.Errorf("--days: want 15..%d", itinerary.MaxDays)
			case cfg.queries < 100:
				return fmt.Errorf("--queries: want at least 100")
			case cfg.workers < 1:
				return fmt.Errorf("--workers: want 1 or more")
			case cfg.throughputFor < 100*time.Millisecond:
				return fmt.Errorf("--throughput-for: want at least 100ms")
			}
			smsCfg := smsBenchDefaults()
			smsCfg.subscribers, smsCfg.concurrency, smsCfg.duration = c.Int("sms-subscribers"), c.Int("sms-concurrency"), c.Duration("sms-duration")
			if smsCfg.duration > 0 && (smsCfg.concurrency < 1 || smsCfg.concurrency > smsCfg.subscribers) {
				return fmt.Errorf("--sms-concurrency: want 1..--sms-subscribers")
			}
			res, err := runCompare(c.Context, cfg, e.stderr)
			if err != nil {
				return err
			}
			if smsCfg.duration > 0 {
				log, err := e.logger(c)
				if err != nil {
					return err
				}
				cleanup, err := tempDataDir(c, "benchcompare")
				if err != nil {
					return err
				}
				defer cleanup()
				if res.SMS, err = e.runSMSBench(c, log.Level(zerolog.ErrorLevel), smsCfg); err != nil {
					return err
				}
			}
			if path := c.String("json"); path != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("--json: %w", err)
				}
			}
			_, err = fmt.Fprint(e.stdout, res.table())
			return err
		},
	}
}

type compareConfig struct {
	subscribers, days, queries, workers int
	seed                                int64
	throughputFor                       time.Duration
	pgURL, pgTable                      string
	redisURL, redisPrefix               string
}

type compareLatency struct {
	P50    float64 `json:"p50_us"`
	P99    float64 `json:"p99_us"`
	PerSec float64 `json:"per_sec"`
}

type compareSide struct {
	Name        string         `json:"name"`
	What        string         `json:"what"`
	LoadSeconds float64        `json:"load_seconds"`
	Loaded      string         `json:"loaded"`
	Bytes       int64          `json:"bytes"`
	BytesHow    string         `json:"bytes_how"`
	BytesPerVis float64        `json:"bytes_per_visit"`
	ServerBytes int64          `json:"server_bytes_delta,omitempty"`
	Lookup15    compareLatency `json:"lookup15"`
	Lookup30    compareLatency `json:"lookup30"`
	// Ratio is each figure divided by roamtrail's: above 1 is more time,
	// more bytes, or (lookups/s) more throughput than roamtrail.
	Ratio map[string]float64 `json:"ratio_to_roamtrail"`
}

type compareResult struct {
	Subscribers   int             `json:"subscribers"`
	Days          int             `json:"days"`
	Events        int64           `json:"events"`
	Visits        int             `json:"visits"`
	Cores         int             `json:"cores"`
	Workers       int             `json:"workers"`
	Queries       int             `json:"queries_per_window_and_backend"`
	Agreed        int             `json:"lookups_cross_checked"`
	ThroughputFor float64         `json:"throughput_seconds_per_window_and_backend"`
	Backends      []*compareSide  `json:"backends"`
	SMS           *smsBenchResult `json:"sms,omitempty"`
}

// compareWindows are the lookups timed: the two the service answers.
var compareWindows = [2]int{15, 30}

// runCompare loads one generated population into roamtrail's store,
// PostgreSQL and Redis, then times the same lookups against each,
// interleaved so that whatever else the machine does falls on all three
// alike.
func runCompare(ctx context.Context, cfg compareConfig, progress io.Writer) (_ *compareResult, err error) {
	res := &compareResult{Subscribers: cfg.subscribers, Days: cfg.days, Cores: runtime.GOMAXPROCS(0), Workers: cfg.workers,
		Queries: cfg.queries, ThroughputFor: cfg.throughputFor.Seconds()}

	// The alternatives first: a server that does not answer should fail
	// the run before the population is made. Their data is removed on
	// every way out, an interrupt included (ctx is cancelled then, so
	// the clean-up gets a context of its own).
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	}
	pg, err := compare.OpenPostgres(ctx, compare.PostgresOptions{URL: cfg.pgURL, Table: cfg.pgTable, Conns: cfg.workers})
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		err = errors.Join(err, pg.Close(cctx))
	}()
	rd, err := compare.NewRedis(ctx, compare.RedisOptions{URL: cfg.redisURL, Prefix: cfg.redisPrefix})
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		err = errors.Join(err, rd.Close(cctx))
	}()

	tmp, err := os.MkdirTemp("", "roamtrail-compare-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return nil, err
	}
	start := time.Now().In(loc)
	base := time.Date(start.Year(), start.Month(), start.Day(), 12, 0, 0, 0, loc)
	now := func() time.Time { return base }
	key := make([]byte, privacy.KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	ps, err := privacy.NewPseudonymizer(key)
	if err != nil {
		return nil, err
	}
	opts := store.Options{Location: loc, Now: now, KeyFingerprint: ps.Fingerprint()}

	// The population's events are folded into visits by roamtrail's own
	// ingest, into a store in memory; every backend then loads those
	// visits, so that all three load the same rows and the load times
	// compare. (Ingest from raw events is `roamtrail bench`'s figure.)
	fmt.Fprintf(progress, "bench compare: generating %d subscribers x %d days and folding their events into visits...\n", cfg.subscribers, cfg.days)
	fold := opts
	fold.FS = vfs.NewMem()
	mdb, err := store.Open(ctx, "fold", fold)
	if err != nil {
		return nil, err
	}
	defer mdb.Close()
	events, _, err := benchIngest(ctx, mdb, ps, fixtures.Config{Subscribers: cfg.subscribers, Days: cfg.days, Seed: cfg.seed, End: base, Location: loc})
	if err != nil {
		return nil, err
	}
	res.Events = events
	subs := make([]itinerary.Pseudonym, cfg.subscribers)
	for i := range subs {
		subs[i] = ps.Pseudonym(msisdn.Number("+86" + strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i), 10)))
	}
	w := itinerary.LastDays(now(), loc, cfg.days)
	pop := make([]compare.Subscriber, len(subs))
	for i, sub := range subs {
		vs, err := mdb.Visits(ctx, sub, w, nil)
		if err != nil {
			return nil, err
		}
		pop[i] = compare.Subscriber{Sub: sub, Visits: vs}
		res.Visits += len(vs)
	}
	if err := mdb.Close(); err != nil {
		return nil, err
	}
	n := res.Visits

	db, err := store.Open(ctx, filepath.Join(tmp, "data"), opts)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	fmt.Fprintf(progress, "bench compare: loading %d visits into roamtrail...\n", n)
	took, err := compareLoadStore(ctx, db, pop, loc)
	if err != nil {
		return nil, err
	}
	rt := &compareSide{Name: "roamtrail", What: "Pebble on disk, an in-memory index, in-process", LoadSeconds: took.Seconds(),
		Loaded:   fmt.Sprintf("%d visits: each as its first and last sighting, folded again, fsynced Pebble batches of 65536", n),
		BytesHow: "Pebble on disk after a full compaction (the in-memory index is not counted)"}
	if err := db.Flush(); err != nil {
		return nil, err
	}
	if err := db.Compact(ctx); err != nil {
		return nil, err
	}
	st := db.Stats()
	rt.Bytes = st.DiskBytes
	if st.Visits != n {
		return nil, fmt.Errorf("bench compare: roamtrail holds %d visits of the %d loaded", st.Visits, n)
	}
	pgSide := &compareSide{Name: "postgresql", What: "one row a visit, primary key (pseudonym, day, region), pgx prepared statement",
		Loaded: fmt.Sprintf("%d visits: binary COPY, then the primary key and ANALYZE", n), BytesHow: "pg_total_relation_size: heap, index, TOAST"}
	redisSide := &compareSide{Name: "redis", What: "one sorted set per subscriber scored by day, ZRANGEBYSCORE",
		Loaded: fmt.Sprintf("%d visits: ZADD, 1000 subscribers a pipeline", n), BytesHow: "sum of MEMORY USAGE over the keys"}
	for _, l := range []struct {
		side *compareSide
		load func(context.Context, []compare.Subscriber) (compare.Load, error)
	}{{pgSide, pg.Load}, {redisSide, rd.Load}} {
		fmt.Fprintf(progress, "bench compare: loading %d visits into %s...\n", n, l.side.Name)
		t0 := time.Now()
		ld, err := l.load(ctx, pop)
		if err != nil {
			return nil, err
		}
		l.side.LoadSeconds = time.Since(t0).Seconds()
		l.side.Bytes, l.side.ServerBytes = ld.Bytes, ld.ServerBytes
	}
	pop = nil
	res.Backends = []*compareSide{rt, pgSide, redisSide}
	for _, s := range res.Backends {
		s.BytesPerVis = float64(s.Bytes) / float64(max(res.Visits, 1))
	}

	engines := make([]*itinerary.Engine, 3)
	for i, src := range []itinerary.VisitSource{db, pg, rd} {
		engines[i] = &itinerary.Engine{Source: src, Rules: itinerary.Rules{MinDwell: itinerary.DefaultMinDwell}, Location: loc, Now: now}
	}
	fmt.Fprintf(progress, "bench compare: %d lookups per window and backend, interleaved...\n", cfg.queries)
	lat, agreed, err := compareLatencies(ctx, engines, res.Backends, subs, cfg.queries, cfg.seed)
	if err != nil {
		return nil, err
	}
	res.Agreed = agreed
	fmt.Fprintf(progress, "bench compare: lookups/s with %d workers, %s per window and backend...\n", cfg.workers, cfg.throughputFor)
	for wi, days := range compareWindows {
		perSec, err := compareThroughput(ctx, engines, subs, days, cfg.workers, cfg.throughputFor, cfg.seed)
		if err != nil {
			return nil, err
		}
		for b, s := range res.Backends {
			l := compareLatency{P50: lat[b][wi][0], P99: lat[b][wi][1], PerSec: perSec[b]}
			if days == 15 {
				s.Lookup15 = l
			} else {
				s.Lookup30 = l
			}
		}
	}
	for _, s := range res.Backends {
		s.Ratio = map[string]float64{
			"load_seconds":     s.LoadSeconds / rt.LoadSeconds,
			"bytes_per_visit":  s.BytesPerVis / rt.BytesPerVis,
			"lookup15_p50":     s.Lookup15.P50 / rt.Lookup15.P50,
			"lookup15_p99":     s.Lookup15.P99 / rt.Lookup15.P99,
			"lookup15_per_sec": s.Lookup15.PerSec / rt.Lookup15.PerSec,
			"lookup30_p50":     s.Lookup30.P50 / rt.Lookup30.P50,
			"lookup30_p99":     s.Lookup30.P99 / rt.Lookup30.P99,
			"lookup30_per_sec": s.Lookup30.PerSec / rt.Lookup30.PerSec,
		}
	}
	return res, nil
}

// compareLoadStore applies pop to db as sightings, each visit as its
// first and its last (one when they are the same second), in synced
// batches of 65536 as ingest does, and returns how long it took.
func compareLoadStore(ctx context.Context, db *store.DB, pop []compare.Subscriber, loc *time.Location) (time.Duration, error) {
	const batchSize = 1 << 16
	batch := make([]store.Sighting, 0, batchSize)
	start := time.Now()
	flush := func() error {
		_, err := db.Apply(ctx, batch, nil)
		batch = batch[:0]
		return err
	}
	for _, s := range pop {
		for _, v := range s.Visits {
			midnight := v.Day.Time(loc)
			batch = append(batch, store.Sighting{Sub: s.Sub, Time: midnight.Add(time.Duration(v.First) * time.Second), Region: v.Region})
			if v.Last != v.First {
				batch = append(batch, store.Sighting{Sub: s.Sub, Time: midnight.Add(time.Duration(v.Last) * time.Second), Region: v.Region})
			}
			if len(batch) >= batchSize-1 {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// compareLatencies times queries lookups per window on every backend,
// one at a time: each query (a random subscriber, a window) goes to all
// three in turn, the first one rotating, and their itineraries must be
// equal. It returns p50 and p99 in microseconds by backend and window,
// and how many queries were checked.
func compareLatencies(ctx context.Context, engines []*itinerary.Engine, sides []*compareSide, subs []itinerary.Pseudonym, queries int, seed int64) ([][2][2]float64, int, error) {
	r := rand.New(rand.NewPCG(uint64(seed), 99))
	// A short warm-up on each, untimed: connections, plans, caches.
	for i := range 300 {
		for _, e := range engines {
			if _, err := e.Lookup(ctx, subs[r.IntN(len(subs))], compareWindows[i%2]); err != nil {
				return nil, 0, err
			}
		}
	}
	lat := make([][2][]time.Duration, len(engines))
	for b := range lat {
		for wi := range lat[b] {
			lat[b][wi] = make([]time.Duration, 0, queries)
		}
	}
	its := make([]itinerary.Itinerary, len(engines))
	for q := range 2 * queries {
		wi := q % 2
		sub := subs[r.IntN(len(subs))]
		for k := range engines {
			b := (q + k) % len(engines)
			t0 := time.Now()
			it, err := engines[b].Lookup(ctx, sub, compareWindows[wi])
			d := time.Since(t0)
			if err != nil {
				return nil, 0, err
			}
			lat[b][wi] = append(lat[b][wi], d)
			its[b] = it
		}
		for b := 1; b < len(engines); b++ {
			if !reflect.DeepEqual(its[b], its[0]) {
				return nil, 0, fmt.Errorf("bench compare: %s and %s disagree on a %d-day itinerary (query %d): %d places against %d",
					sides[b].Name, sides[0].Name, compareWindows[wi], q, len(its[b].Places), len(its[0].Places))
			}
		}
	}
	out := make([][2][2]float64, len(engines))
	for b := range lat {
		for wi, ds := range lat[b] {
			slices.Sort(ds)
			q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Nanoseconds()) / 1e3 }
			out[b][wi] = [2]float64{q(0.50), q(0.99)}
		}
	}
	return out, 2 * queries, nil
}

// compareTurn is how long one backend is driven before the next takes
// its turn in the lookups/s phase: short, so that a neighbour's burst of
// CPU falls on every backend alike.
const compareTurn = 100 * time.Millisecond

// compareThroughput runs workers concurrent lookups of days days against
// each backend in turns of compareTurn, round robin with the first one
// rotating, until each had total, and returns lookups/s by backend.
func compareThroughput(ctx context.Context, engines []*itinerary.Engine, subs []itinerary.Pseudonym, days, workers int, total time.Duration, seed int64) ([]float64, error) {
	rounds := max(1, int(total/compareTurn))
	counts := make([]int64, len(engines))
	spent := make([]time.Duration, len(engines))
	var (
		errMu    sync.Mutex
		firstErr error
	)
	for round := range rounds {
		for k := range engines {
			b := (round + k) % len(engines)
			var stop atomic.Bool
			var n atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for wk := range workers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(seed)+uint64(round), uint64(wk)))
					c := int64(0)
					for !stop.Load() {
						if _, err := engines[b].Lookup(ctx, subs[r.IntN(len(subs))], days); err != nil {
							errMu.Lock()
							firstErr = cmp.Or(firstErr, err)
							errMu.Unlock()
							break
						}
						c++
					}
					n.Add(c)
				})
			}
			time.Sleep(compareTurn)
			stop.Store(true)
			wg.Wait()
			spent[b] += time.Since(start)
			counts[b] += n.Load()
			if firstErr != nil {
				return nil, firstErr
			}
		}
	}
	perSec := make([]float64, len(engines))
	for b := range perSec {
		perSec[b] = float64(counts[b]) / spent[b].Seconds()
	}
	return perSec, nil
}

func (r *compareResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "roamtrail bench compare: %d subscribers x %d days, %d visits (%d events), %d cores\n", r.Subscribers, r.Days, r.Visits, r.Events, r.Cores)
	fmt.Fprintf(&b, "  %d lookups per window and backend timed one by one, interleaved query by query; all %d gave the same itinerary on every backend\n", r.Queries, r.Agreed)
	fmt.Fprintf(&b, "  lookups/s: %d workers, %gs per window and backend in turns of %s\n\n", r.Workers, r.ThroughputFor, compareTurn)
	fmt.Fprintf(&b, "  %-18s", "")
	for _, s := range r.Backends {
		fmt.Fprintf(&b, " %22s", s.Name)
	}
	b.WriteString("\n")
	row := func(name, key, format string, val func(s *compareSide) float64) {
		fmt.Fprintf(&b, "  %-18s", name)
		for i, s := range r.Backends {
			v := fmt.Sprintf(format, val(s))
			if i > 0 {
				v += fmt.Sprintf(" (%sx)", ratioString(s.Ratio[key]))
			}
			fmt.Fprintf(&b, " %22s", v)
		}
		b.WriteString("\n")
	}
	row("load", "load_seconds", "%.1f s", func(s *compareSide) float64 { return s.LoadSeconds })
	row("bytes per visit", "bytes_per_visit", "%.1f", func(s *compareSide) float64 { return s.BytesPerVis })
	row("15-day p50", "lookup15_p50", "%.1f us", func(s *compareSide) float64 { return s.Lookup15.P50 })
	row("15-day p99", "lookup15_p99", "%.1f us", func(s *compareSide) float64 { return s.Lookup15.P99 })
	row("15-day lookups/s", "lookup15_per_sec", "%.0f", func(s *compareSide) float64 { return s.Lookup15.PerSec })
	row("30-day p50", "lookup30_p50", "%.1f us", func(s *compareSide) float64 { return s.Lookup30.P50 })
	row("30-day p99", "lookup30_p99", "%.1f us", func(s *compareSide) float64 { return s.Lookup30.P99 })
	row("30-day lookups/s", "lookup30_per_sec", "%.0f", func(s *compareSide) float64 { return s.Lookup30.PerSec })
	b.WriteString("  (Nx): the backend's figure over roamtrail's\n")
	for _, s := range r.Backends {
		fmt.Fprintf(&b, "  %s: %s; load: %s; bytes: %s", s.Name, s.What, s.Loaded, s.BytesHow)
		if s.ServerBytes != 0 {
			fmt.Fprintf(&b, " (used_memory grew by %d bytes, %.1f a visit)", s.ServerBytes, float64(s.ServerBytes)/float64(max(r.Visits, 1)))
		}
		b.WriteString("\n")
	}
	if r.SMS != nil {
		b.WriteString("\n")
		b.WriteString(r.SMS.table())
	}
	return b.String()
}

// ratioString prints a ratio with the digits it needs.
func ratioString(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

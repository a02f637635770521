package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
	"github.com/roamtrail/roamtrail/smsgw/state"
	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/feed"
	"github.com/roamtrail/roamtrail/store/journal"
)

// gatewayFlags are serve's own flags; each is also read from
// ROAMTRAIL_<FLAG> and, with --config, from a YAML file (flags win).
func gatewayFlags() []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "smsc", Value: "127.0.0.1:2775", Usage: "the SMSC's HOST:PORT"},
		&cli.StringFlag{Name: "system-id", Value: "roamtrail", Usage: "SMPP system_id"},
		&cli.StringFlag{Name: "password", Usage: "SMPP password (prefer ROAMTRAIL_PASSWORD or the config file)"},
		&cli.StringFlag{Name: "system-type", Usage: "SMPP system_type"},
		&cli.StringFlag{Name: "bind", Value: "trx", Usage: "trx (one transceiver) or rx+tx (a receiver and a transmitter)"},
		&cli.BoolFlag{Name: "tls", Usage: "SMPP over TLS"},
		&cli.StringFlag{Name: "tls-ca", Usage: "with --tls: PEM file of the CA certificates the SMSC's certificate must chain to (default: the system's)"},
		&cli.StringFlag{Name: "short-code", Value: "10086", Usage: "the service number subscribers text"},
		&cli.StringFlag{Name: "redis-url", Usage: "Redis for state shared by several instances (redis://host:port/db); default: in memory, one instance"},
		// Instances that share state must share the prefix; deployments (or
		// tests) that share one Redis must not.
		&cli.StringFlag{Name: "redis-prefix", Value: state.DefaultPrefix, Usage: "first part of every Redis key", Hidden: true},
		&cli.StringFlag{Name: "http", Value: "127.0.0.1:9090", Usage: "address of /healthz and /metrics"},
		// 10 outstanding submits over a WAN round trip of 10 ms is 1,000
		// a second, below the 2,000 queries (4,000 replies) a second a
		// province asks; agree the window with the SMSC's operator.
		&cli.IntFlag{Name: "window", Value: 50, Usage: "most submit_sm awaiting a response (agree it with the SMSC's operator)"},
		&cli.Float64Flag{Name: "max-tps", Value: 0, Usage: "most submit_sm per second toward the SMSC (0: no cap)"},
		&cli.StringFlag{Name: "long", Value: "udh", Usage: "how long replies travel: udh, sar or payload"},
		&cli.IntFlag{Name: "daily-limit", Value: 10, Usage: "itinerary requests per subscriber per day"},
		&cli.IntFlag{Name: "global-limit", Value: 120_000, Usage: "MOs taken per minute across all instances (a flood breaker)"},
		&cli.IntFlag{Name: "workers", Value: 64, Usage: "jobs worked on at once"},
		// Taking an MO waits for its job's fsync, which the job journal
		// shares among every write waiting at that moment: the more MOs
		// taken at once, the more one fsync covers. With 4 (the session's
		// default) a 2 ms fsync would cap the service at 2,000 MOs a
		// second. bench sms measured 32 and 64 alike (with the queue in
		// Pebble), and 64, 128 and 256 alike within its noise (journal,
		// 2026-11-28: 0.50/0.63, 0.52/0.59, 0.56/0.62 of the echo).
		&cli.IntFlag{Name: "mo-concurrency", Value: 64, Usage: "MOs taken at once (each waits for one shared fsync before its deliver_sm_resp)"},
		// The link's timers, hidden: the defaults suit operators' SMSCs;
		// the fault tests shorten them to see a dead link within seconds.
		&cli.DurationFlag{Name: "enquire-link", Hidden: true, Usage: "how often to send enquire_link (0: 30s)"},
		&cli.DurationFlag{Name: "enquire-link-timeout", Hidden: true, Usage: "how long an enquire_link may wait for its resp before the link is taken for dead (0: 10s)"},
		&cli.DurationFlag{Name: "response-timeout", Hidden: true, Usage: "how long a submit_sm may wait for its resp before its outcome is unknown (0: 30s)"},
		&cli.BoolFlag{Name: "resend-lost", Usage: "with --bind trx: send a reply again when the link died under it and the SMSC then redelivers its MO (no lost reply, but a duplicate if the SMSC redelivers for a late resp)"},
		auditKeyFlag(),
		procsFlag(),
	}
	for _, f := range storeFlags() {
		fs = append(fs, f)
	}
	// Every flag can come from the config file too.
	return withConfig(fs, "YAML file with the same settings (flag names as keys)")
}

func (e *env) serveCommand() *cli.Command {
	flags := gatewayFlags()
	return &cli.Command{
		Name:      "serve",
		Usage:     "bind to the SMSC and answer subscribers' itinerary requests",
		ArgsUsage: " ",
		Flags:     flags,
		Before:    altsrc.InitInputSourceWithContext(flags, configFile),
		Action: func(c *cli.Context) error {
			log, err := e.logger(c)
			if err != nil {
				return err
			}
			cfg, err := gatewayConfigFrom(c)
			if err != nil {
				return err
			}
			return e.serve(c, log, cfg, nil)
		},
	}
}

// gatewayConfig is serve's settings, validated.
type gatewayConfig struct {
	smpp        smpp.Options
	gw          smsgw.Options
	redisURL    string
	redisPrefix string
	httpAddr    string
	shortCode   string
}

func gatewayConfigFrom(c *cli.Context) (gatewayConfig, error) {
	var g gatewayConfig
	g.smpp = smpp.Options{
		Addr: c.String("smsc"), SystemID: c.String("system-id"), Password: c.String("password"), SystemType: c.String("system-type"),
		Window: c.Int("window"), MaxTPS: c.Float64("max-tps"), Name: "smsc",
		EnquireLinkInterval: c.Duration("enquire-link"), EnquireLinkTimeout: c.Duration("enquire-link-timeout"),
		ResponseTimeout: c.Duration("response-timeout"),
	}
	if g.smpp.EnquireLinkInterval < 0 || g.smpp.EnquireLinkTimeout < 0 || g.smpp.ResponseTimeout < 0 {
		return g, fmt.Errorf("--enquire-link, --enquire-link-timeout, --response-timeout: want 0 or more")
	}
	if _, _, err := net.SplitHostPort(g.smpp.Addr); err != nil {
		return g, fmt.Errorf("--smsc: want HOST:PORT")
	}
	switch c.String("bind") {
	case "trx":
		g.smpp.Mode = smpp.Transceiver
	case "rx+tx":
		g.smpp.Mode = smpp.ReceiverTransmitter
	default:
		return g, fmt.Errorf("--bind: want trx or rx+tx")
	}
	if c.Bool("tls") {
		host, _, _ := net.SplitHostPort(g.smpp.Addr)
		g.smpp.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		// An operator's SMSC often has a certificate from the operator's
		// own CA, which the system's roots do not hold.
		if path := c.String("tls-ca"); path != "" {
			pem, err := os.ReadFile(path)
			if err != nil {
				return g, fmt.Errorf("--tls-ca: %w", err)
			}
			g.smpp.TLS.RootCAs = x509.NewCertPool()
			if !g.smpp.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return g, fmt.Errorf("--tls-ca: no PEM certificate in %s", path)
			}
		}
	} else if c.String("tls-ca") != "" {
		return g, fmt.Errorf("--tls-ca: only with --tls")
	}
	if g.smpp.Window < 1 || g.smpp.Window > 1000 {
		return g, fmt.Errorf("--window: want 1..1000")
	}
	if g.smpp.MaxTPS < 0 {
		return g, fmt.Errorf("--max-tps: want 0 or more")
	}
	if g.gw.ResendLost = c.Bool("resend-lost"); g.gw.ResendLost && g.smpp.Mode != smpp.Transceiver {
		return g, fmt.Errorf("--resend-lost: only with --bind trx")
	}
	switch c.String("long") {
	case "udh":
		g.gw.Carriage = smpp.CarriageUDH
	case "sar":
		g.gw.Carriage = smpp.CarriageSAR
	case "payload":
		g.gw.Carriage = smpp.CarriagePayload
	default:
		return g, fmt.Errorf("--long: want udh, sar or payload")
	}
	g.shortCode = c.String("short-code")
	if g.shortCode == "" || len(g.shortCode) > 20 || strings.Trim(g.shortCode, "0123456789") != "" {
		return g, fmt.Errorf("--short-code: want digits")
	}
	g.gw.ShortCode = g.shortCode
	if g.gw.DailyLimit = c.Int("daily-limit"); g.gw.DailyLimit < 1 {
		return g, fmt.Errorf("--daily-limit: want 1 or more")
	}
	if g.gw.GlobalLimit = c.Int("global-limit"); g.gw.GlobalLimit < 1 {
		return g, fmt.Errorf("--global-limit: want 1 or more")
	}
	if g.gw.Workers = c.Int("workers"); g.gw.Workers < 1 || g.gw.Workers > 1024 {
		return g, fmt.Errorf("--workers: want 1..1024")
	}
	if g.smpp.HandlerWorkers = c.Int("mo-concurrency"); g.smpp.HandlerWorkers < 1 || g.smpp.HandlerWorkers > 4096 {
		return g, fmt.Errorf("--mo-concurrency: want 1..4096")
	}
	// MOs beyond those in hand wait here, not in the kernel's socket
	// buffer, so that enquire_link and submit responses behind them are
	// read; past it an MO is refused at once (ESME_RX_T_APPN).
	g.smpp.HandlerQueue = 4 * g.smpp.HandlerWorkers
	g.redisURL = c.String("redis-url")
	g.redisPrefix = c.String("redis-prefix")
	g.httpAddr = c.String("http")
	return g, nil
}

// stack is a running gateway: store, state, session, dialogue, HTTP.
type stack struct {
	svc     *services
	state   gatewayState
	session *smpp.Session
	gw      *smsgw.Gateway
	http    *http.Server
	httpLn  net.Listener
	admin   *adminServer // admin.go
	// consent changes and reads consent: with --redis-url, shared with
	// the other instances (consentsync.go); stopConsent stops following.
	consent     consentStore
	stopConsent context.CancelFunc
	ingest      *feed.Server     // live ingest and purge (ingest.go)
	alog        *audit.Log       // the access log: self-queries, consent, purges, staff
	jobs        *journal.Journal // the gateway's durable queue (jobs.go)
	wg          sync.WaitGroup
	errs        chan error

	stopPurge context.CancelFunc
}

// gatewayState is what the gateway needs of the state store, plus Close.
type gatewayState interface {
	smsgw.State
	Close() error
}

// serve runs the gateway until ctx ends (SIGTERM): then it stops taking
// MOs (the SMSC keeps them), finishes the jobs in hand, unbinds and exits.
// started, when set, is called once everything runs (tests, the demo).
func (e *env) serve(c *cli.Context, log zerolog.Logger, cfg gatewayConfig, started func(*stack)) error {
	st, err := e.startStack(c, log, cfg)
	if err != nil {
		return err
	}
	if started != nil {
		started(st)
	}
	var runErr error
	select {
	case <-c.Context.Done():
	case runErr = <-st.errs:
	}
	log.Info().Msg("shutting down: no new MOs, finishing the jobs in hand")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), 30*time.Second)
	defer cancel()
	return errors.Join(runErr, st.stop(ctx))
}

func (e *env) startStack(c *cli.Context, log zerolog.Logger, cfg gatewayConfig) (_ *stack, err error) {
	st := &stack{errs: make(chan error, 4)}
	defer func() {
		if err != nil {
			st.stop(context.Background())
		}
	}()
	if err := setProcs(c.Int("procs")); err != nil {
		return nil, err
	}
	if st.svc, err = e.openServices(c, log); err != nil {
		return nil, err
	}
	// The access log (DATA_DIR/audit), signed with --audit-key: every
	// itinerary and every change of consent is on it before it is sent or
	// confirmed. serve is its one writer while it runs; staff commands
	// reach it through the admin socket.
	dataDir := c.String("data-dir")
	if st.alog, err = openAuditLog(c, dataDir, log); err != nil {
		return nil, err
	}
	if st.jobs, err = openJobs(c.Context, dataDir, st.svc.db, c.Duration("sync-interval"), log); err != nil {
		return nil, err
	}
	sealer, err := privacy.NewSealer(st.svc.key, nil)
	if err != nil {
		return nil, err
	}
	var shared *sharedConsent
	if cfg.redisURL != "" {
		r, err := state.NewRedis(c.Context, state.RedisOptions{URL: cfg.redisURL, Prefix: cfg.redisPrefix})
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		st.state = r
		// Changes of consent reach the other instances' stores
		// (followed below, once the metrics exist).
		shared = &sharedConsent{DB: st.svc.db, pub: r, origin: newOrigin()}
		st.consent = shared
	} else {
		st.consent = st.svc.db
		m, err := state.NewMemory(state.MemoryOptions{})
		if err != nil {
			return nil, err
		}
		st.state = m
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if shared != nil {
		events := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roamtrail_consent_events_total",
			Help: "Changes of consent read from the other instances, by op and outcome (applied, own, skipped).",
		}, []string{"op", "outcome"})
		reg.MustRegister(events)
		r := st.state.(*state.Redis)
		followCtx, stopFollow := context.WithCancel(context.WithoutCancel(c.Context))
		st.stopConsent = stopFollow
		st.wg.Go(func() { followConsent(followCtx, r, st.svc.db, shared.origin, events, log) })
	}
	split := cfg.smpp.Split
	words := itinerary.Wording{Catalog: st.svc.catalog, Parts: func(text string) int {
		seg, err := smstext.SplitWith(text, split)
		if err != nil {
			return 1 << 10 // too long for any reply: summarise
		}
		return len(seg.Parts)
	}}
	gwOpts := cfg.gw
	gwOpts.Wording, gwOpts.Location, gwOpts.Logger, gwOpts.Registerer = words, st.svc.loc, &log, reg
	gwOpts.OptInRequired = st.svc.collect == store.CollectOptedIn

	smppOpts := cfg.smpp
	smppOpts.Logger, smppOpts.Registerer = &log, reg
	smppOpts.Handler = func(ctx context.Context, d *smpp.Deliver) smpp.Status { return st.gw.Handle(ctx, d) }
	if st.session, err = smpp.New(smppOpts); err != nil {
		return nil, err
	}
	if st.gw, err = smsgw.New(gwOpts, smsgw.Deps{
		Itineraries: st.svc.engine, Jobs: st.jobs, State: st.state, Sender: st.session,
		Pseudonyms: st.svc.ps, Sealer: sealer,
		Consent: st.consent, AccessLog: accessLog{st.alog, auditDir(dataDir)},
	}); err != nil {
		return nil, err
	}

	// Staff commands run here while serve runs (admin.go), listening before
	// the bind so that it answers once serve is bound. They append to
	// serve's access log: it admits one writer.
	if st.admin, err = e.startAdmin(c, log, cfg, st, st.alog); err != nil {
		return nil, err
	}
	if st.ingest, err = startIngest(dataDir, st.svc, st.alog, log); err != nil {
		return nil, err
	}
	if st.ingest != nil {
		st.wg.Go(func() {
			if err := st.ingest.Serve(); err != nil {
				st.errs <- err
			}
		})
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// Ready means an MO sent now would be answered: bound, the
		// access log taking appends (no itinerary leaves without its
		// entry), and the gateway taking MOs (shared state reachable,
		// backlog not full).
		switch {
		case !st.session.Bound():
			http.Error(w, "not bound to the SMSC", http.StatusServiceUnavailable)
		case st.alog.Healthy() != nil:
			http.Error(w, "the access log takes no appends: "+st.alog.Healthy().Error(), http.StatusServiceUnavailable)
		case st.gw.Refusing() == "state":
			http.Error(w, "the shared state (Redis) does not answer", http.StatusServiceUnavailable)
		case st.gw.Refusing() == "backlog":
			http.Error(w, "the job backlog is full", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	if cfg.httpAddr != "" {
		if st.httpLn, err = net.Listen("tcp", cfg.httpAddr); err != nil {
			return nil, fmt.Errorf("--http: %w", err)
		}
		st.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		st.wg.Go(func() {
			if err := st.http.Serve(st.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				st.errs <- fmt.Errorf("http: %w", err)
			}
		})
	}
	runCtx := context.WithoutCancel(c.Context) // stop() ends them in order
	st.wg.Go(func() {
		if err := st.gw.Run(runCtx); err != nil {
			st.errs <- err
		}
	})
	st.wg.Go(func() {
		if err := st.session.Serve(runCtx); err != nil && !errors.Is(err, smpp.ErrClosed) {
			st.errs <- fmt.Errorf("smpp: %w", err)
		}
	})
	purgeCtx, stopPurge := context.WithCancel(runCtx)
	st.stopPurge = stopPurge
	st.wg.Go(func() { purgeLoop(purgeCtx, st.svc, st.alog, log) })
	// A signed checkpoint a minute while there are new entries; Close
	// writes the last one at shutdown.
	st.wg.Go(func() {
		if err := st.alog.RunCheckpoints(purgeCtx, time.Minute); err != nil {
			log.Error().Err(err).Msg("access log checkpoints stopped")
		}
	})
	log.Info().Str("smsc", cfg.smpp.Addr).Str("short_code", cfg.shortCode).Bool("redis", cfg.redisURL != "").Msg("serving")
	return st, nil
}

// purgeLoop enforces retention on disk hourly (and once at start), so that
// nothing outlives the window by more than an hour. A purge that deleted
// something (the first of each day, and the first at start) is logged.
func purgeLoop(ctx context.Context, svc *services, alog *audit.Log, log zerolog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	lastCutoff := ""
	for {
		st, err := svc.db.Purge(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error().Err(err).Msg("purge failed")
		case err == nil && st.Cutoff != lastCutoff:
			lastCutoff = st.Cutoff
			if _, err := alog.Append(ctx, purgeEntry(st, svc.retention)); err != nil && ctx.Err() == nil {
				log.Error().Err(err).Msg("cannot log a purge in the access log")
			}
		}
		// The access log's own retention (three years by default).
		if err := alog.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("cannot prune the access log")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop shuts down in order: the dialogue (finishing jobs in hand, which
// needs the session), then the session (unbind), then HTTP and the stores.
func (st *stack) stop(ctx context.Context) error {
	errs := []error{st.admin.stop(ctx)} // first: its requests use the session and store
	if st.ingest != nil {
		errs = append(errs, st.ingest.Shutdown(ctx)) // ingests in hand stop after their batch
	}
	if st.gw != nil {
		errs = append(errs, st.gw.Shutdown(ctx))
	}
	if st.session != nil {
		errs = append(errs, st.session.Shutdown(ctx))
	}
	if st.stopPurge != nil {
		st.stopPurge()
	}
	if st.stopConsent != nil {
		st.stopConsent()
	}
	if st.http != nil {
		errs = append(errs, st.http.Shutdown(ctx))
	}
	st.wg.Wait()
	if st.state != nil {
		errs = append(errs, st.state.Close())
	}
	errs = append(errs, st.alog.Close()) // the last checkpoint
	if st.jobs != nil {
		errs = append(errs, st.jobs.Close())
	}
	errs = append(errs, st.svc.Close())
	return errors.Join(errs...)
}

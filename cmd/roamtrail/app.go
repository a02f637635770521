package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/store"
)

// env holds what every command shares: the streams and the root logger.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	return &cli.App{
		Name:            "roamtrail",
		Usage:           "tell subscribers, by SMS, where their phone has been",
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main reports errors, once
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"ROAMTRAIL_LOG_LEVEL"}},
		},
		Commands: []*cli.Command{
			e.genCommand(),
			e.ingestCommand(),
			e.purgeCommand(),
			e.benchCommand(),
			e.demoCommand(),
			e.serveCommand(),
			e.simCommand(),
			e.lookupCommand(),
			e.eraseCommand(),
			e.operatorsCommand(),
			e.auditCommand(),
			e.subscriberCommand(),
		},
	}
}

// logger is the root logger: zerolog JSON on stderr.
func (e *env) logger(c *cli.Context) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Nop(), fmt.Errorf("--log-level: want debug, info, warn or error")
	}
	return zerolog.New(e.stderr).Level(lvl).With().Timestamp().Logger(), nil
}

// Store flags, shared by every command that opens a data dir. Each is also
// read from ROAMTRAIL_<FLAG>.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Value: "data", Usage: "the data dir (visits, key, audit log)", EnvVars: []string{"ROAMTRAIL_DATA_DIR"}},
		&cli.StringFlag{Name: "tz", Value: "Asia/Shanghai", Usage: "time zone whose calendar days itineraries count", EnvVars: []string{"ROAMTRAIL_TZ"}},
		&cli.DurationFlag{Name: "min-dwell", Value: itinerary.DefaultMinDwell, Usage: "least span of sightings in a city on a day for it to count (0 counts every sighting)", EnvVars: []string{"ROAMTRAIL_MIN_DWELL"}},
		&cli.IntFlag{Name: "retention", Value: 30, Usage: "days of history kept and shown, today included", EnvVars: []string{"ROAMTRAIL_RETENTION"}},
		&cli.StringFlag{Name: "key-file", Usage: "pseudonym key (32 bytes, mode 0600); default DATA_DIR/pseudonym.key, created on first use", EnvVars: []string{"ROAMTRAIL_KEY_FILE"}},
		&cli.IntFlag{Name: "min-free", Value: 144, Usage: "MiB kept free on the data dir's file system for the store's own work: below it, ingest and incoming MOs are refused (the SMSC keeps them) until space is freed; 0 turns the check off", EnvVars: []string{"ROAMTRAIL_MIN_FREE"}},
		&cli.DurationFlag{Name: "sync-interval", Value: defaultSyncInterval, Usage: "least time between two fsyncs of the store's write-ahead log, of the gateway's job queue, and of the access log: writes that come meanwhile share the next one (0: sync at once)", EnvVars: []string{"ROAMTRAIL_SYNC_INTERVAL"}},
		&cli.StringFlag{Name: "collect", Value: "all", Usage: "whose location events are kept: all (everyone but who opted out with TD) or opted-in (only who opted in with KT)", EnvVars: []string{"ROAMTRAIL_COLLECT"}},
	}
}

// services is what a data dir opens into.
type services struct {
	db        *store.DB
	ps        *privacy.Pseudonymizer
	catalog   *itinerary.Catalog
	engine    *itinerary.Engine
	loc       *time.Location
	rules     itinerary.Rules
	collect   store.Collect
	retention int    // days
	key       []byte // the pseudonym key, from which the sealer derives its own
}

func (s *services) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	return s.db.Close()
}

// storeOptions validates the store flags.
func storeOptions(c *cli.Context) (store.Options, itinerary.Rules, error) {
	loc, err := time.LoadLocation(c.String("tz"))
	if err != nil {
		return store.Options{}, itinerary.Rules{}, fmt.Errorf("--tz: unknown time zone %q", c.String("tz"))
	}
	if d := c.Duration("min-dwell"); d < 0 || d > 24*time.Hour {
		return store.Options{}, itinerary.Rules{}, fmt.Errorf("--min-dwell: want 0 to 24h, got %s", d)
	}
	if r := c.Int("retention"); r < 1 || r > 366 {
		return store.Options{}, itinerary.Rules{}, fmt.Errorf("--retention: want 1 to 366 days, got %d", r)
	}
	var collect store.Collect
	switch c.String("collect") {
	case "all", "": // "": a command without the flag opens with the default
		collect = store.CollectAll
	case "opted-in":
		collect = store.CollectOptedIn
	default:
		return store.Options{}, itinerary.Rules{}, fmt.Errorf("--collect: want all or opted-in")
	}
	minFree := int64(c.Int("min-free")) << 20
	switch {
	case minFree < 0:
		return store.Options{}, itinerary.Rules{}, fmt.Errorf("--min-free: want 0 or more MiB")
	case minFree == 0:
		minFree = -1 // off
	}
	sync := c.Duration("sync-interval")
	if sync < 0 || sync > maxSyncInterval {
		return store.Options{}, itinerary.Rules{}, fmt.Errorf("--sync-interval: want 0 to %s, got %s", maxSyncInterval, sync)
	}
	return store.Options{Location: loc, Retention: c.Int("retention"), Collect: collect, MinFree: minFree, WALMinSyncInterval: sync},
		itinerary.Rules{MinDwell: c.Duration("min-dwell")}, nil
}

// defaultSyncInterval spaces fsyncs out under load: on this project's
// machine an fsync costs about 0.2 ms of CPU, and two logs syncing as fast
// as the disk allows took a third of the CPU at 2,000 queries a second.
// bench sms with 1 or 2 ms gave a p99 at 2,000 q/s of 19 to 30 ms against
// 64 ms with 0, for a p50 1 to 2 ms higher (README, "The gateway"). An idle
// service still syncs at once: the interval only holds back an fsync that
// follows another within it.
const (
	defaultSyncInterval = 2 * time.Millisecond
	maxSyncInterval     = 100 * time.Millisecond
)

// openServices opens the data dir named by the store flags.
func (e *env) openServices(c *cli.Context, log zerolog.Logger) (*services, error) {
	opts, rules, err := storeOptions(c)
	if err != nil {
		return nil, err
	}
	dir := c.String("data-dir")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	keyFile := c.String("key-file")
	if keyFile == "" {
		keyFile = filepath.Join(dir, "pseudonym.key")
	}
	key, err := privacy.LoadOrCreateKey(keyFile, nil)
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	ps, err := privacy.NewPseudonymizer(key)
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	cat, err := itinerary.NewCatalog()
	if err != nil {
		return nil, err
	}
	opts.KeyFingerprint = ps.Fingerprint()
	opts.Logger = &log
	db, err := store.Open(c.Context, dir, opts)
	if err != nil {
		return nil, err
	}
	return &services{
		db: db, ps: ps, catalog: cat, loc: opts.Location, rules: rules, collect: opts.Collect, retention: opts.Retention, key: key,
		engine: &itinerary.Engine{Source: db, Rules: rules, Location: opts.Location},
	}, nil
}

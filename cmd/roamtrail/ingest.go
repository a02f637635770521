package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/feed"
)

func (e *env) ingestCommand() *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "read location events (CSV msisdn,time,region or JSON Lines) into the store",
		ArgsUsage: "FILE|-",
		Flags: append(storeFlags(), auditKeyFlag(),
			&cli.IntFlag{Name: "batch", Value: 1 << 16, Usage: "rows per synced batch"},
			// A feeder that runs beside serve must not take the data dir
			// while serve restarts: serve would then find it locked.
			&cli.BoolFlag{Name: "live", Usage: "only through the running service: fail rather than open the data dir when none answers"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("ingest takes one FILE, or - for standard input")
			}
			log, err := e.logger(c)
			if err != nil {
				return err
			}
			var (
				in    io.Reader = e.stdin
				size  int64     = -1
				isTTY bool
			)
			if f, ok := e.stderr.(*os.File); ok {
				isTTY = term.IsTerminal(int(f.Fd()))
			}
			name := c.Args().First()
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					size = st.Size()
				}
				in = f
			}
			var bar *progressbar.ProgressBar
			if isTTY {
				bar = progressbar.NewOptions64(size,
					progressbar.OptionSetWriter(e.stderr),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetDescription("ingest"),
					progressbar.OptionShowCount(),
					progressbar.OptionThrottle(100_000_000),
					progressbar.OptionClearOnFinish(),
				)
				defer bar.Finish()
			}
			// While serve runs it holds the store: the input goes to it.
			cl, err := feed.Dial(c.Context, ingestSocket(c.String("data-dir")))
			if err == nil {
				return e.ingestLive(c, log, cl, in, name, bar)
			}
			if !errors.Is(err, feed.ErrNoService) || c.Bool("live") {
				return err
			}
			svc, err := e.openServices(c, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			// Opened before anything is stored, so that a log that cannot
			// be written stops the run rather than leave it unrecorded.
			alog, err := openAuditLog(c, c.String("data-dir"), log)
			if err != nil {
				return err
			}
			defer alog.Close()
			opts := feed.Options{BatchSize: c.Int("batch")}
			if bar != nil {
				start := time.Now()
				opts.Progress = func(rows, bytes int64) {
					bar.Set64(bytes)
					bar.Describe(fmt.Sprintf("ingest %d rows, %.0f rows/s", rows, float64(rows)/max(time.Since(start).Seconds(), 1e-3)))
				}
			}
			fmt.Fprintln(e.stdout, "on the data dir")
			sum, err := feed.Ingest(c.Context, in, svc.catalog, svc.ps, svc.db, opts)
			fmt.Fprintln(e.stdout, sum.String())
			// Recorded even when canceled: what was acknowledged is stored.
			if _, lerr := alog.Append(context.WithoutCancel(c.Context), ingestEntry(sum, err)); lerr != nil {
				err = errors.Join(err, fmt.Errorf("access log: %w", lerr))
			}
			if err != nil {
				return fmt.Errorf("ingest stopped after the last acknowledged batch: %w", err)
			}
			return errors.Join(alog.Close(), svc.Close())
		},
	}
}

func (e *env) purgeCommand() *cli.Command {
	return &cli.Command{
		Name:      "purge",
		Usage:     "delete every visit older than the retention window, from disk too",
		ArgsUsage: " ",
		Flags:     append(storeFlags(), auditKeyFlag()),
		Action: func(c *cli.Context) error {
			log, err := e.logger(c)
			if err != nil {
				return err
			}
			if cl, err := feed.Dial(c.Context, ingestSocket(c.String("data-dir"))); err == nil {
				st, pid, err := cl.Purge(c.Context)
				if err != nil {
					return fmt.Errorf("purge by the running service (pid %d): %w", pid, err)
				}
				fmt.Fprintf(e.stdout, "by the running service (pid %d)\n", pid)
				printPurge(e.stdout, st)
				return nil
			} else if !errors.Is(err, feed.ErrNoService) {
				return err
			}
			svc, err := e.openServices(c, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			alog, err := openAuditLog(c, c.String("data-dir"), log)
			if err != nil {
				return err
			}
			defer alog.Close()
			st, err := svc.db.Purge(c.Context)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "on the data dir")
			printPurge(e.stdout, st)
			if _, err := alog.Append(c.Context, purgeEntry(st, svc.retention)); err != nil {
				return fmt.Errorf("purged, but the access log did not record it: %w", err)
			}
			if err := alog.Prune(c.Context, time.Now()); err != nil {
				return fmt.Errorf("purged visits, but could not prune the access log: %w", err)
			}
			return errors.Join(alog.Close(), svc.Close())
		},
	}
}

func printPurge(w io.Writer, st store.PurgeStats) {
	fmt.Fprintf(w, "purged everything before %s: %d visits from memory, disk %d -> %d bytes in %s\n",
		st.Cutoff, st.MemVisits, st.DiskBefore, st.DiskAfter, st.Took)
}

// ingestSocket is where serve takes live ingests and purges (feed.Listen).
// Not the admin socket: that one is a request line and a response line
// under a two-minute bound and eight slots shared with staff lookups,
// while an ingest is a stream of any length with progress acks.
func ingestSocket(dataDir string) string { return filepath.Join(dataDir, "ingest.sock") }

// ingestLive streams in to the running service and reports how far it
// acknowledged: on failure, the line to resume after.
func (e *env) ingestLive(c *cli.Context, log zerolog.Logger, cl *feed.Client, in io.Reader, name string, bar *progressbar.ProgressBar) error {
	fmt.Fprintf(e.stdout, "by the running service (pid %d)\n", cl.PID())
	start := time.Now()
	onAck := func(a feed.Ack) {
		// At debug level each ack is logged: a feeder's log says where to
		// resume even if this process is killed.
		log.Debug().Int64("line", a.Line).Int64("offset", a.Offset).Int64("rows", a.Rows).Msg("acknowledged")
		if bar != nil {
			bar.Set64(a.Offset)
			bar.Describe(fmt.Sprintf("ingest %d rows, %.0f rows/s", a.Rows, float64(a.Rows)/max(time.Since(start).Seconds(), 1e-3)))
		}
	}
	res, err := cl.Ingest(c.Context, in, c.Int("batch"), onAck)
	if err != nil {
		if res.Acked.Line == 0 {
			return fmt.Errorf("ingest by the running service (pid %d) stopped with no line acknowledged: send %s again from the start: %w", res.PID, name, err)
		}
		return fmt.Errorf("ingest by the running service (pid %d) stopped: every line through %d (byte %d) is stored; resume from line %d: %w",
			res.PID, res.Acked.Line, res.Acked.Offset, res.Acked.Line+1, err)
	}
	fmt.Fprintln(e.stdout, res.Summary.String())
	fmt.Fprintf(e.stdout, "acknowledged: every line through %d (byte %d) is stored\n", res.Acked.Line, res.Acked.Offset)
	return nil
}

// ingestRecorder puts live ingests and purges on serve's access log, as
// the offline commands put theirs (feed.Recorder).
type ingestRecorder struct {
	alog      *audit.Log
	retention int
}

func (r ingestRecorder) RecordIngest(ctx context.Context, sum feed.Summary, err error) error {
	_, lerr := r.alog.Append(ctx, ingestEntry(sum, err))
	return lerr
}

func (r ingestRecorder) RecordPurge(ctx context.Context, st store.PurgeStats) error {
	_, err := r.alog.Append(ctx, purgeEntry(st, r.retention))
	return err
}

// startIngest listens on DATA_DIR/ingest.sock for live ingests and purges
// on serve's store. Without SO_PEERCRED it runs none (nil, nil) and says so.
func startIngest(dataDir string, svc *services, alog *audit.Log, log zerolog.Logger) (*feed.Server, error) {
	srv, err := feed.Listen(feed.ServerOptions{Path: ingestSocket(dataDir), Logger: &log}, feed.ServerDeps{
		Regions: svc.catalog, Pseudonyms: svc.ps, Store: svc.db, Purger: svc.db,
		Recorder: ingestRecorder{alog, svc.retention},
	})
	if errors.Is(err, errors.ErrUnsupported) {
		log.Warn().Err(err).Msg("no ingest socket: ingest and purge cannot run while serve does")
		return nil, nil
	}
	return srv, err
}

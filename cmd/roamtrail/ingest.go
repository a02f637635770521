package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/roamtrail/roamtrail/store/feed"
)

func (e *env) ingestCommand() *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "read location events (CSV msisdn,time,region or JSON Lines) into the store",
		ArgsUsage: "FILE|-",
		Flags: append(storeFlags(), auditKeyFlag(),
			&cli.IntFlag{Name: "batch", Value: 1 << 16, Usage: "rows per synced batch"},
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
			if name := c.Args().First(); name != "-" {
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
			if isTTY {
				bar := progressbar.NewOptions64(size,
					progressbar.OptionSetWriter(e.stderr),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetDescription("ingest"),
					progressbar.OptionShowCount(),
					progressbar.OptionThrottle(100_000_000),
					progressbar.OptionClearOnFinish(),
				)
				start := time.Now()
				opts.Progress = func(rows, bytes int64) {
					bar.Set64(bytes)
					bar.Describe(fmt.Sprintf("ingest %d rows, %.0f rows/s", rows, float64(rows)/max(time.Since(start).Seconds(), 1e-3)))
				}
				defer bar.Finish()
			}
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
			fmt.Fprintf(e.stdout, "purged everything before %s: %d visits from memory, disk %d -> %d bytes in %s\n",
				st.Cutoff, st.MemVisits, st.DiskBefore, st.DiskAfter, st.Took)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/privacy/staff"
)

// adminServer is serve's admin socket: staff commands run by the CLI while
// serve runs are executed here, on serve's store, SMSC bind and state.
type adminServer struct {
	srv    *staff.Server
	svc    *staff.Service
	log    zerolog.Logger
	alog   *audit.Log // the access log, when startAdmin opened it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	serr   chan error

	once    sync.Once
	stopErr error
}

// Intervals of the admin socket's housekeeping.
const (
	sweepEvery      = 10 * time.Minute
	checkpointEvery = time.Minute
)

// startAdmin listens on DATA_DIR/admin.sock for staff commands. alog is
// the access log serve appends to (an *audit.Log); nil makes startAdmin
// open it (and close it in stop), which is right only while serve opens
// none of its own: the log admits one writer. On a system without SO_PEERCRED it logs a warning
// and runs no socket (nil, nil); staff commands then find the data dir
// locked and say so.
func (e *env) startAdmin(c *cli.Context, log zerolog.Logger, cfg gatewayConfig, st *stack, alog staff.AuditLog) (_ *adminServer, err error) {
	dataDir := c.String("data-dir")
	a := &adminServer{log: log.With().Str("component", "admin").Logger(), serr: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.stop(context.Background())
		}
	}()
	if err := privateDir(dataDir, a.log); err != nil {
		return nil, err
	}
	if alog == nil {
		if a.alog, err = openAuditLog(c, dataDir, log); err != nil {
			return nil, err
		}
		alog = a.alog
	}
	deps := staff.Deps{
		Operators:  staff.NewRegistry(filepath.Join(dataDir, "operators.json")),
		Audit:      alog,
		Pseudonyms: st.svc.ps, Codes: st.svc.db, Secret: st.svc.key,
		Itineraries: st.svc.engine, Catalog: st.svc.catalog, Eraser: st.consent, Reassigner: st.consent,
		Notifier: &smppNotifier{sender: st.session, source: shortCodeAddress(cfg.shortCode), carriage: cfg.gw.Carriage},
		AuditDir: auditDir(dataDir),
	}
	if f, ok := st.state.(staff.Forgetter); ok {
		deps.Forgetter = f // an erase clears the dialogue and counters too
	}
	if _, deps.VerifierKey, err = audit.LoadOrCreateSigner(auditKeyFile(c, dataDir), nil); err != nil {
		return nil, fmt.Errorf("--audit-key: %w", err)
	}
	if a.svc, err = staff.New(staff.Options{Logger: &log}, deps); err != nil {
		return nil, err
	}
	a.srv, err = staff.Listen(staff.ServerOptions{Path: adminSocket(dataDir), Logger: &log}, a.svc)
	if errors.Is(err, errors.ErrUnsupported) {
		a.log.Warn().Err(err).Msg("no admin socket: staff commands cannot run while serve does")
		a.srv = nil
		return nil, a.stop(context.Background())
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Go(func() { a.serr <- a.srv.Serve() })
	a.wg.Go(func() { a.sweep(ctx) })
	if a.alog != nil {
		a.wg.Go(func() {
			if err := a.alog.RunCheckpoints(ctx, checkpointEvery); err != nil && ctx.Err() == nil {
				a.log.Error().Err(err).Msg("access log checkpoints stopped")
			}
		})
	}
	a.log.Info().Str("socket", a.srv.Path()).Msg("admin socket listening")
	return a, nil
}

// privateDir makes the data dir 0700 if it is more open: it holds the
// pseudonym key and now a socket that runs staff commands.
func privateDir(dir string, log zerolog.Logger) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	log.Warn().Str("dir", dir).Str("mode", st.Mode().Perm().String()).Msg("data dir was open to group or others: made it 0700")
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	return nil
}

// sweep deletes expired staff codes now and then.
func (a *adminServer) sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		if _, err := a.svc.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn().Err(err).Msg("sweeping expired codes failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop closes the socket, waits for the requests in hand (until ctx ends),
// and closes the access log if startAdmin opened it. Safe on nil and more
// than once. serve calls it first, while the session and store requests
// need are still up.
func (a *adminServer) stop(ctx context.Context) error {
	if a == nil {
		return nil
	}
	a.once.Do(func() {
		var errs []error
		if a.srv != nil {
			errs = append(errs, a.srv.Shutdown(ctx))
		}
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
		if a.srv != nil {
			errs = append(errs, <-a.serr)
		}
		if a.alog != nil {
			errs = append(errs, a.alog.Close())
		}
		a.stopErr = errors.Join(errs...)
	})
	return a.stopErr
}

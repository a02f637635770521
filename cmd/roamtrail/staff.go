package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/privacy/staff"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// The staff commands (lookup, erase, operators, audit) first ask the
// running service over DATA_DIR/admin.sock, which owns the store lock, the
// SMSC bind and the gateway's state; when nothing answers there they open
// the data dir themselves. Either way the same staff.Service executes the
// request, so the output is the same; each says which it was.

// adminSocket is the admin socket's path in a data dir.
func adminSocket(dataDir string) string { return filepath.Join(dataDir, "admin.sock") }

// auditKeyFlag names the access log's signing key.
func auditKeyFlag() cli.Flag {
	return &cli.StringFlag{Name: "audit-key", Usage: "the access log's Ed25519 signing key, created with mode 0600 on first use; default DATA_DIR/audit.key (keep it outside the data dir in production)", EnvVars: []string{"ROAMTRAIL_AUDIT_KEY"}}
}

// auditKeyFile is the signing key's path: --audit-key where the command
// has it, else ROAMTRAIL_AUDIT_KEY (serve reads it this way until it has
// the flag), else DATA_DIR/audit.key.
func auditKeyFile(c *cli.Context, dataDir string) string {
	if p := c.String("audit-key"); p != "" {
		return p
	}
	if p := os.Getenv("ROAMTRAIL_AUDIT_KEY"); p != "" {
		return p
	}
	return filepath.Join(dataDir, "audit.key")
}

// auditDir is the access log's dir in a data dir.
func auditDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// openAuditLog opens the data dir's access log with its signing key.
func openAuditLog(c *cli.Context, dataDir string, log zerolog.Logger) (*audit.Log, error) {
	signer, _, err := audit.LoadOrCreateSigner(auditKeyFile(c, dataDir), nil)
	if err != nil {
		return nil, fmt.Errorf("--audit-key: %w", err)
	}
	sync := c.Duration("sync-interval") // 0 for a command without the store flags
	if sync < 0 || sync > maxSyncInterval {
		return nil, fmt.Errorf("--sync-interval: want 0 to %s, got %s", maxSyncInterval, sync)
	}
	l, err := audit.Open(auditDir(dataDir), audit.Options{Signer: signer, Logger: &log, MinSyncInterval: sync})
	if errors.Is(err, audit.ErrLocked) {
		return nil, fmt.Errorf("%w (another roamtrail process holds it, and no service answers on %s)", err, adminSocket(dataDir))
	}
	return l, err
}

// lazyAudit opens the access log on the first Append: a command that
// writes nothing (an auditor verifying, say) never takes the log's lock,
// never repairs its tail, and can verify a log that Open would refuse.
type lazyAudit struct {
	open func() (*audit.Log, error)

	mu  sync.Mutex
	l   *audit.Log
	err error
}

func (a *lazyAudit) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	l, err := a.get()
	if err != nil {
		return audit.Entry{}, err
	}
	return l.Append(ctx, e)
}

// get opens the log if it is not open yet; hold does so up front, so that
// the caller holds the log's lock for the whole run.
func (a *lazyAudit) get() (*audit.Log, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.l == nil && a.err == nil {
		a.l, a.err = a.open()
	}
	return a.l, a.err
}

func (a *lazyAudit) hold() error {
	_, err := a.get()
	return err
}

func (a *lazyAudit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.l == nil {
		return nil
	}
	return a.l.Close()
}

// staffNeeds says what a request opens when it runs on the data dir.
type staffNeeds struct {
	store    bool // the visit store: codes, lookups, erase
	notifier bool // an SMS to the subscriber
	holdLog  bool // the access log's lock for the whole run (registry writes)
}

// staffRun sends req to the running service, or runs it on the data dir,
// and returns the response. It tells the user which on w.
func (e *env) staffRun(c *cli.Context, req staff.Request, needs staffNeeds, w io.Writer) (staff.Response, error) {
	dataDir := c.String("data-dir")
	resp, err := staff.Call(c.Context, adminSocket(dataDir), req)
	if err == nil {
		fmt.Fprintf(w, "via the running service (pid %d)\n", resp.PID)
		return resp, nil
	}
	if !errors.Is(err, staff.ErrNoService) {
		return resp, err
	}
	log, err := e.staffLogger(c)
	if err != nil {
		return staff.Response{}, err
	}
	d, err := e.openStaffDirect(c, log, needs)
	if err != nil {
		return staff.Response{}, err
	}
	fmt.Fprintln(w, "directly on the data dir")
	resp = d.svc.Do(c.Context, req)
	if err := d.Close(); err != nil {
		// After the request: what it did stands, and is shown.
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("closing the data dir: %v", err))
	}
	return resp, nil
}

// staffLogger is the root logger, quieter by default (a staff command's
// output is its result, not the service's info lines) and serialised: the
// SMPP session logs from several goroutines, and stderr may be any writer.
func (e *env) staffLogger(c *cli.Context) (zerolog.Logger, error) {
	log, err := e.logger(c)
	if err != nil {
		return log, err
	}
	if c.String("log-level") == "info" {
		log = log.Level(zerolog.WarnLevel)
	}
	return log.Output(zerolog.SyncWriter(e.stderr)), nil
}

// staffDirect is a staff.Service on the data dir and what it opened.
type staffDirect struct {
	svc      *staff.Service
	services *services
	alog     *lazyAudit
	notifier *bindNotifier
	state    *state.Redis // the gateways' shared state, for erase
}

func (d *staffDirect) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if d.notifier != nil {
		errs = append(errs, d.notifier.Close(ctx))
	}
	if d.state != nil {
		errs = append(errs, d.state.Close())
	}
	errs = append(errs, d.alog.Close(), d.services.Close())
	return errors.Join(errs...)
}

// openStaffDirect opens what needs asks for in the data dir.
func (e *env) openStaffDirect(c *cli.Context, log zerolog.Logger, needs staffNeeds) (_ *staffDirect, err error) {
	dataDir := c.String("data-dir")
	if err := staff.CheckOwner(dataDir); err != nil {
		return nil, err
	}
	var smppOpts smpp.Options
	if needs.notifier {
		// Refuse before anything is opened or logged: nothing could be sent.
		if smppOpts, err = notifierOptions(c, log); err != nil {
			return nil, err
		}
	}
	d := &staffDirect{alog: &lazyAudit{open: func() (*audit.Log, error) { return openAuditLog(c, dataDir, log) }}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	deps := staff.Deps{
		Operators: staff.NewRegistry(filepath.Join(dataDir, "operators.json")),
		Audit:     d.alog,
		AuditDir:  auditDir(dataDir),
	}
	if needs.holdLog {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("--data-dir: %w", err)
		}
		if err := d.alog.hold(); err != nil {
			return nil, err
		}
	}
	if keyFile := auditKeyFile(c, dataDir); fileExists(keyFile) {
		if _, deps.VerifierKey, err = audit.LoadOrCreateSigner(keyFile, nil); err != nil {
			return nil, fmt.Errorf("--audit-key: %w", err)
		}
	}
	if needs.store {
		if d.services, err = e.openServices(c, log); err != nil {
			return nil, err
		}
		s := d.services
		deps.Pseudonyms, deps.Codes, deps.Secret = s.ps, s.db, s.key
		deps.Itineraries, deps.Catalog, deps.Eraser, deps.Reassigner = s.engine, s.catalog, s.db, s.db
		if url := redisURLOf(c); url != "" {
			// No service runs here, but the gateways' state in Redis
			// (pending request, counters) is the subscriber's too.
			if d.state, err = state.NewRedis(c.Context, state.RedisOptions{URL: url, Prefix: c.String("redis-prefix"), Logger: &log}); err != nil {
				return nil, fmt.Errorf("--redis-url: %w", err)
			}
			deps.Forgetter = d.state
			// and the other instances' stores hear of an erase or a
			// reassignment through the consent stream.
			shared := sharedConsent{DB: s.db, pub: d.state, origin: newOrigin()}
			deps.Eraser, deps.Reassigner = shared, shared
		}
	} else if ps, err := pseudonymizerOnly(c, dataDir); err == nil {
		deps.Pseudonyms = ps // audit show --number: the key, not the store
	}
	if needs.notifier {
		d.notifier = &bindNotifier{opts: smppOpts, source: shortCodeAddress(c.String("short-code")), carriage: carriageOf(c.String("long"))}
		deps.Notifier = d.notifier
	}
	if d.svc, err = staff.New(staff.Options{Logger: &log}, deps); err != nil {
		return nil, err
	}
	if d.services != nil {
		if _, err := d.svc.Sweep(c.Context); err != nil {
			log.Warn().Err(err).Msg("sweeping expired codes failed")
		}
	}
	return d, nil
}

// pseudonymizerOnly reads the pseudonym key without creating one: a
// command that only searches the log must not mint a key.
func pseudonymizerOnly(c *cli.Context, dataDir string) (*privacy.Pseudonymizer, error) {
	keyFile := c.String("key-file")
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, "pseudonym.key")
	}
	if !fileExists(keyFile) {
		return nil, fs.ErrNotExist
	}
	key, err := privacy.LoadOrCreateKey(keyFile, nil)
	if err != nil {
		return nil, err
	}
	return privacy.NewPseudonymizer(key)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// smscFlags are what a CLI run needs to send an SMS itself when no service
// runs: serve's SMSC settings, from flags, ROAMTRAIL_<FLAG> or the same
// --config file. --smsc has no default here: without one the command says
// so rather than guess.
func smscFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "smsc", Usage: "the SMSC's HOST:PORT, to send the subscriber's SMS when no service runs"},
		&cli.StringFlag{Name: "system-id", Value: "roamtrail", Usage: "SMPP system_id"},
		&cli.StringFlag{Name: "password", Usage: "SMPP password (prefer ROAMTRAIL_PASSWORD or the config file)"},
		&cli.StringFlag{Name: "system-type", Usage: "SMPP system_type"},
		&cli.BoolFlag{Name: "tls", Usage: "SMPP over TLS"},
		&cli.StringFlag{Name: "short-code", Value: "10086", Usage: "the service number SMS come from"},
		&cli.StringFlag{Name: "long", Value: "udh", Usage: "how long SMS travel: udh, sar or payload"},
	}
}

// staffConfigUsage describes --config on the staff and audit commands.
const staffConfigUsage = "serve's YAML file: the SMSC, data dir and key settings are read from it"

// configFile reads --config as YAML for altsrc. YAML writes 500 for a
// number a float flag takes (max-tps: 500), which altsrc refuses as an
// int; whole numbers are taken for floats here.
func configFile(c *cli.Context) (altsrc.InputSourceContext, error) {
	src, err := altsrc.NewYamlSourceFromFlagFunc("config")(c)
	if err != nil {
		return nil, err
	}
	return wholeFloats{src}, nil
}

type wholeFloats struct{ altsrc.InputSourceContext }

func (w wholeFloats) Float64(name string) (float64, error) {
	f, err := w.InputSourceContext.Float64(name)
	if err != nil {
		if n, ierr := w.InputSourceContext.Int(name); ierr == nil {
			return float64(n), nil
		}
	}
	return f, err
}

// withConfig gives every flag its ROAMTRAIL_<FLAG> variable and makes it
// readable from a --config YAML file (flags win over the file); it adds
// --config, described by usage.
func withConfig(fs []cli.Flag, usage string) []cli.Flag {
	// env gives a flag its ROAMTRAIL_<FLAG> variable unless it has one.
	env := func(vars *[]string, name string) {
		if *vars == nil {
			*vars = []string{"ROAMTRAIL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
		}
	}
	out := make([]cli.Flag, 0, len(fs)+1)
	for _, f := range fs {
		switch f := f.(type) {
		case *cli.StringFlag:
			env(&f.EnvVars, f.Name)
			out = append(out, altsrc.NewStringFlag(f))
		case *cli.IntFlag:
			env(&f.EnvVars, f.Name)
			out = append(out, altsrc.NewIntFlag(f))
		case *cli.Float64Flag:
			env(&f.EnvVars, f.Name)
			out = append(out, altsrc.NewFloat64Flag(f))
		case *cli.BoolFlag:
			env(&f.EnvVars, f.Name)
			out = append(out, altsrc.NewBoolFlag(f))
		case *cli.DurationFlag:
			out = append(out, altsrc.NewDurationFlag(f))
		default:
			out = append(out, f)
		}
	}
	return append(out, &cli.StringFlag{Name: "config", Usage: usage, EnvVars: []string{"ROAMTRAIL_CONFIG"}})
}

// notifierOptions validates the SMSC settings of a CLI run.
func notifierOptions(c *cli.Context, log zerolog.Logger) (smpp.Options, error) {
	addr := c.String("smsc")
	if addr == "" {
		return smpp.Options{}, fmt.Errorf("no service answers on %s and no SMSC is configured (--smsc, ROAMTRAIL_SMSC or --config): the subscriber cannot be sent an SMS, so nothing was done", adminSocket(c.String("data-dir")))
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return smpp.Options{}, fmt.Errorf("--smsc: want HOST:PORT")
	}
	if _, ok := carriages[c.String("long")]; !ok {
		return smpp.Options{}, fmt.Errorf("--long: want udh, sar or payload")
	}
	if sc := c.String("short-code"); sc == "" || len(sc) > 20 || strings.Trim(sc, "0123456789") != "" {
		return smpp.Options{}, fmt.Errorf("--short-code: want digits")
	}
	o := smpp.Options{
		Addr: addr, SystemID: c.String("system-id"), Password: c.String("password"), SystemType: c.String("system-type"),
		Mode: smpp.Transceiver, Name: "staff", Logger: &log,
		// Retry soon, not with the service's minute-long backoff: a person
		// is waiting, and NotifyTimeout bounds the whole wait.
		Backoff: func(n int) time.Duration { return min(500*time.Millisecond<<min(n, 4), 8*time.Second) },
	}
	if c.Bool("tls") {
		o.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

var carriages = map[string]smpp.Carriage{"udh": smpp.CarriageUDH, "sar": smpp.CarriageSAR, "payload": smpp.CarriagePayload}

func carriageOf(s string) smpp.Carriage { return carriages[s] }

// shortCodeAddress addresses the short code as the gateway does by
// default: network-specific TON, unknown NPI.
func shortCodeAddress(code string) smpp.Address { return smpp.Address{Addr: code, TON: 3, NPI: 0} }

// submitter is what sends: smpp.Session.
type submitter interface {
	SubmitParts(ctx context.Context, m *smpp.Message) ([]string, error)
}

// smppNotifier sends the subscriber an SMS from the short code over a
// bound session: the running service's, or a bindNotifier's.
type smppNotifier struct {
	sender   submitter
	source   smpp.Address
	carriage smpp.Carriage
}

func (n *smppNotifier) Notify(ctx context.Context, to msisdn.Number, text string) error {
	_, err := n.sender.SubmitParts(ctx, &smpp.Message{
		Source:   n.source,
		Dest:     smpp.Address{Addr: to.Digits(), TON: 1, NPI: 1},
		Text:     text,
		Carriage: n.carriage,
	})
	return err
}

// bindNotifier binds to the SMSC on the first Notify and unbinds on Close:
// the CLI's own way to send when no service runs. go-smpp's session layer
// here has no transmitter-only bind, so it binds as a transceiver with no
// handler: an MO the SMSC offers it is answered "try later" and stays with
// the SMSC for the service.
type bindNotifier struct {
	opts     smpp.Options
	source   smpp.Address
	carriage smpp.Carriage

	mu   sync.Mutex
	sess *smpp.Session
	done chan error
}

func (b *bindNotifier) Notify(ctx context.Context, to msisdn.Number, text string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess == nil {
		sess, err := smpp.New(b.opts)
		if err != nil {
			return err
		}
		b.sess, b.done = sess, make(chan error, 1)
		go func() { b.done <- sess.Serve(context.Background()) }()
	}
	if err := b.sess.WaitBound(ctx); err != nil { // staff.Options.NotifyTimeout bounds ctx
		return fmt.Errorf("no bind to the SMSC at %s: %w", b.opts.Addr, err)
	}
	return (&smppNotifier{sender: b.sess, source: b.source, carriage: b.carriage}).Notify(ctx, to, text)
}

// Close unbinds, if Notify bound.
func (b *bindNotifier) Close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess == nil {
		return nil
	}
	err := b.sess.Shutdown(ctx)
	if serr := <-b.done; !errors.Is(serr, smpp.ErrClosed) {
		err = errors.Join(err, serr)
	}
	b.sess = nil
	return err
}

// trailingFlags returns the positional arguments, taking any flags written
// after them (`operators add ID --role R`): urfave/cli stops parsing flags
// at the first argument.
func trailingFlags(c *cli.Context) ([]string, error) {
	var args []string
	in := c.Args().Slice()
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			args = append(args, in[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			args = append(args, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookupFlag(c.Command.Flags, name)
		if f == nil {
			return nil, fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if !hasValue {
			if isBoolFlag(f) {
				value = "true"
			} else if i+1 < len(in) {
				i++
				value = in[i]
			} else {
				return nil, fmt.Errorf("flag needs an argument: -%s", name)
			}
		}
		if err := c.Set(f.Names()[0], value); err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
	}
	return args, nil
}

func lookupFlag(fs []cli.Flag, name string) cli.Flag {
	for _, f := range fs {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func isBoolFlag(f cli.Flag) bool {
	switch f.(type) {
	case *cli.BoolFlag, *altsrc.BoolFlag:
		return true
	}
	return false
}

// staffOutput is where a command's result goes and where it says how it
// ran: stdout, unless --json keeps stdout for the JSON.
func (e *env) staffOutput(c *cli.Context) io.Writer {
	if c.Bool("json") {
		return e.stderr
	}
	return e.stdout
}

// finish prints a response's warnings and returns its error.
func (e *env) finish(resp staff.Response) error {
	for _, w := range resp.Warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	return resp.Err()
}

func (e *env) lookupCommand() *cli.Command {
	flags := append(withConfig(append(append(storeFlags(), auditKeyFlag()), smscFlags()...), staffConfigUsage),
		operatorFlag(),
		&cli.StringFlag{Name: "ticket", Usage: "the ticket the lookup is made under, which the subscriber is told (required)"},
		&cli.IntFlag{Name: "days", Value: 15, Usage: "15 or 30"},
		&cli.StringFlag{Name: "code", Usage: "the code the subscriber read out: shows the itinerary"},
		&cli.StringFlag{Name: "lang", Value: "zh", Usage: "the language of the subscriber's SMS: zh or en"},
		&cli.BoolFlag{Name: "json", Usage: "print the itinerary as JSON"},
	)
	return &cli.Command{
		Name:  "lookup",
		Usage: "look up a subscriber's itinerary with their consent: first send them a code, then run again with --code",
		Description: "Without --code, the subscriber is sent a one-time code by SMS naming the window and the ticket.\n" +
			"With --code (the code they read out), their itinerary is shown and they are told by SMS that it was.\n" +
			"Runs on the running service when one answers on DATA_DIR/admin.sock, else on the data dir itself\n" +
			"(then --smsc or --config says where to send the SMS).",
		ArgsUsage: "NUMBER",
		Flags:     flags,
		Before:    altsrc.InitInputSourceWithContext(flags, configFile),
		Action: func(c *cli.Context) error {
			args, err := trailingFlags(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("lookup takes one NUMBER")
			}
			req := staff.Request{
				Op: staff.OpLookup, Operator: c.String("operator"), Number: args[0],
				Ticket: c.String("ticket"), Days: c.Int("days"), Lang: c.String("lang"),
			}
			if c.IsSet("code") {
				req.Op, req.Code = staff.OpConfirm, c.String("code")
			}
			if err := requireFlags(c, "operator", "ticket"); err != nil {
				return err
			}
			resp, err := e.staffRun(c, req, staffNeeds{store: true, notifier: true}, e.staffOutput(c))
			if err != nil {
				return err
			}
			if err := e.finish(resp); err != nil {
				return err
			}
			loc, _ := time.LoadLocation(c.String("tz"))
			switch {
			case resp.CodeSent != nil:
				cs := resp.CodeSent
				if loc == nil {
					loc = time.UTC
				}
				fmt.Fprintf(e.staffOutput(c), "code sent to %s (ticket %s, last %d days); valid until %s. Ask the subscriber for it and run lookup again with --code.\n",
					cs.Masked, cs.Ticket, cs.Days, cs.Expires.In(loc).Format("2006-01-02 15:04:05 MST"))
				if c.Bool("json") {
					return json.NewEncoder(e.stdout).Encode(cs)
				}
			case resp.Itinerary != nil:
				if c.Bool("json") {
					return json.NewEncoder(e.stdout).Encode(resp.Itinerary)
				}
				printItinerary(e.stdout, resp.Itinerary)
			}
			return nil
		},
	}
}

// operatorFlag names who runs a command.
func operatorFlag() cli.Flag {
	return &cli.StringFlag{Name: "operator", Usage: "your operator ID", EnvVars: []string{"ROAMTRAIL_OPERATOR"}}
}

// storeFlag is one of storeFlags, by name.
func storeFlag(name string) cli.Flag {
	for _, f := range storeFlags() {
		if f.Names()[0] == name {
			return f
		}
	}
	panic("no store flag " + name)
}

// requireFlags reports the first of names not given.
func requireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if c.String(n) == "" {
			return fmt.Errorf("--%s is required", n)
		}
	}
	return nil
}

// printItinerary prints it as a table: place, first day, last day.
func printItinerary(w io.Writer, it *staff.Itinerary) {
	fmt.Fprintf(w, "itinerary of %s, last %d days (%s to %s), ticket %s\n", it.Masked, it.Days, it.First, it.Last, it.Ticket)
	if len(it.Places) == 0 {
		fmt.Fprintln(w, "no place on record in this window")
	} else {
		rows := [][]string{{"PLACE", "FIRST DAY", "LAST DAY"}}
		for _, p := range it.Places {
			rows = append(rows, []string{p.NameZH + " " + p.NameEN, p.FirstDay, p.LastDay})
		}
		printTable(w, rows)
	}
	if it.Notified {
		fmt.Fprintln(w, "the subscriber was told by SMS that you viewed it")
	}
}

// printTable prints rows in columns padded to their display width (a CJK
// character takes two cells), two spaces apart.
func printTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(cell))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			b.WriteString(cell)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(cell)+2))
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// displayWidth counts the terminal cells s takes: two for East Asian wide
// characters, one for the rest.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Han, r), r >= 0x3000 && r <= 0x303F, r >= 0xFF00 && r <= 0xFF60,
			unicode.Is(unicode.Hangul, r), unicode.Is(unicode.Hiragana, r), unicode.Is(unicode.Katakana, r):
			n += 2
		default:
			n++
		}
	}
	return n
}

// redisURLOf is --redis-url where the command has it.
func redisURLOf(c *cli.Context) string {
	for _, f := range c.Command.Flags {
		if f.Names()[0] == "redis-url" {
			return c.String("redis-url")
		}
	}
	return ""
}

func (e *env) eraseCommand() *cli.Command {
	flags := append(withConfig(append(storeFlags(), auditKeyFlag(),
		&cli.StringFlag{Name: "redis-url", Usage: "serve's Redis, so that an erase with no service running clears the subscriber's state there too"},
		&cli.StringFlag{Name: "redis-prefix", Value: state.DefaultPrefix, Usage: "first part of every Redis key", Hidden: true},
	), staffConfigUsage),
		operatorFlag(),
		&cli.StringFlag{Name: "ticket", Usage: "the ticket of the subscriber's request (required)"},
	)
	return &cli.Command{
		Name:      "erase",
		Usage:     "erase every visit of a subscriber, on their request",
		ArgsUsage: "NUMBER",
		Flags:     flags,
		Before:    altsrc.InitInputSourceWithContext(flags, configFile),
		Action: func(c *cli.Context) error {
			args, err := trailingFlags(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("erase takes one NUMBER")
			}
			if err := requireFlags(c, "operator", "ticket"); err != nil {
				return err
			}
			req := staff.Request{Op: staff.OpErase, Operator: c.String("operator"), Number: args[0], Ticket: c.String("ticket")}
			resp, err := e.staffRun(c, req, staffNeeds{store: true}, e.stdout)
			if err != nil {
				return err
			}
			if err := e.finish(resp); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "erased every visit of %s (ticket %s)\n", resp.Erased.Masked, resp.Erased.Ticket)
			return nil
		},
	}
}

func (e *env) operatorsCommand() *cli.Command {
	common := func(extra ...cli.Flag) []cli.Flag {
		return append(withConfig([]cli.Flag{storeFlag("data-dir"), auditKeyFlag()}, staffConfigUsage), append([]cli.Flag{operatorFlag()}, extra...)...)
	}
	sub := func(name, usage, argsUsage string, flags []cli.Flag, action func(c *cli.Context, args []string) error) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: argsUsage, Flags: flags,
			Before: altsrc.InitInputSourceWithContext(flags, configFile),
			Action: func(c *cli.Context) error {
				args, err := trailingFlags(c)
				if err != nil {
					return err
				}
				return action(c, args)
			},
		}
	}
	return &cli.Command{
		Name:  "operators",
		Usage: "who may look up (agent), audit (auditor) or manage operators (admin)",
		Subcommands: []*cli.Command{
			sub("add", "add an operator (the first admin with --bootstrap)", "ID", common(
				&cli.StringFlag{Name: "role", Usage: "agent, auditor or admin (required)"},
				&cli.BoolFlag{Name: "bootstrap", Usage: "add the first admin: allowed only while there is none"},
			), func(c *cli.Context, args []string) error {
				if len(args) != 1 {
					return fmt.Errorf("operators add takes one ID")
				}
				if err := requireFlags(c, "role"); err != nil {
					return err
				}
				req := staff.Request{Op: staff.OpOperatorsAdd, Operator: c.String("operator"), ID: args[0], Role: staff.Role(c.String("role")), Bootstrap: c.Bool("bootstrap")}
				resp, err := e.staffRun(c, req, staffNeeds{holdLog: true}, e.stdout)
				if err != nil {
					return err
				}
				if err := e.finish(resp); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "added %s (%s)\n", resp.Operators[0].ID, resp.Operators[0].Role)
				return nil
			}),
			sub("remove", "remove an operator", "ID", common(), func(c *cli.Context, args []string) error {
				if len(args) != 1 {
					return fmt.Errorf("operators remove takes one ID")
				}
				req := staff.Request{Op: staff.OpOperatorsRemove, Operator: c.String("operator"), ID: args[0]}
				resp, err := e.staffRun(c, req, staffNeeds{holdLog: true}, e.stdout)
				if err != nil {
					return err
				}
				if err := e.finish(resp); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "removed %s (%s)\n", resp.Operators[0].ID, resp.Operators[0].Role)
				return nil
			}),
			sub("list", "list operators", " ", common(&cli.BoolFlag{Name: "json", Usage: "print JSON"}), func(c *cli.Context, args []string) error {
				if len(args) != 0 {
					return fmt.Errorf("operators list takes no arguments")
				}
				resp, err := e.staffRun(c, staff.Request{Op: staff.OpOperatorsList, Operator: c.String("operator")}, staffNeeds{}, e.staffOutput(c))
				if err != nil {
					return err
				}
				if err := e.finish(resp); err != nil {
					return err
				}
				if c.Bool("json") {
					return json.NewEncoder(e.stdout).Encode(resp.Operators)
				}
				if len(resp.Operators) == 0 {
					fmt.Fprintln(e.stdout, "no operators yet; add the first admin with: roamtrail operators add ID --role admin --bootstrap")
					return nil
				}
				rows := [][]string{{"ID", "ROLE", "ADDED"}}
				for _, o := range resp.Operators {
					rows = append(rows, []string{o.ID, string(o.Role), o.Added.UTC().Format(time.RFC3339)})
				}
				printTable(e.stdout, rows)
				return nil
			}),
		},
	}
}

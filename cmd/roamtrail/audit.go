package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/privacy/staff"
)

// exitLogBad is audit verify's exit status when the log fails
// verification; other failures (bad flags, a refused operator) exit 1.
const exitLogBad = 2

func (e *env) auditCommand() *cli.Command {
	common := func(extra ...cli.Flag) []cli.Flag {
		shared := withConfig([]cli.Flag{storeFlag("data-dir"), storeFlag("key-file"), auditKeyFlag()}, staffConfigUsage)
		return append(shared, append([]cli.Flag{operatorFlag()}, extra...)...)
	}
	showFlags := common(
		&cli.StringFlag{Name: "number", Usage: "only entries about this subscriber (searched by pseudonym)"},
		&cli.StringFlag{Name: "actor", Usage: "only entries by this operator ID (or system, self)"},
		&cli.StringFlag{Name: "action", Usage: "only entries of this action: staff-lookup, code-sent, code-failed, erase, denied, ..."},
		&cli.StringFlag{Name: "since", Usage: "only entries at or after this time: RFC 3339, a date (YYYY-MM-DD, UTC) or a duration ago (24h)"},
		&cli.IntFlag{Name: "limit", Value: 1000, Usage: "the most entries shown, the newest"},
		&cli.BoolFlag{Name: "json", Usage: "one JSON object per entry"},
	)
	verifyFlags := common(
		&cli.StringFlag{Name: "checkpoint", Usage: "FILE: your copy of checkpoint.latest from the last audit; the log must still hold what it vouches for"},
		&cli.StringFlag{Name: "verifier-key", Usage: "KEY or FILE: the key to check checkpoint signatures with; default the one of the data dir's signing key"},
	)
	return &cli.Command{
		Name:  "audit",
		Usage: "read and verify the access log (auditors and admins)",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "print access log entries",
				ArgsUsage: " ",
				Flags:     showFlags,
				Before:    altsrc.InitInputSourceWithContext(showFlags, configFile),
				Action:    e.auditShow,
			},
			{
				Name:        "verify",
				Usage:       "verify the access log's hash chain and signed checkpoints",
				Description: fmt.Sprintf("Exits %d naming the first bad entry when the log fails verification.", exitLogBad),
				ArgsUsage:   " ",
				Flags:       verifyFlags,
				Before:      altsrc.InitInputSourceWithContext(verifyFlags, configFile),
				Action:      e.auditVerify,
			},
		},
	}
}

func (e *env) auditShow(c *cli.Context) error {
	if args, err := trailingFlags(c); err != nil {
		return err
	} else if len(args) != 0 {
		return fmt.Errorf("audit show takes no arguments")
	}
	since, err := parseSince(c.String("since"), time.Now())
	if err != nil {
		return err
	}
	req := staff.Request{
		Op: staff.OpAuditShow, Operator: c.String("operator"),
		Number: c.String("number"), Actor: c.String("actor"), Action: c.String("action"), Since: since, Limit: c.Int("limit"),
	}
	resp, err := e.staffRun(c, req, staffNeeds{}, e.staffOutput(c))
	if err != nil {
		return err
	}
	if err := e.finish(resp); err != nil {
		return err
	}
	es := resp.Entries
	if c.Bool("json") {
		enc := json.NewEncoder(e.stdout)
		for _, en := range es.Entries {
			if err := enc.Encode(entryJSON(en)); err != nil {
				return err
			}
		}
	} else {
		printEntries(e.stdout, es.Entries)
	}
	if es.Omitted > 0 {
		fmt.Fprintf(e.staffOutput(c), "(%d older entries not shown: raise --limit or narrow the search)\n", es.Omitted)
	}
	return nil
}

// parseSince reads --since: RFC 3339, a date (UTC midnight), or a
// duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since: want RFC 3339 (2026-11-27T08:00:00+08:00), a date (2026-11-27) or a duration (24h)")
}

// shownEntry is an entry as --json prints it.
type shownEntry struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Actor   string `json:"actor"`
	Role    string `json:"role"`
	Action  string `json:"action"`
	Subject string `json:"subject,omitempty"`
	Masked  string `json:"masked,omitempty"`
	Window  int    `json:"window,omitempty"`
	Ticket  string `json:"ticket,omitempty"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

func entryJSON(e audit.Entry) shownEntry {
	return shownEntry{e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Role, e.Action, e.Subject, e.Masked, e.Window, e.Ticket, e.Outcome, e.Detail}
}

// printEntries prints entries as a table; the pseudonym is left out (it
// means nothing to a reader; --json has it).
func printEntries(w io.Writer, es []audit.Entry) {
	if len(es) == 0 {
		fmt.Fprintln(w, "no matching entries")
		return
	}
	rows := [][]string{{"SEQ", "TIME (UTC)", "ACTOR", "ROLE", "ACTION", "NUMBER", "DAYS", "TICKET", "OUTCOME", "DETAIL"}}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, en := range es {
		days := "-"
		if en.Window > 0 {
			days = strconv.Itoa(en.Window)
		}
		rows = append(rows, []string{
			strconv.FormatUint(en.Seq, 10), en.Time.UTC().Format("2006-01-02 15:04:05"), en.Actor, en.Role, en.Action,
			dash(en.Masked), days, dash(en.Ticket), en.Outcome, dash(en.Detail),
		})
	}
	printTable(w, rows)
}

func (e *env) auditVerify(c *cli.Context) error {
	if args, err := trailingFlags(c); err != nil {
		return err
	} else if len(args) != 0 {
		return fmt.Errorf("audit verify takes no arguments")
	}
	req := staff.Request{Op: staff.OpAuditVerify, Operator: c.String("operator")}
	if f := c.String("checkpoint"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
		req.Checkpoint = b
	}
	if k := c.String("verifier-key"); k != "" {
		// A key has the form name+hash+base64; anything else is a file.
		if b, err := os.ReadFile(k); err == nil {
			k = strings.TrimSpace(string(b))
		} else if strings.Count(k, "+") < 2 {
			return fmt.Errorf("--verifier-key: neither a key nor a readable file: %w", err)
		}
		req.VerifierKey = k
	}
	resp, err := e.staffRun(c, req, staffNeeds{}, e.stdout)
	if err != nil {
		return err
	}
	if err := e.finish(resp); err != nil {
		return err
	}
	v := resp.Verify
	r := v.Report
	if v.DefaultKey {
		fmt.Fprintln(e.stdout, "note: checked with the verifier key of the data dir's own signing key; an independent audit passes --verifier-key")
	}
	if v.Problem != "" {
		where := ""
		if r.Bad != nil {
			where = " at " + r.Bad.String()
		}
		fmt.Fprintf(e.stdout, "access log FAILED verification%s after %d good entries\n", where, r.Entries)
		return cli.Exit("access log failed verification: "+v.Problem, exitLogBad)
	}
	fmt.Fprintf(e.stdout, "access log verified: %s (seq %d to %d) in %s, %s matched",
		plural(int(r.Entries), "entry", "entries"), r.First, r.Last, plural(r.Files, "file", "files"), plural(r.Checkpoints, "checkpoint", "checkpoints"))
	if r.Anchor > 0 {
		fmt.Fprintf(e.stdout, ", continuing from the prune anchor at seq %d", r.Anchor)
	}
	if r.Repairs > 0 {
		fmt.Fprintf(e.stdout, "; %s recorded", plural(r.Repairs, "crash repair", "crash repairs"))
	}
	fmt.Fprintln(e.stdout)
	if req.Checkpoint == nil {
		fmt.Fprintln(e.stdout, "note: without --checkpoint a log cut back at its end cannot be told from a shorter one; keep a copy of checkpoint.latest for the next audit")
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

func (e *env) subscriberCommand() *cli.Command {
	flags := append(storeFlags(), auditKeyFlag(),
		&cli.StringFlag{Name: "at", Usage: "when the number went to its new holder, RFC 3339 with an offset (2026-11-27T08:00:00+08:00); required"},
	)
	return &cli.Command{
		Name:  "subscriber",
		Usage: "record what happened to a subscriber's number",
		Subcommands: []*cli.Command{{
			Name:      "reassigned",
			Usage:     "record that NUMBER went to a new holder at --at: nothing from before is ever shown to them",
			ArgsUsage: "NUMBER --at TIME",
			Description: "Erases the number's visits from before --at, at once; drops events from before it that arrive later; " +
				"hides the previous holder's accesses from JL; and drops the previous holder's opt-out or opt-in. " +
				"Recorded in the access log (reassigned) before it takes effect. Like ingest, it needs the data dir: not while serve runs.",
			Flags: flags,
			Action: func(c *cli.Context) error {
				args, err := trailingFlags(c)
				if err != nil {
					return err
				}
				if len(args) != 1 {
					return errors.New("subscriber reassigned takes one NUMBER")
				}
				n, err := msisdn.Parse(args[0])
				if err != nil {
					return fmt.Errorf("NUMBER: %w", err) // msisdn's errors never repeat the number
				}
				if c.String("at") == "" {
					return errors.New("--at is required")
				}
				at, err := time.Parse(time.RFC3339, c.String("at"))
				if err != nil {
					return errors.New("--at: want RFC 3339 with an offset, e.g. 2026-11-27T08:00:00+08:00")
				}
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

				sub := svc.ps.Pseudonym(n)
				entry := systemEntry(audit.ActReassigned, "ok", "history before the reassignment erased and hidden from the new holder")
				entry.Subject, entry.Masked = audit.SubjectOf(sub), n.Masked()
				if _, err := alog.Append(c.Context, entry); err != nil {
					return fmt.Errorf("access log: %w (nothing changed)", err)
				}
				if err := svc.db.Reassigned(c.Context, sub, at); err != nil {
					entry.Outcome, entry.Detail = "failed", "the reassignment was not recorded"
					if _, lerr := alog.Append(c.Context, entry); lerr != nil {
						log.Error().Err(lerr).Msg("cannot log that the reassignment failed")
					}
					return err
				}
				fmt.Fprintf(e.stdout, "%s reassigned at %s: its history from before is erased and will not be shown to the new holder\n",
					n.Masked(), at.Format(time.RFC3339))
				return errors.Join(alog.Close(), svc.Close())
			},
		}},
	}
}

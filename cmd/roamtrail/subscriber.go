package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy/staff"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

func (e *env) subscriberCommand() *cli.Command {
	flags := append(storeFlags(), auditKeyFlag(),
		&cli.StringFlag{Name: "redis-url", Usage: "serve's Redis, so that with no service running the number's state there is cleared too"},
		&cli.StringFlag{Name: "redis-prefix", Value: state.DefaultPrefix, Usage: "first part of every Redis key", Hidden: true},
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
				"Recorded in the access log (reassigned) before it takes effect. While serve runs it is done by the service, over its admin socket.",
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
				req := staff.Request{Op: staff.OpReassign, Number: string(n), At: at}
				resp, err := e.staffRun(c, req, staffNeeds{store: true}, e.stdout)
				if err != nil {
					return err
				}
				if err := e.finish(resp); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s reassigned at %s: its history from before is erased and will not be shown to the new holder\n",
					resp.Reassigned.Masked, resp.Reassigned.At.Format(time.RFC3339))
				return nil
			},
		}},
	}
}

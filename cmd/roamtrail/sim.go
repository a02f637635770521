package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

func (e *env) simCommand() *cli.Command {
	return &cli.Command{
		Name:  "sim",
		Usage: "simulators for trying roamtrail without an operator",
		Subcommands: []*cli.Command{{
			Name:      "smsc",
			Usage:     "run the SMSC simulator; inject MOs with POST /mo, read MTs with GET /mt",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "listen", Value: "127.0.0.1:2775", Usage: "SMPP address"},
				&cli.StringFlag{Name: "http", Value: "127.0.0.1:2776", Usage: "control address: POST /mo {\"from\",\"to\",\"text\"}, GET /mt, GET /stats"},
				&cli.StringFlag{Name: "system-id", Usage: "the only system_id allowed to bind (default: anyone)"},
				&cli.StringFlag{Name: "password", Usage: "its password", EnvVars: []string{"ROAMTRAIL_SIM_PASSWORD"}},
				&cli.BoolFlag{Name: "receipts", Usage: "send delivery receipts when asked"},
			},
			Action: func(c *cli.Context) error {
				log, err := e.logger(c)
				if err != nil {
					return err
				}
				opts := smsc.Options{Logger: &log, Receipts: c.Bool("receipts")}
				if id := c.String("system-id"); id != "" {
					opts.Accounts = []smsc.Account{{SystemID: id, Password: c.String("password")}}
				}
				sim, err := smsc.Listen(c.String("listen"), opts)
				if err != nil {
					return err
				}
				ln, err := net.Listen("tcp", c.String("http"))
				if err != nil {
					sim.Close()
					return fmt.Errorf("--http: %w", err)
				}
				hs := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
				var wg sync.WaitGroup
				wg.Go(func() { hs.Serve(ln) })
				fmt.Fprintf(e.stdout, "SMSC simulator: SMPP on %s, control on http://%s\n", sim.Addr(), ln.Addr())
				err = sim.Serve(c.Context)
				ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), 5*time.Second)
				defer cancel()
				hs.Shutdown(ctx)
				sim.Shutdown(ctx)
				wg.Wait()
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			},
		}},
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/store/feed"
)

// demoCommand is what `make run` runs: the whole service on embedded
// defaults. An SMSC simulator listens on loopback, the gateway binds to it
// over real TCP as it would to an operator's SMSC, a generated population
// is ingested, and a phone console sends MOs and prints the replies.
func (e *env) demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "run the gateway against an embedded SMSC simulator with a phone console",
		ArgsUsage: " ",
		Flags: append(storeFlags(),
			&cli.IntFlag{Name: "subscribers", Value: 2000, Usage: "size of the generated population (numbers from 13800138000)"},
			&cli.StringFlag{Name: "phone", Value: "13800138000", Usage: "the console's first sender"},
			&cli.StringFlag{Name: "short-code", Value: "10086", Usage: "the service number"},
			procsFlag(),
		),
		Action: func(c *cli.Context) error {
			log, err := e.logger(c)
			if err != nil {
				return err
			}
			if c.String("log-level") == "info" {
				log = log.Level(zerolog.WarnLevel) // keep the console readable
			}
			cleanup, err := tempDataDir(c, "demo")
			if err != nil {
				return err
			}
			defer cleanup()
			phone, err := msisdn.Parse(c.String("phone"))
			if err != nil {
				return fmt.Errorf("--phone: %w", err)
			}
			shortCode := c.String("short-code")

			con := &console{out: e.stdout, phone: phone, shortCode: shortCode, mts: make(chan smsc.MT, 64)}
			sim, err := smsc.Listen("127.0.0.1:0", smsc.Options{Logger: &log, OnMT: func(mt smsc.MT) { con.mts <- mt }})
			if err != nil {
				return err
			}
			simCtx, stopSim := context.WithCancel(context.WithoutCancel(c.Context))
			var simWG sync.WaitGroup
			simWG.Go(func() { sim.Serve(simCtx) })
			defer func() { sim.Close(); stopSim(); simWG.Wait() }()

			cfg := gatewayConfig{shortCode: shortCode}
			cfg.smpp.Addr, cfg.smpp.SystemID, cfg.smpp.Window = sim.Addr(), "roamtrail", 10
			cfg.gw.ShortCode, cfg.gw.DailyLimit, cfg.gw.GlobalLimit, cfg.gw.Workers = shortCode, 10, 120_000, 4
			st, err := e.startStack(c, log, cfg)
			if err != nil {
				return err
			}
			defer st.stop(context.WithoutCancel(c.Context))

			first, err := firstNumber(phone)
			if err != nil {
				return err
			}
			pop := fixtures.Config{Subscribers: c.Int("subscribers"), Days: 30, Seed: 1, End: time.Now(), Location: st.svc.loc, FirstNumber: first}
			if err := pop.Validate(); err != nil {
				return err
			}
			var csv strings.Builder
			if err := fixtures.WriteCSV(c.Context, &csv, pop); err != nil {
				return err
			}
			sum, err := feed.Ingest(c.Context, strings.NewReader(csv.String()), st.svc.catalog, st.svc.ps, st.svc.db, feed.Options{})
			if err != nil {
				return err
			}
			waitCtx, cancel := context.WithTimeout(c.Context, 10*time.Second)
			defer cancel()
			if err := st.session.WaitBound(waitCtx); err != nil {
				return fmt.Errorf("the gateway did not bind to the embedded SMSC: %w", err)
			}
			fmt.Fprintf(e.stdout, "roamtrail demo: SMSC simulator on %s, gateway bound, %d subscribers with 30 days of history (%d events).\n", sim.Addr(), pop.Subscribers, sum.Rows)
			fmt.Fprintf(e.stdout, "Text the short code %s: CXMYD, CXMYD30, TRIP, TRIP 30, then Y; JL lists lookups, TD opts out, KT in. /phone NUMBER switches the sender, /quit ends.\n", shortCode)
			return con.run(c.Context, e, sim)
		},
	}
}

// firstNumber makes the console's phone the population's first subscriber.
func firstNumber(n msisdn.Number) (uint64, error) {
	var v uint64
	if _, err := fmt.Sscan(n.National(), &v); err != nil || len(n.National()) != 11 {
		return 0, fmt.Errorf("--phone: want an 11-digit Chinese mobile number")
	}
	return v, nil
}

type console struct {
	out       interface{ Write([]byte) (int, error) }
	phone     msisdn.Number
	shortCode string
	mts       chan smsc.MT
}

func (con *console) run(ctx context.Context, e *env, sim *smsc.Server) error {
	interactive := false
	if f, ok := e.stdin.(*os.File); ok {
		interactive = term.IsTerminal(int(f.Fd()))
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		prompt := fmt.Sprintf("phone %s> ", con.phone.National())
		if interactive {
			fmt.Fprint(con.out, prompt)
		}
		var line string
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			line = l
		}
		if !interactive {
			fmt.Fprintln(con.out, prompt+line) // a transcript reads like the terminal
		}
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case strings.HasPrefix(line, "/phone"):
			n, err := msisdn.Parse(strings.TrimSpace(strings.TrimPrefix(line, "/phone")))
			if err != nil {
				fmt.Fprintln(con.out, "  (not a phone number)")
				continue
			}
			con.phone = n
			continue
		case line == "/quit":
			return nil
		}
		sendCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := sim.InjectMO(sendCtx, con.phone.Digits(), con.shortCode, line)
		cancel()
		if err != nil {
			fmt.Fprintf(con.out, "  (the SMSC could not deliver it: %v)\n", err)
			continue
		}
		con.printReplies(ctx)
	}
}

// printReplies prints what the gateway sends back: it waits up to 5 s for
// the first reply, then until 300 ms pass without another.
func (con *console) printReplies(ctx context.Context) {
	wait := 5 * time.Second
	for {
		select {
		case mt := <-con.mts:
			to := ""
			if n, err := msisdn.Parse(mt.To); err == nil && n != con.phone {
				to = " (to " + n.Masked() + ")"
			}
			fmt.Fprintf(con.out, "%s>%s %s\n", mt.From, to, mt.Text)
			wait = 300 * time.Millisecond
		case <-time.After(wait):
			return
		case <-ctx.Done():
			return
		}
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/store/feed"
)

// demoCommand shows the engine end to end on generated data: a population
// is written as CSV, ingested like any feed, and a few subscribers' replies
// are printed in both languages.
func (e *env) demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "generate a small population, ingest it and print some itineraries",
		ArgsUsage: " ",
		Flags: append(storeFlags(),
			&cli.IntFlag{Name: "subscribers", Value: 2000, Usage: "population size"},
			&cli.IntFlag{Name: "show", Value: 5, Usage: "how many subscribers' itineraries to print"},
		),
		Action: func(c *cli.Context) error {
			log, err := e.logger(c)
			if err != nil {
				return err
			}
			if !c.IsSet("data-dir") {
				tmp, err := os.MkdirTemp("", "roamtrail-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				c.Set("data-dir", filepath.Join(tmp, "data"))
			}
			svc, err := e.openServices(c, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			cfg := fixtures.Config{Subscribers: c.Int("subscribers"), Days: 30, Seed: 1, End: time.Now(), Location: svc.loc}
			if err := cfg.Validate(); err != nil {
				return err
			}
			var csv strings.Builder
			if err := fixtures.WriteCSV(c.Context, &csv, cfg); err != nil {
				return err
			}
			sum, err := feed.Ingest(c.Context, strings.NewReader(csv.String()), svc.catalog, svc.ps, svc.db, feed.Options{})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "ingested a generated population of %d: %s\n\n", cfg.Subscribers, sum)
			words := itinerary.Wording{Catalog: svc.catalog}
			for i := range min(c.Int("show"), cfg.Subscribers) {
				n, err := msisdn.Parse(strconv.FormatUint(fixtures.DefaultFirstNumber+uint64(i*37%cfg.Subscribers), 10))
				if err != nil {
					return err
				}
				sub := svc.ps.Pseudonym(n)
				it15, err := svc.engine.Lookup(c.Context, sub, 15)
				if err != nil {
					return err
				}
				newer, older, err := svc.engine.LookupSplit(c.Context, sub, 30, 15)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s  CXMYD   -> %s\n", n.Masked(), words.Itinerary(it15, itinerary.Chinese))
				fmt.Fprintf(e.stdout, "%s  TRIP    -> %s\n", n.Masked(), words.Itinerary(it15, itinerary.English))
				fmt.Fprintf(e.stdout, "%s  CXMYD30 -> %s\n\n", n.Masked(), words.Split(newer, older, itinerary.Chinese))
			}
			return svc.Close()
		},
	}
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/fixtures"
)

func (e *env) genCommand() *cli.Command {
	return &cli.Command{
		Name:      "gen",
		Usage:     "write a synthetic population's location events (CSV or JSON Lines)",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "subscribers", Value: 1000, Usage: "population size"},
			&cli.IntFlag{Name: "days", Value: 30, Usage: "days of history, ending today"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "the same seed gives the same population"},
			&cli.StringFlag{Name: "out", Value: "-", Usage: "output file, - for standard output"},
			&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or jsonl"},
			&cli.StringFlag{Name: "end", Usage: "last day generated (YYYY-MM-DD); default today"},
			&cli.StringFlag{Name: "tz", Value: "Asia/Shanghai", Usage: "time zone of the generated days"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("gen takes no arguments (got %q)", c.Args().First())
			}
			loc, err := time.LoadLocation(c.String("tz"))
			if err != nil {
				return fmt.Errorf("--tz: unknown time zone %q", c.String("tz"))
			}
			end := time.Now().In(loc)
			if s := c.String("end"); s != "" {
				if end, err = time.ParseInLocation(time.DateOnly, s, loc); err != nil {
					return fmt.Errorf("--end: want YYYY-MM-DD")
				}
				end = end.Add(12 * time.Hour)
			}
			cfg := fixtures.Config{Subscribers: c.Int("subscribers"), Days: c.Int("days"), Seed: c.Int64("seed"), End: end, Location: loc}
			if err := cfg.Validate(); err != nil {
				return err
			}
			var w io.Writer = e.stdout
			if out := c.String("out"); out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer f.Close()
				bw := bufio.NewWriterSize(f, 1<<20)
				defer bw.Flush()
				w = bw
			}
			switch c.String("format") {
			case "csv":
				return fixtures.WriteCSV(c.Context, w, cfg)
			case "jsonl":
				return fixtures.WriteJSONL(c.Context, w, cfg)
			default:
				return fmt.Errorf("--format: want csv or jsonl")
			}
		},
	}
}

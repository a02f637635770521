package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/store"
)

// Store takes batches of sightings (store.DB).
type Store interface {
	Apply(ctx context.Context, batch []store.Sighting, cp *store.Checkpoint) (store.ApplyStats, error)
}

// Pseudonymizer turns a number into its pseudonym (privacy.Pseudonymizer).
type Pseudonymizer interface {
	Pseudonym(n msisdn.Number) itinerary.Pseudonym
}

// Options configure Ingest.
type Options struct {
	// BatchSize is the number of rows per store batch, each one synced
	// write. The default is 65536.
	BatchSize int
	// Source names the input for checkpoints (store.Checkpoint); empty
	// stores none.
	Source string
	// Progress, if set, is called after each batch with the rows and bytes
	// read so far.
	Progress func(rows, bytes int64)
	// MaxErrors is how many rejected rows the summary names. The default
	// is 5.
	MaxErrors int
}

// Summary tells what an ingest did.
type Summary struct {
	Rows     int64      // data rows read
	Rejected int64      // rows with a bad number, time or region
	Errors   []RowError // the first few rejected rows
	Stats    store.ApplyStats
	Took     time.Duration
}

// String is the one-line summary the CLI prints.
func (s Summary) String() string {
	rate := float64(s.Rows) / max(s.Took.Seconds(), 1e-9)
	out := fmt.Sprintf("%d rows in %s (%.0f rows/s): %d accepted, %d rejected, %d too old, %d in the future, %d without consent; %d subscriber-days written",
		s.Rows, s.Took.Round(time.Millisecond), rate, s.Stats.Accepted, s.Rejected, s.Stats.TooOld, s.Stats.Future, s.Stats.NoConsent, s.Stats.Written)
	for _, e := range s.Errors {
		out += "; " + e.Error()
	}
	return out
}

type batch struct {
	rows      []store.Sighting
	offset    int64
	lines     int64
	bytesRead int64
}

// Ingest reads events from r and applies them to st in batches: reading and
// parsing on one goroutine, writing on another, so both cores work. Bad rows
// are counted and skipped. It returns after the last batch is durable.
func Ingest(ctx context.Context, r io.Reader, regions RegionParser, ps Pseudonymizer, st Store, o Options) (Summary, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 1 << 16
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = 5
	}
	start := time.Now()
	var sum Summary
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	full := make(chan *batch, 2)
	free := make(chan *batch, 3)
	for range 3 {
		free <- &batch{rows: make([]store.Sighting, 0, o.BatchSize)}
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		readErr <- read(ctx, NewReader(r, regions), ps, o, &sum, free, full)
	}()

	var applyErr error
	for b := range full {
		if applyErr == nil {
			var cp *store.Checkpoint
			if o.Source != "" {
				cp = &store.Checkpoint{Source: o.Source, Offset: b.offset}
			}
			var as store.ApplyStats
			as, applyErr = st.Apply(ctx, b.rows, cp)
			sum.Stats.Add(as)
			if applyErr != nil {
				cancel() // stop the reader; drain what it already sent
			} else if o.Progress != nil {
				o.Progress(b.lines, b.bytesRead)
			}
		}
		b.rows = b.rows[:0]
		free <- b
	}
	rerr := <-readErr
	if applyErr != nil && errors.Is(rerr, context.Canceled) {
		rerr = nil // the reader stopped because the store failed: say why once
	}
	err := errors.Join(applyErr, rerr)
	sum.Took = time.Since(start)
	return sum, err
}

func read(ctx context.Context, rd *Reader, ps Pseudonymizer, o Options, sum *Summary, free <-chan *batch, full chan<- *batch) error {
	// Pseudonyms are cached beside the reader's number cache: the HMAC is
	// the dearest step per row and a feed names each subscriber many times.
	pseud := make(map[msisdn.Number]itinerary.Pseudonym)
	var b *batch
	for {
		if b == nil {
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ev, err := rd.Next()
		var rowErr *RowError
		switch {
		case errors.As(err, &rowErr):
			sum.Rejected++
			sum.Rows++
			if len(sum.Errors) < o.MaxErrors {
				sum.Errors = append(sum.Errors, *rowErr)
			}
			continue
		case errors.Is(err, io.EOF):
			if len(b.rows) > 0 || o.Source != "" {
				b.offset, b.lines, b.bytesRead = rd.Offset(), rd.Line(), rd.Offset()
				full <- b
			}
			return nil
		case err != nil:
			return err
		}
		sum.Rows++
		n := msisdn.Number(ev.MSISDN)
		p, ok := pseud[n]
		if !ok {
			if len(pseud) >= maxCached {
				clear(pseud)
			}
			p = ps.Pseudonym(n)
			pseud[n] = p
		}
		b.rows = append(b.rows, store.Sighting{Sub: p, Time: ev.Time, Region: ev.Region})
		if len(b.rows) == cap(b.rows) {
			b.offset, b.lines, b.bytesRead = rd.Offset(), rd.Line(), rd.Offset()
			select {
			case full <- b:
				b = nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

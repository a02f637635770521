package feed_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/fixtures"
	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/store/feed"
)

// BenchmarkReader measures parsing CSV rows into events: number
// normalisation (cached), RFC 3339 time, region lookup.
func BenchmarkReader(b *testing.B) {
	cat, err := itinerary.NewCatalog()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	cfg := fixtures.Config{Subscribers: 2000, Days: 10, End: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), Catalog: cat}
	if err := fixtures.WriteCSV(context.Background(), &buf, cfg); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	rows := 0
	for b.Loop() {
		r := feed.NewReader(bytes.NewReader(data), cat)
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

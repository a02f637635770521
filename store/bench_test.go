package store_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/store"
)

// benchStore is a store in memory holding subs subscribers with 30 days of
// one or two visits a day.
func benchStore(b *testing.B, subs int) (*store.DB, []itinerary.Pseudonym, time.Time) {
	b.Helper()
	loc := time.FixedZone("Asia/Shanghai", 8*3600)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, loc)
	db, err := store.Open(context.Background(), "bench", store.Options{Location: loc, FS: vfs.NewMem(), Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ps := make([]itinerary.Pseudonym, subs)
	var batch []store.Sighting
	for i := range ps {
		binary.BigEndian.PutUint64(ps[i][:], rand.Uint64())
		binary.BigEndian.PutUint64(ps[i][8:], uint64(i))
	}
	for d := 29; d >= 0; d-- {
		day := now.AddDate(0, 0, -d)
		for i, p := range ps {
			batch = append(batch,
				store.Sighting{Sub: p, Time: day.Add(-4 * time.Hour), Region: 110100},
				store.Sighting{Sub: p, Time: day.Add(6 * time.Hour), Region: 110100})
			if i%7 == d%7 {
				batch = append(batch, store.Sighting{Sub: p, Time: day, Region: 130100})
			}
		}
		if _, err := db.Apply(context.Background(), batch, nil); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	return db, ps, now
}

func BenchmarkVisits30(b *testing.B) {
	db, ps, now := benchStore(b, 10_000)
	w := itinerary.LastDays(now, db.Location(), 30)
	buf := make([]itinerary.Visit, 0, 64)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		buf, _ = db.Visits(ctx, ps[i%len(ps)], w, buf[:0])
	}
}

func BenchmarkLookup30(b *testing.B) {
	db, ps, now := benchStore(b, 10_000)
	e := &itinerary.Engine{Source: db, Rules: itinerary.Rules{MinDwell: itinerary.DefaultMinDwell}, Location: db.Location(), Now: func() time.Time { return now }}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Lookup(ctx, ps[i%len(ps)], 30); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	loc := time.FixedZone("Asia/Shanghai", 8*3600)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, loc)
	db, err := store.Open(context.Background(), b.TempDir(), store.Options{Location: loc, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const batchSize = 1 << 14
	batch := make([]store.Sighting, batchSize)
	var sub itinerary.Pseudonym
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for i := range batch {
			binary.BigEndian.PutUint64(sub[:], uint64(n/4))
			batch[i] = store.Sighting{Sub: sub, Time: now.Add(-time.Duration(n%4) * time.Hour), Region: 110100}
			n++
		}
		if _, err := db.Apply(context.Background(), batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPutDeleteJob is store/journal's BenchmarkPutDelete on the
// visit store's job methods, which the gateway used before the journal:
// 32 writers, a synced put then an unsynced delete each.
func BenchmarkPutDeleteJob(b *testing.B) {
	for _, interval := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("interval=%s", interval), func(b *testing.B) {
			loc := time.FixedZone("Asia/Shanghai", 8*3600)
			db, err := store.Open(context.Background(), b.TempDir(), store.Options{Location: loc, WALMinSyncInterval: interval})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			value := make([]byte, 120)
			var seq atomic.Uint64
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Appendf(nil, "%032x", seq.Add(1))
					if err := db.PutJob(context.Background(), id, value); err != nil {
						b.Error(err)
						return
					}
					db.DeleteJob(context.Background(), id)
				}
			})
		})
	}
}

package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

// BenchmarkAppend measures one Append with and without the fsync, from one
// goroutine and from many (appends are serialised, so many goroutines
// measure the lock and the disk, not parallel work).
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, parallel := range []bool{false, true} {
			name := fmt.Sprintf("sync=%v/parallel=%v", sync, parallel)
			b.Run(name, func(b *testing.B) {
				dir := filepath.Join(b.TempDir(), "audit")
				l := MustOpen(b, dir, MustKey(b), newClock(day0), func(o *audit.Options) { o.NoSync = !sync })
				defer l.Close()
				ctx := context.Background()
				e := lookup(1)
				b.ReportAllocs()
				b.ResetTimer()
				if !parallel {
					for b.Loop() {
						if _, err := l.Append(ctx, e); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := l.Append(ctx, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// benchLog writes n entries for 1000 subjects, about n*460 bytes.
func benchLog(b *testing.B, n int) (string, key) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "audit")
	k := MustKey(b)
	l := MustOpen(b, dir, k, newClock(day0))
	ctx := context.Background()
	for i := range n {
		e := lookup(0)
		e.Subject = audit.SubjectOf(itinerary.Pseudonym{byte(i), byte(i >> 8 % 4)})
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 0 {
			l.Checkpoint(ctx)
		}
	}
	MustClose(b, l)
	return dir, k
}

// BenchmarkLast: the newest 5 entries of a subject with recent entries
// (recent), and of one with none, which reads the whole log (absent).
func BenchmarkLast(b *testing.B) {
	const n = 200_000
	dir, _ := benchLog(b, n)
	ctx := context.Background()
	recent := n - 3
	for _, tc := range []struct {
		name string
		subj itinerary.Pseudonym
	}{{"recent", itinerary.Pseudonym{byte(recent), byte(recent >> 8 % 4)}}, {"absent", itinerary.Pseudonym{0xff, 0xff}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(n * 460)
			for b.Loop() {
				if _, err := audit.Last(ctx, dir, audit.SubjectOf(tc.subj), 5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	dir, k := benchLog(b, n)
	ctx := context.Background()
	b.ReportMetric(0, "ns/op")
	for b.Loop() {
		r, err := audit.Verify(ctx, dir, audit.VerifyOptions{VerifierKey: k.vkey})
		if err != nil || r.Entries != n {
			b.Fatal(r, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

package state

import (
	"strconv"
	"testing"
	"time"
)

// The benchmarks run each operation from one goroutine, one round trip at
// a time, as a gateway handler does; -cpu or RunParallel would measure
// the server instead.

func BenchmarkRedis(b *testing.B) {
	c := mustReachRedis(b)
	r := mustRedis(b, RedisOptions{Prefix: testPrefix(b, c)})
	benchOps(b, r)
}

func BenchmarkMemory(b *testing.B) {
	benchOps(b, mustMemory(b, MemoryOptions{}))
}

func benchOps(b *testing.B, s shared) {
	sub := randomSub(b)
	p := Pending{Days: 15, Created: time.Now()}
	b.Run("FirstDelivery", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.FirstDelivery(ctx, "bench-"+strconv.Itoa(i), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetPending", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := s.SetPending(ctx, sub, p, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("TakePending", func(b *testing.B) {
		// Nothing to take: timing a take that finds a request would need
		// an untimed SetPending per op, which throws b.N's estimate off.
		b.ReportAllocs()
		for range b.N {
			if _, _, err := s.TakePending(ctx, sub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetThenTake", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := s.SetPending(ctx, sub, p, time.Minute); err != nil {
				b.Fatal(err)
			}
			if _, ok, err := s.TakePending(ctx, sub); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("CancelPending", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := s.CancelPending(ctx, sub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CountRequest", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := s.CountRequest(ctx, sub, "2026-11-27", 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AllowGlobal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := s.AllowGlobal(ctx, 1000, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Forget", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := s.Forget(ctx, sub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package state

import (
	"runtime"
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
	req := Request{Nonce: "0187a1b2c3d4e5f60718293a4b5c6d7e", Days: 15}
	b.Run("Claim", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.Claim(ctx, "bench-"+strconv.Itoa(i), req.Nonce, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ClaimAgain", func(b *testing.B) {
		// The owner's repeat: the path of a job resumed after a crash.
		b.ReportAllocs()
		for range b.N {
			if ok, err := s.Claim(ctx, "bench", req.Nonce, time.Minute); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("Ask", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := s.Ask(ctx, sub, req, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Dialog", func(b *testing.B) {
		if err := s.Ask(ctx, sub, req, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for range b.N {
			if d, err := s.Dialog(ctx, sub); err != nil || d.Pending == nil {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("Resolve", func(b *testing.B) {
		// The taker's repeat, after one that took the request: timing
		// a first Resolve would need an untimed Ask per op, which throws
		// b.N's estimate off (AskThenResolve times both).
		if err := s.Ask(ctx, sub, req, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for range b.N {
			if _, ok, err := s.Resolve(ctx, sub, "taker", time.Minute); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("AskThenResolve", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := s.Ask(ctx, sub, req, time.Minute); err != nil {
				b.Fatal(err)
			}
			if _, ok, err := s.Resolve(ctx, sub, "taker", time.Minute); err != nil || !ok {
				b.Fatal(ok, err)
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

// BenchmarkGCWithClaims is one full garbage collection of a process whose
// Memory holds 300,000 claims (ten minutes' worth at 500 queries a
// second): what each GC cycle spends marking the state (see Memory).
func BenchmarkGCWithClaims(b *testing.B) {
	m := mustMemory(b, MemoryOptions{})
	for i := range 300_000 {
		if _, err := m.Claim(ctx, "claim-"+strconv.Itoa(i), "0187a1b2c3d4e5f60718293a4b5c6d7e", time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(m)
}

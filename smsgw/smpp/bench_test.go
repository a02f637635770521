package smpp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// BenchmarkSubmit measures submit_sm round trips over loopback against
// the simulator, with the window full (parallel callers).
func BenchmarkSubmit(b *testing.B) {
	for _, window := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			sim := startSim(b, smsc.Options{MTLog: 1000})
			s := startSession(b, sim.Addr(), smpp.Options{Window: window})
			ctx := context.Background()
			m := sub("13800138000", "benchmark reply text")
			b.SetParallelism(window) // callers = window × GOMAXPROCS: keep the window full
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Submit(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkEcho measures MO in → reply MT out through Echo.
func BenchmarkEcho(b *testing.B) {
	sim := startSim(b, smsc.Options{MTLog: 1000})
	e, err := smpp.NewEcho(smpp.EchoOptions{Session: smpp.Options{Addr: sim.Addr(), SystemID: "bench", Window: 20, HandlerWorkers: 8}, Reply: "pong"})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(context.Background()) }()
	ctx := context.Background()
	if err := e.Session().WaitBound(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := sim.InjectMO(ctx, "13800138000", "10086", "ping"); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := sim.WaitMT(ctx, b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	e.Shutdown(ctx)
	<-done
}

package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// The conformance suite runs every case against each implementation. An
// implementation supplies two handles on one shared state (for Memory the
// same value twice, for Redis two clients on one prefix) and a way to let
// time pass.

type impl struct {
	name string
	open func(t *testing.T, clk *fakeClock) (s, peer shared)
	// elapse lets d pass: Memory's TTLs run on the injected clock, Redis's
	// on the server's, so the Redis harness also sleeps.
	elapse func(clk *fakeClock, d time.Duration)
}

var impls = []impl{
	{
		name: "Memory",
		open: func(t *testing.T, clk *fakeClock) (shared, shared) {
			m := mustMemory(t, MemoryOptions{Now: clk.Now})
			return m, m
		},
		elapse: func(clk *fakeClock, d time.Duration) { clk.Advance(d) },
	},
	{
		name: "Redis",
		open: func(t *testing.T, clk *fakeClock) (shared, shared) {
			prefix := testPrefix(t, mustReachRedis(t))
			a := mustRedis(t, RedisOptions{Prefix: prefix, Now: clk.Now})
			b := mustRedis(t, RedisOptions{Prefix: prefix, Now: clk.Now})
			return a, b
		},
		elapse: func(clk *fakeClock, d time.Duration) {
			clk.Advance(d)
			time.Sleep(d)
		},
	},
}

type env struct {
	t       *testing.T
	s, peer shared
	clk     *fakeClock
	elapse  func(time.Duration)
}

// shortTTL is the TTL of the cases that wait for an expiry: short, since
// against Redis they wait in real time.
const shortTTL = 300 * time.Millisecond

var conformance = []struct {
	name string
	run  func(e env)
}{
	{"FirstDelivery", testFirstDelivery},
	{"PendingTake", testPendingTake},
	{"PendingExpires", testPendingExpires},
	{"PendingCancel", testPendingCancel},
	{"PendingReplace", testPendingReplace},
	{"PendingPerSubscriber", testPendingPerSubscriber},
	{"DailyLimit", testDailyLimit},
	{"DailyLimitNewDay", testDailyLimitNewDay},
	{"GlobalBudget", testGlobalBudget},
	{"Forget", testForget},
	{"RaceTakePending", testRaceTakePending},
	{"RaceFirstDelivery", testRaceFirstDelivery},
	{"RaceCounts", testRaceCounts},
	{"Invalid", testInvalid},
	{"Closed", testClosed},
}

func TestConformance(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					clk := newClock()
					s, peer := im.open(t, clk)
					c.run(env{t: t, s: s, peer: peer, clk: clk, elapse: func(d time.Duration) { im.elapse(clk, d) }})
				})
			}
		})
	}
}

var ctx = context.Background()

func (e env) first(s shared, id string, ttl time.Duration) bool {
	e.t.Helper()
	ok, err := s.FirstDelivery(ctx, id, ttl)
	if err != nil {
		e.t.Fatalf("FirstDelivery: %v", err)
	}
	return ok
}

func (e env) set(sub itinerary.Pseudonym, p Pending, ttl time.Duration) {
	e.t.Helper()
	if err := e.s.SetPending(ctx, sub, p, ttl); err != nil {
		e.t.Fatalf("SetPending: %v", err)
	}
}

func (e env) take(s shared, sub itinerary.Pseudonym) (Pending, bool) {
	e.t.Helper()
	p, ok, err := s.TakePending(ctx, sub)
	if err != nil {
		e.t.Fatalf("TakePending: %v", err)
	}
	return p, ok
}

func (e env) count(sub itinerary.Pseudonym, day string, limit int) string {
	e.t.Helper()
	allowed, notify, err := e.s.CountRequest(ctx, sub, day, limit)
	if err != nil {
		e.t.Fatalf("CountRequest: %v", err)
	}
	return fmt.Sprintf("allowed=%v notify=%v", allowed, notify)
}

func (e env) allow(limit int, per time.Duration) bool {
	e.t.Helper()
	ok, err := e.s.AllowGlobal(ctx, limit, per)
	if err != nil {
		e.t.Fatalf("AllowGlobal: %v", err)
	}
	return ok
}

func samePending(a, b Pending) bool {
	return a.Days == b.Days && a.Lang == b.Lang && a.Created.Equal(b.Created)
}

func testFirstDelivery(e env) {
	t := e.t
	if !e.first(e.s, "msg-a", shortTTL) {
		t.Fatal("first delivery of msg-a reported as a duplicate")
	}
	if e.first(e.s, "msg-a", shortTTL) {
		t.Fatal("redelivery of msg-a reported as first")
	}
	if e.first(e.peer, "msg-a", shortTTL) {
		t.Fatal("redelivery of msg-a to the peer reported as first")
	}
	if !e.first(e.s, "msg-b", shortTTL) {
		t.Fatal("first delivery of msg-b reported as a duplicate")
	}
	e.elapse(shortTTL / 3)
	if e.first(e.s, "msg-a", shortTTL) {
		t.Fatal("redelivery of msg-a within its ttl reported as first")
	}
	e.elapse(shortTTL)
	if !e.first(e.s, "msg-a", shortTTL) {
		t.Fatal("msg-a after its ttl reported as a duplicate")
	}
	if e.first(e.s, "msg-a", shortTTL) {
		t.Fatal("redelivery of msg-a after renewal reported as first")
	}
}

func testPendingTake(e env) {
	t := e.t
	sub := randomSub(t)
	if _, ok := e.take(e.s, sub); ok {
		t.Fatal("TakePending on nothing found a request")
	}
	loc := time.FixedZone("CST", 8*3600)
	want := Pending{Days: 15, Lang: itinerary.Chinese, Created: time.Date(2026, 11, 27, 17, 30, 1, 234567891, loc)}
	e.set(sub, want, 10*time.Minute)
	got, ok := e.take(e.peer, sub)
	if !ok {
		t.Fatal("TakePending lost the request")
	}
	want.Created = want.Created.Truncate(time.Millisecond)
	if !samePending(got, want) {
		t.Errorf("TakePending = %+v, want %+v", got, want)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("Created in %v, want UTC", got.Created.Location())
	}
	if _, ok := e.take(e.s, sub); ok {
		t.Error("second TakePending found the request again")
	}
}

func testPendingExpires(e env) {
	t := e.t
	sub := randomSub(t)
	e.set(sub, Pending{Days: 7, Lang: itinerary.English}, shortTTL)
	e.elapse(shortTTL + 50*time.Millisecond)
	if p, ok := e.take(e.s, sub); ok {
		t.Fatalf("TakePending after the ttl = %+v", p)
	}
}

func testPendingCancel(e env) {
	t := e.t
	sub := randomSub(t)
	e.set(sub, Pending{Days: 7}, time.Minute)
	for i, want := range []bool{true, false} {
		ok, err := e.peer.CancelPending(ctx, sub)
		if err != nil {
			t.Fatalf("CancelPending: %v", err)
		}
		if ok != want {
			t.Errorf("CancelPending #%d = %v, want %v", i+1, ok, want)
		}
	}
	if _, ok := e.take(e.s, sub); ok {
		t.Error("TakePending after CancelPending found a request")
	}
}

func testPendingReplace(e env) {
	t := e.t
	sub := randomSub(t)
	e.set(sub, Pending{Days: 7, Lang: itinerary.English}, shortTTL)
	second := Pending{Days: 30, Lang: itinerary.Chinese, Created: e.clk.Now()}
	e.set(sub, second, time.Minute)
	// The replacement's ttl counts, not the first one's.
	e.elapse(shortTTL + 50*time.Millisecond)
	got, ok := e.take(e.s, sub)
	if !ok || !samePending(got, second) {
		t.Errorf("TakePending = %+v, %v; want %+v, true", got, ok, second)
	}
}

func testPendingPerSubscriber(e env) {
	t := e.t
	a, b := randomSub(t), randomSub(t)
	e.set(a, Pending{Days: 15}, time.Minute)
	if _, ok := e.take(e.s, b); ok {
		t.Error("b took a's request")
	}
	if ok, _ := e.s.CancelPending(ctx, b); ok {
		t.Error("b cancelled a's request")
	}
	if _, ok := e.take(e.s, a); !ok {
		t.Error("a's request lost")
	}
}

func testDailyLimit(e env) {
	t := e.t
	sub, other := randomSub(t), randomSub(t)
	const day = "2026-11-27"
	want := []string{
		"allowed=true notify=false",
		"allowed=true notify=false",
		"allowed=true notify=false",
		"allowed=false notify=true",
		"allowed=false notify=false",
		"allowed=false notify=false",
	}
	for i, w := range want {
		if got := e.count(sub, day, 3); got != w {
			t.Errorf("request %d: %s, want %s", i+1, got, w)
		}
	}
	if got, w := e.count(other, day, 3), "allowed=true notify=false"; got != w {
		t.Errorf("another subscriber: %s, want %s", got, w)
	}
	// A limit raised during the day lets requests through again, and does
	// not report the limit a second time.
	if got, w := e.count(sub, day, 10), "allowed=true notify=false"; got != w {
		t.Errorf("raised limit: %s, want %s", got, w)
	}
	if got, w := e.count(sub, day, 3), "allowed=false notify=false"; got != w {
		t.Errorf("limit back down: %s, want %s", got, w)
	}
}

func testDailyLimitNewDay(e env) {
	t := e.t
	sub := randomSub(t)
	for range 2 {
		e.count(sub, "2026-11-27", 1)
	}
	e.elapse(time.Millisecond)
	if got, w := e.count(sub, "2026-11-28", 1), "allowed=true notify=false"; got != w {
		t.Errorf("new day: %s, want %s", got, w)
	}
	if got, w := e.count(sub, "2026-11-28", 1), "allowed=false notify=true"; got != w {
		t.Errorf("new day over the limit: %s, want %s", got, w)
	}
	// An instance whose clock still says yesterday sees yesterday's count.
	if got, w := e.count(sub, "2026-11-27", 1), "allowed=false notify=false"; got != w {
		t.Errorf("yesterday again: %s, want %s", got, w)
	}
	// Two days later both are gone.
	for _, day := range []string{"2026-11-30", "2026-11-29"} {
		if got, w := e.count(sub, day, 1), "allowed=true notify=false"; got != w {
			t.Errorf("%s: %s, want %s", day, got, w)
		}
	}
}

func testGlobalBudget(e env) {
	t := e.t
	const per = time.Minute
	// Start at a window's beginning.
	now := e.clk.Now()
	e.clk.Advance(now.Truncate(per).Add(per).Sub(now))
	for i := range 3 {
		if !e.allow(3, per) {
			t.Fatalf("reply %d refused within the budget", i+1)
		}
	}
	if e.allow(3, per) {
		t.Fatal("reply over the budget allowed")
	}
	if ok, err := e.peer.AllowGlobal(ctx, 3, per); err != nil || ok {
		t.Fatalf("peer: reply over the budget: %v, %v", ok, err)
	}
	// Another window length is another budget.
	if !e.allow(3, time.Hour) {
		t.Fatal("hourly budget refused its first reply")
	}
	e.clk.Advance(per - time.Millisecond)
	if e.allow(3, per) {
		t.Fatal("reply allowed before the window ended")
	}
	e.clk.Advance(time.Millisecond)
	if !e.allow(3, per) {
		t.Fatal("reply refused in a new window")
	}
}

func testForget(e env) {
	t := e.t
	sub, other := randomSub(t), randomSub(t)
	for _, s := range []itinerary.Pseudonym{sub, other} {
		e.set(s, Pending{Days: 15}, time.Minute)
		for _, day := range []string{"2026-11-26", "2026-11-27"} {
			e.count(s, day, 1)
			e.count(s, day, 1)
		}
	}
	if err := e.peer.Forget(ctx, sub); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if _, ok := e.take(e.s, sub); ok {
		t.Error("pending request survived Forget")
	}
	for _, day := range []string{"2026-11-26", "2026-11-27"} {
		if got, w := e.count(sub, day, 1), "allowed=true notify=false"; got != w {
			t.Errorf("%s after Forget: %s, want %s", day, got, w)
		}
	}
	if _, ok := e.take(e.s, other); !ok {
		t.Error("Forget removed another subscriber's request")
	}
	if got, w := e.count(other, "2026-11-27", 1), "allowed=false notify=false"; got != w {
		t.Errorf("another subscriber after Forget: %s, want %s", got, w)
	}
	if err := e.s.Forget(ctx, randomSub(t)); err != nil {
		t.Errorf("Forget of an unknown subscriber: %v", err)
	}
}

// race runs f on 20 goroutines, half of them on each handle, released at
// once.
func (e env) race(f func(s shared) error) {
	e.t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, 20)
	)
	for i := range 20 {
		s := e.s
		if i%2 == 1 {
			s = e.peer
		}
		wg.Go(func() {
			<-start
			if err := f(s); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
}

func testRaceTakePending(e env) {
	for round := range 5 {
		sub := randomSub(e.t)
		e.set(sub, Pending{Days: 15}, time.Minute)
		var won atomic.Int32
		e.race(func(s shared) error {
			_, ok, err := s.TakePending(ctx, sub)
			if ok {
				won.Add(1)
			}
			return err
		})
		if n := won.Load(); n != 1 {
			e.t.Fatalf("round %d: %d takers got the request, want 1", round, n)
		}
	}
}

func testRaceFirstDelivery(e env) {
	for round := range 5 {
		id := fmt.Sprintf("race-%d", round)
		var first atomic.Int32
		e.race(func(s shared) error {
			ok, err := s.FirstDelivery(ctx, id, time.Minute)
			if ok {
				first.Add(1)
			}
			return err
		})
		if n := first.Load(); n != 1 {
			e.t.Fatalf("round %d: %d first deliveries, want 1", round, n)
		}
	}
}

func testRaceCounts(e env) {
	sub := randomSub(e.t)
	var allowed, notified, budget atomic.Int32
	e.race(func(s shared) error {
		a, n, err := s.CountRequest(ctx, sub, "2026-11-27", 5)
		if a {
			allowed.Add(1)
		}
		if n {
			notified.Add(1)
		}
		if err != nil {
			return err
		}
		ok, err := s.AllowGlobal(ctx, 7, time.Hour)
		if ok {
			budget.Add(1)
		}
		return err
	})
	if a, n, b := allowed.Load(), notified.Load(), budget.Load(); a != 5 || n != 1 || b != 7 {
		e.t.Errorf("20 racing requests: %d allowed, %d notified, %d in budget; want 5, 1, 7", a, n, b)
	}
}

func testInvalid(e env) {
	sub := randomSub(e.t)
	for name, call := range map[string]func() error{
		"FirstDelivery ttl zero": func() error { _, err := e.s.FirstDelivery(ctx, "x", 0); return err },
		"FirstDelivery ttl sub-ms": func() error {
			_, err := e.s.FirstDelivery(ctx, "x", time.Microsecond)
			return err
		},
		"SetPending ttl negative":  func() error { return e.s.SetPending(ctx, sub, Pending{Days: 1}, -time.Second) },
		"SetPending days negative": func() error { return e.s.SetPending(ctx, sub, Pending{Days: -1}, time.Minute) },
		"SetPending days huge":     func() error { return e.s.SetPending(ctx, sub, Pending{Days: 1 << 40}, time.Minute) },
		"CountRequest day empty":   func() error { _, _, err := e.s.CountRequest(ctx, sub, "", 3); return err },
		"CountRequest day month":   func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-13-01", 3); return err },
		"CountRequest day short":   func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-1-1", 3); return err },
		"CountRequest day tail":    func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-11-27}", 3); return err },
		"CountRequest limit zero":  func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-11-27", 0); return err },
		"AllowGlobal limit zero":   func() error { _, err := e.s.AllowGlobal(ctx, 0, time.Minute); return err },
		"AllowGlobal per zero":     func() error { _, err := e.s.AllowGlobal(ctx, 1, 0); return err },
	} {
		err := call()
		if !errors.Is(err, ErrInvalid) {
			e.t.Errorf("%s: %v, want ErrInvalid", name, err)
			continue
		}
		checkErrText(e.t, err)
	}
	if _, ok := e.take(e.s, sub); ok {
		e.t.Error("an invalid SetPending stored a request")
	}
}

func testClosed(e env) {
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("second Close: %v", err)
	}
	sub := randomSub(e.t)
	for name, call := range map[string]func() error{
		"FirstDelivery": func() error { _, err := e.s.FirstDelivery(ctx, "x", time.Minute); return err },
		"SetPending":    func() error { return e.s.SetPending(ctx, sub, Pending{}, time.Minute) },
		"TakePending":   func() error { _, _, err := e.s.TakePending(ctx, sub); return err },
		"CancelPending": func() error { _, err := e.s.CancelPending(ctx, sub); return err },
		"CountRequest":  func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-11-27", 3); return err },
		"AllowGlobal":   func() error { _, err := e.s.AllowGlobal(ctx, 3, time.Minute); return err },
		"Forget":        func() error { return e.s.Forget(ctx, sub) },
	} {
		if err := call(); !errors.Is(err, ErrClosed) {
			e.t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// checkErrText fails if err's text could carry a number, a pseudonym or
// a password: no digits at all, and the package prefix.
func checkErrText(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "0123456789") {
		t.Errorf("error text holds digits: %q", msg)
	}
	if !strings.HasPrefix(msg, "state: ") {
		t.Errorf("error text lacks the package prefix: %q", msg)
	}
}

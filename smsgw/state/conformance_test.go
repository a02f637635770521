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
	{"Claim", testClaim},
	{"AskDialog", testAskDialog},
	{"Resolve", testResolve},
	{"ResolveNothing", testResolveNothing},
	{"AskReplaces", testAskReplaces},
	{"PendingExpires", testPendingExpires},
	{"DoneExpires", testDoneExpires},
	{"DialogPerSubscriber", testDialogPerSubscriber},
	{"DailyLimit", testDailyLimit},
	{"DailyLimitNewDay", testDailyLimitNewDay},
	{"GlobalBudget", testGlobalBudget},
	{"Forget", testForget},
	{"RaceResolve", testRaceResolve},
	{"RaceClaim", testRaceClaim},
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

func (e env) claim(s shared, key, owner string, ttl time.Duration) bool {
	e.t.Helper()
	ok, err := s.Claim(ctx, key, owner, ttl)
	if err != nil {
		e.t.Fatalf("Claim: %v", err)
	}
	return ok
}

func (e env) ask(sub itinerary.Pseudonym, req Request, ttl time.Duration) {
	e.t.Helper()
	if err := e.s.Ask(ctx, sub, req, ttl); err != nil {
		e.t.Fatalf("Ask: %v", err)
	}
}

func (e env) resolve(s shared, sub itinerary.Pseudonym, taker string, ttl time.Duration) (Request, bool) {
	e.t.Helper()
	req, ok, err := s.Resolve(ctx, sub, taker, ttl)
	if err != nil {
		e.t.Fatalf("Resolve: %v", err)
	}
	if !ok && req != (Request{}) {
		e.t.Errorf("Resolve returned %+v with ok false", req)
	}
	return req, ok
}

// wantResolve resolves sub's request for taker and checks the answer.
func (e env) wantResolve(s shared, sub itinerary.Pseudonym, taker string, ttl time.Duration, want Request, wantOK bool) {
	e.t.Helper()
	if got, ok := e.resolve(s, sub, taker, ttl); ok != wantOK || got != want {
		e.t.Errorf("Resolve by %s = %+v, %v; want %+v, %v", taker, got, ok, want, wantOK)
	}
}

func (e env) wantDialog(s shared, sub itinerary.Pseudonym, want Dialog) {
	e.t.Helper()
	got, err := s.Dialog(ctx, sub)
	if err != nil {
		e.t.Fatalf("Dialog: %v", err)
	}
	if got.Token != want.Token || (got.Pending == nil) != (want.Pending == nil) ||
		got.Pending != nil && *got.Pending != *want.Pending {
		e.t.Errorf("Dialog = %s, want %s", showDialog(got), showDialog(want))
	}
}

func showDialog(d Dialog) string {
	if d.Pending == nil {
		return fmt.Sprintf("{Token:%q Pending:nil}", d.Token)
	}
	return fmt.Sprintf("{Token:%q Pending:%+v}", d.Token, *d.Pending)
}

func pending(req Request) Dialog { return Dialog{Token: req.Nonce, Pending: &req} }
func done(req Request) Dialog    { return Dialog{Token: "done:" + req.Nonce} }

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

func testClaim(e env) {
	t := e.t
	if !e.claim(e.s, "k1", "job-1", shortTTL) {
		t.Fatal("first claim refused")
	}
	if !e.claim(e.s, "k1", "job-1", shortTTL) || !e.claim(e.peer, "k1", "job-1", shortTTL) {
		t.Fatal("the owner's repeated claim refused")
	}
	if e.claim(e.s, "k1", "job-2", shortTTL) || e.claim(e.peer, "k1", "job-2", shortTTL) {
		t.Fatal("another owner got a claimed key")
	}
	if !e.claim(e.s, "k2", "job-2", shortTTL) {
		t.Fatal("another key refused")
	}
	e.elapse(shortTTL / 2)
	if !e.claim(e.s, "k1", "job-1", shortTTL) {
		t.Fatal("the owner's repeated claim within the ttl refused")
	}
	// The repeat did not extend the claim.
	e.elapse(shortTTL/2 + 50*time.Millisecond)
	if !e.claim(e.peer, "k1", "job-3", shortTTL) {
		t.Fatal("key still claimed after its ttl")
	}
	if e.claim(e.s, "k1", "job-1", shortTTL) {
		t.Fatal("the first owner got back a key claimed since by another")
	}
}

func testAskDialog(e env) {
	sub := randomSub(e.t)
	e.wantDialog(e.s, sub, Dialog{})
	req := Request{Nonce: "job-1", Days: 15, Lang: itinerary.Chinese}
	e.ask(sub, req, time.Minute)
	e.wantDialog(e.peer, sub, pending(req))
	// Pending is a copy.
	d, err := e.s.Dialog(ctx, sub)
	if err != nil {
		e.t.Fatal(err)
	}
	d.Pending.Days = 30
	e.wantDialog(e.s, sub, pending(req))
	// The extremes of every field are kept as they are.
	for _, req := range []Request{
		{Nonce: strings.Repeat("\xff", maxID), Days: 366, Lang: 255},
		{Nonce: "n", Days: 1, Lang: itinerary.English},
	} {
		e.ask(sub, req, time.Minute)
		e.wantDialog(e.peer, sub, pending(req))
		e.wantResolve(e.peer, sub, "job-2", time.Minute, req, true)
	}
}

func testResolve(e env) {
	sub := randomSub(e.t)
	req := Request{Nonce: "job-1", Days: 30, Lang: itinerary.English}
	e.ask(sub, req, time.Minute)
	e.wantResolve(e.s, sub, "job-2", time.Minute, req, true)
	e.wantDialog(e.peer, sub, done(req))
	// The same taker again (the job repeated after a crash) gets the
	// same request, at any instance; another taker gets nothing.
	e.wantResolve(e.s, sub, "job-2", time.Minute, req, true)
	e.wantResolve(e.peer, sub, "job-2", time.Minute, req, true)
	e.wantResolve(e.peer, sub, "job-3", time.Minute, Request{}, false)
	e.wantDialog(e.s, sub, done(req))
}

func testResolveNothing(e env) {
	sub := randomSub(e.t)
	e.wantResolve(e.s, sub, "job-1", time.Minute, Request{}, false)
	e.wantDialog(e.peer, sub, Dialog{})
}

func testAskReplaces(e env) {
	sub := randomSub(e.t)
	e.ask(sub, Request{Nonce: "job-1", Days: 15}, shortTTL)
	second := Request{Nonce: "job-2", Days: 30, Lang: itinerary.Chinese}
	e.ask(sub, second, time.Minute)
	e.wantDialog(e.peer, sub, pending(second))
	// The replacement's ttl counts, not the first one's.
	e.elapse(shortTTL + 50*time.Millisecond)
	e.wantDialog(e.peer, sub, pending(second))
	e.wantResolve(e.peer, sub, "job-3", time.Minute, second, true)
	// A request after a resolved one is a new step: a new token, pending
	// for whoever answers it.
	third := Request{Nonce: "job-4", Days: 15}
	e.ask(sub, third, time.Minute)
	e.wantDialog(e.s, sub, pending(third))
	e.wantResolve(e.s, sub, "job-5", time.Minute, third, true)
	e.wantDialog(e.s, sub, done(third))
	// Asking again for a request already answered (its job repeated after
	// a crash) must not bring it back.
	e.ask(sub, third, time.Minute)
	e.wantDialog(e.peer, sub, done(third))
	e.wantResolve(e.peer, sub, "job-5", time.Minute, third, true)
}

func testPendingExpires(e env) {
	sub := randomSub(e.t)
	e.ask(sub, Request{Nonce: "job-1", Days: 15}, shortTTL)
	e.elapse(shortTTL + 50*time.Millisecond)
	e.wantDialog(e.s, sub, Dialog{})
	e.wantResolve(e.peer, sub, "job-2", time.Minute, Request{}, false)
}

func testDoneExpires(e env) {
	sub := randomSub(e.t)
	req := Request{Nonce: "job-1", Days: 15}
	e.ask(sub, req, time.Minute)
	e.wantResolve(e.s, sub, "job-2", shortTTL, req, true)
	e.elapse(shortTTL / 2)
	e.wantDialog(e.peer, sub, done(req))
	e.wantResolve(e.peer, sub, "job-2", time.Minute, req, true)
	// Resolve's ttl runs from the first Resolve: the repeat did not
	// extend it.
	e.elapse(shortTTL/2 + 50*time.Millisecond)
	e.wantDialog(e.s, sub, Dialog{})
	e.wantResolve(e.s, sub, "job-2", time.Minute, Request{}, false)
}

func testDialogPerSubscriber(e env) {
	a, b := randomSub(e.t), randomSub(e.t)
	req := Request{Nonce: "job-1", Days: 15}
	e.ask(a, req, time.Minute)
	e.wantDialog(e.s, b, Dialog{})
	e.wantResolve(e.s, b, "job-2", time.Minute, Request{}, false)
	e.wantDialog(e.peer, a, pending(req))
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
	sub, resolved, other := randomSub(t), randomSub(t), randomSub(t)
	req := Request{Nonce: "job-1", Days: 15}
	for _, s := range []itinerary.Pseudonym{sub, resolved, other} {
		e.ask(s, req, time.Minute)
		for _, day := range []string{"2026-11-26", "2026-11-27"} {
			e.count(s, day, 1)
			e.count(s, day, 1)
		}
	}
	e.wantResolve(e.s, resolved, "job-2", time.Minute, req, true)
	e.claim(e.s, "k", "job-1", time.Minute)
	for _, s := range []itinerary.Pseudonym{sub, resolved} {
		if err := e.peer.Forget(ctx, s); err != nil {
			t.Fatalf("Forget: %v", err)
		}
		e.wantDialog(e.s, s, Dialog{})
		e.wantResolve(e.s, s, "job-2", time.Minute, Request{}, false)
		for _, day := range []string{"2026-11-26", "2026-11-27"} {
			if got, w := e.count(s, day, 1), "allowed=true notify=false"; got != w {
				t.Errorf("%s after Forget: %s, want %s", day, got, w)
			}
		}
	}
	// Claims stay: a redelivery after the erasure is still a duplicate.
	if e.claim(e.s, "k", "job-3", time.Minute) {
		t.Error("Forget dropped a claim")
	}
	e.wantDialog(e.s, other, pending(req))
	if got, w := e.count(other, "2026-11-27", 1), "allowed=false notify=false"; got != w {
		t.Errorf("another subscriber after Forget: %s, want %s", got, w)
	}
	if err := e.s.Forget(ctx, randomSub(t)); err != nil {
		t.Errorf("Forget of an unknown subscriber: %v", err)
	}
}

// race runs f on 20 goroutines, numbered by i, half of them on each
// handle, released at once.
func (e env) race(f func(i int, s shared) error) {
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
			if err := f(i, s); err != nil {
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

func testRaceResolve(e env) {
	for round := range 5 {
		sub := randomSub(e.t)
		req := Request{Nonce: fmt.Sprint("job-", round), Days: 15}
		e.ask(sub, req, time.Minute)
		var won, winner atomic.Int32
		e.race(func(i int, s shared) error {
			got, ok, err := s.Resolve(ctx, sub, fmt.Sprint("taker-", i), time.Minute)
			if ok {
				won.Add(1)
				winner.Store(int32(i))
				if got != req {
					return fmt.Errorf("round %d: Resolve = %+v, want %+v", round, got, req)
				}
			}
			return err
		})
		if n := won.Load(); n != 1 {
			e.t.Fatalf("round %d: %d takers got the request, want 1", round, n)
		}
		e.wantResolve(e.s, sub, fmt.Sprint("taker-", winner.Load()), time.Minute, req, true)
	}
}

func testRaceClaim(e env) {
	for round := range 5 {
		key := fmt.Sprint("race-", round)
		var first atomic.Int32
		e.race(func(i int, s shared) error {
			ok, err := s.Claim(ctx, key, fmt.Sprint("job-", i), time.Minute)
			if ok {
				first.Add(1)
			}
			return err
		})
		if n := first.Load(); n != 1 {
			e.t.Fatalf("round %d: %d owners got the key, want 1", round, n)
		}
		// One owner at once on both instances gets it every time.
		key = fmt.Sprint("race-one-owner-", round)
		var refused atomic.Int32
		e.race(func(i int, s shared) error {
			ok, err := s.Claim(ctx, key, "job-1", time.Minute)
			if !ok {
				refused.Add(1)
			}
			return err
		})
		if n := refused.Load(); n != 0 {
			e.t.Fatalf("round %d: the owner refused its own key %d times", round, n)
		}
	}
}

func testRaceCounts(e env) {
	sub := randomSub(e.t)
	var allowed, notified, budget atomic.Int32
	e.race(func(_ int, s shared) error {
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
	long := strings.Repeat("j", maxID+1)
	req := Request{Nonce: "job-1", Days: 15}
	ask := func(r Request, ttl time.Duration) func() error {
		return func() error { return e.s.Ask(ctx, sub, r, ttl) }
	}
	for name, call := range map[string]func() error{
		"Claim ttl zero":   func() error { _, err := e.s.Claim(ctx, "x", "job-1", 0); return err },
		"Claim ttl sub-ms": func() error { _, err := e.s.Claim(ctx, "x", "job-1", time.Microsecond); return err },
		"Claim key empty":  func() error { _, err := e.s.Claim(ctx, "", "job-1", time.Minute); return err },
		"Claim owner empty": func() error {
			_, err := e.s.Claim(ctx, "x", "", time.Minute)
			return err
		},
		"Claim owner long":     func() error { _, err := e.s.Claim(ctx, "x", long, time.Minute); return err },
		"Ask ttl negative":     ask(req, -time.Second),
		"Ask nonce empty":      ask(Request{Days: 15}, time.Minute),
		"Ask nonce long":       ask(Request{Nonce: long, Days: 15}, time.Minute),
		"Ask days zero":        ask(Request{Nonce: "job-1"}, time.Minute),
		"Ask days negative":    ask(Request{Nonce: "job-1", Days: -1}, time.Minute),
		"Ask days over a year": ask(Request{Nonce: "job-1", Days: 367}, time.Minute),
		"Ask days huge":        ask(Request{Nonce: "job-1", Days: 1 << 40}, time.Minute),
		"Resolve ttl zero": func() error {
			_, _, err := e.s.Resolve(ctx, sub, "job-2", 0)
			return err
		},
		"Resolve taker empty": func() error {
			_, _, err := e.s.Resolve(ctx, sub, "", time.Minute)
			return err
		},
		"Resolve taker long": func() error {
			_, _, err := e.s.Resolve(ctx, sub, long, time.Minute)
			return err
		},
		"CountRequest day empty":  func() error { _, _, err := e.s.CountRequest(ctx, sub, "", 3); return err },
		"CountRequest day month":  func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-13-01", 3); return err },
		"CountRequest day short":  func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-1-1", 3); return err },
		"CountRequest day tail":   func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-11-27}", 3); return err },
		"CountRequest limit zero": func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-11-27", 0); return err },
		"AllowGlobal limit zero":  func() error { _, err := e.s.AllowGlobal(ctx, 0, time.Minute); return err },
		"AllowGlobal per zero":    func() error { _, err := e.s.AllowGlobal(ctx, 1, 0); return err },
	} {
		err := call()
		if !errors.Is(err, ErrInvalid) {
			e.t.Errorf("%s: %v, want ErrInvalid", name, err)
			continue
		}
		checkErrText(e.t, err)
	}
	// Nothing invalid was stored.
	e.wantDialog(e.s, sub, Dialog{})
	if !e.claim(e.s, "x", "job-2", time.Minute) {
		e.t.Error("an invalid Claim took the key")
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
		"Claim":        func() error { _, err := e.s.Claim(ctx, "x", "job-1", time.Minute); return err },
		"Ask":          func() error { return e.s.Ask(ctx, sub, Request{Nonce: "job-1", Days: 15}, time.Minute) },
		"Dialog":       func() error { _, err := e.s.Dialog(ctx, sub); return err },
		"Resolve":      func() error { _, _, err := e.s.Resolve(ctx, sub, "job-1", time.Minute); return err },
		"CountRequest": func() error { _, _, err := e.s.CountRequest(ctx, sub, "2026-11-27", 3); return err },
		"AllowGlobal":  func() error { _, err := e.s.AllowGlobal(ctx, 3, time.Minute); return err },
		"Forget":       func() error { return e.s.Forget(ctx, sub) },
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

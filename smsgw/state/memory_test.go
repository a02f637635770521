package state

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// checkMemory verifies Memory's indexes agree with its map.
func checkMemory(t *testing.T, m *Memory) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	inHeaps := 0
	for kind, h := range m.byTime {
		inHeaps += len(h)
		for i, e := range h {
			if e.index != i || m.m[e.key] != e || int(e.key.kind) != kind {
				t.Fatalf("heap entry %d of kind %d out of place", i, kind)
			}
			if i > 0 && e.expires.Before(h[(i-1)/2].expires) {
				t.Fatalf("heap order broken at %d of kind %d", i, kind)
			}
		}
	}
	if inHeaps != len(m.m) {
		t.Fatalf("%d entries in the heaps, %d in the map", inHeaps, len(m.m))
	}
	if len(m.byTime[kindClaim]) != 0 {
		t.Fatal("a claim among the pointer entries")
	}
	// Every claim has its expiry in claimsByTime; the rest there are
	// stale.
	h, live := m.claimsByTime, 0
	for i, x := range h {
		if i > 0 && x.expires < h[(i-1)/2].expires {
			t.Fatalf("claim heap order broken at %d", i)
		}
		if c, ok := m.claims[x.key]; ok && c.expires == x.expires {
			live++
		}
	}
	if live != len(m.claims) {
		t.Fatalf("%d claims, %d with their expiry in the heap", len(m.claims), live)
	}
	n := 0
	for sub, list := range m.bySub {
		if len(list) == 0 {
			t.Fatal("empty subscriber list kept")
		}
		for _, e := range list {
			if itinerary.Pseudonym(e.key.id) != sub || m.m[e.key] != e {
				t.Fatal("subscriber index out of step")
			}
		}
		n += len(list)
	}
	want := 0
	for k := range m.m {
		if k.kind.perSub() {
			want++
		}
	}
	if n != want {
		t.Fatalf("subscriber index lists %d entries, want %d", n, want)
	}
}

func TestMemoryBounded(t *testing.T) {
	clk := newClock()
	m := mustMemory(t, MemoryOptions{Now: clk.Now, MaxEntries: 4})
	sub := randomSub(t)
	// Claims with ttls 10 min, 9 min, ... : the latest has the earliest
	// expiry.
	for i := range 10 {
		if _, err := m.Claim(ctx, fmt.Sprint("key-", i), "job-1", time.Duration(10-i)*time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := m.Ask(ctx, sub, Request{Nonce: fmt.Sprint("job-", i), Days: i + 1}, time.Hour); err != nil {
			t.Fatal(err)
		}
		checkMemory(t, m)
		if n := m.entries(); n > 4 {
			t.Fatalf("%d entries held, MaxEntries 4", n)
		}
	}
	// The dialogue, expiring last, survived the flood of claims.
	if d, err := m.Dialog(ctx, sub); err != nil || d.Pending == nil || d.Pending.Days != 10 {
		t.Errorf("Dialog = %+v, %v; want the last request", d, err)
	}
	// Each new claim got in by dropping the one nearest expiry: the
	// survivors are the two expiring last, and the newest.
	for _, c := range []struct {
		i    int
		free bool
	}{{0, false}, {1, false}, {9, false}, {2, true}} {
		ok, err := m.Claim(ctx, fmt.Sprint("key-", c.i), "job-2", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.free {
			t.Errorf("key-%d free = %v, want %v", c.i, ok, c.free)
		}
	}
	checkMemory(t, m)
}

func TestMemorySweep(t *testing.T) {
	clk := newClock()
	m := mustMemory(t, MemoryOptions{Now: clk.Now})
	for i := range 3 * sweepBatch {
		if _, err := m.Claim(ctx, fmt.Sprint("key-", i), "job-1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.CountRequest(ctx, randomSub(t), "2026-11-27", 3); err != nil {
			t.Fatal(err)
		}
	}
	sub := randomSub(t)
	if err := m.Ask(ctx, sub, Request{Nonce: "job-1", Days: 1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	// Each call sweeps a batch of the expired claims, and no more.
	before := m.entries()
	if _, err := m.Dialog(ctx, randomSub(t)); err != nil {
		t.Fatal(err)
	}
	if swept := before - m.entries(); swept != sweepBatch {
		t.Errorf("one call swept %d entries, want %d", swept, sweepBatch)
	}
	for range 5 {
		if _, err := m.Dialog(ctx, randomSub(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Left: the day counters (48 h) and the dialogue.
	if n, want := m.entries(), 3*sweepBatch+1; n != want {
		t.Errorf("%d entries after the sweep, want %d", n, want)
	}
	checkMemory(t, m)
	clk.Advance(dayCounterTTL)
	for range 4 * 3 {
		if _, err := m.Dialog(ctx, randomSub(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.entries(); n != 0 {
		t.Errorf("%d entries after everything expired, want 0", n)
	}
	checkMemory(t, m)
}

func TestMemoryForgetIndex(t *testing.T) {
	clk := newClock()
	m := mustMemory(t, MemoryOptions{Now: clk.Now})
	sub := randomSub(t)
	for _, day := range []string{"2026-11-25", "2026-11-26", "2026-11-27"} {
		if _, _, err := m.CountRequest(ctx, sub, day, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Ask(ctx, sub, Request{Nonce: "job-1", Days: 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.CountRequest(ctx, randomSub(t), "2026-11-27", 3); err != nil {
		t.Fatal(err)
	}
	checkMemory(t, m)
	if err := m.Forget(ctx, sub); err != nil {
		t.Fatal(err)
	}
	checkMemory(t, m)
	if n := m.entries(); n != 1 {
		t.Errorf("%d entries after Forget, want the other subscriber's 1", n)
	}
}

func TestNewMemoryInvalid(t *testing.T) {
	if _, err := NewMemory(MemoryOptions{MaxEntries: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("MaxEntries -1: %v, want ErrInvalid", err)
	}
}

// TestMemoryEntrySize backs MemoryOptions.MaxEntries's documented
// footprint: the heap a full Memory holds, a third each of claims,
// dialogues and day counters, with job ids as the gateway makes them.
func TestMemoryEntrySize(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates")
	}
	const n = DefaultMaxEntries
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := mustMemory(t, MemoryOptions{})
	for i := range n {
		sub := itinerary.Pseudonym{byte(i), byte(i >> 8), byte(i >> 16)}
		job := fmt.Sprintf("%032x", i)
		switch i % 3 {
		case 0:
			_, _ = m.Claim(ctx, fmt.Sprintf("%032x", i), job, time.Hour)
		case 1:
			_ = m.Ask(ctx, sub, Request{Nonce: job, Days: 15}, time.Hour)
		case 2:
			_, _, _ = m.CountRequest(ctx, sub, "2026-11-27", 3)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if m.entries() != n {
		t.Fatalf("%d entries, want %d", m.entries(), n)
	}
	perEntry := (after.HeapAlloc - before.HeapAlloc) / n
	t.Logf("%d entries hold %d bytes each", n, perEntry)
	if perEntry > 350 {
		t.Errorf("%d bytes per entry: update MemoryOptions.MaxEntries's documented footprint", perEntry)
	}
	runtime.KeepAlive(m)
}

// A full Memory drops day counters before claims, and claims before
// dialogues: the counters of many subscribers (kept two days) must not
// crowd out a request waiting ten minutes for its Y.
func TestMemoryEvictsCountersFirst(t *testing.T) {
	clk := newClock()
	m := mustMemory(t, MemoryOptions{Now: clk.Now, MaxEntries: 100})
	alice := randomSub(t)
	if err := m.Ask(ctx, alice, Request{Nonce: "job-a", Days: 15}, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Claim(ctx, "alice's claim", "job-a", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 500 { // 500 subscribers count a request each
		if _, _, err := m.CountRequest(ctx, randomSub(t), "2026-11-27", 10); err != nil {
			t.Fatal(err)
		}
	}
	checkMemory(t, m)
	if ok, err := m.Claim(ctx, "alice's claim", "job-b", 10*time.Minute); err != nil || ok {
		t.Errorf("the claim was dropped for counters: %t %v", ok, err)
	}
	if _, ok, err := m.Resolve(ctx, alice, "job-y", 10*time.Minute); err != nil || !ok {
		t.Errorf("the pending request was dropped for counters: %t %v", ok, err)
	}
	// With nothing but dialogues left, the oldest goes.
	for range 200 {
		if err := m.Ask(ctx, randomSub(t), Request{Nonce: "job", Days: 15}, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	checkMemory(t, m)
	if n := m.entries(); n > 100 {
		t.Errorf("%d entries held, MaxEntries 100", n)
	}
}

// Claims must stay out of the garbage collector's sight (see Memory): no
// pointer in what holds them.
func TestClaimsHoldNoPointers(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[claimRec](), reflect.TypeFor[claimExpiry](), reflect.TypeFor[[16]byte]()} {
		if hasPointers(typ) {
			t.Errorf("%v holds a pointer", typ)
		}
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

// Claims taken again after they expired leave stale expiries behind;
// those are skipped, and the claims that replaced them are dropped at
// their own expiry.
func TestMemoryClaimRetakenAfterExpiry(t *testing.T) {
	clk := newClock()
	m := mustMemory(t, MemoryOptions{Now: clk.Now})
	if ok, err := m.Claim(ctx, "k", "job-1", time.Minute); err != nil || !ok {
		t.Fatalf("first claim: %t %v", ok, err)
	}
	clk.Advance(time.Minute)
	if ok, err := m.Claim(ctx, "k", "job-2", time.Hour); err != nil || !ok {
		t.Fatalf("claim after expiry: %t %v", ok, err)
	}
	checkMemory(t, m)
	clk.Advance(30 * time.Minute)
	if _, err := m.Dialog(ctx, randomSub(t)); err != nil { // sweeps the stale expiry
		t.Fatal(err)
	}
	checkMemory(t, m)
	if ok, err := m.Claim(ctx, "k", "job-3", time.Hour); err != nil || ok {
		t.Errorf("job-2's claim was dropped with job-1's stale expiry: %t %v", ok, err)
	}
	if ok, err := m.Claim(ctx, "k", "job-2", time.Hour); err != nil || !ok {
		t.Errorf("job-2 lost its own claim: %t %v", ok, err)
	}
	clk.Advance(time.Hour)
	if _, err := m.Dialog(ctx, randomSub(t)); err != nil {
		t.Fatal(err)
	}
	if n := m.entries(); n != 0 {
		t.Errorf("%d entries after every claim expired, want 0", n)
	}
	if n := len(m.claimsByTime); n != 0 {
		t.Errorf("%d expiries left, want 0", n)
	}
}

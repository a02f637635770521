package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roamtrail/roamtrail/itinerary"
)

// shared is the method set the gateway relies on, declared here as the
// gateway will declare it.
type shared interface {
	Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	Ask(ctx context.Context, sub itinerary.Pseudonym, req Request, ttl time.Duration) error
	Dialog(ctx context.Context, sub itinerary.Pseudonym) (Dialog, error)
	Resolve(ctx context.Context, sub itinerary.Pseudonym, taker string, ttl time.Duration) (Request, bool, error)
	CountRequest(ctx context.Context, sub itinerary.Pseudonym, day string, limit int) (allowed, notifyLimit bool, err error)
	AllowGlobal(ctx context.Context, limit int, per time.Duration) (bool, error)
	Forget(ctx context.Context, sub itinerary.Pseudonym) error
	Close() error
}

var (
	_ shared = (*Memory)(nil)
	_ shared = (*Redis)(nil)
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func randomSub(tb testing.TB) itinerary.Pseudonym {
	tb.Helper()
	var p itinerary.Pseudonym
	if _, err := rand.Read(p[:]); err != nil {
		tb.Fatal(err)
	}
	return p
}

func mustMemory(tb testing.TB, opts MemoryOptions) *Memory {
	tb.Helper()
	m, err := NewMemory(opts)
	if err != nil {
		tb.Fatalf("NewMemory: %v", err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// mustReachRedis returns a plain client on the test Redis, skipping only
// when ROAMTRAIL_SKIP_REDIS=1: an unreachable Redis otherwise fails the
// test, so that a broken setup cannot pass silently.
func mustReachRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	skip := os.Getenv("ROAMTRAIL_SKIP_REDIS") == "1"
	if skip {
		tb.Skip("ROAMTRAIL_SKIP_REDIS=1")
	}
	o, err := redis.ParseURL(redisURL())
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		tb.Fatalf("redis at REDIS_URL (default %s) unreachable (set ROAMTRAIL_SKIP_REDIS=1 to skip): %v", "redis://127.0.0.1:6379/0", err)
	}
	return c
}

// testPrefix returns a prefix of its own for one test and deletes its keys
// when the test ends.
func testPrefix(tb testing.TB, c *redis.Client) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	prefix := "rttest-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("cleanup scan: %v", err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
	})
	return prefix
}

func mustRedis(tb testing.TB, opts RedisOptions) *Redis {
	tb.Helper()
	if opts.URL == "" {
		opts.URL = redisURL()
	}
	r, err := NewRedis(context.Background(), opts)
	if err != nil {
		tb.Fatalf("NewRedis: %v", err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// keysOf lists the keys under prefix.
func keysOf(tb testing.TB, c *redis.Client, prefix string) []string {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		tb.Fatal(err)
	}
	return keys
}

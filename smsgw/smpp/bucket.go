package smpp

import (
	"context"
	"sync"
	"time"
)

// tokenBucket spaces submits 1/rate apart (a bucket of one token). A nil
// bucket or rate 0 never waits.
type tokenBucket struct {
	interval time.Duration
	mu       sync.Mutex
	next     time.Time
}

func newTokenBucket(rate float64) *tokenBucket {
	if rate <= 0 {
		return nil
	}
	return &tokenBucket{interval: time.Duration(float64(time.Second) / rate)}
}

// wait reserves the next slot and sleeps until it, bounded by ctx. A
// cancelled wait gives its slot back only if it was the last one taken.
func (b *tokenBucket) wait(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	now := time.Now()
	at := b.next
	if at.Before(now) {
		at = now
	}
	b.next = at.Add(b.interval)
	b.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		if b.next.Equal(at.Add(b.interval)) {
			b.next = at
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

package state

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Consent events go round a real Redis stream: in order, from a mark, a
// forged entry reported, a trimmed stretch noticed.
func TestConsentStream(t *testing.T) {
	c := mustReachRedis(t)
	prefix := testPrefix(t, c)
	r := mustRedis(t, RedisOptions{Prefix: prefix})
	at := time.Unix(1_790_000_000, 123)
	evs := []ConsentEvent{
		{Op: ConsentOptOut, Sub: randomSub(t), At: at, Origin: "a"},
		{Op: ConsentErase, Sub: randomSub(t), Origin: "b"},
		{Op: ConsentReassigned, Sub: randomSub(t), At: at.Add(time.Hour), Origin: "a"},
	}
	for _, ev := range evs {
		if err := r.PublishConsent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.PublishConsent(ctx, ConsentEvent{Op: ConsentOptIn, Sub: randomSub(t)}); !errors.Is(err, ErrBadEvent) {
		t.Errorf("an opt-in without a time: %v", err)
	}

	// follow reads n events from after, then stops.
	follow := func(after string, n int) (ids []string, got []ConsentEvent, errs []error, gap bool) {
		t.Helper()
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		stop := errors.New("enough")
		gap, err := r.FollowConsent(fctx, after, 50*time.Millisecond, func(mark string, ev ConsentEvent, err error) error {
			ids, got, errs = append(ids, mark), append(got, ev), append(errs, err)
			if len(ids) == n {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("FollowConsent: %v after %d events", err, len(ids))
		}
		return ids, got, errs, gap
	}
	ids, got, errs, gap := follow("", 3)
	for i := range evs {
		if errs[i] != nil || got[i].Op != evs[i].Op || got[i].Sub != evs[i].Sub || !got[i].At.Equal(evs[i].At) || got[i].Origin != evs[i].Origin {
			t.Errorf("event %d: %+v, %v; want %+v", i, got[i], errs[i], evs[i])
		}
	}
	if gap {
		t.Error("a gap from the start")
	}
	if _, got, _, _ := follow(ids[1], 1); got[0].Sub != evs[2].Sub {
		t.Errorf("from the second event's ID: %+v", got[0])
	}

	// Anyone with access to Redis can write the stream: an entry that is
	// not an event is reported, not applied.
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: prefix + ":consent-events", Values: []string{"op", "opt-out", "sub", "zz"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, errs, _ := follow(ids[2], 1); !errors.Is(errs[0], ErrBadEvent) {
		t.Errorf("a forged entry: %v", errs[0])
	}

	// Trimmed: a follower whose mark is past what went is told nothing;
	// one that had not read it all is told it missed changes.
	if err := c.XTrimMaxLen(ctx, prefix+":consent-events", 2).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, gap := follow(ids[1], 1); gap {
		t.Error("a gap reported for a follower that had read what was trimmed")
	}
	if _, _, _, gap := follow(ids[0], 1); !gap {
		t.Error("no gap reported after the stream was trimmed past the mark")
	}
	if _, err := r.FollowConsent(ctx, "garbage", time.Millisecond, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad mark: %v", err)
	}
}

// Stream entries and marks come from Redis: neither may panic, and what
// parses is valid.
func FuzzParseConsentEvent(f *testing.F) {
	f.Add("opt-out", "00112233445566778899aabbccddeeff", "1790000000000000123", "a", "1-0 3")
	f.Add("erase", "zz", "", "", "")
	f.Add("opt-in", "00112233445566778899aabbccddeeff", "-5", "", "1-x 2")
	f.Fuzz(func(t *testing.T, op, sub, at, origin, mark string) {
		ev, err := parseConsentEvent(map[string]any{"op": op, "sub": sub, "at": at, "origin": origin})
		if err == nil {
			if verr := ev.valid(); verr != nil {
				t.Fatalf("parsed an invalid event %+v: %v", ev, verr)
			}
		} else if !errors.Is(err, ErrBadEvent) {
			t.Fatalf("error %v is not ErrBadEvent", err)
		}
		if id, n, err := parseMark(mark); err == nil && (!validID(id) || n < 0) {
			t.Fatalf("mark %q parsed to %q %d", mark, id, n)
		}
	})
}

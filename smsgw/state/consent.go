package state

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Consent changes between instances.
//
// Instances that share one Redis each keep their own data dir: their own
// store of visits and of consent. A TD taken by one must reach the others
// (their copies of the history are erased and their ingest drops the
// subscriber's events too), so every change of consent (TD, KT, a staff
// erase, a reassignment) is applied to the taking instance's store and
// then appended to a Redis stream, "<prefix>:consent-events", which every
// instance follows, applying the others' changes to its own store. Every
// change is idempotent, so an event applied twice (a retry after a failed
// append, a restart before the mark was saved) changes nothing more.
//
// Events carry the pseudonym, never the number.

// ConsentOp is what a ConsentEvent did.
type ConsentOp string

// The consent changes.
const (
	ConsentOptOut     ConsentOp = "opt-out"
	ConsentOptIn      ConsentOp = "opt-in"
	ConsentReassigned ConsentOp = "reassigned"
	ConsentErase      ConsentOp = "erase"
)

// ConsentEvent is one change of a subscriber's consent.
type ConsentEvent struct {
	Op  ConsentOp
	Sub itinerary.Pseudonym
	// At is when it took effect (OptOut, OptIn, Reassigned); zero for an
	// Erase.
	At time.Time
	// Origin names the instance that took it, so that it skips its own.
	Origin string
}

// ErrBadEvent reports a stream entry that is not a ConsentEvent.
var ErrBadEvent = errors.New("state: bad consent event")

// ConsentStreamLen is about how many events the stream keeps (Redis trims
// it approximately): an instance stopped for longer than that many changes
// of consent took misses the oldest ones, and says so when it starts.
const ConsentStreamLen = 1_000_000

func (r *Redis) consentKey() string { return r.prefix + ":consent-events" }

// PublishConsent appends ev to the stream. An error means it may or may
// not be there: publish again (applying twice changes nothing).
func (r *Redis) PublishConsent(ctx context.Context, ev ConsentEvent) error {
	const op = "publish consent"
	if err := ev.valid(); err != nil {
		return err
	}
	at := ""
	if !ev.At.IsZero() {
		at = strconv.FormatInt(ev.At.UnixNano(), 10)
	}
	return r.check(op, r.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: r.consentKey(),
		MaxLen: ConsentStreamLen, Approx: true,
		Values: []string{"op", string(ev.Op), "sub", hex.EncodeToString(ev.Sub[:]), "at", at, "origin", ev.Origin},
	}).Err())
}

// FollowConsent calls fn for each event after mark ("" for the first
// retained), in order, waiting for new ones up to block at a time, until
// ctx ends or fn fails. With each event fn gets the mark to resume after
// it, which the caller saves. A Redis error is returned (the caller
// retries); an entry that does not parse is passed to fn with ErrBadEvent.
//
// gap reports that events after mark were trimmed before they were read:
// this instance missed some changes of consent. A mark is the entry's ID
// and how many entries the stream had had up to it; Redis counts the
// entries ever added, so those trimmed are that count less the length.
func (r *Redis) FollowConsent(ctx context.Context, mark string, block time.Duration, fn func(mark string, ev ConsentEvent, err error) error) (gap bool, err error) {
	const op = "follow consent"
	after, n, err := parseMark(mark)
	if err != nil {
		return false, err
	}
	info, err := r.rdb.XInfoStream(ctx, r.consentKey()).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "no such key"):
	case err != nil:
		if err := r.check(op, err); err != nil {
			return false, err
		}
	default:
		gap = info.EntriesAdded-info.Length > n
	}
	for ctx.Err() == nil {
		res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{r.consentKey(), after}, Count: 512, Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing new within block
		}
		if ctx.Err() != nil {
			return gap, ctx.Err()
		}
		if err := r.check(op, err); err != nil {
			return gap, err
		}
		for _, s := range res {
			for _, m := range s.Messages {
				ev, perr := parseConsentEvent(m.Values)
				n++
				after = m.ID
				if err := fn(m.ID+" "+strconv.FormatInt(n, 10), ev, perr); err != nil {
					return gap, err
				}
			}
		}
	}
	return gap, ctx.Err()
}

// parseMark reads "ID N"; "" is the start.
func parseMark(mark string) (id string, n int64, err error) {
	if mark == "" {
		return "0-0", 0, nil
	}
	id, ns, ok := strings.Cut(mark, " ")
	n, nerr := strconv.ParseInt(ns, 10, 64)
	if !ok || nerr != nil || n < 0 || !validID(id) {
		return "", 0, fmt.Errorf("%w: consent stream mark", ErrInvalid)
	}
	return id, n, nil
}

func validID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	_, e1 := strconv.ParseUint(ms, 10, 64)
	_, e2 := strconv.ParseUint(seq, 10, 64)
	return ok && e1 == nil && e2 == nil
}

func (ev ConsentEvent) valid() error {
	switch ev.Op {
	case ConsentOptOut, ConsentOptIn, ConsentReassigned:
		if ev.At.IsZero() {
			return fmt.Errorf("%w: %s without a time", ErrBadEvent, ev.Op)
		}
	case ConsentErase:
	default:
		return fmt.Errorf("%w: op %q", ErrBadEvent, ev.Op)
	}
	if len(ev.Origin) > 64 {
		return fmt.Errorf("%w: origin too long", ErrBadEvent)
	}
	return nil
}

// parseConsentEvent reads a stream entry's fields. They come from Redis,
// which anyone with access may write: every field is checked.
func parseConsentEvent(v map[string]any) (ConsentEvent, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	ev := ConsentEvent{Op: ConsentOp(str("op")), Origin: str("origin")}
	sub, err := hex.DecodeString(str("sub"))
	if err != nil || len(sub) != len(ev.Sub) {
		return ConsentEvent{}, fmt.Errorf("%w: subscriber", ErrBadEvent)
	}
	copy(ev.Sub[:], sub)
	if at := str("at"); at != "" {
		ns, err := strconv.ParseInt(at, 10, 64)
		if err != nil || ns <= 0 {
			return ConsentEvent{}, fmt.Errorf("%w: time", ErrBadEvent)
		}
		ev.At = time.Unix(0, ns)
	}
	if err := ev.valid(); err != nil {
		return ConsentEvent{}, err
	}
	return ev, nil
}

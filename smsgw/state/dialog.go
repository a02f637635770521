package state

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roamtrail/roamtrail/itinerary"
)

// The dialogue: a subscriber's request waiting for "Y", and what became of
// it. The gateway's work on one MO may be repeated after a crash, by the
// same job, so every step is idempotent by its owner (the job id):
//
//	Claim(ctx, key, owner, ttl)        key taken for ttl; true if new or already owner's
//	Ask(ctx, sub, req, ttl)            req becomes the pending request, replacing any other
//	Dialog(ctx, sub)                   the current token and pending request
//	Resolve(ctx, sub, taker, ttl)      end the pending request for taker (Y or N); again by
//	                                   the same taker returns the same request
//
// The token changes with every step (the pending request's nonce, then
// "done:"+nonce), which lets the gateway tell an SMSC's redelivery of an MO
// (same command, same token) from a new one.

// Request is a request waiting for the subscriber's consent.
type Request struct {
	Nonce string         // who made it: the job id; at most 64 bytes
	Days  int            // 15 or 30
	Lang  itinerary.Lang // the language to answer in
}

// Dialog is a subscriber's dialogue state.
type Dialog struct {
	Token   string
	Pending *Request // nil when nothing waits for consent
}

const maxNonce = 64

func checkRequest(r Request) error {
	switch {
	case r.Nonce == "" || len(r.Nonce) > maxNonce:
		return invalid("Request.Nonce must be 1 to 64 bytes")
	case r.Days < 1 || r.Days > 366:
		return invalid("Request.Days out of range")
	}
	return nil
}

func checkOwner(o string) error {
	if o == "" || len(o) > maxNonce {
		return invalid("owner must be 1 to 64 bytes")
	}
	return nil
}

// dialogRec is the Memory's record of a dialogue.
type dialogRec struct {
	req   Request
	done  bool
	taker string
}

func (d *dialogRec) dialog() Dialog {
	if d == nil {
		return Dialog{}
	}
	if d.done {
		return Dialog{Token: "done:" + d.req.Nonce}
	}
	r := d.req
	return Dialog{Token: r.Nonce, Pending: &r}
}

// Claim takes key for ttl on behalf of owner. It reports true when key was
// free or is already owner's: a step repeated after a crash finds its own
// claim.
func (m *Memory) Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	if err := checkOwner(owner); err != nil {
		return false, err
	}
	k := memKey{kind: kindSeen, id: seenHash(key)}
	now, err := m.lock()
	if err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	if e := m.get(k, now); e != nil {
		return e.owner == owner, nil
	}
	m.insert(k, now.Add(ttl)).owner = owner
	return true, nil
}

// Ask makes req sub's pending request for ttl, replacing whatever the
// dialogue held.
func (m *Memory) Ask(ctx context.Context, sub itinerary.Pseudonym, req Request, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := checkRequest(req); err != nil {
		return err
	}
	now, err := m.lock()
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	e := m.dialogEntry(sub, now, ttl)
	e.dialog = &dialogRec{req: req}
	return nil
}

// dialogEntry returns sub's dialogue entry, made or renewed to expire ttl
// from now. Called with the lock held.
func (m *Memory) dialogEntry(sub itinerary.Pseudonym, now time.Time, ttl time.Duration) *memEntry {
	k := memKey{kind: kindPending, id: sub}
	e := m.get(k, now)
	if e == nil {
		return m.insert(k, now.Add(ttl))
	}
	e.expires = now.Add(ttl)
	heap.Fix(&m.byTime, e.index)
	return e
}

// Dialog returns sub's dialogue.
func (m *Memory) Dialog(ctx context.Context, sub itinerary.Pseudonym) (Dialog, error) {
	now, err := m.lock()
	if err != nil {
		return Dialog{}, err
	}
	defer m.mu.Unlock()
	if e := m.get(memKey{kind: kindPending, id: sub}, now); e != nil {
		return e.dialog.dialog(), nil
	}
	return Dialog{}, nil
}

// Resolve ends sub's pending request on behalf of taker and returns it; the
// record of who took it is kept for ttl. ok is false when nothing is
// pending and taker did not take it earlier.
func (m *Memory) Resolve(ctx context.Context, sub itinerary.Pseudonym, taker string, ttl time.Duration) (Request, bool, error) {
	if err := checkTTL(ttl); err != nil {
		return Request{}, false, err
	}
	if err := checkOwner(taker); err != nil {
		return Request{}, false, err
	}
	now, err := m.lock()
	if err != nil {
		return Request{}, false, err
	}
	defer m.mu.Unlock()
	e := m.get(memKey{kind: kindPending, id: sub}, now)
	if e == nil || e.dialog == nil {
		return Request{}, false, nil
	}
	d := e.dialog
	switch {
	case !d.done:
		d.done, d.taker = true, taker
		e.expires = now.Add(ttl)
		heap.Fix(&m.byTime, e.index)
		return d.req, true, nil
	case d.taker == taker:
		return d.req, true, nil
	}
	return Request{}, false, nil
}

// Redis: the dialogue is a hash "<prefix>:{<hex pseudonym>}:dialog" with
// fields st ("p" pending, "d" done), n (nonce), days, lang, taker.

func (r *Redis) dialogKey(sub itinerary.Pseudonym) string { return r.subKey(sub, "dialog") }

// claimScript is SET NX that also succeeds for the key's owner.
//
// KEYS[1] the claim, ARGV[1] owner, ARGV[2] TTL in ms; returns 1 or 0.
const claimScript = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`

// resolveScript marks the pending request done by ARGV[1], or finds it
// already done by ARGV[1]; it returns {nonce, days, lang} or nil.
//
// KEYS[1] the dialogue hash, ARGV[1] taker, ARGV[2] TTL in ms.
const resolveScript = `
local st = redis.call('HGET', KEYS[1], 'st')
if st == 'p' then
  redis.call('HSET', KEYS[1], 'st', 'd', 'taker', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not (st == 'd' and redis.call('HGET', KEYS[1], 'taker') == ARGV[1]) then
  return false
end
return redis.call('HMGET', KEYS[1], 'n', 'days', 'lang')
`

// Claim takes key for ttl on behalf of owner (one script): true when key
// was free or is already owner's. The key stored is a hash of key.
func (r *Redis) Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	const op = "claim"
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	if err := checkOwner(owner); err != nil {
		return false, err
	}
	n, err := r.claim.Run(ctx, r.rdb, []string{r.seenKey(key)}, owner, ttl.Milliseconds()).Int64()
	if err := r.check(op, err); err != nil {
		return false, err
	}
	return n == 1, nil
}

// Ask makes req sub's pending request for ttl (one transaction).
func (r *Redis) Ask(ctx context.Context, sub itinerary.Pseudonym, req Request, ttl time.Duration) error {
	const op = "ask"
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := checkRequest(req); err != nil {
		return err
	}
	k := r.dialogKey(sub)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, k)
		p.HSet(ctx, k, "st", "p", "n", req.Nonce, "days", req.Days, "lang", int(req.Lang))
		p.PExpire(ctx, k, ttl)
		return nil
	})
	return r.check(op, err)
}

// Dialog returns sub's dialogue (one HGETALL).
func (r *Redis) Dialog(ctx context.Context, sub itinerary.Pseudonym) (Dialog, error) {
	const op = "dialog"
	h, err := r.rdb.HGetAll(ctx, r.dialogKey(sub)).Result()
	if err := r.check(op, err); err != nil {
		return Dialog{}, err
	}
	switch h["st"] {
	case "":
		return Dialog{}, nil
	case "d":
		return Dialog{Token: "done:" + h["n"]}, nil
	}
	req, err := parseRequest(h["n"], h["days"], h["lang"])
	if err != nil {
		return Dialog{}, err
	}
	return Dialog{Token: req.Nonce, Pending: &req}, nil
}

// Resolve ends sub's pending request on behalf of taker (one script).
func (r *Redis) Resolve(ctx context.Context, sub itinerary.Pseudonym, taker string, ttl time.Duration) (Request, bool, error) {
	const op = "resolve"
	if err := checkTTL(ttl); err != nil {
		return Request{}, false, err
	}
	if err := checkOwner(taker); err != nil {
		return Request{}, false, err
	}
	res, err := r.resolve.Run(ctx, r.rdb, []string{r.dialogKey(sub)}, taker, ttl.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return Request{}, false, r.check(op, nil)
	}
	if err := r.check(op, err); err != nil {
		return Request{}, false, err
	}
	if len(res) != 3 {
		return Request{}, false, fmt.Errorf("%w: resolve reply", ErrCorrupt)
	}
	s := func(v any) string { x, _ := v.(string); return x }
	req, err := parseRequest(s(res[0]), s(res[1]), s(res[2]))
	if err != nil {
		return Request{}, false, err
	}
	return req, true, nil
}

func parseRequest(nonce, days, lang string) (Request, error) {
	d, err1 := strconv.Atoi(days)
	l, err2 := strconv.Atoi(lang)
	req := Request{Nonce: nonce, Days: d, Lang: itinerary.Lang(l)}
	if err1 != nil || err2 != nil || l < 0 || l > 255 || checkRequest(req) != nil {
		return Request{}, fmt.Errorf("%w: dialogue record", ErrCorrupt)
	}
	return req, nil
}

// Package state holds the SMS gateway's small shared state: claims against
// SMSC redelivery, each subscriber's dialogue (a request waiting for "Y"),
// per-subscriber daily counts and the global reply budget. Several gateway
// instances bound to one SMSC must act as one, so this state lives behind
// a method set with two implementations:
//
//   - *Memory, for a single instance: maps in the process, bounded in size.
//   - *Redis, for several: one Redis (later Redis Cluster) shared by all.
//
// Subscribers are itinerary.Pseudonyms, never phone numbers; nothing here
// stores, logs or returns a number.
//
// # Method set
//
// Both types have exactly these methods; the gateway declares the
// interface it needs (all of it, or a part):
//
//	Claim(ctx, key, owner string, ttl time.Duration) (bool, error)
//	Ask(ctx, sub itinerary.Pseudonym, req Request, ttl time.Duration) error
//	Dialog(ctx, sub itinerary.Pseudonym) (Dialog, error)
//	Resolve(ctx, sub itinerary.Pseudonym, taker string, ttl time.Duration) (req Request, ok bool, err error)
//	CountRequest(ctx, sub itinerary.Pseudonym, day string, limit int) (allowed, notifyLimit bool, err error)
//	AllowGlobal(ctx, limit int, per time.Duration) (bool, error)
//	Forget(ctx, sub itinerary.Pseudonym) error
//	Close() error
//
// The gateway's work on one MO may be repeated after a crash by the same
// job, so the calls that change state take the job id and give a repeat
// the first call's answer.
//
// Claim takes key for ttl on behalf of owner, the job: true when the key
// was free or is already owner's, false when another owner holds it. A
// repeat does not extend the claim. The gateway builds keys from the
// subscriber, the command and the dialogue's token; only a hash of the
// key is stored.
//
// Ask makes a Request (nonce, days, language) the subscriber's pending
// request for ttl, replacing whatever the dialogue held. Dialog reads the
// dialogue: its Token is "" when there is none, the pending request's
// nonce, then "done:"+nonce once it is resolved; Pending is set while the
// request waits. Resolve ends the pending request on behalf of taker (the
// job of a "Y" or an "N") and returns it, keeping the record of who took
// it for its own ttl; of two instances that resolve at once only one gets
// ok, and the same taker resolving again gets the same request. A request
// past its ttl is gone, and so is a done record past Resolve's ttl.
//
// CountRequest counts a subscriber's request on a local day
// ("2026-11-27"): allowed while the day's count is at most limit;
// notifyLimit is true once per subscriber and day, on the first request
// over the limit, so that the gateway sends one "limit reached" reply a
// day. A day's count is kept for 48 hours after its first request.
//
// AllowGlobal is the circuit breaker against floods: at most limit replies
// per fixed window of length per, across all instances. Windows start at
// multiples of per since the Unix epoch by the injected clock, so
// instances agree on them as far as their clocks agree. A fixed window
// was chosen over GCRA because it says exactly what the option says (at
// most limit per window), needs one counter and no shared clock, and tests
// deterministically; the price is that up to twice limit can pass in one
// period straddling a window boundary.
//
// Forget erases a subscriber: dialogue and day counters. Claims stay
// until their ttl: their keys are hashes that cannot be linked to the
// subscriber without the gateway's key, and dropping them would let a
// redelivered message through after the erasure.
//
// Close releases resources; after it every method returns ErrClosed.
//
// Errors are ErrInvalid (arguments, options), ErrUnavailable (Redis
// unreachable or too slow: answer the SMSC with a temporary error),
// ErrClosed and ErrCorrupt (Redis only: a record this package did not
// write), wrapped with the operation's name.
//
// # Redis layout
//
// With the default prefix "rt" and a subscriber's pseudonym in hex as H:
//
//	rt:{H}:dialog       hash: st ("p" pending, "d" done), n (the nonce), days,
//	                    lang, and taker once done; TTL Ask's, then Resolve's
//	rt:{H}:days         hash, day -> count and day+"!" -> 1 once notified; 48 h TTL
//	rt:claim:<hash>     string, the owner; <hash> is 32 hex digits of SHA-256
//	                    of the key; TTL Claim's
//	rt:budget:<per>:<n> counter of window n of per milliseconds; TTL two windows
//
// The braces make the pseudonym the Redis Cluster hash tag: a
// subscriber's keys live in one slot, so Forget's two-key DEL runs on one
// node, and Forget needs no SCAN: the two keys are all there is. Day
// counters live in one hash rather than a key per day for the same
// reason; the script that counts drops the days before yesterday whenever
// a new day begins, so the hash stays small. Claim, Resolve, CountRequest
// and AllowGlobal are Lua scripts run with EVALSHA (redis.Script.Run); Ask
// is DEL, HSET and PEXPIRE in one MULTI; Dialog one HMGET; Forget one DEL.
// Claim and budget keys are spread over slots.
//
// go-redis resends a command whose reply was lost (MaxRetries), so every
// method must bear running twice. Claim and Resolve are idempotent by
// owner: the resent script finds the claim or the resolution its first
// run made and answers the same. Ask writes the same record again.
// CountRequest and AllowGlobal may count a request or a reply twice,
// which errs toward refusing. go-redis's AutoPipeline, which retries
// whole batches, is not used.
package state

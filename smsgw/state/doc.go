// Package state holds the SMS gateway's small shared state: delivery ids
// already seen, requests waiting for a "Y", per-subscriber daily counts
// and the global reply budget. Several gateway instances bound to one SMSC
// must act as one, so this state lives behind a method set with two
// implementations:
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
//	FirstDelivery(ctx, id string, ttl time.Duration) (bool, error)
//	SetPending(ctx, sub itinerary.Pseudonym, p Pending, ttl time.Duration) error
//	TakePending(ctx, sub itinerary.Pseudonym) (Pending, bool, error)
//	CancelPending(ctx, sub itinerary.Pseudonym) (bool, error)
//	CountRequest(ctx, sub itinerary.Pseudonym, day string, limit int) (allowed, notifyLimit bool, err error)
//	AllowGlobal(ctx, limit int, per time.Duration) (bool, error)
//	Forget(ctx, sub itinerary.Pseudonym) error
//	Close() error
//
// FirstDelivery suppresses SMSC redeliveries: it returns true once per id
// within ttl. The caller builds id from the pseudonym and the SMSC's
// message fields; only a hash of it is stored.
//
// SetPending stores the request a subscriber is asked to confirm,
// replacing any earlier one; TakePending gets and removes it atomically,
// so of two instances that both receive a "Y" only one sends; a request
// past its ttl is gone. CancelPending removes it and reports whether there
// was one.
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
// Forget erases a subscriber: pending request and day counters. Delivery
// ids seen stay until their ttl: they are hashes that cannot be linked to
// the subscriber without the id, and dropping them would let a
// redelivered message through after the erasure.
//
// Close releases resources; after it every method returns ErrClosed.
//
// Errors are ErrInvalid (arguments, options), ErrUnavailable (Redis
// unreachable or too slow: answer the SMSC with a temporary error),
// ErrClosed and ErrCorrupt, wrapped with the operation's name.
//
// # Redis layout
//
// With the default prefix "rt" and a subscriber's pseudonym in hex as H:
//
//	rt:{H}:pending      string, the encoded Pending (14 bytes); SET PX ttl, GETDEL, DEL
//	rt:{H}:days         hash, day -> count and day+"!" -> 1 once notified; 48 h TTL
//	rt:seen:<hash>      string, a random token; SET NX PX ttl GET; <hash> is 32 hex
//	                    digits of SHA-256 of the delivery id
//	rt:budget:<per>:<n> counter of window n of per milliseconds; INCR, TTL two windows
//
// The braces make the pseudonym the Redis Cluster hash tag: a
// subscriber's keys live in one slot, so the scripts and Forget's
// two-key DEL run on one node, and Forget needs no SCAN: the two keys are
// all there is. Day counters live in one hash rather than a key per day
// for the same reason; the script that counts drops the days before
// yesterday whenever a new day begins, so the hash stays small.
// CountRequest and AllowGlobal are Lua scripts run with EVALSHA
// (redis.Script.Run), every other method one plain command. Seen keys and
// budget keys are spread over slots.
//
// FirstDelivery uses SET NX GET (Redis 7.0 or later) with a token unique
// to the call, so that go-redis resending the command after a lost reply
// still reports a first delivery; go-redis's AutoPipeline, which retries
// whole batches, is not used. The other methods accept the resend: a lost
// reply can cost a pending request (GETDEL ran, the resend finds nothing:
// the subscriber is asked again rather than sent two itineraries) or count
// a request or a reply twice (errs toward refusing).
package state

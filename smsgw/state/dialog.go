package state

import (
	"github.com/roamtrail/roamtrail/itinerary"
)

// The dialogue: a subscriber's request waiting for "Y", and what became of
// it. The gateway's work on one MO may be repeated after a crash, by the
// same job, so the steps that change state are idempotent by their owner
// (the job id):
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

// Request is a request waiting for the subscriber's consent. The gateway
// keeps a resolved one in its queued job (as JSON, by field name).
type Request struct {
	Nonce string         // who made it: the job id; 1 to 64 bytes
	Days  int            // the itinerary's length, 1 to 366 (the gateway asks 15 or 30)
	Lang  itinerary.Lang // the language to answer in
}

// Dialog is a subscriber's dialogue state.
type Dialog struct {
	// Token names the dialogue's step: "" when there is none, the pending
	// request's nonce, then "done:"+nonce once it is resolved.
	Token string
	// Pending is the request waiting for consent, nil when none waits. It
	// is a copy.
	Pending *Request
}

// dialogRec is a dialogue as both implementations hold it: Memory in its
// entry, Redis in a hash (see parseDialog), so that both answer Dialog
// from the same code.
type dialogRec struct {
	req   Request
	done  bool
	taker string // who resolved it, once done
}

func (d *dialogRec) dialog() Dialog {
	if d.done {
		return Dialog{Token: "done:" + d.req.Nonce}
	}
	r := d.req
	return Dialog{Token: r.Nonce, Pending: &r}
}

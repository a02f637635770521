// Package staff is what customer service and auditors may do with
// subscribers' location data, and nothing more: look up an itinerary with
// the subscriber's consent, erase a subscriber's data, read and verify the
// access log, and manage who may do which.
//
// # Operators and roles
//
// An operator is an ID and a role, listed in the data dir's operators.json
// (mode 0600, rewritten atomically; see Registry). The roles:
//
//	agent    lookup (with the subscriber's code), erase
//	auditor  audit show, audit verify; never an itinerary
//	admin    operators add/remove/list, and everything an agent and an auditor may
//
// A request names its operator; one whose role does not allow it, or who is
// not an operator, is refused with ErrDenied and the refusal is written to
// the access log (audit.ActDenied). Until an admin exists, anyone who can
// reach the data dir may create the first one (Request.Bootstrap); after
// that, only an admin. The operator ID is what the caller says it is: the
// admin socket admits only the data dir's owner and root (see Server), so
// operators are accountable names for the people sharing that account, not
// a separate authentication.
//
// # A lookup takes the subscriber's consent
//
// An agent never sees an itinerary on their own say-so. OpLookup sends the
// subscriber, by SMS, a six-digit code naming the window and the ticket;
// the subscriber reads it to the agent if they agree; OpConfirm with that
// code shows the itinerary and tells the subscriber, by SMS, that it was
// viewed. A code is bound to the operator, the subscriber, the window and
// the ticket: it opens nothing else. It is single-use, lives 10 minutes,
// and dies after 5 wrong tries by its operator; a number gets at most 3
// codes an hour. Codes are random (an io.Reader, crypto/rand by default,
// drawn without modulo bias) and stored only as an HMAC under a key derived
// from the pseudonym key, so the code store on disk reveals no code.
//
// The code store is a keyspace of the visit store (store.DB's PutCode,
// GetCode, DeleteCode), not a file: whoever issues or checks a code (the
// running service, or a CLI run when none runs) already holds that store,
// whose lock makes them exclusive, every write is synced, and the two steps
// may be two separate processes. Expiry is the caller's (this package's);
// Service.Sweep deletes what expired.
//
// # The access log is written first
//
// Every decision is appended to the access log before its effect: the
// code-sent entry before the code SMS goes out, the staff-lookup entry
// before the itinerary is returned, the erase entry before the erase. If
// the append fails, nothing is released. The entries:
//
//	code-sent     a code went to the subscriber (outcome ok)
//	code-failed   a code was wrong (detail: tries left) or expired, or its SMS failed
//	staff-lookup  outcome granted (the itinerary was shown) or denied (no code pending)
//	erase         outcome ok, then failed if the erase did not happen
//	denied        a role refused, an unknown operator, a code rate limit
//
// Entries hold the subscriber's pseudonym and masked number, never the
// number; errors and results do the same.
//
// # The admin socket
//
// While `roamtrail serve` runs, it owns the store lock, the SMSC bind and
// the gateway's state, so staff commands are executed by it: Server listens
// on DATA_DIR/admin.sock (mode 0600, in a dir of mode 0700), admits a peer
// only if SO_PEERCRED says it runs as the dir's owner or root, reads one
// Request as a JSON line and answers one Response as a JSON line. Call is
// the client; it returns ErrNoService when nothing listens, and the CLI then
// opens the data dir itself and runs the same Service.Do. Either way the
// result is the same Response.
package staff

package state

import (
	"errors"
	"fmt"
)

// Errors of this package. Their text, and the text of every error wrapping
// them, names the operation and a cause but never a subscriber (pseudonym
// or number), a key, an address or a password: it may reach an operator's
// log or a metric label.
var (
	// ErrUnavailable means the shared state could not be reached or did
	// not answer in time (Redis down, a timeout, the caller's context
	// ended). Nothing can be said about the request: the gateway answers
	// the SMSC with a temporary error (ESME_RX_T_APPN) so that it
	// redelivers later. The cause stays reachable through errors.Is and
	// errors.As (context.DeadlineExceeded, *net.OpError, ...).
	ErrUnavailable = errors.New("state: unavailable")
	// ErrInvalid reports an argument or option that cannot be used; the
	// message names it.
	ErrInvalid = errors.New("state: invalid")
	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("state: closed")
	// ErrCorrupt reports a stored record that is not what this package
	// writes: a Redis key of another type, or a dialogue hash that does
	// not parse (written by something else, or by a build that stores
	// it differently). The record is left as it is and goes with its
	// TTL or Forget; Ask replaces a corrupt dialogue. Memory's records
	// cannot be corrupt.
	ErrCorrupt = errors.New("state: corrupt record")
)

// quiet wraps an error from a lower layer so that errors.Is and errors.As
// still reach it while its own text, which can carry an address, a key or
// a URL, stays out of the message: text replaces it.
type quiet struct {
	err  error
	text string
}

func (q quiet) Error() string { return q.text }
func (q quiet) Unwrap() error { return q.err }

func invalid(what string) error {
	return fmt.Errorf("%w: %s", ErrInvalid, what)
}

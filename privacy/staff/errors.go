package staff

import "errors"

// Errors. Their text never carries a number or a code; each is wrapped with
// %w and a reason. A Response carries them across the admin socket by Kind,
// so that errors.Is works on both sides.
var (
	// ErrInvalid: a request is malformed (a bad number, ticket, window,
	// code or operator ID). Nothing was done or logged.
	ErrInvalid = errors.New("staff: invalid request")
	// ErrDenied: the operator is unknown, or their role does not allow the
	// request. The refusal is in the access log.
	ErrDenied = errors.New("staff: not allowed")
	// ErrCode: the one-time code is wrong, expired, used up, or none is
	// pending.
	ErrCode = errors.New("staff: code not accepted")
	// ErrRateLimited: the number has had as many codes as it may for now.
	ErrRateLimited = errors.New("staff: too many codes for this number")
	// ErrNotify: an SMS to the subscriber could not be sent.
	ErrNotify = errors.New("staff: cannot send the SMS")
	// ErrUnavailable: this Service was not given what the request needs
	// (a store, a notifier, the access log's dir).
	ErrUnavailable = errors.New("staff: not available here")
	// ErrRegistry: the operator registry cannot be read or written.
	ErrRegistry = errors.New("staff: operator registry")
	// ErrNoService: nothing answers on the admin socket.
	ErrNoService = errors.New("staff: no service answers on the admin socket")
	// ErrSocket: the admin socket cannot be set up, or its peer broke the
	// protocol.
	ErrSocket = errors.New("staff: admin socket")
	// ErrInternal: anything else: a store or log failure on the other side
	// of the socket.
	ErrInternal = errors.New("staff: internal error")
)

// kinds name the sentinels on the wire.
var kinds = []struct {
	name string
	err  error
}{
	{"invalid", ErrInvalid},
	{"denied", ErrDenied},
	{"code", ErrCode},
	{"rate", ErrRateLimited},
	{"notify", ErrNotify},
	{"unavailable", ErrUnavailable},
	{"registry", ErrRegistry},
	{"socket", ErrSocket},
}

func kindOf(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "internal"
}

func errOfKind(kind string) error {
	for _, k := range kinds {
		if k.name == kind {
			return k.err
		}
	}
	return ErrInternal
}

// remoteError is an error that crossed the socket: its text as the service
// wrote it, its sentinel from its kind.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

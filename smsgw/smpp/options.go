package smpp

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// BindMode says how a Session binds.
type BindMode int

const (
	// Transceiver binds one connection for both directions.
	Transceiver BindMode = iota
	// ReceiverTransmitter binds two connections: a receiver for
	// deliver_sm and a transmitter for submit_sm.
	ReceiverTransmitter
)

// Handler receives each inbound message (a complete MO, reassembled if it
// came in parts, or a delivery receipt). Its return value becomes the
// command_status of the deliver_sm_resp, sent only after it returns:
// persist or enqueue first, answer StatusOK, and do the slow work
// elsewhere. StatusRxTAppn (0x64) asks the SMSC to redeliver later.
//
// It runs on a worker goroutine, never on the connection reader, so it
// may call Session.Submit; but it holds a worker and delays the resp
// until it returns, so keep it short. A panic is recovered and answered
// with StatusRxTAppn. The same MO can arrive twice (a resp lost with a
// connection); suppressing duplicates is the caller's business.
type Handler func(ctx context.Context, d *Deliver) Status

// Options configures a Session. Every field's default applies to its
// zero value.
type Options struct {
	// Addr is the SMSC's host:port. Required.
	Addr string
	// TLS, when set, dials with TLS using this config. Default nil:
	// plain TCP.
	TLS *tls.Config
	// SystemID, Password and SystemType go into the bind. SystemID is
	// required; the others default to empty.
	SystemID, Password, SystemType string
	// AddrTON, AddrNPI and AddressRange go into the bind. Default 0, 0, "".
	AddrTON, AddrNPI byte
	AddressRange     string
	// Mode is Transceiver (default) or ReceiverTransmitter.
	Mode BindMode

	// Handler gets inbound messages. Default: none, and every deliver_sm
	// is answered StatusRxTAppn so that the SMSC keeps it.
	Handler Handler
	// HandlerWorkers is how many handlers may run at once. Default 4.
	HandlerWorkers int
	// HandlerQueue is how many inbound PDUs may wait for a worker. When
	// it is full the reader answers StatusRxTAppn at once rather than
	// stall the link (enquire_link and submit responses share it).
	// Default 256.
	HandlerQueue int
	// HandlerTimeout bounds the context given to the handler. Default 10 s.
	HandlerTimeout time.Duration

	// Window is the most submit_sm awaiting a response. Submit waits
	// for a free slot. Default 10.
	Window int
	// MaxTPS caps submit_sm per second (a token bucket, no burst beyond
	// one). Default 0: no cap.
	MaxTPS float64
	// ResponseTimeout is how long a request waits for its response;
	// past it a submit's outcome is unknown. Default 30 s.
	ResponseTimeout time.Duration
	// ThrottlePause is how long the whole bind pauses after
	// ESME_RTHROTTLED (0x58), doubling on repeats up to 8x. Default 1 s.
	ThrottlePause time.Duration
	// QueueFullPause is the same for ESME_RMSGQFUL (0x14). Default 5 s.
	QueueFullPause time.Duration
	// SysErrRetries is how many times a submit answered ESME_RSYSERR
	// (0x08) is retried before the error is returned. Default 2;
	// negative means none.
	SysErrRetries int

	// DialTimeout bounds connecting (and the TLS handshake). Default 10 s.
	DialTimeout time.Duration
	// BindTimeout bounds waiting for bind_resp. Default 10 s.
	BindTimeout time.Duration
	// WriteTimeout bounds each write. Default 10 s.
	WriteTimeout time.Duration
	// ReadTimeout closes a connection on which nothing at all arrived
	// for that long. Default 2×EnquireLinkInterval + EnquireLinkTimeout.
	ReadTimeout time.Duration
	// EnquireLinkInterval is how often we send enquire_link. Default 30 s.
	EnquireLinkInterval time.Duration
	// EnquireLinkTimeout is how long an enquire_link may wait for its
	// resp before the link is declared dead and closed. It is measured
	// per request, independent of the interval. Default 10 s.
	EnquireLinkTimeout time.Duration
	// UnbindTimeout bounds waiting for unbind_resp on Shutdown.
	// Default 5 s.
	UnbindTimeout time.Duration
	// MaxPDU bounds command_length of inbound PDUs. Default 64 KiB.
	MaxPDU int

	// Backoff gives the delay before reconnect attempt n (0-based).
	// Default: 500 ms doubling to 60 s, each delay drawn uniformly from
	// its upper half (jitter).
	Backoff func(attempt int) time.Duration
	// AuthBackoff is the delay after the SMSC rejected our credentials
	// (0x0D, 0x0E, 0x0F): we keep trying, slowly, and log at error
	// level each time. Default 60 s.
	AuthBackoff time.Duration

	// Split bounds segmentation in SubmitParts. Default smstext defaults.
	Split smstext.SplitOptions
	// Reassembly bounds MO reassembly. Default smstext defaults.
	Reassembly smstext.ReassemblerOptions

	// Logger gets the session's events. Phone numbers are masked.
	// Default zerolog.Nop().
	Logger *zerolog.Logger
	// Registerer, when set, gets the session's Prometheus collectors.
	// Default nil: metrics are kept but not registered.
	Registerer prometheus.Registerer
	// Name labels metrics and logs (const label "session"). Default "smsc".
	Name string
	// Now is the clock for reassembly TTLs and logs. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		return o, fmt.Errorf("%w: Options.Addr is required", ErrInvalid)
	}
	if o.SystemID == "" {
		return o, fmt.Errorf("%w: Options.SystemID is required", ErrInvalid)
	}
	if o.Mode != Transceiver && o.Mode != ReceiverTransmitter {
		return o, fmt.Errorf("%w: Options.Mode %d", ErrInvalid, o.Mode)
	}
	if o.MaxTPS < 0 {
		return o, fmt.Errorf("%w: Options.MaxTPS is negative", ErrInvalid)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt(&o.HandlerWorkers, 4)
	defInt(&o.HandlerQueue, 256)
	def(&o.HandlerTimeout, 10*time.Second)
	defInt(&o.Window, 10)
	def(&o.ResponseTimeout, 30*time.Second)
	def(&o.ThrottlePause, time.Second)
	def(&o.QueueFullPause, 5*time.Second)
	if o.SysErrRetries == 0 {
		o.SysErrRetries = 2
	}
	def(&o.DialTimeout, 10*time.Second)
	def(&o.BindTimeout, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.EnquireLinkInterval, 30*time.Second)
	def(&o.EnquireLinkTimeout, 10*time.Second)
	def(&o.ReadTimeout, 2*o.EnquireLinkInterval+o.EnquireLinkTimeout)
	def(&o.UnbindTimeout, 5*time.Second)
	defInt(&o.MaxPDU, 64<<10)
	if o.MaxPDU < 1024 {
		return o, fmt.Errorf("%w: Options.MaxPDU %d below 1024", ErrInvalid, o.MaxPDU)
	}
	def(&o.AuthBackoff, time.Minute)
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff(500*time.Millisecond, time.Minute)
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	if o.Name == "" {
		o.Name = "smsc"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Reassembly.Now == nil {
		o.Reassembly.Now = o.Now
	}
	return o, nil
}

// DefaultBackoff doubles from min to max; each delay is drawn uniformly
// from [d/2, d] so that many gateways do not reconnect in step.
func DefaultBackoff(min, max time.Duration) func(int) time.Duration {
	return func(attempt int) time.Duration {
		d := min
		for i := 0; i < attempt && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}

// Package smsc is roamtrail's SMSC simulator: a real SMPP server on TCP
// for tests, `roamtrail demo`, `roamtrail sim smsc` and benchmarks. It
// takes binds (transceiver, receiver, transmitter), answers submit_sm with
// message ids, reassembles the MT it receives, delivers injected MO as
// deliver_sm (GSM or UCS-2, split with UDH when long) with redelivery, can
// send delivery receipts, and has fault knobs: throttling, dropped
// connections, unbind, half-open silence, slow or held answers, garbage
// and unknown PDUs, data_sm, alert_notification, generic_nack (unsolicited
// or in answer to submit_sm), and a connection dropped at a chosen
// submit_sm.
//
// Like a real SMSC it numbers its own requests from 1 on every
// connection, so its sequence numbers collide with the ESME's: that is
// what exposes response matching by sequence number alone.
package smsc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

var (
	// ErrClosed is returned after Shutdown or Close.
	ErrClosed = errors.New("smsc: server closed")
	// ErrNotDelivered reports an MO the ESME did not accept within
	// MaxDeliveryAttempts, or answered with a permanent error.
	ErrNotDelivered = errors.New("smsc: MO not delivered")
	// ErrInvalid reports bad options or MO input; the message names it.
	ErrInvalid = errors.New("smsc: invalid")
)

// Account is an ESME allowed to bind.
type Account struct {
	SystemID string
	Password string
}

// Options configures a Server. Zero values mean the documented defaults.
type Options struct {
	// TLS, when set, makes the simulator an SMPP-over-TLS SMSC with this
	// config (its certificate). Default nil: plain TCP.
	TLS *tls.Config
	// Accounts lists who may bind. Default: anyone, any password.
	Accounts []Account
	// SystemID is what bind_resp carries. Default "roamsim".
	SystemID string
	// Receipts makes the server send a delivery receipt (stat:DELIVRD,
	// with receipted_message_id and message_state TLVs) for every MT that
	// asked for one (registered_delivery & 1). Default false.
	Receipts bool
	// RedeliveryDelay is the wait before an MO answered with an error or
	// not answered is delivered again. Default 200 ms.
	RedeliveryDelay time.Duration
	// MaxDeliveryAttempts bounds deliveries of one MO part. Default 5.
	MaxDeliveryAttempts int
	// ResponseTimeout is how long a deliver_sm waits for its resp before
	// it counts as unanswered. Default 5 s.
	ResponseTimeout time.Duration
	// EnquireLinkInterval makes the server send enquire_link to every
	// bound ESME this often. Default 0: never.
	EnquireLinkInterval time.Duration
	// MaxPDU bounds inbound command_length. Default 64 KiB.
	MaxPDU int
	// MTLog is how many recent MT messages are kept for MTs and GET /mt.
	// Default 10000.
	MTLog int
	// OnMT, when set, is called with each complete MT, on the
	// connection's goroutine: keep it short. Default nil.
	OnMT func(MT)
	// Split bounds MO segmentation. Default smstext defaults.
	Split smstext.SplitOptions
	// Handsets joins the parts of long MTs into the messages OnMT and
	// MTs report. Reassembly is the handset's job, and a handset keeps
	// the parts it has across an SMSC restart: give the Servers that stand
	// for one SMSC before and after a restart the same Reassembler.
	// Default: one of the server's own.
	Handsets *smstext.Reassembler
	// Logger gets events; phone numbers are masked. Default zerolog.Nop().
	Logger *zerolog.Logger
	// Now is the clock for MT timestamps and receipts. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.SystemID == "" {
		o.SystemID = "roamsim"
	}
	if o.RedeliveryDelay <= 0 {
		o.RedeliveryDelay = 200 * time.Millisecond
	}
	if o.MaxDeliveryAttempts <= 0 {
		o.MaxDeliveryAttempts = 5
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = 5 * time.Second
	}
	if o.MaxPDU <= 0 {
		o.MaxPDU = pduio.DefaultMaxPDU
	}
	if o.MTLog <= 0 {
		o.MTLog = 10000
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// MT is a message an ESME submitted, reassembled when it came in parts.
type MT struct {
	SystemID           string    `json:"system_id"`
	From               string    `json:"from"`
	To                 string    `json:"to"`
	Text               string    `json:"text"`
	Binary             bool      `json:"binary,omitempty"`
	DataCoding         byte      `json:"data_coding"`
	Parts              int       `json:"parts"`
	MessageIDs         []string  `json:"message_ids"`
	RegisteredDelivery byte      `json:"registered_delivery,omitempty"`
	Time               time.Time `json:"time"`
}

// Stats counts what the server saw and did.
type Stats struct {
	Binds            int // successful binds
	BindsRefused     int
	MOInjected       int // MO messages accepted by InjectMO/Deliver
	MOPartsSent      int // deliver_sm written, redeliveries included
	MOPartsAcked     int // deliver_sm answered OK
	MORedelivered    int
	ReceiptsSent     int
	SubmitsReceived  int // submit_sm PDUs, whatever the answer
	SubmitsAccepted  int // answered OK
	MTReceived       int // complete MT messages
	GenericNacksRecv int
	GenericNacksSent int // in answer to submit_sm (NackSubmits)
	SubmitDrops      int // connections dropped at a submit_sm (DropAtSubmit, DropAtPart)
	EnquireLinksRecv int
	UnbindsRecv      int
}

// Server is the simulator. Listen, then Serve; Shutdown or Close.
type Server struct {
	opts Options
	log  zerolog.Logger
	ln   net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[*esme]struct{}
	rr       int // round robin over receivers
	bindWait chan struct{}
	closed   bool
	stats    Stats
	mts      []MT
	mtCount  int
	mtWait   chan struct{}
	msgSeq   uint64
	reasm    *smstext.Reassembler
	refs     uint16
	lastSub  uint32
	partIDs  []partID // message ids of MT parts awaiting the rest

	// fault knobs
	failN      int
	failStatus pdu.Status
	nackN      int
	nackStatus pdu.Status
	dropAt     int  // the dropAt-th submit_sm from now drops its connection
	dropTake   bool // and is taken first
	dropPart   int  // the next part dropPart of a long MT drops its connection
	throttleIv time.Duration
	throttleAt time.Time
	delay      time.Duration
	hold       bool
	held       []heldResp
	halfOpen   bool
	nextSeq    uint32
}

type heldResp struct {
	c *esme
	b []byte
}

// Listen listens on addr (e.g. "127.0.0.1:0") and returns a Server ready
// to Serve.
func Listen(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smsc: listen: %w", err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	opts = opts.withDefaults()
	s := &Server{
		opts:     opts,
		log:      opts.Logger.With().Str("component", "smsc").Logger(),
		ln:       ln,
		conns:    map[*esme]struct{}{},
		bindWait: make(chan struct{}),
		mtWait:   make(chan struct{}),
		reasm:    opts.Handsets,
	}
	if s.reasm == nil {
		s.reasm = smstext.NewReassembler(smstext.ReassemblerOptions{Now: opts.Now})
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts ESMEs until Shutdown/Close (then ErrClosed) or ctx ends
// (then it closes and returns ctx.Err()).
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if s.isClosed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("smsc: accept: %w", err)
		}
		c := newESME(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown sends unbind to every bound ESME, waits for their unbind_resp
// (bounded by ctx) and closes. Idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.waitDone(ctx)
	}
	s.closed = true
	conns := s.snapshotLocked(false)
	s.mu.Unlock()
	s.ln.Close()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); c.unbind(ctx) }()
	}
	wg.Wait()
	s.cancel()
	s.closeAll()
	return s.waitDone(ctx)
}

// Close closes the listener and every connection at once. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ln.Close()
	s.cancel()
	s.closeAll()
	s.wg.Wait()
	return nil
}

func (s *Server) waitDone(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeAll()
		return ctx.Err()
	}
}

func (s *Server) closeAll() {
	for _, c := range s.snapshot(false) {
		c.close()
	}
}

// snapshot lists connections; bound only when boundOnly.
func (s *Server) snapshot(boundOnly bool) []*esme {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked(boundOnly)
}

func (s *Server) snapshotLocked(boundOnly bool) []*esme {
	var out []*esme
	for c := range s.conns {
		if !boundOnly || c.isBound() {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) remove(c *esme) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) auth(systemID, password string) bool {
	if len(s.opts.Accounts) == 0 {
		return true
	}
	for _, a := range s.opts.Accounts {
		if a.SystemID == systemID && a.Password == password {
			return true
		}
	}
	return false
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// BoundCount reports how many ESME connections are bound now.
func (s *Server) BoundCount() int { return len(s.snapshot(true)) }

// WaitBound waits until at least n connections are bound.
func (s *Server) WaitBound(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		ch := s.bindWait
		s.mu.Unlock()
		if s.BoundCount() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) bindChanged() {
	s.mu.Lock()
	close(s.bindWait)
	s.bindWait = make(chan struct{})
	s.mu.Unlock()
}

// recordMT stores a complete MT and wakes WaitMT.
func (s *Server) recordMT(mt MT) {
	s.mu.Lock()
	s.mts = append(s.mts, mt)
	if len(s.mts) > s.opts.MTLog {
		s.mts = s.mts[len(s.mts)-s.opts.MTLog:]
	}
	s.mtCount++
	s.stats.MTReceived++
	close(s.mtWait)
	s.mtWait = make(chan struct{})
	s.mu.Unlock()
	s.log.Debug().Str("to", smstext.Mask(mt.To)).Int("parts", mt.Parts).Msg("MT received")
	if s.opts.OnMT != nil {
		s.opts.OnMT(mt)
	}
}

// MTs returns the recent MT messages, oldest first.
func (s *Server) MTs() []MT {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]MT(nil), s.mts...)
}

// WaitMT waits until at least n MT messages have been received in all
// and returns the recent ones.
func (s *Server) WaitMT(ctx context.Context, n int) ([]MT, error) {
	for {
		s.mu.Lock()
		count, ch := s.mtCount, s.mtWait
		s.mu.Unlock()
		if count >= n {
			return s.MTs(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.MTs(), ctx.Err()
		}
	}
}

func (s *Server) nextMessageID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgSeq++
	return fmt.Sprintf("%08X", s.msgSeq)
}

// FailSubmits answers the next n submit_sm with status st (0x58 to
// throttle, 0x14 queue full, 0x08 system error, anything else).
func (s *Server) FailSubmits(n int, st pdu.Status) {
	s.mu.Lock()
	s.failN, s.failStatus = n, st
	s.mu.Unlock()
}

// NackSubmits answers the next n submit_sm with generic_nack carrying
// status st, as an SMSC does with a PDU it cannot make sense of: the
// message is not taken.
func (s *Server) NackSubmits(n int, st pdu.Status) {
	s.mu.Lock()
	s.nackN, s.nackStatus = n, st
	s.mu.Unlock()
}

// DropAtSubmit closes, abruptly and without unbind, the connection on
// which the n-th submit_sm from now (1: the next) arrives. With taken the
// message is taken first (it counts as received and accepted and goes
// into reassembly) and only its submit_sm_resp is lost, as when a link dies
// after the SMSC read the PDU; without, it vanishes unread, as when it
// dies before. Every other connection stays up. n <= 0 turns it off.
func (s *Server) DropAtSubmit(n int, taken bool) {
	s.mu.Lock()
	s.dropAt, s.dropTake = max(n, 0), taken
	s.mu.Unlock()
}

// DropAtPart is DropAtSubmit at the next submit_sm that is part seq
// (1-based) of a long MT, UDH or SAR: a link dying in the middle of a long
// reply. seq <= 0 turns it off.
func (s *Server) DropAtPart(seq int, taken bool) {
	s.mu.Lock()
	s.dropPart, s.dropTake = max(seq, 0), taken
	s.mu.Unlock()
}

// ThrottleTPS answers ESME_RTHROTTLED to submits arriving faster than tps
// per second; 0 turns it off.
func (s *Server) ThrottleTPS(tps float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tps <= 0 {
		s.throttleIv = 0
		return
	}
	s.throttleIv = time.Duration(float64(time.Second) / tps)
}

// SetResponseDelay delays every submit_sm_resp by d.
func (s *Server) SetResponseDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// HoldResponses(true) keeps submit_sm_resp back until HoldResponses(false)
// sends them all.
func (s *Server) HoldResponses(hold bool) {
	s.mu.Lock()
	s.hold = hold
	var held []heldResp
	if !hold {
		held, s.held = s.held, nil
	}
	s.mu.Unlock()
	for _, h := range held {
		h.c.write(h.b)
	}
}

// SetHalfOpen(true) makes the server read everything and answer nothing,
// enquire_link included, as a half-open link does.
func (s *Server) SetHalfOpen(on bool) {
	s.mu.Lock()
	s.halfOpen = on
	s.mu.Unlock()
}

func (s *Server) isHalfOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.halfOpen
}

// SetNextSeq makes the next request the server sends on each connection
// use sequence number n (to collide with an ESME's outstanding request).
func (s *Server) SetNextSeq(n uint32) {
	for _, c := range s.snapshot(false) {
		c.seq.Set(n)
	}
}

// LastSubmitSeq is the sequence number of the latest submit_sm received.
func (s *Server) LastSubmitSeq() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSub
}

// DropConnections closes every connection abruptly, without unbind.
func (s *Server) DropConnections() {
	for _, c := range s.snapshot(false) {
		c.close()
	}
}

// Unbind sends unbind to every bound ESME and closes each connection
// after its unbind_resp (or ctx).
func (s *Server) Unbind(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range s.snapshot(true) {
		wg.Add(1)
		go func() { defer wg.Done(); c.unbind(ctx) }()
	}
	wg.Wait()
}

// SendRaw writes b as is on every bound connection (garbage, a
// hand-made PDU).
func (s *Server) SendRaw(b []byte) {
	for _, c := range s.snapshot(true) {
		c.write(b)
	}
}

// SendUnknown sends a request with an undefined command id (0x00000099)
// on every bound connection; a good ESME answers generic_nack 0x03.
func (s *Server) SendUnknown() {
	for _, c := range s.snapshot(true) {
		c.write(pduio.Empty(0x00000099, c.seq.Next(), 0))
	}
}

// SendAlertNotification sends an alert_notification (no answer expected).
func (s *Server) SendAlertNotification() {
	for _, c := range s.snapshot(true) {
		body := []byte{1, 1, '1', '3', '8', 0, 1, 1, '1', '0', 0}
		c.write(pduio.Frame{ID: pduio.AlertNotificationID, Seq: c.seq.Next(), Body: body}.Bytes())
	}
}

// SendGenericNack sends an unsolicited generic_nack with status st.
func (s *Server) SendGenericNack(st pdu.Status) {
	for _, c := range s.snapshot(true) {
		c.write(pduio.Empty(pdu.GenericNACKID, c.seq.Next(), st))
	}
}

type partID struct {
	src, dst string
	ref      uint16
	id       string
}

// takePartIDs removes and returns the ids of earlier parts of one MT.
func (s *Server) takePartIDs(src, dst string, ref uint16, multi bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !multi {
		return nil
	}
	var ids []string
	keep := s.partIDs[:0]
	for _, p := range s.partIDs {
		if p.src == src && p.dst == dst && p.ref == ref {
			ids = append(ids, p.id)
		} else {
			keep = append(keep, p)
		}
	}
	s.partIDs = keep
	if len(s.partIDs) > 10000 {
		s.partIDs = s.partIDs[len(s.partIDs)-10000:]
	}
	return ids
}

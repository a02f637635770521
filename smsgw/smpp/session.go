// Package smpp is roamtrail's ESME session layer: it binds to an SMSC,
// keeps the bind alive and rebinds by itself, submits with a window and a
// rate cap, and hands inbound messages to a handler on worker goroutines.
//
// It owns the session and uses go-smpp only for PDU fields (through
// smsgw/internal/pduio): go-smpp's Transceiver loses messages (see
// shared/notes/go-smpp.md). The promises:
//
//   - A response is matched by response bit + command id + our sequence
//     number; an SMSC request never completes one of our requests.
//   - Submit never fails for want of a window slot or a bind: it waits
//     (bounded by its context). A PDU not yet written when a connection
//     dies waits for the rebind; one written and unanswered returns
//     ErrUnknownOutcome and is never resent.
//   - ESME_RTHROTTLED and ESME_RMSGQFUL pause the whole bind and retry
//     that PDU before any new one; the SMSC said it did not take it.
//   - A deliver_sm is answered only after the handler returns, with the
//     handler's status; one bad PDU costs a generic_nack, not the link.
package smpp

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// Session is a bind to one SMSC (one transceiver connection, or a
// receiver and a transmitter). Create it with New, run it with Serve,
// stop it with Shutdown or Close.
type Session struct {
	opts  Options
	log   zerolog.Logger
	m     *metrics
	seq   pduio.Sequence
	reasm *smstext.Reassembler

	links []*link
	tx    *link // the link submits go through
	jobs  chan inbound

	window chan struct{} // a token per outstanding submit_sm
	bucket *tokenBucket

	ctx    context.Context // cancelled by Close / end of Shutdown
	cancel context.CancelFunc
	stop   chan struct{} // closed when Shutdown/Close begins: no reconnects
	done   chan struct{} // closed when everything has stopped

	mu         sync.Mutex
	state      int // stateNew, stateServing, stateClosing
	pauseUntil time.Time
	retrying   int
	gate       chan struct{} // closed and replaced when pause/retrying change
	refs       map[string]uint16

	inflight  sync.WaitGroup // Submit calls in progress
	wg        sync.WaitGroup // our goroutines
	closeOnce sync.Once
}

const (
	stateNew = iota
	stateServing
	stateClosing
)

// New validates opts and returns a Session that does nothing until Serve.
func New(opts Options) (*Session, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Session{
		opts:   opts,
		log:    opts.Logger.With().Str("component", "smpp").Str("session", opts.Name).Logger(),
		reasm:  smstext.NewReassembler(opts.Reassembly),
		jobs:   make(chan inbound, opts.HandlerQueue),
		window: make(chan struct{}, opts.Window),
		bucket: newTokenBucket(opts.MaxTPS),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		gate:   make(chan struct{}),
		refs:   map[string]uint16{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.m, err = newMetrics(opts.Name, opts.Registerer, func() float64 {
		st := s.reasm.Stats()
		return float64(st.Expired + st.Evicted)
	})
	if err != nil {
		return nil, err
	}
	if opts.Mode == Transceiver {
		s.tx = &link{s: s, name: "trx", bindID: pdu.BindTransceiverID, ready: make(chan struct{})}
		s.links = []*link{s.tx}
	} else {
		s.tx = &link{s: s, name: "tx", bindID: pdu.BindTransmitterID, ready: make(chan struct{})}
		s.links = []*link{{s: s, name: "rx", bindID: pdu.BindReceiverID, ready: make(chan struct{})}, s.tx}
	}
	return s, nil
}

// Serve binds and keeps the bind(s) up until Shutdown or Close, then
// returns ErrClosed; if ctx ends first it closes the session and returns
// ctx.Err(). Call it once.
func (s *Session) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return ErrClosed
	}
	s.state = stateServing
	s.mu.Unlock()

	for range s.opts.HandlerWorkers {
		s.wg.Add(1)
		go s.worker()
	}
	for _, l := range s.links {
		s.wg.Add(1)
		go l.run()
	}
	select {
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	case <-s.stop:
		<-s.done
		return ErrClosed
	}
}

// Bound reports whether the link that submits is bound now.
func (s *Session) Bound() bool { return s.tx.current() != nil }

// WaitBound waits until every link is bound.
func (s *Session) WaitBound(ctx context.Context) error {
	for _, l := range s.links {
		if _, err := l.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops taking new submits, waits for those in flight, unbinds
// (waiting for unbind_resp up to UnbindTimeout) and closes. If ctx ends
// first, it closes at once and returns ctx.Err(). Safe to call more than
// once and concurrently with Close.
func (s *Session) Shutdown(ctx context.Context) error {
	first := s.beginClose()
	if !first {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer s.finish()

	idle := make(chan struct{})
	go func() { s.inflight.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	var wg sync.WaitGroup
	for _, l := range s.links {
		c := l.current()
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			uctx, cancel := context.WithTimeout(ctx, s.opts.UnbindTimeout)
			defer cancel()
			_, _, err := c.request(uctx, pdu.UnbindID, func(seq uint32) ([]byte, error) {
				return pduio.Empty(pdu.UnbindID, seq, 0), nil
			}, s.opts.UnbindTimeout)
			if err != nil {
				c.log.Warn().Err(err).Msg("no unbind_resp")
			}
			c.close(ErrClosed)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Close closes every connection at once without unbinding. Submits
// already written return ErrUnknownOutcome. Safe after a partial start,
// more than once, and with Shutdown.
func (s *Session) Close() error {
	if s.beginClose() {
		s.finish()
		return nil
	}
	<-s.done
	return nil
}

// beginClose moves to closing; true for the first caller.
func (s *Session) beginClose() bool {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.mu.Lock()
		s.state = stateClosing
		s.mu.Unlock()
		close(s.stop)
		s.broadcast()
	})
	return first
}

// finish cancels everything, closes connections and waits for our
// goroutines.
func (s *Session) finish() {
	s.cancel()
	for _, l := range s.links {
		if c := l.current(); c != nil {
			c.close(ErrClosed)
		}
	}
	s.wg.Wait()
	close(s.done)
}

// broadcast wakes everything waiting on s.gate. Caller may hold s.mu.
func (s *Session) broadcast() {
	close(s.gate)
	s.gate = make(chan struct{})
}

// waitGate blocks while the bind is paused, and first attempts also while
// throttled PDUs are waiting to be retried: those go first.
func (s *Session) waitGate(ctx context.Context, retry bool) error {
	for {
		s.mu.Lock()
		wait := time.Until(s.pauseUntil)
		blocked := wait > 0 || (!retry && s.retrying > 0)
		gate := s.gate
		s.mu.Unlock()
		if !blocked {
			return nil
		}
		var timer <-chan time.Time
		if wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-gate:
		case <-timer:
		}
	}
}

func (s *Session) pause(d time.Duration) {
	s.mu.Lock()
	if until := time.Now().Add(d); until.After(s.pauseUntil) {
		s.pauseUntil = until
	}
	s.broadcast()
	s.mu.Unlock()
}

func (s *Session) addRetrying(n int) {
	s.mu.Lock()
	s.retrying += n
	s.broadcast()
	s.mu.Unlock()
}

// Submit is one submit_sm. Lengths are checked before anything is sent.
type Submit struct {
	Source, Dest         Address
	ServiceType          string
	ESMClass             byte
	ProtocolID           byte
	PriorityFlag         byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	DataCoding           byte
	ShortMessage         []byte
	// TLVs are optional parameters, values already encoded (pass 2-byte
	// values as 2 bytes).
	TLVs map[pdutlv.Tag][]byte
}

func (m *Submit) sm() *pduio.SM {
	return &pduio.SM{
		ServiceType: m.ServiceType, SourceTON: m.Source.TON, SourceNPI: m.Source.NPI, Source: m.Source.Addr,
		DestTON: m.Dest.TON, DestNPI: m.Dest.NPI, Dest: m.Dest.Addr, ESMClass: m.ESMClass,
		ProtocolID: m.ProtocolID, PriorityFlag: m.PriorityFlag, ScheduleDeliveryTime: m.ScheduleDeliveryTime,
		ValidityPeriod: m.ValidityPeriod, RegisteredDelivery: m.RegisteredDelivery, DataCoding: m.DataCoding,
		ShortMessage: m.ShortMessage, TLVs: m.TLVs,
	}
}

// Submit sends one submit_sm and returns the SMSC's message id. It waits
// for a bind, a window slot and the rate cap, all bounded by ctx.
// Errors: ErrInvalid (nothing sent), ErrClosed (nothing sent), ctx errors
// before the write (nothing sent), ErrUnknownOutcome (written, no answer:
// do not resend blindly), *StatusError (the SMSC refused: it did not take
// it; Temporary() says whether a later retry may work).
func (s *Session) Submit(ctx context.Context, m *Submit) (string, error) {
	sm := m.sm()
	if err := sm.Validate(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.inflight.Done()
	return s.submit(ctx, sm)
}

// enter registers a submit unless the session is closing.
func (s *Session) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosing {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

func (s *Session) submit(ctx context.Context, sm *pduio.SM) (string, error) {
	retry, throttles, syserrs := false, 0, 0
	defer func() {
		if retry {
			s.addRetrying(-1)
		}
	}()
	log := s.log.With().Str(logDst, smstext.Mask(sm.Dest)).Logger()
	for {
		if err := s.waitGate(ctx, retry); err != nil {
			return "", err
		}
		select { // window slot
		case s.window <- struct{}{}:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		f, written, err := s.attempt(ctx, sm)
		<-s.window
		s.m.window.Set(float64(len(s.window)))
		if err != nil {
			if !written && (errors.Is(err, ErrConnLost) || errors.Is(err, errNotBound)) {
				continue // the SMSC never saw it: wait for the rebind
			}
			if written {
				s.m.submits.WithLabelValues("unknown").Inc()
				log.Warn().Err(err).Msg("submit_sm written, outcome unknown")
				return "", fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
			return "", err
		}
		if f.Status == StatusOK {
			id, err := pduio.ParseID(f.Body)
			if err != nil {
				log.Warn().Err(err).Msg("submit_sm_resp OK with unreadable message_id")
			}
			s.m.submits.WithLabelValues("ok").Inc()
			return id, nil
		}
		label := fmt.Sprintf("status_0x%02X", uint32(f.Status))
		if f.ID == pdu.GenericNACKID {
			label = fmt.Sprintf("nack_0x%02X", uint32(f.Status))
		}
		// Throttling and a full queue pause the whole bind; a system error
		// or a generic_nack (the SMSC could not make sense of the PDU, so
		// it did not take it: sending it again cannot repeat it) is retried
		// by this submit alone, a few times.
		bindWide := f.Status == StatusThrottled || f.Status == StatusMsgQFul
		var pause time.Duration
		switch {
		case f.Status == StatusThrottled:
			pause = s.opts.ThrottlePause
		case f.Status == StatusMsgQFul:
			pause = s.opts.QueueFullPause
		case (f.Status == StatusSysErr || f.ID == pdu.GenericNACKID) && syserrs < s.opts.SysErrRetries:
			syserrs++
			pause = s.opts.Backoff(syserrs - 1)
		}
		if pause == 0 {
			s.m.submits.WithLabelValues(label).Inc()
			return "", &StatusError{Command: f.ID, Status: f.Status}
		}
		if bindWide {
			throttles++
			pause *= time.Duration(1 << min(throttles-1, 3))
			s.pause(pause)
		}
		log.Info().Uint32(logStatus, uint32(f.Status)).Dur(logDelay, pause).Msg("submit_sm refused for now: retrying first")
		if !retry {
			retry = true
			s.addRetrying(1)
		}
		s.m.submits.WithLabelValues("retry_" + label[strings.Index(label, "_")+1:]).Inc()
		if !bindWide {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	}
}

var errNotBound = errors.New("smpp: not bound")

// attempt waits for the rate cap and a bound transmitter, then writes.
func (s *Session) attempt(ctx context.Context, sm *pduio.SM) (pduio.Frame, bool, error) {
	c, err := s.tx.wait(ctx)
	if err != nil {
		return pduio.Frame{}, false, err
	}
	if err := s.bucket.wait(ctx); err != nil {
		return pduio.Frame{}, false, err
	}
	s.m.window.Set(float64(len(s.window)))
	select {
	case <-c.done():
		return pduio.Frame{}, false, errNotBound
	default:
	}
	return c.request(ctx, pdu.SubmitSMID, func(seq uint32) ([]byte, error) {
		p, err := sm.Body(pdu.SubmitSMID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return pduio.Encode(p, seq, 0)
	}, s.opts.ResponseTimeout)
}

// Carriage says how the parts of a long message travel.
type Carriage int

const (
	// CarriageUDH puts a 6-octet UDH (IEI 0x00) in each part (default).
	CarriageUDH Carriage = iota
	// CarriageSAR uses the sar_* TLVs instead of a UDH.
	CarriageSAR
	// CarriagePayload sends one submit_sm with message_payload; the SMSC
	// segments.
	CarriagePayload
)

// Message is a text to send, segmented by SubmitParts.
type Message struct {
	Source, Dest       Address
	Text               string
	RegisteredDelivery byte
	ServiceType        string
	ValidityPeriod     string
	Carriage           Carriage
}

// SubmitParts encodes and segments m.Text (GSM 03.38 when it fits, else
// UCS-2; see smstext.SplitOptions) and submits the parts in order. It
// returns every part's message id. A text needing more than MaxParts is
// smstext.ErrTooLong before anything is sent. When a part fails, the error
// is a *PartsError saying which parts were accepted; later parts are not
// sent.
//
// A part of a long message whose outcome is unknown does not end it, unlike
// a message on its own: a part written as the link died is sent again on
// the next bind, and after a part whose response did not come in time on a
// live link the rest follow (its id is then ""). A handset reassembles
// parts by reference and sequence number and holds one of each, so a part
// that arrives twice while the message is incomplete is one part; only a
// repeated last part of a message already complete starts a set of its
// own, which the handset drops or, on some models, shows as a fragment
// after its reassembly timeout. Stopping instead costs the whole message.
// A part lost with the link maxPartResends times in a row ends it as
// unknown.
func (s *Session) SubmitParts(ctx context.Context, m *Message) ([]string, error) {
	seg, err := smstext.SplitWith(m.Text, s.opts.Split)
	if err != nil {
		return nil, err
	}
	base := Submit{
		Source: m.Source, Dest: m.Dest, ServiceType: m.ServiceType, ValidityPeriod: m.ValidityPeriod,
		RegisteredDelivery: m.RegisteredDelivery, DataCoding: seg.DataCoding,
	}
	var subs []Submit
	switch {
	case m.Carriage == CarriagePayload:
		sub := base
		sub.TLVs = map[pdutlv.Tag][]byte{pduio.TagMessagePayload: seg.Payload()}
		subs = append(subs, sub)
	case !seg.Concatenated():
		sub := base
		sub.ShortMessage = seg.Parts[0]
		subs = append(subs, sub)
	case m.Carriage == CarriageSAR:
		for _, p := range seg.SAR(s.nextRef(m.Dest.Addr)) {
			sub := base
			sub.ShortMessage = p.ShortMessage
			sub.TLVs = map[pdutlv.Tag][]byte{
				pduio.TagSarMsgRefNum: p.MsgRefNum, pduio.TagSarTotalSegments: p.Total, pduio.TagSarSegmentSeqnum: p.Seqnum,
			}
			subs = append(subs, sub)
		}
	default:
		for _, sm := range seg.WithUDH(byte(s.nextRef(m.Dest.Addr))) {
			sub := base
			sub.ESMClass = pduio.ESMUDHI
			sub.ShortMessage = sm
			subs = append(subs, sub)
		}
	}
	ids := make([]string, 0, len(subs))
	for i := range subs {
		id, err := s.Submit(ctx, &subs[i])
		for resends := 0; len(subs) > 1 && errors.Is(err, ErrUnknownOutcome) && ctx.Err() == nil; resends++ {
			if errors.Is(err, ErrResponseTimeout) {
				err = nil // the link is up: the SMSC has it, and is slow
				break
			}
			if !errors.Is(err, ErrConnLost) || resends == maxPartResends {
				break
			}
			s.m.submits.WithLabelValues("part_resent").Inc()
			s.log.Info().Str(logDst, smstext.Mask(m.Dest.Addr)).Int(logParts, len(subs)).Int("part", i+1).
				Msg("a part of a long message went with the link: sending it again")
			id, err = s.Submit(ctx, &subs[i])
		}
		if err != nil {
			return ids, &PartsError{Accepted: ids, Failed: i + 1, Total: len(subs), Err: err}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// maxPartResends bounds how often SubmitParts sends again a part lost
// with the link: an SMSC that drops every link at it is not coming back.
const maxPartResends = 3

// nextRef returns the next concatenation reference for a destination, so
// that two long messages to one handset never share a reference.
func (s *Session) nextRef(dest string) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.refs) > 100000 { // bound memory; a reset only risks a reuse
		s.refs = map[string]uint16{}
	}
	s.refs[dest]++
	return s.refs[dest]
}

// worker runs handlers for inbound PDUs.
func (s *Session) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case in := <-s.jobs:
			s.handle(in)
		}
	}
}

// handle reassembles, calls the handler and answers. A part of an
// incomplete set is answered OK at once (it is held); the part that
// completes a set is answered with the handler's status, and if that is
// not OK the set is kept so that the SMSC's redelivery of that part hands
// the whole message over again.
func (s *Session) handle(in inbound) {
	d, part, bad := toPart(in.sm, in.dataSM)
	log := in.c.log.With().Str(logSrc, smstext.Mask(d.Source.Addr)).Str(logDst, smstext.Mask(d.Dest.Addr)).Logger()
	if in.sm.ESMClass&pduio.ESMReceiptMask == pduio.ESMReceipt {
		text, err := smstext.Decode(in.sm.DataCoding, part.Data)
		if err != nil {
			text = string(part.Data)
		}
		d.Text, d.Data = text, part.Data
		d.Receipt = receiptFrom(in.sm, text)
		s.m.inbound.WithLabelValues("receipt").Inc()
		answer(in, d, s.call(d, log))
		return
	}
	if bad {
		d.Binary, d.Data = true, part.Data
		s.m.inbound.WithLabelValues("malformed").Inc()
		answer(in, d, s.call(d, log))
		return
	}
	msg := s.reasm.Add(part)
	if msg == nil {
		s.m.inbound.WithLabelValues("part").Inc()
		in.c.answerInbound(in, StatusOK)
		return
	}
	complete(d, msg)
	s.m.inbound.WithLabelValues("mo").Inc()
	st := s.call(d, log)
	s.reasm.Release(msg, st == StatusOK)
	answer(in, d, st)
}

// answer writes the handler's status, then calls d.Answered.
func answer(in inbound, d *Deliver, st Status) {
	in.c.answerInbound(in, st)
	if d.Answered != nil {
		d.Answered()
	}
}

// call runs the handler with a deadline, turning a panic into
// ESME_RX_T_APPN.
func (s *Session) call(d *Deliver, log zerolog.Logger) (st Status) {
	if s.opts.Handler == nil {
		return StatusRxTAppn
	}
	defer func() {
		if r := recover(); r != nil {
			log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("handler panicked: ESME_RX_T_APPN")
			st = StatusRxTAppn
		}
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.HandlerTimeout)
	defer cancel()
	st = s.opts.Handler(ctx, d)
	log.Debug().Uint32(logStatus, uint32(st)).Int(logParts, d.Parts).Bool("receipt", d.Receipt != nil).Msg("inbound handled")
	return st
}

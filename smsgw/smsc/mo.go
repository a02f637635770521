package smsc

import (
	"context"
	"fmt"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// Carriage says how a long MO travels.
type Carriage int

const (
	// UDH8 puts a UDH with IEI 0x00 (8-bit reference) in each part.
	UDH8 Carriage = iota
	// UDH16 puts a UDH with IEI 0x08 (16-bit reference) in each part.
	UDH16
	// SAR uses the sar_* TLVs.
	SAR
	// Payload sends one deliver_sm with message_payload.
	Payload
	// PayloadUDH sends each UDH part in message_payload with UDHI set.
	PayloadUDH
)

// MO is a mobile-originated message to deliver to the bound ESMEs.
type MO struct {
	From, To string
	Text     string
	// Carriage says how a long text travels. Default UDH8.
	Carriage Carriage
	// Ref is the concatenation reference. Default: a counter.
	Ref uint16
	// Order lists the 0-based parts in the order to send them; an index
	// may repeat (a duplicate). Default: each part once, in order.
	Order []int
	// SourceTON/NPI default 1/1; DestTON/NPI default 0/0.
	SourceTON, SourceNPI, DestTON, DestNPI byte
}

// InjectMO delivers text from a subscriber to a short code: GSM 03.38
// when it fits, else UCS-2, split with UDH when long. It returns when
// every part was answered OK, redelivering parts answered with an error or
// not answered (up to MaxDeliveryAttempts); it waits for a receiver to
// bind if none is, bounded by ctx.
func (s *Server) InjectMO(ctx context.Context, from, to, text string) error {
	return s.Deliver(ctx, MO{From: from, To: to, Text: text})
}

// Deliver is InjectMO with every option.
func (s *Server) Deliver(ctx context.Context, mo MO) error {
	sms, err := s.buildMO(mo)
	if err != nil {
		return err
	}
	s.count(func(st *Stats) { st.MOInjected++ })
	for _, sm := range sms {
		if err := s.deliverPart(ctx, sm, pdu.DeliverSMID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) buildMO(mo MO) ([]*pduio.SM, error) {
	if mo.From == "" || mo.To == "" {
		return nil, fmt.Errorf("%w: MO needs from and to", ErrInvalid)
	}
	seg, err := smstext.SplitWith(mo.Text, s.opts.Split)
	if err != nil {
		return nil, err
	}
	ref := mo.Ref
	if ref == 0 {
		s.mu.Lock()
		s.refs++
		ref = s.refs
		s.mu.Unlock()
	}
	base := pduio.SM{
		SourceTON: 1, SourceNPI: 1, Source: mo.From, DestTON: mo.DestTON, DestNPI: mo.DestNPI, Dest: mo.To,
		DataCoding: seg.DataCoding,
	}
	if mo.SourceTON != 0 || mo.SourceNPI != 0 {
		base.SourceTON, base.SourceNPI = mo.SourceTON, mo.SourceNPI
	}
	var parts []*pduio.SM
	add := func(f func(sm *pduio.SM)) {
		sm := base
		f(&sm)
		parts = append(parts, &sm)
	}
	n := len(seg.Parts)
	switch {
	case mo.Carriage == Payload:
		add(func(sm *pduio.SM) { sm.TLVs = map[pdutlv.Tag][]byte{pduio.TagMessagePayload: seg.Payload()} })
	case n == 1:
		add(func(sm *pduio.SM) { sm.ShortMessage = seg.Parts[0] })
	case mo.Carriage == SAR:
		for _, p := range seg.SAR(ref) {
			add(func(sm *pduio.SM) {
				sm.ShortMessage = p.ShortMessage
				sm.TLVs = map[pdutlv.Tag][]byte{pduio.TagSarMsgRefNum: p.MsgRefNum, pduio.TagSarTotalSegments: p.Total, pduio.TagSarSegmentSeqnum: p.Seqnum}
			})
		}
	default:
		for i, p := range seg.Parts {
			var udh []byte
			if mo.Carriage == UDH16 {
				udh = []byte{0x06, 0x08, 0x04, byte(ref >> 8), byte(ref), byte(n), byte(i + 1)}
			} else {
				udh = []byte{0x05, 0x00, 0x03, byte(ref), byte(n), byte(i + 1)}
			}
			data := append(udh, p...)
			add(func(sm *pduio.SM) {
				sm.ESMClass = pduio.ESMUDHI
				if mo.Carriage == PayloadUDH {
					sm.TLVs = map[pdutlv.Tag][]byte{pduio.TagMessagePayload: data}
				} else {
					sm.ShortMessage = data
				}
			})
		}
	}
	if mo.Order == nil {
		return parts, nil
	}
	var ordered []*pduio.SM
	for _, i := range mo.Order {
		if i < 0 || i >= len(parts) {
			return nil, fmt.Errorf("%w: MO.Order index %d of %d parts", ErrInvalid, i, len(parts))
		}
		ordered = append(ordered, parts[i])
	}
	return ordered, nil
}

// receiver picks a bound receiver, round robin, waiting for one.
func (s *Server) receiver(ctx context.Context) (*esme, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		var rx []*esme
		for c := range s.conns {
			if c.canReceive() {
				rx = append(rx, c)
			}
		}
		ch := s.bindWait
		if len(rx) > 0 {
			s.rr++
			c := rx[s.rr%len(rx)]
			s.mu.Unlock()
			return c, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// deliverPart sends one deliver_sm (or data_sm) until it is answered OK,
// the ESME answers a permanent error, or attempts run out.
func (s *Server) deliverPart(ctx context.Context, sm *pduio.SM, id pdu.ID) error {
	var last string
	for attempt := 1; attempt <= s.opts.MaxDeliveryAttempts; attempt++ {
		if attempt > 1 {
			s.count(func(st *Stats) { st.MORedelivered++ })
			select {
			case <-time.After(s.opts.RedeliveryDelay):
			case <-ctx.Done():
				return ctx.Err()
			case <-s.ctx.Done():
				return ErrClosed
			}
		}
		c, err := s.receiver(ctx)
		if err != nil {
			return err
		}
		s.count(func(st *Stats) { st.MOPartsSent++ })
		f, err := c.request(ctx, func(seq uint32) ([]byte, error) {
			if id == pduio.DataSMID {
				return pduio.DataSMBytes(sm, seq)
			}
			p, err := sm.Body(id)
			if err != nil {
				return nil, err
			}
			return pduio.Encode(p, seq, 0)
		}, s.opts.ResponseTimeout)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			last = "no answer: " + err.Error()
			continue
		case f.Status == 0 && f.ID != pdu.GenericNACKID:
			s.count(func(st *Stats) { st.MOPartsAcked++ })
			return nil
		case f.ID == pdu.GenericNACKID || f.Status == 0x65 || f.Status == 0x66:
			return fmt.Errorf("%w: ESME answered %v status 0x%02X", ErrNotDelivered, f.ID, uint32(f.Status))
		default:
			last = fmt.Sprintf("status 0x%02X", uint32(f.Status))
		}
	}
	return fmt.Errorf("%w after %d attempts: %s", ErrNotDelivered, s.opts.MaxDeliveryAttempts, last)
}

// SendDataSM delivers text as one data_sm with message_payload.
func (s *Server) SendDataSM(ctx context.Context, from, to, text string) error {
	dc, b := smstext.Encode(text)
	sm := &pduio.SM{SourceTON: 1, SourceNPI: 1, Source: from, Dest: to, DataCoding: dc,
		TLVs: map[pdutlv.Tag][]byte{pduio.TagMessagePayload: b}}
	return s.deliverPart(ctx, sm, pduio.DataSMID)
}

// sendReceipt delivers a DELIVRD receipt for message id to a receiver.
func (s *Server) sendReceipt(mt *pduio.SM, id string) {
	now := s.opts.Now().UTC()
	date := now.Format("0601021504")
	text := fmt.Sprintf("id:%s sub:001 dlvrd:001 submit date:%s done date:%s stat:DELIVRD err:000 text:", id, date, date)
	sm := &pduio.SM{
		SourceTON: mt.DestTON, SourceNPI: mt.DestNPI, Source: mt.Dest,
		DestTON: mt.SourceTON, DestNPI: mt.SourceNPI, Dest: mt.Source,
		ESMClass: pduio.ESMReceipt, ShortMessage: []byte(text), TLVs: receiptTLVs(id, 2),
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	if err := s.deliverPart(ctx, sm, pdu.DeliverSMID); err != nil {
		s.log.Warn().Err(err).Msg("receipt not delivered")
		return
	}
	s.count(func(st *Stats) { st.ReceiptsSent++ })
}

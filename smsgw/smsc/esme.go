package smsc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// esme is one ESME connection as the server sees it.
type esme struct {
	s   *Server
	nc  net.Conn
	seq pduio.Sequence // our requests, from 1 like a real SMSC

	wmu sync.Mutex

	mu       sync.Mutex
	bound    bool
	receiver bool // may get deliver_sm
	sender   bool // may submit
	systemID string
	pending  map[uint32]chan pduio.Frame

	closed    chan struct{}
	closeOnce sync.Once
}

func newESME(s *Server, nc net.Conn) *esme {
	return &esme{s: s, nc: nc, pending: map[uint32]chan pduio.Frame{}, closed: make(chan struct{})}
}

func (c *esme) isBound() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bound
}

func (c *esme) canReceive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bound && c.receiver
}

func (c *esme) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.nc.Close()
	})
}

func (c *esme) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.close()
		return err
	}
	return nil
}

// request sends a request of ours and waits for its response.
func (c *esme) request(ctx context.Context, build func(seq uint32) ([]byte, error), timeout time.Duration) (pduio.Frame, error) {
	seq := c.seq.Next()
	ch := make(chan pduio.Frame, 1)
	c.mu.Lock()
	c.pending[seq] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
	}()
	b, err := build(seq)
	if err != nil {
		return pduio.Frame{}, err
	}
	if err := c.write(b); err != nil {
		return pduio.Frame{}, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f := <-ch:
		return f, nil
	case <-t.C:
		return pduio.Frame{}, context.DeadlineExceeded
	case <-c.closed:
		return pduio.Frame{}, net.ErrClosed
	case <-ctx.Done():
		return pduio.Frame{}, ctx.Err()
	}
}

func (c *esme) unbind(ctx context.Context) {
	if c.isBound() {
		c.request(ctx, func(seq uint32) ([]byte, error) { return pduio.Empty(pdu.UnbindID, seq, 0), nil }, 5*time.Second)
	}
	c.close()
}

func (c *esme) serve() {
	s := c.s
	defer s.wg.Done()
	defer func() {
		c.close()
		s.remove(c)
		if c.isBound() {
			c.mu.Lock()
			c.bound = false
			c.mu.Unlock()
			s.bindChanged()
		}
	}()
	var enquire chan struct{}
	if s.opts.EnquireLinkInterval > 0 {
		enquire = make(chan struct{})
		defer close(enquire)
	}
	br := bufio.NewReader(c.nc)
	for {
		f, err := pduio.ReadFrame(br, s.opts.MaxPDU)
		if err != nil {
			var tl *pduio.TooLongError
			if errors.As(err, &tl) {
				c.write(pduio.Empty(pdu.GenericNACKID, tl.Frame.Seq, 0x02))
				continue
			}
			return
		}
		if f.IsResponse() {
			if f.ID == pdu.GenericNACKID {
				s.count(func(st *Stats) { st.GenericNacksRecv++ })
			}
			c.mu.Lock()
			ch := c.pending[f.Seq]
			delete(c.pending, f.Seq)
			c.mu.Unlock()
			if ch != nil {
				ch <- f
			}
			continue
		}
		if s.isHalfOpen() {
			continue
		}
		switch f.ID {
		case pdu.BindTransceiverID, pdu.BindReceiverID, pdu.BindTransmitterID:
			if c.bind(f) && enquire != nil {
				s.wg.Add(1)
				go c.enquireLoop(enquire)
			}
		case pdu.EnquireLinkID:
			s.count(func(st *Stats) { st.EnquireLinksRecv++ })
			c.write(pduio.Empty(pdu.EnquireLinkRespID, f.Seq, 0))
		case pdu.UnbindID:
			s.count(func(st *Stats) { st.UnbindsRecv++ })
			c.write(pduio.Empty(pdu.UnbindRespID, f.Seq, 0))
			return
		case pdu.SubmitSMID:
			c.submit(f)
		default:
			c.write(pduio.Empty(pdu.GenericNACKID, f.Seq, 0x03))
		}
	}
}

func (c *esme) enquireLoop(stop chan struct{}) {
	defer c.s.wg.Done()
	t := time.NewTicker(c.s.opts.EnquireLinkInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-c.closed:
			return
		case <-t.C:
			c.write(pduio.Empty(pdu.EnquireLinkID, c.seq.Next(), 0))
		}
	}
}

func (c *esme) bind(f pduio.Frame) bool {
	s := c.s
	respID := f.ID | 0x80000000
	b, err := pduio.ParseBind(f.Body)
	if err != nil {
		c.write(pduio.Empty(pdu.GenericNACKID, f.Seq, 0x02))
		return false
	}
	st := pdu.Status(0)
	switch {
	case c.isBound():
		st = 0x05 // ESME_RALYBND
	case !s.auth(b.SystemID, b.Password):
		st = 0x0E // ESME_RINVPASWD
	}
	resp, _ := pduio.IDResp(respID, f.Seq, st, s.opts.SystemID)
	if st != 0 {
		s.count(func(st *Stats) { st.BindsRefused++ })
		c.write(resp)
		return false
	}
	c.mu.Lock()
	c.bound, c.systemID = true, b.SystemID
	c.receiver = f.ID != pdu.BindTransmitterID
	c.sender = f.ID != pdu.BindReceiverID
	c.mu.Unlock()
	s.count(func(st *Stats) { st.Binds++ })
	c.write(resp)
	s.bindChanged()
	return true
}

// submit answers a submit_sm per the fault knobs and records the MT.
func (c *esme) submit(f pduio.Frame) {
	s := c.s
	c.mu.Lock()
	bound, sender, sysID := c.bound, c.sender, c.systemID
	c.mu.Unlock()
	if !bound || !sender {
		b, _ := pduio.IDResp(pdu.SubmitSMRespID, f.Seq, 0x04, "")
		c.write(b)
		return
	}
	sm, err := pduio.ParseSM(f.Body)
	if err != nil {
		c.write(pduio.Empty(pdu.GenericNACKID, f.Seq, 0x02))
		return
	}
	part := mtPart(sm)
	s.mu.Lock()
	drop, take := false, false
	if s.dropAt > 0 {
		s.dropAt--
		drop, take = s.dropAt == 0, s.dropTake
	}
	if s.dropPart > 0 && part.Concat.Total > 1 && int(part.Concat.Seq) == s.dropPart {
		s.dropPart = 0
		drop, take = true, s.dropTake
	}
	if drop {
		s.stats.SubmitDrops++
		if take {
			s.stats.SubmitsReceived++
			s.stats.SubmitsAccepted++
			s.lastSub = f.Seq
		}
		s.mu.Unlock()
		if take {
			c.collect(sysID, sm, part, s.nextMessageID())
		}
		c.close()
		return
	}
	s.stats.SubmitsReceived++
	s.lastSub = f.Seq
	st, nack := pdu.Status(0), false
	now := time.Now()
	switch {
	case s.nackN > 0:
		s.nackN--
		st, nack = s.nackStatus, true
		s.stats.GenericNacksSent++
	case s.failN > 0:
		s.failN--
		st = s.failStatus
	case s.throttleIv > 0 && now.Before(s.throttleAt):
		st = 0x58
	}
	if st == 0 && !nack && s.throttleIv > 0 {
		s.throttleAt = now.Add(s.throttleIv)
	}
	if st == 0 && !nack {
		s.stats.SubmitsAccepted++
	}
	delay, hold := s.delay, s.hold
	s.mu.Unlock()

	id := ""
	if st == 0 && !nack {
		id = s.nextMessageID()
		c.collect(sysID, sm, part, id)
	}
	resp, _ := pduio.IDResp(pdu.SubmitSMRespID, f.Seq, st, id)
	if nack {
		resp = pduio.Empty(pdu.GenericNACKID, f.Seq, st)
	}
	switch {
	case hold:
		s.mu.Lock()
		if s.hold {
			s.held = append(s.held, heldResp{c: c, b: resp})
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		c.write(resp)
	case delay > 0:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				c.write(resp)
			case <-c.closed:
			}
		}()
	default:
		c.write(resp)
	}
	if st == 0 && !nack && s.opts.Receipts && sm.RegisteredDelivery&1 == 1 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sendReceipt(sm, id)
		}()
	}
}

// mtPart is a submit_sm as a part for reassembly.
func mtPart(sm *pduio.SM) smstext.Part {
	data := sm.ShortMessage
	if p, ok := sm.TLVs[pduio.TagMessagePayload]; ok && len(data) == 0 {
		data = p
	}
	part := smstext.Part{Source: sm.Source, Destination: sm.Dest, DataCoding: sm.DataCoding, Data: data}
	if sm.ESMClass&pduio.ESMUDHI != 0 {
		if h, rest, err := smstext.ParseUDH(data); err == nil {
			part.Data = rest
			if h.Concat != nil {
				part.Concat = *h.Concat
			}
		}
	} else if ref, ok := sm.TLVs[pduio.TagSarMsgRefNum]; ok {
		tot, seq := sm.TLVs[pduio.TagSarTotalSegments], sm.TLVs[pduio.TagSarSegmentSeqnum]
		if len(tot) == 1 && len(seq) == 1 && len(ref) >= 1 && len(ref) <= 2 {
			r := uint16(ref[0])
			if len(ref) == 2 {
				r = r<<8 | uint16(ref[1])
			}
			part.Concat = smstext.Concat{Ref: r, Total: tot[0], Seq: seq[0]}
		}
	}
	return part
}

// collect feeds one accepted submit_sm, as part, into MT reassembly.
func (c *esme) collect(sysID string, sm *pduio.SM, part smstext.Part, id string) {
	s := c.s
	m := s.reasm.Add(part)
	if m == nil {
		s.mu.Lock()
		s.partIDs = append(s.partIDs, partID{src: sm.Source, dst: sm.Dest, ref: part.Concat.Ref, id: id})
		s.mu.Unlock()
		return
	}
	s.reasm.Release(m, true)
	ids := s.takePartIDs(sm.Source, sm.Dest, part.Concat.Ref, m.Parts > 1)
	ids = append(ids, id)
	s.recordMT(MT{
		SystemID: sysID, From: m.Source, To: m.Destination, Text: m.Text, Binary: m.DecodeErr != nil,
		DataCoding: m.DataCoding, Parts: m.Parts, MessageIDs: ids, RegisteredDelivery: sm.RegisteredDelivery,
		Time: s.opts.Now(),
	})
}

// receiptTLVs builds the TLVs of a receipt for message id.
func receiptTLVs(id string, state byte) map[pdutlv.Tag][]byte {
	return map[pdutlv.Tag][]byte{
		pduio.TagReceiptedMsgID: append([]byte(id), 0),
		pduio.TagMessageState:   {state},
	}
}

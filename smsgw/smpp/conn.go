package smpp

import (
	"bufio"
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
)

// Log field names.
const (
	logSeq    = "seq"
	logCmd    = "cmd"
	logStatus = "status"
	logLink   = "link"
	logSrc    = "src"
	logDst    = "dst"
	logMsgID  = "msg_id"
	logAddr   = "addr"
	logDelay  = "delay"
	logParts  = "parts"
)

// call is one request of ours awaiting its response.
type call struct {
	cmd pdu.ID
	ch  chan pduio.Frame // buffered 1
}

// conn is one bound TCP (or TLS) connection. Its reader goroutine
// answers SMSC requests and routes responses; Close is idempotent.
type conn struct {
	s    *Session
	link *link
	nc   net.Conn
	log  zerolog.Logger

	// Writes: one at a time on the socket; frames that come while one is
	// in progress queue behind it in next and go out together, in one
	// write, when it ends (see write).
	wmu     sync.Mutex
	writing bool    // a write is on the socket
	next    *wbatch // frames queued behind it; nil if none
	spare   []byte  // a written batch's buffer, for the next one

	pmu     sync.Mutex
	pending map[uint32]*call // keyed by our sequence number

	closed    chan struct{}
	closeOnce sync.Once
	err       error // why it closed; read after closed
	wg        sync.WaitGroup
}

func (s *Session) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	if s.opts.TLS != nil {
		d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.opts.TLS}
		return d.DialContext(ctx, "tcp", s.opts.Addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.opts.Addr)
}

// dialBind connects and binds; on success the returned conn's goroutines
// run. The status is the bind_resp's when the SMSC refused.
func (s *Session) dialBind(ctx context.Context, l *link) (*conn, Status, error) {
	nc, err := s.dial(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: dial: %w", ErrBind, err)
	}
	c := &conn{
		s: s, link: l, nc: nc, pending: map[uint32]*call{}, closed: make(chan struct{}),
		log: s.log.With().Str(logLink, l.name).Logger(),
	}
	p, err := pduio.Bind{
		SystemID: s.opts.SystemID, Password: s.opts.Password, SystemType: s.opts.SystemType,
		AddrTON: s.opts.AddrTON, AddrNPI: s.opts.AddrNPI, AddressRange: s.opts.AddressRange,
	}.Body(l.bindID)
	if err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	seq := s.seq.Next()
	b, err := pduio.Encode(p, seq, 0)
	if err != nil {
		nc.Close()
		return nil, 0, err
	}
	if _, err := c.write(b); err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("%w: write bind: %w", ErrBind, err)
	}
	// Read synchronously until our bind_resp: the reader is not running.
	deadline := time.Now().Add(s.opts.BindTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer stop()
	nc.SetReadDeadline(deadline)
	br := bufio.NewReader(nc)
	for {
		f, err := pduio.ReadFrame(br, s.opts.MaxPDU)
		if err != nil {
			nc.Close()
			return nil, 0, fmt.Errorf("%w: waiting for bind_resp: %w", ErrBind, err)
		}
		switch {
		case f.Seq == seq && (f.ID == l.bindID|0x80000000 || f.ID == pdu.GenericNACKID):
			if f.Status != StatusOK {
				nc.Close()
				return nil, f.Status, fmt.Errorf("%w: %w", ErrBind, &StatusError{Command: f.ID, Status: f.Status})
			}
			nc.SetReadDeadline(time.Time{})
			c.wg.Add(2)
			go c.readLoop(br)
			go c.enquireLoop()
			return c, 0, nil
		case f.ID == pdu.EnquireLinkID:
			c.write(pduio.Empty(pdu.EnquireLinkRespID, f.Seq, 0))
		case !f.IsResponse():
			c.write(pduio.Empty(pdu.GenericNACKID, f.Seq, StatusInvBndSts))
		}
	}
}

// wbatch is frames queued while another write was on the socket. The
// writer that queued the first of them (the leader) writes them all, in
// one syscall, when the write before ends; the others wait for it.
type wbatch struct {
	buf  []byte
	turn chan struct{} // closed when the leader may write
	done chan struct{} // closed when the write has ended
	n    int           // bytes of buf written
	err  error
}

// write sends one frame with a deadline and returns when it has gone out
// (or failed), with how many of its bytes went out; a failed write closes
// the connection. Frames are written whole and in the order their
// writers queued them.
//
// Writers that come while a write is in progress queue their frames
// together and the first of them writes the lot when it ends: the replies
// that one fsync of the job journal releases at once, or the submit_sm of
// many workers, cost one syscall and one wakeup of the peer's reader
// instead of one each. On loopback a write costs 4-5 µs of CPU, most of
// it the receiving side's work done on the writer's thread; the SMSC's
// reads shrink alike. A writer alone on the socket writes at once, as
// with a mutex.
func (c *conn) write(b []byte) (int, error) {
	c.wmu.Lock()
	select {
	case <-c.closed:
		c.wmu.Unlock()
		return 0, ErrConnLost
	default:
	}
	if !c.writing {
		c.writing = true
		c.wmu.Unlock()
		n, err := c.writeOut(b)
		c.handOver()
		return n, err
	}
	bt := c.next
	leader := bt == nil
	if leader {
		bt = &wbatch{buf: c.spare[:0], turn: make(chan struct{}), done: make(chan struct{})}
		c.spare = nil
		c.next = bt
	}
	off := len(bt.buf)
	bt.buf = append(bt.buf, b...)
	c.wmu.Unlock()
	if leader {
		<-bt.turn
		bt.n, bt.err = c.writeOut(bt.buf)
		close(bt.done)
		c.handOver()
		c.wmu.Lock()
		if cap(bt.buf) <= maxSpare {
			c.spare = bt.buf
		}
		c.wmu.Unlock()
	} else {
		<-bt.done
	}
	n := min(max(bt.n-off, 0), len(b))
	if n == len(b) {
		return n, nil // the frame went out, whatever came after it
	}
	if bt.err == nil {
		return n, ErrConnLost // unreachable: a short write returns an error
	}
	return n, bt.err
}

// maxSpare bounds the batch buffer kept for reuse.
const maxSpare = 64 << 10

// writeOut writes b to the socket; the caller holds the turn to write.
func (c *conn) writeOut(b []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, ErrConnLost
	default:
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	n, err := c.nc.Write(b)
	if err != nil {
		c.close(fmt.Errorf("write: %w", err))
		return n, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	return n, nil
}

// handOver ends a write: the batch queued behind it, if any, may go.
func (c *conn) handOver() {
	c.wmu.Lock()
	bt := c.next
	c.next = nil
	if bt == nil {
		c.writing = false
	}
	c.wmu.Unlock()
	if bt != nil {
		close(bt.turn)
	}
}

// close ends the connection once; pending requests see c.closed.
func (c *conn) close(why error) {
	c.closeOnce.Do(func() {
		c.err = why
		close(c.closed)
		c.nc.Close()
	})
}

// done is closed when the connection has closed.
func (c *conn) done() <-chan struct{} { return c.closed }

// request sends a request built for a fresh sequence number and waits for
// its response. written reports whether the whole PDU reached the socket:
// if not, the SMSC cannot have acted on it and resending is safe.
func (c *conn) request(ctx context.Context, cmd pdu.ID, build func(seq uint32) ([]byte, error), timeout time.Duration) (f pduio.Frame, written bool, err error) {
	cl := &call{cmd: cmd, ch: make(chan pduio.Frame, 1)}
	var seq uint32
	c.pmu.Lock()
	for {
		seq = c.s.seq.Next()
		if _, busy := c.pending[seq]; !busy { // only after a wrap
			break
		}
	}
	c.pending[seq] = cl
	c.pmu.Unlock()
	forget := func() {
		c.pmu.Lock()
		if c.pending[seq] == cl {
			delete(c.pending, seq)
		}
		c.pmu.Unlock()
	}

	b, err := build(seq)
	if err != nil {
		forget()
		return f, false, err
	}
	n, err := c.write(b)
	if err != nil {
		forget()
		return f, n == len(b), err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f = <-cl.ch:
		return f, true, nil
	case <-c.closed:
		forget()
		return f, true, fmt.Errorf("%w: %w", ErrConnLost, c.err)
	case <-t.C:
		forget()
		return f, true, ErrResponseTimeout
	case <-ctx.Done():
		forget()
		return f, true, ctx.Err()
	}
}

// respond writes a response to an SMSC request; errors close the
// connection (write does) and are logged.
func (c *conn) respond(b []byte) {
	if _, err := c.write(b); err != nil {
		c.log.Debug().Err(err).Msg("response not written")
	}
}

func (c *conn) nack(seq uint32, st Status) {
	c.respond(pduio.Empty(pdu.GenericNACKID, seq, st))
}

// readLoop reads every PDU. SMSC requests are answered here or handed to
// a worker; responses are matched against our pending requests by
// sequence number AND command id, and only frames with the response bit
// are ever considered: an SMSC deliver_sm whose sequence number equals
// one of ours is a request and never completes our submit (problem #1).
func (c *conn) readLoop(br *bufio.Reader) {
	defer c.wg.Done()
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.opts.ReadTimeout))
		f, err := pduio.ReadFrame(br, c.s.opts.MaxPDU)
		if err != nil {
			var tl *pduio.TooLongError
			if errors.As(err, &tl) {
				c.log.Warn().Uint32(logSeq, tl.Frame.Seq).Uint32("length", tl.Length).Msg("PDU over MaxPDU discarded")
				if !tl.Frame.IsResponse() {
					c.nack(tl.Frame.Seq, StatusInvCmdLen)
				}
				continue
			}
			c.close(fmt.Errorf("read: %w", err))
			return
		}
		if f.IsResponse() {
			c.dispatch(f)
			continue
		}
		switch f.ID {
		case pdu.EnquireLinkID:
			c.respond(pduio.Empty(pdu.EnquireLinkRespID, f.Seq, 0))
		case pdu.DeliverSMID, pduio.DataSMID:
			c.inbound(f)
		case pdu.UnbindID:
			c.respond(pduio.Empty(pdu.UnbindRespID, f.Seq, 0))
			c.log.Warn().Msg("SMSC unbound us; reconnecting")
			c.close(ErrUnbound)
			return
		case pduio.AlertNotificationID:
			c.log.Debug().Msg("alert_notification ignored")
		default:
			c.log.Warn().Uint32(logCmd, uint32(f.ID)).Uint32(logSeq, f.Seq).Msg("unsupported command: generic_nack")
			c.nack(f.Seq, StatusInvCmdID)
		}
	}
}

func (c *conn) dispatch(f pduio.Frame) {
	c.pmu.Lock()
	cl := c.pending[f.Seq]
	if cl != nil && (f.ID == cl.cmd|0x80000000 || f.ID == pdu.GenericNACKID) {
		delete(c.pending, f.Seq)
	} else {
		cl = nil
	}
	c.pmu.Unlock()
	if cl == nil {
		c.s.m.stray.Inc()
		c.log.Warn().Uint32(logCmd, uint32(f.ID)).Uint32(logSeq, f.Seq).Uint32(logStatus, uint32(f.Status)).
			Msg("response matches no outstanding request (late?): ignored")
		return
	}
	cl.ch <- f
}

// inbound parses a deliver_sm/data_sm and queues it for a worker; when
// the queue is full it answers ESME_RX_T_APPN at once so that the link
// never stalls and the SMSC redelivers later.
func (c *conn) inbound(f pduio.Frame) {
	dataSM := f.ID == pduio.DataSMID
	var sm *pduio.SM
	var err error
	if dataSM {
		sm, err = pduio.ParseDataSM(f.Body)
	} else {
		sm, err = pduio.ParseSM(f.Body)
	}
	if err != nil {
		c.s.m.inbound.WithLabelValues("malformed").Inc()
		c.log.Warn().Err(err).Uint32(logSeq, f.Seq).Msg("undecodable PDU: generic_nack, link stays up")
		c.nack(f.Seq, StatusInvCmdLen)
		return
	}
	in := inbound{c: c, seq: f.Seq, dataSM: dataSM, sm: sm}
	select {
	case c.s.jobs <- in:
	default:
		c.s.m.inbound.WithLabelValues("busy").Inc()
		c.log.Warn().Uint32(logSeq, f.Seq).Msg("handler queue full: ESME_RX_T_APPN")
		c.answerInbound(in, StatusRxTAppn)
	}
}

func (c *conn) answerInbound(in inbound, st Status) {
	id := pdu.DeliverSMRespID
	if in.dataSM {
		id = pduio.DataSMRespID
	}
	b, err := pduio.IDResp(id, in.seq, st, "")
	if err != nil {
		c.log.Error().Err(err).Msg("build deliver_sm_resp")
		return
	}
	c.respond(b)
}

// enquireLoop sends enquire_link every interval; one that gets no resp
// within EnquireLinkTimeout closes the connection as dead.
func (c *conn) enquireLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.s.opts.EnquireLinkInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		_, _, err := c.request(context.Background(), pdu.EnquireLinkID, func(seq uint32) ([]byte, error) {
			return pduio.Empty(pdu.EnquireLinkID, seq, 0), nil
		}, c.s.opts.EnquireLinkTimeout)
		if errors.Is(err, ErrResponseTimeout) {
			c.log.Warn().Msg("enquire_link unanswered: closing dead link")
			c.close(ErrDeadLink)
			return
		}
	}
}

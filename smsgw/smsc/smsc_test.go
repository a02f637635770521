package smsc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

func startSim(t *testing.T, opts smsc.Options) *smsc.Server {
	t.Helper()
	sim, err := smsc.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sim.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sim.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, smsc.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return sim
}

// rawESME is a minimal hand-driven client: the simulator must be checked
// without our session layer in between.
type rawESME struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawESME {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawESME{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (e *rawESME) send(b []byte) {
	if _, err := e.nc.Write(b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *rawESME) read() pduio.Frame {
	f, err := pduio.ReadFrame(e.br, pduio.DefaultMaxPDU)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

func (e *rawESME) bind(id pdu.ID, sys, pw string) pduio.Frame {
	p, err := pduio.Bind{SystemID: sys, Password: pw}.Body(id)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := pduio.Encode(p, 1, 0)
	e.send(b)
	return e.read()
}

func TestBindAuthAndAlreadyBound(t *testing.T) {
	sim := startSim(t, smsc.Options{Accounts: []smsc.Account{{SystemID: "a", Password: "p"}}})
	e := dialRaw(t, sim.Addr())
	if f := e.bind(pdu.BindTransceiverID, "a", "wrong"); f.Status != 0x0E || f.ID != pdu.BindTransceiverRespID {
		t.Fatalf("bad password: %+v", f)
	}
	if f := e.bind(pdu.BindTransceiverID, "a", "p"); f.Status != 0 {
		t.Fatalf("bind: %+v", f)
	}
	if f := e.bind(pdu.BindTransceiverID, "a", "p"); f.Status != 0x05 {
		t.Fatalf("second bind: %+v", f)
	}
	// Unknown command → generic_nack 0x03.
	e.send(pduio.Empty(0x00000077, 9, 0))
	if f := e.read(); f.ID != pdu.GenericNACKID || f.Status != 0x03 || f.Seq != 9 {
		t.Fatalf("unknown: %+v", f)
	}
}

// The simulator numbers its own requests from 1 on each connection.
func TestOwnSequenceFromOne(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	e := dialRaw(t, sim.Addr())
	e.bind(pdu.BindReceiverID, "x", "")
	errc := make(chan error, 1)
	go func() { errc <- sim.InjectMO(context.Background(), "13800138000", "10086", "hi") }()
	f := e.read()
	if f.ID != pdu.DeliverSMID || f.Seq != 1 {
		t.Fatalf("first deliver_sm: %+v", f)
	}
	sm, err := pduio.ParseSM(f.Body)
	if err != nil || string(sm.ShortMessage) != "hi" || sm.Source != "13800138000" {
		t.Fatalf("deliver_sm body %+v %v", sm, err)
	}
	b, _ := pduio.IDResp(pdu.DeliverSMRespID, f.Seq, 0, "")
	e.send(b)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestMTReassemblyAndHTTP(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	e := dialRaw(t, sim.Addr())
	e.bind(pdu.BindTransceiverID, "x", "")
	parts := [][]byte{
		append([]byte{5, 0, 3, 9, 2, 2}, " world"...),
		append([]byte{5, 0, 3, 9, 2, 1}, "hello"...),
	}
	for i, p := range parts {
		sm := &pduio.SM{Source: "10086", Dest: "13800138000", ESMClass: pduio.ESMUDHI, ShortMessage: p}
		body, _ := sm.Body(pdu.SubmitSMID)
		b, _ := pduio.Encode(body, uint32(10+i), 0)
		e.send(b)
		if f := e.read(); f.ID != pdu.SubmitSMRespID || f.Status != 0 || f.Seq != uint32(10+i) {
			t.Fatalf("resp %+v", f)
		}
	}
	mts, err := sim.WaitMT(context.Background(), 1)
	if err != nil || mts[0].Text != "hello world" || mts[0].Parts != 2 || len(mts[0].MessageIDs) != 2 {
		t.Fatalf("MT %+v %v", mts, err)
	}

	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/mt")
	if err != nil {
		t.Fatal(err)
	}
	var mt smsc.MT
	if err := json.NewDecoder(resp.Body).Decode(&mt); err != nil || mt.Text != "hello world" {
		t.Fatalf("GET /mt: %+v %v", mt, err)
	}
	resp.Body.Close()

	// POST /mo: answered by our raw ESME.
	go func() {
		f := e.read()
		b, _ := pduio.IDResp(pdu.DeliverSMRespID, f.Seq, 0, "")
		e.send(b)
	}()
	resp, err = http.Post(srv.URL+"/mo", "application/json", strings.NewReader(`{"from":"13800138000","to":"10086","text":"TQ"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /mo: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	resp, _ = http.Post(srv.URL+"/mo", "application/json", bytes.NewReader([]byte(`{"text":"x"}`)))
	if resp.StatusCode != 400 {
		t.Fatalf("POST /mo without numbers: %v", resp.Status)
	}
	resp.Body.Close()
}

func TestInjectWaitsForReceiverAndCtx(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := sim.InjectMO(ctx, "1", "2", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no receiver: %v", err)
	}
}

// submitRaw sends one submit_sm (a UDH part when udh is set) with seq.
func (e *rawESME) submitRaw(seq uint32, udh []byte, text string) {
	e.t.Helper()
	sm := &pduio.SM{Source: "10086", Dest: "13800138000", ShortMessage: append(append([]byte(nil), udh...), text...)}
	if udh != nil {
		sm.ESMClass = pduio.ESMUDHI
	}
	body, _ := sm.Body(pdu.SubmitSMID)
	b, _ := pduio.Encode(body, seq, 0)
	e.send(b)
}

// NackSubmits answers submit_sm with generic_nack and takes nothing; the
// submit after them is taken as usual.
func TestNackSubmits(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	e := dialRaw(t, sim.Addr())
	e.bind(pdu.BindTransceiverID, "x", "")
	sim.NackSubmits(2, 0x03)
	for seq := uint32(10); seq < 12; seq++ {
		e.submitRaw(seq, nil, "hello")
		if f := e.read(); f.ID != pdu.GenericNACKID || f.Status != 0x03 || f.Seq != seq {
			t.Fatalf("submit %d answered %+v, want generic_nack 0x03", seq, f)
		}
	}
	e.submitRaw(12, nil, "hello")
	if f := e.read(); f.ID != pdu.SubmitSMRespID || f.Status != 0 || f.Seq != 12 {
		t.Fatalf("the submit after the nacks answered %+v", f)
	}
	st := sim.Stats()
	if st.GenericNacksSent != 2 || st.SubmitsReceived != 3 || st.SubmitsAccepted != 1 || st.MTReceived != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// DropAtSubmit closes the connection at the n-th submit_sm, taking the
// message first or not, and leaves later connections alone.
func TestDropAtSubmit(t *testing.T) {
	for _, taken := range []bool{true, false} {
		t.Run(map[bool]string{true: "taken", false: "lost"}[taken], func(t *testing.T) {
			sim := startSim(t, smsc.Options{})
			e := dialRaw(t, sim.Addr())
			e.bind(pdu.BindTransceiverID, "x", "")
			sim.DropAtSubmit(2, taken)
			e.submitRaw(10, []byte{5, 0, 3, 7, 2, 1}, "hello")
			if f := e.read(); f.ID != pdu.SubmitSMRespID || f.Status != 0 {
				t.Fatalf("first part answered %+v", f)
			}
			e.submitRaw(11, []byte{5, 0, 3, 7, 2, 2}, " world")
			if f, err := pduio.ReadFrame(e.br, pduio.DefaultMaxPDU); err == nil {
				t.Fatalf("the second part was answered %+v; want the connection closed", f)
			}
			st := sim.Stats()
			if st.SubmitDrops != 1 {
				t.Fatalf("stats %+v", st)
			}
			if taken && (st.MTReceived != 1 || sim.MTs()[0].Text != "hello world") {
				t.Fatalf("the dropped part was not taken: %+v %+v", st, sim.MTs())
			}
			if !taken && (st.MTReceived != 0 || st.SubmitsReceived != 1) {
				t.Fatalf("the dropped part was taken: %+v", st)
			}
			// The knob fired once: a new connection submits as usual.
			e2 := dialRaw(t, sim.Addr())
			e2.bind(pdu.BindTransceiverID, "x", "")
			e2.submitRaw(1, nil, "again")
			if f := e2.read(); f.ID != pdu.SubmitSMRespID || f.Status != 0 {
				t.Fatalf("after the drop a submit answered %+v", f)
			}
		})
	}
}

// Servers sharing Handsets join a long MT whose parts went through each:
// the handset keeps what it has across an SMSC restart.
func TestHandsetsOutliveARestart(t *testing.T) {
	handsets := smstext.NewReassembler(smstext.ReassemblerOptions{})
	before := startSim(t, smsc.Options{Handsets: handsets})
	after := startSim(t, smsc.Options{Handsets: handsets})
	e := dialRaw(t, before.Addr())
	e.bind(pdu.BindTransceiverID, "x", "")
	e.submitRaw(1, []byte{5, 0, 3, 7, 2, 1}, "hello")
	if f := e.read(); f.Status != 0 {
		t.Fatalf("first part answered %+v", f)
	}
	e2 := dialRaw(t, after.Addr())
	e2.bind(pdu.BindTransceiverID, "x", "")
	e2.submitRaw(1, []byte{5, 0, 3, 7, 2, 2}, " world")
	if f := e2.read(); f.Status != 0 {
		t.Fatalf("second part answered %+v", f)
	}
	if mts := after.MTs(); len(mts) != 1 || mts[0].Text != "hello world" || mts[0].Parts != 2 {
		t.Fatalf("MT after the restart: %+v", mts)
	}
	if mts := before.MTs(); len(mts) != 0 {
		t.Fatalf("MT before the restart: %+v", mts)
	}
}

// DropAtPart waits for a part of a long MT: a message on its own and the
// first part pass.
func TestDropAtPart(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	e := dialRaw(t, sim.Addr())
	e.bind(pdu.BindTransceiverID, "x", "")
	sim.DropAtPart(2, false)
	e.submitRaw(1, nil, "alone")
	e.submitRaw(2, []byte{5, 0, 3, 7, 3, 1}, "one")
	for seq := uint32(1); seq <= 2; seq++ {
		if f := e.read(); f.ID != pdu.SubmitSMRespID || f.Status != 0 || f.Seq != seq {
			t.Fatalf("submit %d answered %+v", seq, f)
		}
	}
	e.submitRaw(3, []byte{5, 0, 3, 7, 3, 2}, "two")
	if f, err := pduio.ReadFrame(e.br, pduio.DefaultMaxPDU); err == nil {
		t.Fatalf("part 2 was answered %+v; want the connection closed", f)
	}
	if st := sim.Stats(); st.SubmitDrops != 1 || st.SubmitsReceived != 2 || st.MTReceived != 1 {
		t.Fatalf("stats %+v", st)
	}
}

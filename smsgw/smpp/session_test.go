package smpp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

func TestBindSubmitDeliver(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{Accounts: []smsc.Account{{SystemID: "roamtrail", Password: "secret"}}})
	in := newInbox()
	s := startSession(t, sim.Addr(), smpp.Options{Handler: in.handler(smpp.StatusOK)})
	ctx := testCtx(t)

	id, err := s.Submit(ctx, sub("13800138000", "hello"))
	if err != nil || id == "" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	mts, _ := sim.WaitMT(ctx, 1)
	if mts[0].Text != "hello" || mts[0].To != "13800138000" || mts[0].MessageIDs[0] != id {
		t.Fatalf("MT = %+v", mts[0])
	}
	if err := sim.InjectMO(ctx, "13800138000", "10086", "TQ 北京"); err != nil {
		t.Fatal(err)
	}
	d := in.wait(t, 1)[0]
	if d.Text != "TQ 北京" || d.Source.Addr != "13800138000" || d.Source.TON != 1 || d.Dest.Addr != "10086" || d.DataCoding != 0x08 || d.IsReceipt() {
		t.Fatalf("deliver = %+v", d)
	}
}

// Problem #1: an SMSC request whose sequence number equals our
// outstanding submit_sm's must not be taken for its response.
func TestDeliverWithCollidingSequence(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	in := newInbox()
	s := startSession(t, sim.Addr(), smpp.Options{Handler: in.handler(smpp.StatusOK)})
	ctx := testCtx(t)

	sim.HoldResponses(true)
	type result struct {
		id  string
		err error
	}
	res := make(chan result, 1)
	go func() {
		id, err := s.Submit(ctx, sub("13800138000", "reply"))
		res <- result{id, err}
	}()
	eventually(t, "submit_sm at the SMSC", func() bool { return sim.Stats().SubmitsReceived == 1 })
	seq := sim.LastSubmitSeq()
	sim.SetNextSeq(seq) // the deliver_sm will carry the submit's sequence number
	if err := sim.InjectMO(ctx, "13900139000", "10086", "TQ"); err != nil {
		t.Fatalf("MO with colliding seq %d not acked: %v", seq, err)
	}
	if d := in.wait(t, 1)[0]; d.Text != "TQ" {
		t.Fatalf("MO lost or garbled: %+v", d)
	}
	select {
	case r := <-res:
		t.Fatalf("submit completed by the deliver_sm: %+v", r)
	default:
	}
	sim.HoldResponses(false)
	r := <-res
	mts, _ := sim.WaitMT(ctx, 1)
	if r.err != nil || r.id != mts[0].MessageIDs[0] {
		t.Fatalf("submit = %+v, want id %s", r, mts[0].MessageIDs[0])
	}
}

// Problem #2: the handler runs on a worker, so it can Submit.
func TestSubmitInsideHandler(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	var s *smpp.Session
	var ready sync.WaitGroup
	ready.Add(1)
	handler := func(ctx context.Context, d *smpp.Deliver) smpp.Status {
		ready.Wait()
		if _, err := s.Submit(ctx, sub(d.Source.Addr, "echo: "+d.Text)); err != nil {
			return smpp.StatusRxTAppn
		}
		return smpp.StatusOK
	}
	s = startSession(t, sim.Addr(), smpp.Options{Handler: handler, HandlerWorkers: 1})
	ready.Done()
	ctx := testCtx(t)
	if err := sim.InjectMO(ctx, "13800138000", "10086", "ping"); err != nil {
		t.Fatal(err)
	}
	mts, err := sim.WaitMT(ctx, 1)
	if err != nil || mts[0].Text != "echo: ping" {
		t.Fatalf("MT = %+v, %v", mts, err)
	}
	if st := sim.Stats(); st.MORedelivered != 0 {
		t.Fatalf("handler's submit timed out and the MO was redelivered: %+v", st)
	}
}

// Problem #3: the handler's status is the deliver_sm_resp status; a
// temporary error makes the SMSC redeliver.
func TestTemporaryErrorRedelivers(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{RedeliveryDelay: 20 * time.Millisecond})
	var calls atomic.Int32
	handler := func(ctx context.Context, d *smpp.Deliver) smpp.Status {
		if calls.Add(1) == 1 {
			return smpp.StatusRxTAppn
		}
		return smpp.StatusOK
	}
	startSession(t, sim.Addr(), smpp.Options{Handler: handler})
	ctx := testCtx(t)
	if err := sim.InjectMO(ctx, "13800138000", "10086", "TQ"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || sim.Stats().MORedelivered != 1 {
		t.Fatalf("calls = %d, stats = %+v", calls.Load(), sim.Stats())
	}
	// A permanent refusal is not redelivered.
	calls.Store(-100)
	perm := func(ctx context.Context, d *smpp.Deliver) smpp.Status { return smpp.StatusRxPAppn }
	sim2 := startSim(t, smsc.Options{RedeliveryDelay: 20 * time.Millisecond})
	startSession(t, sim2.Addr(), smpp.Options{Handler: perm})
	if err := sim2.InjectMO(ctx, "13800138000", "10086", "TQ"); !errors.Is(err, smsc.ErrNotDelivered) {
		t.Fatalf("permanent refusal: %v", err)
	}
}

// A concatenated MO whose handler asks for redelivery is handed over
// again, whole, when the SMSC redelivers the last part.
func TestConcatenatedTemporaryError(t *testing.T) {
	sim := startSim(t, smsc.Options{RedeliveryDelay: 20 * time.Millisecond})
	var calls atomic.Int32
	texts := make(chan string, 4)
	handler := func(ctx context.Context, d *smpp.Deliver) smpp.Status {
		texts <- d.Text
		if calls.Add(1) == 1 {
			return smpp.StatusRxTAppn
		}
		return smpp.StatusOK
	}
	startSession(t, sim.Addr(), smpp.Options{Handler: handler})
	long := strings.Repeat("abcdefghij", 30)
	if err := sim.InjectMO(testCtx(t), "13800138000", "10086", long); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || <-texts != long || <-texts != long {
		t.Fatalf("calls = %d", calls.Load())
	}
}

// Problem #4: a late submit_sm_resp is an unknown outcome, not a resend.
func TestLateResponseNoDuplicate(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{ResponseTimeout: 200 * time.Millisecond})
	ctx := testCtx(t)
	sim.SetResponseDelay(600 * time.Millisecond)
	_, err := s.Submit(ctx, sub("13800138000", "slow"))
	if !errors.Is(err, smpp.ErrUnknownOutcome) || !errors.Is(err, smpp.ErrResponseTimeout) {
		t.Fatalf("err = %v, want unknown outcome", err)
	}
	time.Sleep(800 * time.Millisecond) // let the late resp arrive and be ignored
	sim.SetResponseDelay(0)
	if _, err := s.Submit(ctx, sub("13800138000", "fast")); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.SubmitsReceived != 2 || st.Binds != 1 {
		t.Fatalf("resent or reconnected: %+v", st)
	}
}

// Problem #5: PDUs we cannot decode or do not support cost a generic_nack
// (or are ignored), never the connection.
func TestBadPDUsKeepLink(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	in := newInbox()
	s := startSession(t, sim.Addr(), smpp.Options{Handler: in.handler(smpp.StatusOK), MaxPDU: 4096})
	ctx := testCtx(t)

	// deliver_sm whose body stops after source_addr.
	sim.SendRaw(pduio.Frame{ID: pdu.DeliverSMID, Seq: 77, Body: []byte{0, 1, 1, '1', '3', '8', 0}}.Bytes())
	sim.SendUnknown()
	sim.SendAlertNotification()
	// A frame over MaxPDU: discarded and nacked, stream stays in step.
	sim.SendRaw(pduio.Frame{ID: pdu.DeliverSMID, Seq: 78, Body: make([]byte, 5000)}.Bytes())
	eventually(t, "three generic_nacks", func() bool { return sim.Stats().GenericNacksRecv == 3 })
	if err := sim.SendDataSM(ctx, "13800138000", "10086", "via data_sm"); err != nil {
		t.Fatal(err)
	}
	if d := in.wait(t, 1)[0]; !d.DataSM || d.Text != "via data_sm" {
		t.Fatalf("data_sm deliver = %+v", d)
	}
	if _, err := s.Submit(ctx, sub("13800138000", "still up")); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.Binds != 1 {
		t.Fatalf("link dropped: %+v", st)
	}
}

// Problems #6 and #7: UDH in message_payload, 16-bit references, SAR,
// out-of-order parts and duplicates all reach the handler once, whole.
func TestMOReassembly(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	in := newInbox()
	startSession(t, sim.Addr(), smpp.Options{Handler: in.handler(smpp.StatusOK)})
	ctx := testCtx(t)
	long := strings.Repeat("去拉萨的火车几点出发？", 15) // 165 UCS-2 units: 3 parts
	cases := []smsc.MO{
		{From: "13800138000", To: "10086", Text: long, Carriage: smsc.PayloadUDH},
		{From: "13800138000", To: "10086", Text: long, Carriage: smsc.UDH16, Ref: 0xABCD, Order: []int{2, 0, 0, 1, 2}},
		{From: "13800138000", To: "10086", Text: long, Carriage: smsc.SAR, Ref: 0x1234, Order: []int{1, 2, 0}},
		{From: "13800138000", To: "10086", Text: long, Carriage: smsc.Payload},
		{From: "13800138000", To: "10086", Text: strings.Repeat("GSM [text] ", 30), Carriage: smsc.UDH8},
	}
	for i, mo := range cases {
		if err := sim.Deliver(ctx, mo); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got := in.wait(t, i+1)
		if len(got) != i+1 || got[i].Text != mo.Text {
			t.Fatalf("case %d: %d deliveries, last %q", i, len(got), got[len(got)-1].Text)
		}
	}
	// Two senders using the same reference at once are kept apart.
	a := smsc.MO{From: "13800000001", To: "10086", Text: strings.Repeat("a", 300), Ref: 7, Order: []int{0, 1}}
	b := smsc.MO{From: "13800000002", To: "10086", Text: strings.Repeat("b", 300), Ref: 7, Order: []int{0, 1}}
	for _, mo := range []smsc.MO{a, b} {
		mo.Order = []int{0}
		sim.Deliver(ctx, mo)
	}
	for _, mo := range []smsc.MO{a, b} {
		mo.Order = []int{1, 2}
		sim.Deliver(ctx, mo)
	}
	got := in.wait(t, len(cases)+2)
	texts := got[len(cases)].Text + got[len(cases)+1].Text
	if !strings.Contains(texts, a.Text) || !strings.Contains(texts, b.Text) {
		t.Fatalf("senders mixed: %q", texts)
	}
	time.Sleep(50 * time.Millisecond)
	if n := in.len(); n != len(cases)+2 {
		t.Fatalf("%d deliveries, want %d (a duplicate reached the handler)", n, len(cases)+2)
	}
}

// Problems #8, #9, #10: segmentation, length validation, 2-byte SAR refs.
func TestSubmitParts(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{})
	ctx := testCtx(t)
	from, to := smpp.Address{Addr: "10086"}, smpp.Address{Addr: "13800138000", TON: 1, NPI: 1}

	texts := []struct {
		text     string
		carriage smpp.Carriage
		parts    int
	}{
		{"short reply", smpp.CarriageUDH, 1},
		{strings.Repeat("明天😀", 40), smpp.CarriageUDH, 3}, // 120 units, pairs intact
		{strings.Repeat("x", 300), smpp.CarriageSAR, 3},
		{strings.Repeat("y", 400), smpp.CarriagePayload, 1},
	}
	for i, tc := range texts {
		ids, err := s.SubmitParts(ctx, &smpp.Message{Source: from, Dest: to, Text: tc.text, Carriage: tc.carriage})
		if err != nil || len(ids) != tc.parts {
			t.Fatalf("case %d: ids %v, %v", i, ids, err)
		}
		mts, _ := sim.WaitMT(ctx, i+1)
		if mt := mts[i]; mt.Text != tc.text || strings.Join(mt.MessageIDs, ",") != strings.Join(ids, ",") {
			t.Fatalf("case %d: MT %+v, ids %v", i, mt, ids)
		}
	}
	before := sim.Stats().SubmitsReceived
	_, err := s.SubmitParts(ctx, &smpp.Message{Source: from, Dest: to, Text: strings.Repeat("z", 2000)})
	if !errors.Is(err, smstext.ErrTooLong) {
		t.Fatalf("too long: %v", err)
	}
	_, err = s.Submit(ctx, &smpp.Submit{Dest: to, ShortMessage: make([]byte, 255)})
	if !errors.Is(err, smpp.ErrInvalid) {
		t.Fatalf("255-byte short_message: %v", err)
	}
	if got := sim.Stats().SubmitsReceived; got != before {
		t.Fatalf("invalid input reached the SMSC: %d submits", got-before)
	}
}

// A failing part reports which parts were accepted.
func TestSubmitPartsPartialFailure(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{})
	ctx := testCtx(t)
	sim.HoldResponses(true)
	done := make(chan error, 1)
	var ids []string
	go func() {
		var err error
		ids, err = s.SubmitParts(ctx, &smpp.Message{Dest: smpp.Address{Addr: "13800138000"}, Text: strings.Repeat("p", 300)})
		done <- err
	}()
	eventually(t, "first part", func() bool { return sim.Stats().SubmitsReceived == 1 })
	sim.FailSubmits(1, 0x0B) // the second part will be refused
	sim.HoldResponses(false)
	err := <-done
	var pe *smpp.PartsError
	if !errors.As(err, &pe) || pe.Failed != 2 || pe.Total != 3 || len(pe.Accepted) != 1 || !errors.Is(err, pdu.Status(0x0B)) {
		t.Fatalf("err = %v (%+v), ids %v", err, pe, ids)
	}
}

// Problem #11: an unbind from the SMSC is answered, and we rebind.
func TestUnbindFromSMSC(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{})
	ctx := testCtx(t)
	sim.Unbind(ctx)
	eventually(t, "rebind", func() bool { return sim.Stats().Binds == 2 && sim.BoundCount() == 1 })
	if _, err := s.Submit(ctx, sub("13800138000", "after unbind")); err != nil {
		t.Fatal(err)
	}
}

// Problem #13: enquire_link at the interval keeps a healthy link up even
// when the timeout is longer than the interval; an unanswered one closes
// a dead link, and we rebind once the SMSC answers again.
func TestEnquireLink(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{
		EnquireLinkInterval: 50 * time.Millisecond, EnquireLinkTimeout: 300 * time.Millisecond,
		BindTimeout: 300 * time.Millisecond,
	})
	eventually(t, "enquire_links", func() bool { return sim.Stats().EnquireLinksRecv >= 5 })
	if st := sim.Stats(); st.Binds != 1 {
		t.Fatalf("healthy link dropped: %+v", st)
	}
	sim.SetHalfOpen(true)
	eventually(t, "dead link detected", func() bool { return !s.Bound() })
	sim.SetHalfOpen(false)
	eventually(t, "rebind", func() bool { return s.Bound() && sim.Stats().Binds >= 2 })
	if _, err := s.Submit(testCtx(t), sub("13800138000", "back")); err != nil {
		t.Fatal(err)
	}
}

// The SMSC's own enquire_link is answered.
func TestAnswersSMSCEnquireLink(t *testing.T) {
	sim := startSim(t, smsc.Options{EnquireLinkInterval: 20 * time.Millisecond})
	startSession(t, sim.Addr(), smpp.Options{})
	time.Sleep(200 * time.Millisecond)
	if st := sim.Stats(); st.Binds != 1 || st.GenericNacksRecv != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestThrottleAndQueueFullRetry(t *testing.T) {
	checkGoroutines(t)
	for _, st := range []pdu.Status{0x58, 0x14} {
		t.Run(fmt.Sprintf("0x%02X", uint32(st)), func(t *testing.T) {
			sim := startSim(t, smsc.Options{})
			s := startSession(t, sim.Addr(), smpp.Options{ThrottlePause: 30 * time.Millisecond, QueueFullPause: 30 * time.Millisecond})
			sim.FailSubmits(2, st)
			id, err := s.Submit(testCtx(t), sub("13800138000", "throttled"))
			if err != nil || id == "" {
				t.Fatalf("Submit = %q, %v", id, err)
			}
			if got := sim.Stats(); got.SubmitsReceived != 3 || got.MTReceived != 1 {
				t.Fatalf("stats %+v", got)
			}
		})
	}
}

// Throttled PDUs go before new ones.
func TestThrottleRetryFirst(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	reg := prometheus.NewRegistry()
	s := startSession(t, sim.Addr(), smpp.Options{ThrottlePause: 100 * time.Millisecond, Window: 1, Registerer: reg})
	ctx := testCtx(t)
	sim.FailSubmits(1, 0x58)
	first := make(chan error, 1)
	go func() { _, err := s.Submit(ctx, sub("13800138000", "first")); first <- err }()
	eventually(t, "throttle seen by the session", func() bool {
		return metricValue(t, reg, "roamtrail_smpp_submits_total", "retry_0x58") == 1
	})
	if _, err := s.Submit(ctx, sub("13800138000", "second")); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	mts, _ := sim.WaitMT(ctx, 2)
	if mts[0].Text != "first" || mts[1].Text != "second" {
		t.Fatalf("order: %q then %q", mts[0].Text, mts[1].Text)
	}
}

func TestSubmitErrors(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{SysErrRetries: 2, Backoff: fastBackoff})
	ctx := testCtx(t)

	sim.FailSubmits(5, 0x08)
	_, err := s.Submit(ctx, sub("13800138000", "x"))
	var se *smpp.StatusError
	if !errors.As(err, &se) || se.Status != 0x08 || !se.Temporary() || !errors.Is(err, pdu.Status(0x08)) {
		t.Fatalf("syserr: %v", err)
	}
	if got := sim.Stats().SubmitsReceived; got != 3 {
		t.Fatalf("syserr: %d attempts, want 3", got)
	}
	sim.FailSubmits(1, 0x0B)
	_, err = s.Submit(ctx, sub("13800138000", "x"))
	var st pdu.Status
	if !errors.As(err, &se) || se.Temporary() || !errors.As(err, &st) || st != 0x0B {
		t.Fatalf("permanent: %v", err)
	}
	if strings.Contains(err.Error(), "13800138000") {
		t.Fatalf("error text leaks the number: %v", err)
	}
}

// Submits never fail for want of a window slot: they wait.
func TestWindowWaits(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{Window: 2})
	ctx := testCtx(t)
	sim.SetResponseDelay(20 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Submit(ctx, sub("13800138000", fmt.Sprint("n", i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := sim.Stats(); st.SubmitsAccepted != 20 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMaxTPSAndCtx(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{MaxTPS: 20})
	ctx := testCtx(t)
	start := time.Now()
	for range 5 {
		if _, err := s.Submit(ctx, sub("13800138000", "tps")); err != nil {
			t.Fatal(err)
		}
	}
	if time.Since(start) < 150*time.Millisecond { // 4 gaps of 50 ms: a lower bound, not a speed test
		t.Fatalf("MaxTPS not applied: 5 submits in %v", time.Since(start))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Submit(cctx, sub("13800138000", "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

// A dropped connection: submits written and unanswered report an unknown
// outcome; the others wait for the rebind and go through. None is lost
// silently and none is sent twice.
func TestDropAndRebindNoLoss(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{Window: 3, Backoff: func(int) time.Duration { return 200 * time.Millisecond }})
	ctx := testCtx(t)
	sim.SetResponseDelay(30 * time.Millisecond)

	const n = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, unknown := map[string]string{}, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := fmt.Sprint("msg-", i)
			id, err := s.Submit(ctx, sub("13800138000", text))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok[text] = id
			case errors.Is(err, smpp.ErrUnknownOutcome):
				unknown++
			default:
				t.Errorf("submit %d: %v", i, err)
			}
		}()
	}
	eventually(t, "some traffic", func() bool { return sim.Stats().SubmitsReceived >= 5 })
	sim.DropConnections()
	wg.Wait()
	if len(ok)+unknown != n || unknown > 3 {
		t.Fatalf("%d ok + %d unknown != %d (window 3 bounds unknowns)", len(ok), unknown, n)
	}
	seen := map[string]int{}
	for _, mt := range sim.MTs() {
		seen[mt.Text]++
	}
	for text, id := range ok {
		if seen[text] != 1 {
			t.Fatalf("%s (id %s) reached the SMSC %d times", text, id, seen[text])
		}
	}
	for text, c := range seen {
		if c > 1 {
			t.Fatalf("%s sent %d times", text, c)
		}
	}
	if st := sim.Stats(); st.Binds != 2 {
		t.Fatalf("binds %d", st.Binds)
	}
	// Submits while nobody is bound wait for the rebind.
	sim.SetResponseDelay(0)
	sim.DropConnections()
	eventually(t, "drop noticed", func() bool { return !s.Bound() })
	if _, err := s.Submit(ctx, sub("13800138000", "after drop")); err != nil {
		t.Fatal(err)
	}
}

func TestShutdown(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	s, err := smpp.New(smpp.Options{Addr: sim.Addr(), SystemID: "roamtrail", Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	ctx := testCtx(t)
	if err := s.WaitBound(ctx); err != nil {
		t.Fatal(err)
	}
	sim.SetResponseDelay(200 * time.Millisecond)
	inflight := make(chan error, 1)
	go func() { _, err := s.Submit(ctx, sub("13800138000", "in flight")); inflight <- err }()
	eventually(t, "submit sent", func() bool { return sim.Stats().SubmitsReceived == 1 })
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight submit: %v", err)
	}
	if st := sim.Stats(); st.UnbindsRecv != 1 {
		t.Fatalf("no unbind: %+v", st)
	}
	if _, err := s.Submit(ctx, sub("1", "late")); !errors.Is(err, smpp.ErrClosed) {
		t.Fatalf("submit after shutdown: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	s.Close()
	if err := <-served; !errors.Is(err, smpp.ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

func TestCloseBeforeServeAndBadBind(t *testing.T) {
	checkGoroutines(t)
	s, err := smpp.New(smpp.Options{Addr: "127.0.0.1:1", SystemID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Serve(context.Background()); !errors.Is(err, smpp.ErrClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, err := smpp.New(smpp.Options{SystemID: "x"}); !errors.Is(err, smpp.ErrInvalid) || !strings.Contains(err.Error(), "Addr") {
		t.Fatalf("missing Addr: %v", err)
	}

	// Wrong password: not bound, keeps trying, shuts down promptly.
	sim := startSim(t, smsc.Options{Accounts: []smsc.Account{{SystemID: "roamtrail", Password: "right"}}})
	s, err = smpp.New(smpp.Options{Addr: sim.Addr(), SystemID: "roamtrail", Password: "wrong", AuthBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background())
	eventually(t, "refused binds", func() bool { return sim.Stats().BindsRefused >= 2 })
	sctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	// Serve's ctx ending closes the session.
	s, _ = smpp.New(smpp.Options{Addr: sim.Addr(), SystemID: "roamtrail", Password: "right"})
	cctx, ccancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(cctx) }()
	if err := s.WaitBound(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ccancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
}

func TestDeliveryReceipt(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{Receipts: true})
	in := newInbox()
	s := startSession(t, sim.Addr(), smpp.Options{Handler: in.handler(smpp.StatusOK)})
	m := sub("13800138000", "with receipt")
	m.RegisteredDelivery = 1
	id, err := s.Submit(testCtx(t), m)
	if err != nil {
		t.Fatal(err)
	}
	d := in.wait(t, 1)[0]
	if !d.IsReceipt() || d.Receipt.MessageID != id || !d.Receipt.Delivered() || d.Receipt.DoneDate.IsZero() {
		t.Fatalf("receipt = %+v", d.Receipt)
	}
}

func TestReceiverTransmitterMode(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	in := newInbox()
	s := startSession(t, sim.Addr(), smpp.Options{Mode: smpp.ReceiverTransmitter, Handler: in.handler(smpp.StatusOK)})
	ctx := testCtx(t)
	if sim.BoundCount() != 2 {
		t.Fatalf("bound %d", sim.BoundCount())
	}
	if _, err := s.Submit(ctx, sub("13800138000", "via tx")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := sim.InjectMO(ctx, "13800138000", "10086", "via rx"); err != nil {
			t.Fatal(err)
		}
	}
	in.wait(t, 3)
}

// When every worker is busy and the queue is full, the reader answers
// ESME_RX_T_APPN instead of stalling; the SMSC redelivers and nothing is
// lost.
func TestHandlerBackPressure(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{RedeliveryDelay: 20 * time.Millisecond, MaxDeliveryAttempts: 1000})
	release := make(chan struct{})
	in := newInbox()
	handler := func(ctx context.Context, d *smpp.Deliver) smpp.Status {
		<-release
		in.add(d)
		return smpp.StatusOK
	}
	s := startSession(t, sim.Addr(), smpp.Options{Handler: handler, HandlerWorkers: 1, HandlerQueue: 1})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); sim.InjectMO(ctx, "13800138000", "10086", fmt.Sprint("mo", i)) }()
	}
	eventually(t, "redeliveries", func() bool { return sim.Stats().MORedelivered > 0 })
	if _, err := s.Submit(ctx, sub("13800138000", "link not stalled")); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	if got := in.wait(t, 4); len(got) != 4 {
		t.Fatalf("%d delivered", len(got))
	}
}

func TestHandlerPanic(t *testing.T) {
	sim := startSim(t, smsc.Options{RedeliveryDelay: 10 * time.Millisecond, MaxDeliveryAttempts: 2})
	startSession(t, sim.Addr(), smpp.Options{Handler: func(context.Context, *smpp.Deliver) smpp.Status { panic("boom") }})
	if err := sim.InjectMO(testCtx(t), "13800138000", "10086", "x"); !errors.Is(err, smsc.ErrNotDelivered) {
		t.Fatalf("err = %v", err)
	}
	if st := sim.Stats(); st.Binds != 1 {
		t.Fatalf("panic cost the link: %+v", st)
	}
}

// metricValue reads one counter or gauge from a registry by its label
// value (0 when absent).
func metricValue(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func TestMetrics(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	reg := prometheus.NewRegistry()
	in := newInbox()
	s := startSession(t, sim.Addr(), smpp.Options{Registerer: reg, Name: "test", Handler: in.handler(smpp.StatusOK)})
	ctx := testCtx(t)
	if _, err := s.Submit(ctx, sub("13800138000", "m")); err != nil {
		t.Fatal(err)
	}
	sim.InjectMO(ctx, "13800138000", "10086", "mo")
	if v := metricValue(t, reg, "roamtrail_smpp_submits_total", "ok"); v != 1 {
		t.Fatalf("submits ok = %v", v)
	}
	if v := metricValue(t, reg, "roamtrail_smpp_inbound_total", "mo"); v != 1 {
		t.Fatalf("inbound mo = %v", v)
	}
	if v := metricValue(t, reg, "roamtrail_smpp_bound", "trx"); v != 1 {
		t.Fatalf("bound = %v", v)
	}
	// A second session on the same registry needs its own Name.
	if _, err := smpp.New(smpp.Options{Addr: sim.Addr(), SystemID: "x", Registerer: reg, Name: "test"}); err == nil {
		t.Fatal("duplicate registration accepted")
	}
}

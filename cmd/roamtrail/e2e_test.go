package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/redis/go-redis/v9"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// End-to-end tests: `roamtrail serve` in-process over real TCP, on a real
// Pebble data dir, against the SMSC simulator or node-smpp, with real Redis
// where state is shared. Each checks what a subscriber and an SMSC see:
// every MO taken is answered once, and nothing else.

// The dialogue's wording, as subscribers read it.
const (
	promptEN15    = "You asked where your phone has been in the last 15 days. Reply Y to consent to this lookup, or N to cancel. Valid for 10 minutes."
	promptEN30    = "You asked where your phone has been in the last 30 days. Reply Y to consent to this lookup, or N to cancel. Valid for 10 minutes."
	promptZH15    = "您正在查询手机近15天到达或途经的地点。回复Y即表示您授权本次查询，回复N取消，10分钟内有效。"
	promptZH30    = "您正在查询手机近30天到达或途经的地点。回复Y即表示您授权本次查询，回复N取消，10分钟内有效。"
	tripEN15      = "In the last 15 days your phone was in: Beijing; Shijiazhuang, Hebei."
	tripEN30      = "In the last 15 days your phone was in: Beijing; Shijiazhuang, Hebei. In the 15 days before that it was in: Beijing; Japan."
	tripZH15      = "根据您的授权查询，您于近15天内到达或途经：北京市、河北省石家庄市。"
	tripZH30      = "根据您的授权查询，您于近1-15天内到达或途经：北京市、河北省石家庄市；近16-30天内到达或途经：北京市、日本。"
	nothingEN     = "You have no request waiting for confirmation. Send TRIP for the last 15 days or TRIP 30 for the last 30 days."
	nothingZH     = "您当前没有待确认的查询。发送CXMYD查询近15天行程，发送CXMYD30查询近30天行程。"
	cancelledEN   = "Your request is cancelled. Nothing was looked up."
	historyNumber = "13800138000" // the subscriber of historyCSV
)

// SMPP command ids the tests build or look for.
const (
	deliverSMID     = 0x00000005
	deliverSMRespID = 0x80000005
	unbindRespID    = 0x80000006
	genericNackID   = 0x80000000
)

// e164 is the number a reply to an MO from n goes to.
func e164(n string) string { return "86" + n }

// historyOf is historyCSV's history given to every number in numbers.
func historyOf(now time.Time, numbers ...string) string {
	base := historyCSV(now)
	header, rows, _ := strings.Cut(base, "\n")
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, n := range numbers {
		b.WriteString(strings.ReplaceAll(rows, historyNumber, n))
	}
	return b.String()
}

// wantOnly checks that number got exactly the texts want, in order.
func wantOnly(t *testing.T, sim *simHarness, number string, want ...string) {
	t.Helper()
	got := sim.to(number)
	var texts []string
	for _, mt := range got {
		if mt.From != "10086" {
			t.Errorf("MT to %s from %q, want the short code", number, mt.From)
		}
		texts = append(texts, mt.Text)
	}
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s got %d MT:\n%s\nwant:\n  %s", number, len(got), mtList(got), strings.Join(want, "\n  "))
	}
}

// settle waits until no MT came for quietFor: whatever was coming came.
func settle(sim *simHarness) { sim.collect(sim.mark(), quietFor, quietFor) }

// dialogue runs request, prompt, Y, itinerary for one subscriber.
func dialogue(t *testing.T, sim *simHarness, from, request, prompt, confirm, itinerary string) {
	t.Helper()
	before := len(sim.to(e164(from)))
	sim.inject(t, from, request)
	if got := sim.waitTo(t, e164(from), before+1); got[before].Text != prompt {
		t.Fatalf("%s: %q answered %q, want %q", from, request, got[before].Text, prompt)
	}
	sim.inject(t, from, confirm)
	if got := sim.waitTo(t, e164(from), before+2); got[before+1].Text != itinerary {
		t.Fatalf("%s: %q answered %q, want %q", from, confirm, got[before+1].Text, itinerary)
	}
}

// 1. The whole dialogue over an SMSC that shares no code with ours.
func TestE2ENodePeerDialogue(t *testing.T) {
	peer := startNodePeer(t)
	startServe(t, serveConfig{smsc: peer.addr, args: []string{"--password", "secret"}})
	peer.expect("bound")

	type step struct {
		from, text string
		dc         int // 0 GSM, 8 UCS-2
		want       string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"English", []step{
			{historyNumber, "TRIP", 0, promptEN15},
			{historyNumber, "Y", 0, tripEN15},
		}},
		{"English 30 days", []step{
			{historyNumber, "trip 30", 0, promptEN30},
			{historyNumber, "yes", 0, tripEN30},
		}},
		{"Chinese", []step{
			{historyNumber, "CXMYD", 0, promptZH15},
			{historyNumber, "是", 8, tripZH15},
		}},
		{"Chinese full width", []step{
			{historyNumber, "ＣＸＭＹＤ３０", 8, promptZH30},
			{historyNumber, "Y", 0, tripZH30},
		}},
		{"bare Y", []step{
			{"13900139000", "Y", 0, nothingEN},
			{"13900139000", "是", 8, nothingZH},
		}},
		{"cancel", []step{
			{"13900139000", "TRIP", 0, promptEN15},
			{"13900139000", "N", 0, cancelledEN},
			{"13900139000", "Y", 0, nothingEN},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer.t = t
			for _, s := range tc.steps {
				peer.mo(s.from, s.text, s.dc)
				if got := peer.reply(); got != s.want {
					t.Fatalf("%q from %s answered\n %q\nwant\n %q", s.text, s.from, got, s.want)
				}
			}
			peer.noMore()
		})
	}
}

// longHistory gives number 40 cities over the last 20 days, two a day,
// each for more than the four hours that make a city count.
func longHistory(t *testing.T, now time.Time, number string) (csv string, cities []itinerary.RegionInfo) {
	t.Helper()
	cat, err := itinerary.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	var b strings.Builder
	b.WriteString("msisdn,time,region\n")
	seen := map[string]bool{}
	for _, c := range cat.Regions(itinerary.KindCity) {
		if len(cities) == 40 {
			break
		}
		if seen[c.NameEN] || seen[c.NameZH] {
			continue
		}
		seen[c.NameEN], seen[c.NameZH] = true, true
		i := len(cities)
		d := now.In(loc).AddDate(0, 0, -(1 + i/2))
		start := 6
		if i%2 == 1 {
			start = 13
		}
		for _, at := range []time.Time{
			time.Date(d.Year(), d.Month(), d.Day(), start, 0, 0, 0, loc),
			time.Date(d.Year(), d.Month(), d.Day(), start+4, 30, 0, 0, loc),
		} {
			fmt.Fprintf(&b, "%s,%s,%d\n", number, at.Format(time.RFC3339), c.Code)
		}
		cities = append(cities, c)
	}
	return b.String(), cities
}

// 2. A long itinerary travels in several parts (UDH or SAR) or as one
// message_payload, and arrives whole.
func TestE2ELongReplies(t *testing.T) {
	const number = "13700137000"
	csv, cities := longHistory(t, time.Now(), number)
	for _, long := range []string{"udh", "sar", "payload"} {
		t.Run(long, func(t *testing.T) {
			sim := startSim(t, smsc.Options{})
			startServe(t, serveConfig{smsc: sim.Addr(), history: csv, args: []string{"--long", long}})
			waitBound(t, sim, 1)
			for _, lang := range []struct {
				request, prompt string
				name            func(itinerary.RegionInfo) string
				summary         string
			}{
				{"TRIP 30", promptEN30, func(c itinerary.RegionInfo) string { return c.NameEN }, "Too many places"},
				{"CXMYD30", promptZH30, func(c itinerary.RegionInfo) string { return c.NameZH }, "地点较多"},
			} {
				n := len(sim.to(e164(number)))
				sim.inject(t, number, lang.request)
				if got := sim.waitTo(t, e164(number), n+1)[n]; got.Text != lang.prompt {
					t.Fatalf("%q answered %q", lang.request, got.Text)
				}
				sim.inject(t, number, "Y")
				mt := sim.waitTo(t, e164(number), n+2)[n+1]
				seg, err := smstext.Split(mt.Text)
				if err != nil {
					t.Fatalf("the itinerary does not fit 8 parts: %v", err)
				}
				switch {
				case long == "payload" && mt.Parts != 1:
					t.Errorf("message_payload reply came in %d submit_sm", mt.Parts)
				case long != "payload" && (mt.Parts != len(seg.Parts) || mt.Parts < 2):
					t.Errorf("reply came in %d parts; its text takes %d", mt.Parts, len(seg.Parts))
				}
				if len(seg.Parts) < 2 || len(seg.Parts) > 8 {
					t.Errorf("the itinerary takes %d parts, want 2 to 8", len(seg.Parts))
				}
				if strings.Contains(mt.Text, lang.summary) {
					t.Errorf("the itinerary was summarised: %q", mt.Text)
				}
				for _, c := range cities {
					if !strings.Contains(mt.Text, lang.name(c)) {
						t.Errorf("%s missing from %q", lang.name(c), mt.Text)
					}
				}
			}
			settle(sim)
			if got := sim.to(e164(number)); len(got) != 4 {
				t.Fatalf("%d MT, want 4:\n%s", len(got), mtList(got))
			}
		})
	}
}

// deliverSM is a hand-made deliver_sm, for what the simulator's Deliver
// does not send: a receipt, an 8-bit data coding.
func deliverSM(seq uint32, from, to string, esmClass, dc byte, sm []byte, tlvs ...[]byte) []byte {
	body := []byte{0} // service_type
	body = append(body, 1, 1)
	body = append(append(body, from...), 0)
	body = append(body, 0, 0)
	body = append(append(body, to...), 0)
	body = append(body, esmClass, 0, 0, 0, 0, 0, 0, dc, 0, byte(len(sm)))
	body = append(body, sm...)
	for _, tlv := range tlvs {
		body = append(body, tlv...)
	}
	b := make([]byte, 16, 16+len(body))
	binary.BigEndian.PutUint32(b[0:], uint32(16+len(body)))
	binary.BigEndian.PutUint32(b[4:], deliverSMID)
	binary.BigEndian.PutUint32(b[12:], seq)
	return append(b, body...)
}

func tlv(tag uint16, v []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, tag)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// receipt is a delivery receipt for message id in state (TLV message_state
// and text stat).
func receipt(seq uint32, id string, state byte, stat string) []byte {
	text := fmt.Sprintf("id:%s sub:001 dlvrd:001 submit date:2601021504 done date:2601021505 stat:%s err:000 text:TRIP", id, stat)
	return deliverSM(seq, e164(historyNumber), "10086", 0x04, 0, []byte(text),
		tlv(0x001E, append([]byte(id), 0)), tlv(0x0427, []byte{state}))
}

// 3. serve does not ask for delivery receipts; one that comes anyway is
// acknowledged, counted, and never taken for a subscriber's message.
func TestE2EReceipts(t *testing.T) {
	sim := startSim(t, smsc.Options{Receipts: true})
	tap := startProxy(t, sim.Addr(), true)
	srv := startServe(t, serveConfig{smsc: tap.Addr()})
	waitBound(t, sim, 1)

	dialogue(t, sim, historyNumber, "TRIP", promptEN15, "Y", tripEN15)
	for _, mt := range sim.to(e164(historyNumber)) {
		if mt.RegisteredDelivery != 0 {
			t.Errorf("MT asked for a receipt (registered_delivery %d)", mt.RegisteredDelivery)
		}
	}
	settle(sim)
	if st := sim.Stats(); st.ReceiptsSent != 0 {
		t.Errorf("%d receipts sent for MT that asked for none", st.ReceiptsSent)
	}

	mark, binds := sim.mark(), sim.Stats().Binds
	ids := sim.to(e164(historyNumber))[1].MessageIDs
	sim.SendRaw(receipt(0x7F000001, ids[0], 2, "DELIVRD"))
	sim.SendRaw(receipt(0x7F000002, ids[0], 5, "UNDELIV"))
	for _, seq := range []uint32{0x7F000001, 0x7F000002} {
		if f := tap.waitFrame(t, 0, deliverSMRespID, seq); f.Status != 0 {
			t.Errorf("receipt %#x answered status 0x%02X", seq, f.Status)
		}
	}
	if got := srv.metric(t, "roamtrail_receipts_total", `state="DELIVRD"`); got != 1 {
		t.Errorf("roamtrail_receipts_total{state=DELIVRD} = %v, want 1", got)
	}
	if got := srv.metric(t, "roamtrail_receipts_total", `state="UNDELIV"`); got != 1 {
		t.Errorf("roamtrail_receipts_total{state=UNDELIV} = %v, want 1", got)
	}
	if got := sim.collect(mark, quietFor, quietFor); len(got) != 0 {
		t.Fatalf("a receipt was answered:\n%s", mtList(got))
	}
	if srv.metric(t, "roamtrail_mo_total", `command="help"`) != 0 {
		t.Error("a receipt was counted as an MO")
	}

	// The text of a receipt is the SMSC's to write: a state nobody knows
	// must not become a label value of its own, each a new time series.
	frames := tap.mark()
	for i := range 20 {
		seq := uint32(0x7F000100 + i)
		text := fmt.Sprintf("id:%s sub:001 dlvrd:001 submit date:2601021504 done date:2601021505 stat:ODD%d err:000 text:", ids[0], i)
		sim.SendRaw(deliverSM(seq, e164(historyNumber), "10086", 0x04, 0, []byte(text)))
		if f := tap.waitFrame(t, frames, deliverSMRespID, seq); f.Status != 0 {
			t.Errorf("receipt %#x answered status 0x%02X", seq, f.Status)
		}
	}
	if got := srv.metric(t, "roamtrail_receipts_total", `state="unknown"`); got != 20 {
		t.Errorf("roamtrail_receipts_total{state=unknown} = %v, want 20", got)
	}
	if got := srv.metric(t, "roamtrail_receipts_total", `state="ODD7"`); got != 0 {
		t.Errorf("a receipt's own state text became a label value")
	}
	if st := sim.Stats(); st.Binds != binds || sim.BoundCount() != 1 {
		t.Errorf("the link did not stay up: %+v", st)
	}
}

// 4. Whatever arrives, the gateway answers sensibly or not at all, never
// crashes, and the link stays up.
func TestE2EGarbage(t *testing.T) {
	// The simulator must be able to send a 3,000-character MO.
	sim := startSim(t, smsc.Options{Split: smstext.SplitOptions{MaxParts: 255}})
	tap := startProxy(t, sim.Addr(), true)
	srv := startServe(t, serveConfig{smsc: tap.Addr()})
	waitBound(t, sim, 1)
	binds := sim.Stats().Binds
	// Each case has a subscriber of its own: the gateway answers help once
	// per subscriber and dialogue step, taking a repeat for a redelivery.
	subscriber := 0
	next := func() string { subscriber++; return fmt.Sprintf("1370013%04d", subscriber) }
	// stillUp checks that the link was not dropped and that a dialogue
	// still works.
	stillUp := func(t *testing.T) {
		t.Helper()
		if st := sim.Stats(); st.Binds != binds || sim.BoundCount() != 1 {
			t.Fatalf("the link did not stay up: %+v", st)
		}
		s := next()
		sim.inject(t, s, "TRIP")
		if got := sim.waitTo(t, e164(s), 1)[0].Text; got != promptEN15 {
			t.Fatalf("after it, TRIP answered %q", got)
		}
	}
	// answered checks that the replies after mark are exactly want.
	answered := func(t *testing.T, mark int, want ...string) {
		t.Helper()
		first := bound
		if len(want) == 0 {
			first = quietFor
		}
		got := sim.collect(mark, first, quietFor)
		var texts []string
		for _, mt := range got {
			texts = append(texts, mt.Text)
		}
		if strings.Join(texts, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got:\n%s\nwant:\n  %s", mtList(got), strings.Join(want, "\n  "))
		}
	}
	// Help is worded as an explicit HELP or 帮助 is answered.
	var helpEN, helpZH string
	for kw, help := range map[string]*string{"HELP": &helpEN, "帮助": &helpZH} {
		s := next()
		sim.inject(t, s, kw)
		*help = sim.waitTo(t, e164(s), 1)[0].Text
	}
	deliver := func(t *testing.T, mo smsc.MO) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		if err := sim.Deliver(ctx, mo); err != nil {
			t.Fatalf("not acknowledged: %v", err)
		}
	}

	t.Run("binary data coding", func(t *testing.T) {
		mark, frames := sim.mark(), tap.mark()
		sim.SendRaw(deliverSM(0x7F000010, next(), "10086", 0, 0x04, []byte{0x00, 0xFF, 0x10, 0x80, 'Y'}))
		if f := tap.waitFrame(t, frames, deliverSMRespID, 0x7F000010); f.Status != 0 {
			t.Fatalf("answered status 0x%02X", f.Status)
		}
		answered(t, mark, helpZH)
		stillUp(t)
	})
	t.Run("empty text", func(t *testing.T) {
		mark := sim.mark()
		sim.inject(t, next(), "")
		answered(t, mark, helpZH)
		stillUp(t)
	})
	t.Run("3000-character message_payload", func(t *testing.T) {
		for _, text := range []string{strings.Repeat("where was I ", 250), strings.Repeat("我去过哪里了", 500)} {
			mark := sim.mark()
			deliver(t, smsc.MO{From: next(), To: "10086", Text: text, Carriage: smsc.Payload})
			want := helpEN
			if strings.HasPrefix(text, "我") {
				want = helpZH
			}
			answered(t, mark, want)
		}
		stillUp(t)
	})
	t.Run("3000-character concatenated", func(t *testing.T) {
		mark := sim.mark()
		deliver(t, smsc.MO{From: next(), To: "10086", Text: strings.Repeat("TRIP ", 600), Carriage: smsc.UDH16})
		answered(t, mark, helpEN)
		stillUp(t)
	})
	t.Run("sender not a number", func(t *testing.T) {
		mark := sim.mark()
		deliver(t, smsc.MO{From: "ABC", To: "10086", Text: "TRIP", SourceTON: 5, SourceNPI: 0})
		answered(t, mark)
		if got := srv.metric(t, "roamtrail_replies_total", `outcome="bad_sender"`); got != 1 {
			t.Errorf("roamtrail_replies_total{outcome=bad_sender} = %v, want 1", got)
		}
		stillUp(t)
	})
	t.Run("unknown PDU", func(t *testing.T) {
		nacks, frames := sim.Stats().GenericNacksRecv, tap.mark()
		sim.SendUnknown()
		if f := tap.waitFrame(t, frames, genericNackID, 0); f.Status != 0x03 {
			t.Errorf("generic_nack status 0x%02X, want 0x03", f.Status)
		}
		sim.waitStats(t, "the generic_nack", func(st smsc.Stats) bool { return st.GenericNacksRecv == nacks+1 })
		stillUp(t)
	})
	t.Run("alert_notification", func(t *testing.T) {
		mark := sim.mark()
		sim.SendAlertNotification()
		answered(t, mark)
		stillUp(t)
	})
	t.Run("unsolicited generic_nack", func(t *testing.T) {
		mark := sim.mark()
		sim.SendGenericNack(0x03)
		answered(t, mark)
		stillUp(t)
	})
	t.Run("data_sm", func(t *testing.T) {
		s := next()
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		if err := sim.SendDataSM(ctx, s, "10086", "TRIP"); err != nil {
			t.Fatalf("data_sm not acknowledged: %v", err)
		}
		if got := sim.waitTo(t, e164(s), 1)[0].Text; got != promptEN15 {
			t.Fatalf("data_sm TRIP answered %q", got)
		}
		stillUp(t)
	})
	t.Run("a deliver_sm with the sequence number of a submit_sm in flight", func(t *testing.T) {
		// An SMSC numbers its requests from 1 too: a deliver_sm may carry the
		// number of our unanswered submit_sm and must not be taken for its
		// response (go-smpp's problem 1).
		s1, s2 := next(), next()
		sim.inject(t, s1, "TRIP")
		sim.waitTo(t, e164(s1), 1)
		submits := sim.Stats().SubmitsReceived
		sim.HoldResponses(true)
		sim.inject(t, s1, "N")
		sim.waitStats(t, "the submit_sm", func(st smsc.Stats) bool { return st.SubmitsReceived > submits })
		sim.SetNextSeq(sim.LastSubmitSeq())
		sim.inject(t, s2, "TRIP")
		sim.HoldResponses(false)
		sim.waitTo(t, e164(s2), 1)
		settle(sim)
		wantOnly(t, sim, e164(s1), promptEN15, cancelledEN)
		wantOnly(t, sim, e164(s2), promptEN15)
		if got := srv.metric(t, "roamtrail_replies_total", `outcome="unknown"`); got != 0 {
			t.Errorf("%v replies of unknown outcome", got)
		}
		stillUp(t)
	})
	t.Run("a frame too short to be a PDU", func(t *testing.T) {
		// The stream cannot be trusted after it: the gateway may drop the
		// link, but it must come back and answer.
		sim.SendRaw([]byte{0, 0, 0, 8, 0, 0, 0, 0x15})
		s := next()
		sim.inject(t, s, "TRIP")
		if got := sim.waitTo(t, e164(s), 1)[0].Text; got != promptEN15 {
			t.Fatalf("after it, TRIP answered %q", got)
		}
	})
}

// 5. A throttling SMSC delays replies; none is lost or sent twice.
func TestE2EThrottled(t *testing.T) {
	subs := []string{"13800138001", "13800138002", "13800138003"}
	sim := startSim(t, smsc.Options{})
	startServe(t, serveConfig{smsc: sim.Addr(), history: historyOf(time.Now(), subs...)})
	waitBound(t, sim, 1)
	// each sends text from every subscriber at once and waits for the
	// answers.
	each := func(t *testing.T, text string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for _, s := range subs {
			wg.Go(func() { sim.inject(t, s, text) })
		}
		wg.Wait()
		for _, s := range subs {
			sim.waitTo(t, e164(s), n)
		}
	}
	var want []string
	for i, tc := range []struct {
		name   string
		fails  int
		status pdu.Status
	}{
		{"throttled 0x58", 2, 0x58},
		{"queue full 0x14", 1, 0x14},
		{"system error 0x08", 1, 0x08},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := sim.Stats()
			sim.FailSubmits(tc.fails, tc.status)
			each(t, "TRIP", 2*i+1)
			sim.FailSubmits(tc.fails, tc.status)
			each(t, "Y", 2*i+2)
			settle(sim)
			after := sim.Stats()
			if refused := (after.SubmitsReceived - after.SubmitsAccepted) - (before.SubmitsReceived - before.SubmitsAccepted); refused != 2*tc.fails {
				t.Errorf("%d submits refused, want %d", refused, 2*tc.fails)
			}
		})
		want = append(want, promptEN15, tripEN15)
	}
	for _, s := range subs {
		wantOnly(t, sim, e164(s), want...)
	}
}

// 6. The SMSC drops the connection mid-dialogue: the gateway rebinds, the
// dialogue completes, no reply is lost or sent twice.
func TestE2EDroppedConnection(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	subs := []string{"13800138001", "13800138002"}
	srv := startServe(t, serveConfig{smsc: sim.Addr(), history: historyOf(time.Now(), subs...)})
	waitBound(t, sim, 1)
	rebound := func(t *testing.T, binds int) {
		t.Helper()
		sim.waitStats(t, "a rebind", func(st smsc.Stats) bool { return st.Binds > binds })
		waitBound(t, sim, 1)
	}

	t.Run("between request and Y", func(t *testing.T) {
		s := subs[0]
		sim.inject(t, s, "TRIP")
		sim.waitTo(t, e164(s), 1)
		binds := sim.Stats().Binds
		sim.DropConnections()
		rebound(t, binds)
		sim.inject(t, s, "Y")
		sim.waitTo(t, e164(s), 2)
		settle(sim)
		wantOnly(t, sim, e164(s), promptEN15, tripEN15)
	})

	t.Run("while the reply is sent", func(t *testing.T) {
		s := subs[1]
		sim.inject(t, s, "TRIP")
		sim.waitTo(t, e164(s), 1)
		submits, binds := sim.Stats().SubmitsReceived, sim.Stats().Binds
		// The drop in the subtest before may have taken a prompt's resp
		// too (its MT is seen before its resp reaches serve): count from
		// here.
		unknown := srv.metric(t, "roamtrail_replies_total", `outcome="unknown"`)
		sim.HoldResponses(true)
		sim.inject(t, s, "Y")
		// The SMSC has the itinerary; its submit_sm_resp is lost with the link.
		sim.waitStats(t, "the itinerary's submit_sm", func(st smsc.Stats) bool { return st.SubmitsReceived > submits })
		sim.DropConnections()
		sim.HoldResponses(false)
		rebound(t, binds)
		settle(sim)
		wantOnly(t, sim, e164(s), promptEN15, tripEN15)
		if got := srv.metric(t, "roamtrail_replies_total", `outcome="unknown"`) - unknown; got != 1 {
			t.Errorf("roamtrail_replies_total{outcome=unknown} rose by %v, want 1", got)
		}
		// and the next dialogue works
		dialogue(t, sim, s, "TRIP", promptEN15, "Y", tripEN15)
	})

}

// 6b. A deliver_sm_resp lost with the link: the SMSC delivers the MO again,
// and the gateway knows it for a duplicate. With a receiver and a
// transmitter the reply does not race the lost link. Over one transceiver
// a reply written as the link dies has an unknown outcome: it may arrive
// (this proxy forwards it) or not, so whether to send it again on the
// redelivery is the operator's choice (--resend-lost), not tested here.
func TestE2ELostDeliverResp(t *testing.T) {
	testLostDeliverResp(t, "rx+tx")
}

func testLostDeliverResp(t *testing.T, bind string) {
	binds := 2
	if bind == "trx" {
		binds = 1
	}
	sim := startSim(t, smsc.Options{})
	tap := startProxy(t, sim.Addr(), true)
	subs := []string{"13800138001", "13800138002"}
	srv := startServe(t, serveConfig{smsc: tap.Addr(), history: historyOf(time.Now(), subs...), args: []string{"--bind", bind}})
	waitBound(t, sim, binds)
	for i, step := range []string{"request", "Y"} {
		t.Run(step, func(t *testing.T) {
			s := subs[i]
			if step == "Y" {
				sim.inject(t, s, "TRIP")
				sim.waitTo(t, e164(s), 1)
			}
			binds, dups := sim.Stats().Binds, srv.metric(t, "roamtrail_mo_duplicates_total", "")
			tap.loseNext(deliverSMRespID)
			if step == "request" {
				sim.inject(t, s, "TRIP")
			} else {
				sim.inject(t, s, "Y")
			}
			st := sim.waitStats(t, "a rebind", func(st smsc.Stats) bool { return st.Binds > binds })
			if st.MORedelivered == 0 {
				t.Fatal("the MO was not delivered again")
			}
			if step == "request" {
				sim.waitTo(t, e164(s), 1)
				settle(sim)
				wantOnly(t, sim, e164(s), promptEN15)
				sim.inject(t, s, "Y")
			}
			sim.waitTo(t, e164(s), 2)
			settle(sim)
			wantOnly(t, sim, e164(s), promptEN15, tripEN15)
			if got := srv.metric(t, "roamtrail_mo_duplicates_total", ""); got != dups+1 {
				t.Errorf("%v duplicates suppressed, want 1", got-dups)
			}
		})
	}
}

// 7. The SMSC unbinds: the gateway answers, binds again and carries on.
func TestE2EUnbind(t *testing.T) {
	t.Run("simulator", func(t *testing.T) {
		sim := startSim(t, smsc.Options{})
		tap := startProxy(t, sim.Addr(), true)
		startServe(t, serveConfig{smsc: tap.Addr()})
		waitBound(t, sim, 1)
		sim.inject(t, historyNumber, "TRIP")
		sim.waitTo(t, e164(historyNumber), 1)
		binds := sim.Stats().Binds
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		sim.Unbind(ctx)
		if f := tap.waitFrame(t, 0, unbindRespID, 0); f.Status != 0 {
			t.Fatalf("unbind_resp status 0x%02X", f.Status)
		}
		sim.waitStats(t, "a rebind", func(st smsc.Stats) bool { return st.Binds > binds })
		sim.inject(t, historyNumber, "Y")
		sim.waitTo(t, e164(historyNumber), 2)
		settle(sim)
		wantOnly(t, sim, e164(historyNumber), promptEN15, tripEN15)
	})
	t.Run("node-smpp", func(t *testing.T) {
		peer := startNodePeer(t)
		startServe(t, serveConfig{smsc: peer.addr, args: []string{"--password", "secret"}})
		peer.expect("bound")
		peer.mo(historyNumber, "CXMYD", 0)
		if got := peer.reply(); got != promptZH15 {
			t.Fatalf("CXMYD answered %q", got)
		}
		peer.send(map[string]any{"cmd": "unbind", "ref": 1})
		if ev := peer.expect("unbind_resp"); num(ev["status"]) != 0 {
			t.Fatalf("unbind answered %v", ev)
		}
		peer.expect("bound")
		peer.mo(historyNumber, "Y", 0)
		if got := peer.reply(); got != tripZH15 {
			t.Fatalf("Y answered %q", got)
		}
		peer.noMore()
	})
}

// 8. SIGTERM with MOs in flight: every MO the gateway took is answered
// before serve exits; those it refused stay with the SMSC and are answered
// by the next run; serve returns nil.
func TestE2EShutdownWithMOsInFlight(t *testing.T) {
	t.Run("state in memory", func(t *testing.T) { shutdownWithMOsInFlight(t, nil) })
	t.Run("state on a slow Redis", func(t *testing.T) {
		// Every Redis answer late: MOs are in the middle of being taken
		// when SIGTERM comes.
		url := redisURL(t)
		opts, _ := redis.ParseURL(url)
		proxy := startProxy(t, opts.Addr, false)
		proxy.setDelay(20 * time.Millisecond)
		shutdownWithMOsInFlight(t, []string{"--redis-url", strings.Replace(url, opts.Addr, proxy.Addr(), 1), "--redis-prefix", redisPrefix(t, url)})
	})
}

func shutdownWithMOsInFlight(t *testing.T, args []string) {
	sim := startSim(t, smsc.Options{MaxDeliveryAttempts: 10000, RedeliveryDelay: 20 * time.Millisecond})
	srv := startServe(t, serveConfig{smsc: sim.Addr(), args: args})
	waitBound(t, sim, 1)
	sim.SetResponseDelay(100 * time.Millisecond) // replies take a while: jobs are in hand at SIGTERM
	const n = 60
	number := func(i int) string { return fmt.Sprintf("1390000%04d", i) }
	injectCtx, stopInject := context.WithTimeout(context.Background(), 5*bound)
	defer stopInject()
	var (
		mu    sync.Mutex
		taken = map[int]bool{}
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			if err := sim.InjectMO(injectCtx, number(i), "10086", "TRIP"); err != nil {
				t.Errorf("%s: %v", number(i), err)
				return
			}
			mu.Lock()
			taken[i] = true
			mu.Unlock()
		})
	}
	sim.waitStats(t, "some MOs taken", func(st smsc.Stats) bool { return st.MOPartsAcked >= 10 })
	if err := srv.stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}

	mu.Lock()
	takenBeforeExit := len(taken)
	for i := range n {
		got := sim.to(e164(number(i)))
		switch {
		case taken[i] && len(got) != 1:
			t.Errorf("%s: taken, and %d replies before serve exited", number(i), len(got))
		case !taken[i] && len(got) != 0:
			t.Errorf("%s: not taken, and answered:\n%s", number(i), mtList(got))
		}
	}
	mu.Unlock()
	st := sim.Stats()
	t.Logf("%d of %d MOs taken before serve exited; stats %+v", takenBeforeExit, n, st)
	if takenBeforeExit < n && st.MOPartsSent <= st.MOPartsAcked {
		t.Errorf("MOs left over, yet none was refused: %+v", st)
	}

	// The next run gets what the SMSC kept.
	startServe(t, serveConfig{smsc: sim.Addr(), dataDir: srv.dataDir, args: args})
	wg.Wait()
	settle(sim)
	for i := range n {
		wantOnly(t, sim, e164(number(i)), promptEN15)
	}
}

// redisURL is the Redis of these tests; they skip when it does not answer.
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c, err := net.DialTimeout("tcp", opts.Addr, time.Second)
	if err != nil {
		t.Skipf("no Redis at REDIS_URL (%v): skipping", err)
	}
	c.Close()
	return url
}

// redisPrefix is a key prefix of the test's own, whose keys are deleted
// when it ends.
func redisPrefix(t *testing.T, url string) string {
	t.Helper()
	prefix := fmt.Sprintf("rt-e2e-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		opts, _ := redis.ParseURL(url)
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("cleaning up redis keys %s:*: %v", prefix, err)
		}
	})
	return prefix
}

// 9. Two instances share one Redis: a dialogue may hop between them, and
// an MO delivered to both is answered once.
func TestE2ETwoInstancesSharedRedis(t *testing.T) {
	url := redisURL(t)
	subs := []string{historyNumber, "13800138001", "13800138002", "13800138003", "13800138004", "13800138005"}
	history := historyOf(time.Now(), subs...)
	// pair starts two instances with their own data dirs, ingested with the
	// same history and key, sharing a Redis prefix.
	pair := func(t *testing.T, smscA, smscB string) (a, b *serveProc) {
		keyFile := filepath.Join(t.TempDir(), "pseudonym.key")
		args := []string{"--redis-url", url, "--redis-prefix", redisPrefix(t, url)}
		a = startServe(t, serveConfig{smsc: smscA, history: history, keyFile: keyFile, args: args})
		b = startServe(t, serveConfig{smsc: smscB, history: history, keyFile: keyFile, args: args})
		return a, b
	}

	t.Run("request on one, Y on the other", func(t *testing.T) {
		sim1, sim2 := startSim(t, smsc.Options{}), startSim(t, smsc.Options{})
		pair(t, sim1.Addr(), sim2.Addr())
		waitBound(t, sim1, 1)
		waitBound(t, sim2, 1)
		for _, s := range subs[:2] {
			sim1.inject(t, s, "TRIP")
			sim1.waitTo(t, e164(s), 1)
			sim2.inject(t, s, "Y")
			sim2.waitTo(t, e164(s), 1)
		}
		settle(sim1)
		settle(sim2)
		wantOnly(t, sim1, e164(subs[0]), promptEN15)
		wantOnly(t, sim2, e164(subs[0]), tripEN15)
		wantOnly(t, sim1, e164(subs[1]), promptEN15)
		wantOnly(t, sim2, e164(subs[1]), tripEN15)
	})

	t.Run("TD on one reaches the other", func(t *testing.T) {
		sim1, sim2 := startSim(t, smsc.Options{}), startSim(t, smsc.Options{})
		keyFile := filepath.Join(t.TempDir(), "pseudonym.key")
		args := []string{"--redis-url", url, "--redis-prefix", redisPrefix(t, url)}
		startServe(t, serveConfig{smsc: sim1.Addr(), history: history, keyFile: keyFile, args: args})
		b := startServe(t, serveConfig{smsc: sim2.Addr(), history: history, keyFile: keyFile, args: args})
		waitBound(t, sim1, 1)
		waitBound(t, sim2, 1)
		alice1, alice2 := phone{t, sim1, e164(subs[0])}, phone{t, sim2, e164(subs[0])}
		if got := alice1.say("TD"); !strings.HasPrefix(got, "已为您退订") {
			t.Fatalf("TD: %q", got)
		}
		deadline := time.Now().Add(bound)
		for b.metric(t, "roamtrail_consent_events_total", `op="opt-out",outcome="applied"`) < 1 {
			if time.Now().After(deadline) {
				t.Fatal("the other instance never applied the opt-out")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The other instance's copy of the history is gone too.
		if got := alice2.say("CXMYD"); !strings.HasPrefix(got, "您的行程记录未开通或已退订") {
			t.Fatalf("CXMYD to the other instance after TD: %q", got)
		}
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := runCmd(t, history, "ingest", "--data-dir", b.dataDir, "--key-file", keyFile, "-")
		if err != nil {
			t.Fatalf("ingest: %v\n%s", err, stderr)
		}
		if !strings.Contains(out, fmt.Sprintf("%d without consent", historyRows())) {
			t.Errorf("the other instance's ingest kept her events: %s", out)
		}
	})

	t.Run("the same MO to both", func(t *testing.T) {
		sim1, sim2 := startSim(t, smsc.Options{}), startSim(t, smsc.Options{})
		a, b := pair(t, sim1.Addr(), sim2.Addr())
		waitBound(t, sim1, 1)
		waitBound(t, sim2, 1)
		// both delivers the same MO through both instances at once, for
		// every subscriber, and waits for the first answer to each.
		both := func(text string, n int) {
			var wg sync.WaitGroup
			for _, s := range subs {
				wg.Go(func() { sim1.inject(t, s, text) })
				wg.Go(func() { sim2.inject(t, s, text) })
			}
			wg.Wait()
			deadline := time.Now().Add(bound)
			for _, s := range subs {
				for len(sim1.to(e164(s)))+len(sim2.to(e164(s))) < n {
					if time.Now().After(deadline) {
						t.Fatalf("%q to both: no answer to %s; MT on one:\n%s\non the other:\n%s", text, s, mtList(sim1.since(0)), mtList(sim2.since(0)))
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			settle(sim1)
			settle(sim2)
		}
		both("CXMYD", 1)
		both("Y", 2)
		for _, s := range subs {
			if got := append(sim1.to(e164(s)), sim2.to(e164(s))...); len(got) != 2 || got[0].Text != promptZH15 && got[1].Text != promptZH15 ||
				got[0].Text != tripZH15 && got[1].Text != tripZH15 {
				t.Errorf("%s: CXMYD and Y to both instances answered:\n%s", s, mtList(got))
			}
		}
		dups := a.metric(t, "roamtrail_mo_duplicates_total", "") + b.metric(t, "roamtrail_mo_duplicates_total", "")
		if want := float64(2 * len(subs)); dups != want {
			t.Errorf("%v duplicates suppressed, want %v", dups, want)
		}
	})

	t.Run("one SMSC, two ESMEs", func(t *testing.T) {
		sim := startSim(t, smsc.Options{})
		a, b := pair(t, sim.Addr(), sim.Addr())
		waitBound(t, sim, 2)
		for _, s := range subs {
			dialogue(t, sim, s, "TRIP", promptEN15, "Y", tripEN15)
		}
		settle(sim)
		for _, s := range subs {
			wantOnly(t, sim, e164(s), promptEN15, tripEN15)
		}
		t.Logf("MOs taken: %v by one instance, %v by the other",
			a.metric(t, "roamtrail_mo_total", `command="request"`)+a.metric(t, "roamtrail_mo_total", `command="confirm"`),
			b.metric(t, "roamtrail_mo_total", `command="request"`)+b.metric(t, "roamtrail_mo_total", `command="confirm"`))
	})
}

// 10. Without its shared state the gateway takes no MO: the SMSC keeps
// them, and no itinerary goes out without its consent step.
func TestE2ERedisUnavailable(t *testing.T) {
	url := redisURL(t)

	t.Run("at start", func(t *testing.T) {
		sim := startSim(t, smsc.Options{})
		dir := filepath.Join(t.TempDir(), "data")
		if _, stderr, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", dir, "-"); err != nil {
			t.Fatalf("ingest: %v\n%s", err, stderr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		var stderr syncBuffer
		err := run(ctx, []string{"roamtrail", "--log-level", "warn", "serve", "--smsc", sim.Addr(), "--data-dir", dir,
			"--http", "127.0.0.1:0", "--redis-url", "redis://" + freeAddr(t) + "/0"}, strings.NewReader(""), &stderr, &stderr)
		if err == nil || !strings.Contains(err.Error(), "--redis-url") || !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("serve with no Redis returned %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("serve waited for Redis until the test's bound")
		}
		if st := sim.Stats(); st.Binds != 0 {
			t.Errorf("serve bound without its state: %+v", st)
		}
	})

	t.Run("lost while serving", func(t *testing.T) {
		opts, _ := redis.ParseURL(url)
		proxy := startProxy(t, opts.Addr, false)
		proxied := strings.Replace(url, opts.Addr, proxy.Addr(), 1)
		sim := startSim(t, smsc.Options{MaxDeliveryAttempts: 10000, RedeliveryDelay: 50 * time.Millisecond})
		tap := startProxy(t, sim.Addr(), true)
		subs := []string{"13800138001", "13800138002", "13800138003"}
		srv := startServe(t, serveConfig{smsc: tap.Addr(), history: historyOf(time.Now(), subs...),
			args: []string{"--redis-url", proxied, "--redis-prefix", redisPrefix(t, url)}})
		waitBound(t, sim, 1)

		consented, asking, idle := subs[0], subs[1], subs[2]
		sim.inject(t, consented, "TRIP")
		sim.waitTo(t, e164(consented), 1)

		proxy.Down()
		mark, frames, st := sim.mark(), tap.mark(), sim.Stats()
		var wg sync.WaitGroup
		for _, mo := range [][2]string{{consented, "Y"}, {asking, "TRIP"}, {idle, "Y"}} {
			wg.Go(func() { sim.inject(t, mo[0], mo[1]) })
		}
		sim.waitStats(t, "MOs refused and delivered again", func(now smsc.Stats) bool { return now.MORedelivered >= st.MORedelivered+9 })
		if f := tap.waitFrame(t, frames, deliverSMRespID, 0); f.Status != 0x64 {
			t.Errorf("an MO without state answered status 0x%02X, want 0x64", f.Status)
		}
		if got := sim.since(mark); len(got) != 0 {
			t.Fatalf("answered without state:\n%s", mtList(got))
		}
		if got := srv.metric(t, "roamtrail_mo_refused_total", `reason="state"`); got < 3 {
			t.Errorf("roamtrail_mo_refused_total{reason=state} = %v", got)
		}
		if code, text := srv.health(t); code != http.StatusServiceUnavailable || !strings.Contains(text, "shared state") {
			t.Errorf("/healthz with Redis gone: %d %q", code, text)
		}

		proxy.Up()
		wg.Wait()
		sim.waitTo(t, e164(consented), 2)
		sim.waitTo(t, e164(asking), 1)
		sim.waitTo(t, e164(idle), 1)
		settle(sim)
		wantOnly(t, sim, e164(consented), promptEN15, tripEN15)
		wantOnly(t, sim, e164(asking), promptEN15)
		wantOnly(t, sim, e164(idle), nothingEN)
		sim.inject(t, asking, "Y")
		sim.waitTo(t, e164(asking), 2)
		settle(sim)
		wantOnly(t, sim, e164(asking), promptEN15, tripEN15)
	})

	t.Run("lost after an MO was taken", func(t *testing.T) {
		// The job waits for Redis, outlives a SIGTERM in the data dir,
		// and the next run answers it, once.
		opts, _ := redis.ParseURL(url)
		proxy := startProxy(t, opts.Addr, false)
		args := []string{"--redis-url", strings.Replace(url, opts.Addr, proxy.Addr(), 1), "--redis-prefix", redisPrefix(t, url)}
		sim := startSim(t, smsc.Options{})
		srv := startServe(t, serveConfig{smsc: sim.Addr(), args: args})
		waitBound(t, sim, 1)
		// Slow answers: the job's first call to Redis is still out when
		// Redis goes away.
		proxy.setDelay(300 * time.Millisecond)
		sim.inject(t, historyNumber, "TRIP")
		proxy.Down()
		if got := sim.collect(0, quietFor, quietFor); len(got) != 0 {
			t.Fatalf("answered without state:\n%s", mtList(got))
		}
		if err := srv.stop(); err != nil {
			t.Fatalf("serve returned %v", err)
		}
		proxy.setDelay(0)
		proxy.Up()
		startServe(t, serveConfig{smsc: sim.Addr(), dataDir: srv.dataDir, args: args})
		sim.waitTo(t, e164(historyNumber), 1)
		settle(sim)
		wantOnly(t, sim, e164(historyNumber), promptEN15)
		if st := sim.Stats(); st.MOPartsSent != 1 {
			t.Errorf("the MO was delivered %d times; it was taken the first", st.MOPartsSent)
		}
	})
}

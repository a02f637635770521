package smpp_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// A generic_nack to a submit_sm says the SMSC did not take it: it is sent
// again, a few times, and a lasting one is an error.
func TestGenericNackToSubmitRetried(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{Backoff: fastBackoff})
	ctx := testCtx(t)
	sim.NackSubmits(2, 0x03)
	if _, err := s.Submit(ctx, sub("13800138000", "nacked twice")); err != nil {
		t.Fatalf("after two generic_nacks: %v", err)
	}
	if st := sim.Stats(); st.GenericNacksSent != 2 || st.SubmitsAccepted != 1 || st.MTReceived != 1 {
		t.Fatalf("stats %+v", st)
	}
	sim.NackSubmits(3, 0x03)
	var se *smpp.StatusError
	if _, err := s.Submit(ctx, sub("13800138000", "nacked for good")); !errors.As(err, &se) || se.Status != 0x03 {
		t.Fatalf("after three generic_nacks: %v", err)
	}
	if st := sim.Stats(); st.MTReceived != 1 {
		t.Fatalf("a nacked submit was taken: %+v", st)
	}
}

// A part of a long message lost with the link, read by the SMSC or not, is
// sent again on the next bind and the message arrives whole, once.
func TestSubmitPartsLinkLostMidMessage(t *testing.T) {
	for _, taken := range []bool{false, true} {
		t.Run(map[bool]string{false: "part lost unread", true: "part read, resp lost"}[taken], func(t *testing.T) {
			sim := startSim(t, smsc.Options{})
			s := startSession(t, sim.Addr(), smpp.Options{Backoff: fastBackoff})
			ctx := testCtx(t)
			text := strings.Repeat("where have I been? ", 30) // 4 parts
			sim.DropAtPart(2, taken)
			ids, err := s.SubmitParts(ctx, &smpp.Message{Dest: smpp.Address{Addr: "13800138000"}, Text: text})
			if err != nil {
				t.Fatal(err)
			}
			mts := sim.MTs()
			if len(mts) != 1 || mts[0].Text != text || len(ids) != mts[0].Parts {
				t.Fatalf("%d ids; MT %+v", len(ids), mts)
			}
			if st := sim.Stats(); st.SubmitDrops != 1 || st.Binds != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// A part whose resp is late on a live link is not sent again (the SMSC has
// it) and the rest follow.
func TestSubmitPartsLatePart(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	s := startSession(t, sim.Addr(), smpp.Options{ResponseTimeout: 200 * time.Millisecond})
	ctx := testCtx(t)
	text := strings.Repeat("where have I been? ", 20) // 3 parts
	sim.SetResponseDelay(400 * time.Millisecond)
	ids, err := s.SubmitParts(ctx, &smpp.Message{Dest: smpp.Address{Addr: "13800138000"}, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	mts := sim.MTs()
	if len(mts) != 1 || mts[0].Text != text || len(ids) != 3 {
		t.Fatalf("ids %q; MT %+v", ids, mts)
	}
	if st := sim.Stats(); st.SubmitsReceived != 3 {
		t.Fatalf("a late part was sent again: %+v", st)
	}
}

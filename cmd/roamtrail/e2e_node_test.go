package main

import (
	"fmt"
	"strings"
	"testing"
)

// moWith delivers an MO through node-smpp with extra deliver_sm options
// (see smsc.js) and waits for its deliver_sm_resp, which must be OK.
func (p *nodePeer) moWith(from, text string, opts map[string]any) {
	p.t.Helper()
	p.ref++
	ref := p.ref
	cmd := map[string]any{"cmd": "mo", "ref": ref, "from": from, "to": "10086", "text": text}
	for k, v := range opts {
		cmd[k] = v
	}
	p.send(cmd)
	ev := p.expect("mo_resp")
	if num(ev["ref"]) != ref || num(ev["status"]) != 0 {
		p.t.Fatalf("mo %q %v: resp %v", text, opts, ev)
	}
}

// The faults of the simulator's end-to-end tests (receipts, garbage,
// throttling, a dropped connection, SIGTERM), over node-smpp: an SMSC that
// shares no code with ours or go-smpp's encodes them its own way.
func TestE2ENodePeerFaults(t *testing.T) {
	peer := startNodePeer(t)
	srv := startServe(t, serveConfig{smsc: peer.addr, args: []string{"--password", "secret"}})
	peer.expect("bound")
	// Each case texts from a subscriber of its own: the gateway answers
	// help once per subscriber and dialogue step.
	subscriber := 0
	next := func() string { subscriber++; return fmt.Sprintf("1370014%04d", subscriber) }
	ask := func(t *testing.T, from, text string, dc int, want string) {
		t.Helper()
		peer.t = t
		peer.mo(from, text, dc)
		if got := peer.reply(); got != want {
			t.Fatalf("%q answered\n %q\nwant\n %q", text, got, want)
		}
	}
	peer.mo(next(), "HELP", 0)
	helpEN := peer.reply()
	peer.mo(next(), "帮助", 8)
	helpZH := peer.reply()

	t.Run("receipts", func(t *testing.T) {
		peer.t = t
		for _, stat := range []string{"DELIVRD", "UNDELIV"} {
			peer.moWith(historyNumber, "id:node-1 sub:001 dlvrd:001 submit date:2601021504 done date:2601021505 stat:"+stat+" err:000 text:TRIP",
				map[string]any{"esm_class": 4})
		}
		peer.noMore()
		for _, stat := range []string{"DELIVRD", "UNDELIV"} {
			if got := srv.metric(t, "roamtrail_receipts_total", `state="`+stat+`"`); got != 1 {
				t.Errorf("roamtrail_receipts_total{state=%s} = %v, want 1", stat, got)
			}
		}
		if got := srv.metric(t, "roamtrail_mo_total", `command="request"`); got != 0 {
			t.Errorf("a receipt was taken for a request (%v)", got)
		}
	})

	t.Run("binary data coding", func(t *testing.T) {
		peer.t = t
		peer.moWith(next(), "", map[string]any{"dc": 4, "hex": "00ff108059"})
		if got := peer.reply(); got != helpZH {
			t.Fatalf("binary MO answered %q, want the help text", got)
		}
	})
	t.Run("empty text", func(t *testing.T) {
		peer.t = t
		peer.moWith(next(), "", nil)
		if got := peer.reply(); got != helpZH {
			t.Fatalf("empty MO answered %q, want the help text", got)
		}
	})
	t.Run("3000-character message_payload", func(t *testing.T) {
		peer.t = t
		for _, tc := range []struct {
			text string
			dc   int
			want string
		}{
			{strings.Repeat("where was I ", 250), 0, helpEN},
			{strings.Repeat("我去过哪里了", 500), 8, helpZH},
		} {
			peer.moWith(next(), tc.text, map[string]any{"payload": true, "dc": tc.dc})
			if got := peer.reply(); got != tc.want {
				t.Fatalf("a %d-character message_payload answered %q", len([]rune(tc.text)), got)
			}
		}
	})
	t.Run("sender not a number", func(t *testing.T) {
		peer.t = t
		peer.moWith("ABC", "TRIP", map[string]any{"ton": 5, "npi": 0})
		peer.noMore()
		if got := srv.metric(t, "roamtrail_replies_total", `outcome="bad_sender"`); got != 1 {
			t.Errorf("roamtrail_replies_total{outcome=bad_sender} = %v, want 1", got)
		}
	})

	t.Run("throttled", func(t *testing.T) {
		// node-smpp answers ESME_RTHROTTLED twice; the reply comes once.
		peer.t = t
		s := next()
		peer.send(map[string]any{"cmd": "throttle", "n": 2})
		peer.expect("throttle")
		peer.mo(s, "TRIP", 0)
		peer.expect("throttled")
		peer.expect("throttled")
		if got := peer.reply(); got != promptEN15 {
			t.Fatalf("TRIP answered %q after throttling", got)
		}
		peer.noMore()
	})

	t.Run("dropped connection", func(t *testing.T) {
		// The SMSC drops the link mid-dialogue, with no unbind: the gateway
		// binds again and the dialogue goes on.
		ask(t, historyNumber, "TRIP", 0, promptEN15)
		peer.send(map[string]any{"cmd": "drop"})
		peer.expect("closed")
		peer.expect("bound")
		ask(t, historyNumber, "Y", 0, tripEN15)
		peer.noMore()
	})

	t.Run("SIGTERM", func(t *testing.T) {
		peer.t = t
		ask(t, historyNumber, "CXMYD", 0, promptZH15)
		if err := srv.stop(); err != nil {
			t.Fatalf("serve returned %v on SIGTERM", err)
		}
		peer.expect("unbind")
		peer.noMore()
	})
}

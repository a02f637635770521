package smpp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// nodePeer runs smsgw/testdata/peer/smsc.js: an SMSC built on node-smpp,
// which shares no code with go-smpp, so codec bugs common to our session
// and our simulator cannot hide.
type nodePeer struct {
	t      *testing.T
	addr   string
	stdin  io.WriteCloser
	events chan map[string]any
	mu     sync.Mutex
	ref    int
}

func startNodePeer(t *testing.T) *nodePeer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: skipping the node-smpp conformance test")
	}
	dir, _ := filepath.Abs(filepath.Join("..", "testdata", "peer"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smpp", "package.json")); err != nil {
		t.Skipf("node-smpp not installed: run `npm ci --prefix smsgw/testdata/peer` to enable this test")
	}
	cmd := exec.Command(node, filepath.Join(dir, "smsc.js"), "0", "roamtrail", "secret")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodePeer{t: t, stdin: stdin, events: make(chan map[string]any, 1000)}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if port, ok := strings.CutPrefix(line, "listening "); ok {
				listening <- port
				continue
			}
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) == nil {
				p.events <- ev
			}
		}
		close(p.events)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	select {
	case port := <-listening:
		p.addr = "127.0.0.1:" + port
	case <-time.After(bound):
		t.Fatal("node peer did not start")
	}
	return p
}

func (p *nodePeer) send(cmd map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatal(err)
	}
}

// expect returns the next event named name, skipping others.
func (p *nodePeer) expect(name string) map[string]any {
	p.t.Helper()
	deadline := time.After(bound)
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				p.t.Fatalf("node peer exited waiting for %s", name)
			}
			if ev["event"] == name {
				return ev
			}
			if ev["event"] == "error" {
				p.t.Fatalf("node peer: %v", ev)
			}
		case <-deadline:
			p.t.Fatalf("no %s event from node peer", name)
		}
	}
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func TestNodePeerConformance(t *testing.T) {
	checkGoroutines(t)
	peer := startNodePeer(t)
	in := newInbox()
	s := startSession(t, peer.addr, smpp.Options{Handler: in.handler(smpp.StatusOK), Backoff: fastBackoff})
	peer.expect("bound")
	ctx := testCtx(t)
	to := smpp.Address{Addr: "13800138000", TON: 1, NPI: 1}
	from := smpp.Address{Addr: "10086", TON: 3}

	t.Run("MT GSM and UCS-2 decoded by node-smpp", func(t *testing.T) {
		for _, text := range []string{"Hello [roamtrail] 20€ @home", "北京明天晴，18°C 😀"} {
			ids, err := s.SubmitParts(ctx, &smpp.Message{Source: from, Dest: to, Text: text})
			if err != nil {
				t.Fatal(err)
			}
			ev := peer.expect("mt")
			dc, _ := smstext.Encode(text)
			if ev["text"] != text || num(ev["dc"]) != int(dc) || ev["id"] != ids[0] || ev["udh"] != nil {
				t.Fatalf("node saw %v for %q (ids %v)", ev, text, ids)
			}
		}
	})

	t.Run("MT concatenated with UDH and SAR", func(t *testing.T) {
		text := strings.Repeat("Lhasa by train {day 2}. ", 10)
		for _, carriage := range []smpp.Carriage{smpp.CarriageUDH, smpp.CarriageSAR} {
			ids, err := s.SubmitParts(ctx, &smpp.Message{Source: from, Dest: to, Text: text, Carriage: carriage})
			if err != nil || len(ids) < 2 {
				t.Fatalf("ids %v, %v", ids, err)
			}
			var got strings.Builder
			for i := range ids {
				ev := peer.expect("mt")
				if carriage == smpp.CarriageUDH {
					udh, _ := ev["udh"].(string)
					if !strings.HasPrefix(udh, "0003") || !strings.HasSuffix(udh, fmt.Sprintf("%02x%02x", len(ids), i+1)) {
						t.Fatalf("part %d UDH %v", i+1, ev["udh"])
					}
				} else {
					sar, _ := ev["sar"].([]any)
					if len(sar) != 3 || num(sar[1]) != len(ids) || num(sar[2]) != i+1 {
						t.Fatalf("part %d SAR %v", i+1, ev["sar"])
					}
				}
				got.WriteString(ev["text"].(string))
			}
			if got.String() != text {
				t.Fatalf("node joined %q", got.String())
			}
		}
	})

	t.Run("MO GSM, UCS-2 and UDH from node-smpp", func(t *testing.T) {
		n := in.len()
		peer.send(map[string]any{"cmd": "mo", "from": "13900139000", "to": "10086", "text": "TQ beijing @ 5€", "dc": 0})
		peer.send(map[string]any{"cmd": "mo", "from": "13900139000", "to": "10086", "text": "北京天气", "dc": 8})
		peer.send(map[string]any{"cmd": "mo", "from": "13900139000", "to": "10086", "text": "第二部分", "dc": 8, "udh": "0500030a0202"})
		peer.send(map[string]any{"cmd": "mo", "from": "13900139000", "to": "10086", "text": "第一部分，", "dc": 8, "udh": "0500030a0201"})
		for range 4 {
			if ev := peer.expect("mo_resp"); num(ev["status"]) != 0 {
				t.Fatalf("mo_resp %v", ev)
			}
		}
		// Workers run handlers concurrently: compare as a set.
		got := map[string]int{}
		for _, d := range in.wait(t, n+3)[n:] {
			got[d.Text] = d.Parts
		}
		want := map[string]int{"TQ beijing @ 5€": 1, "北京天气": 1, "第一部分，第二部分": 2}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})

	t.Run("deliver_sm with our outstanding submit's sequence number", func(t *testing.T) {
		n := in.len()
		peer.send(map[string]any{"cmd": "hold", "on": true})
		peer.expect("hold")
		res := make(chan error, 1)
		var id string
		go func() {
			var err error
			id, err = s.Submit(ctx, sub("13800138000", "collide"))
			res <- err
		}()
		mt := peer.expect("mt")
		peer.send(map[string]any{"cmd": "mo", "from": "13900139000", "to": "10086", "text": "same seq", "seq": num(mt["seq"])})
		if ev := peer.expect("mo_resp"); num(ev["status"]) != 0 || num(ev["seq"]) != num(mt["seq"]) {
			t.Fatalf("mo_resp %v for seq %v", ev, mt["seq"])
		}
		if got := in.wait(t, n+1)[n]; got.Text != "same seq" {
			t.Fatalf("MO %q", got.Text)
		}
		peer.send(map[string]any{"cmd": "hold", "on": false})
		if err := <-res; err != nil || id != mt["id"] {
			t.Fatalf("submit id %q err %v, want %v", id, err, mt["id"])
		}
	})

	t.Run("enquire_link and unknown command", func(t *testing.T) {
		peer.send(map[string]any{"cmd": "enquire"})
		if ev := peer.expect("enquire_link_resp"); num(ev["status"]) != 0 {
			t.Fatalf("%v", ev)
		}
		peer.send(map[string]any{"cmd": "unknown"})
		if ev := peer.expect("generic_nack"); num(ev["status"]) != 3 || num(ev["seq"]) != 4242 {
			t.Fatalf("%v", ev)
		}
	})

	t.Run("unbind from SMSC, rebind", func(t *testing.T) {
		peer.send(map[string]any{"cmd": "unbind"})
		peer.expect("unbind_resp")
		peer.expect("bound")
		if _, err := s.Submit(ctx, sub("13800138000", "after rebind")); err != nil {
			t.Fatal(err)
		}
		peer.expect("mt")
	})

	t.Run("shutdown unbinds", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		peer.expect("unbind")
		if _, err := s.Submit(ctx, sub("1", "x")); !errors.Is(err, smpp.ErrClosed) {
			t.Fatalf("after shutdown: %v", err)
		}
	})
}

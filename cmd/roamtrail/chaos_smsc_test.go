package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/smsgw/smstext"
)

// Fault tests of the SMSC side (issue 5): `roamtrail serve` in-process over
// real TCP while a crowd of subscribers is mid-dialogue and the SMSC
// misbehaves: drops the link in the middle of a long reply, goes silent
// (half-open TCP), answers late, answers generic_nack, restarts. Each
// checks what subscribers see: every long reply whole and once, nothing
// twice, and the gateway back to normal by itself once the fault stops.
// `make chaos` (ROAMTRAIL_CHAOS=full) runs them with more subscribers and
// rounds than `make test`.

// chaosFull reports whether the fault tests run at full length.
func chaosFull() bool { return os.Getenv("ROAMTRAIL_CHAOS") == "full" }

// chaosSize is short in `make test`, full in `make chaos`.
func chaosSize(short, full int) int {
	if chaosFull() {
		return full
	}
	return short
}

// chaosSMSC is the simulator, restartable on the same address, with one
// MT log across restarts and handsets that keep the parts of a long
// message across them.
type chaosSMSC struct {
	t    *testing.T
	log  *simHarness // its MT log; its Server is unused
	opts smsc.Options
	addr string

	mu      sync.Mutex
	cur     *smsc.Server
	done    chan struct{} // closed when cur's Serve returned
	changed chan struct{} // closed and replaced on each restart
}

func startChaosSMSC(t *testing.T, opts smsc.Options) *chaosSMSC {
	t.Helper()
	c := &chaosSMSC{t: t, log: &simHarness{more: make(chan struct{})}, changed: make(chan struct{})}
	opts.Handsets = smstext.NewReassembler(smstext.ReassemblerOptions{})
	opts.OnMT = func(mt smsc.MT) {
		h := c.log
		h.mu.Lock()
		h.mts = append(h.mts, mt)
		close(h.more)
		h.more = make(chan struct{})
		h.mu.Unlock()
	}
	c.opts = opts
	c.listen("127.0.0.1:0")
	t.Cleanup(func() { c.stop(false) })
	return c
}

func (c *chaosSMSC) listen(addr string) {
	var srv *smsc.Server
	var err error
	// The old listener's port is free once it closed; a moment's retry
	// covers the kernel's bookkeeping.
	for try := 0; ; try++ {
		if srv, err = smsc.Listen(addr, c.opts); err == nil || try == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("SMSC listen on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(context.Background()) }()
	c.mu.Lock()
	c.cur, c.done, c.addr = srv, done, srv.Addr()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *chaosSMSC) Addr() string { return c.addr }

// sim is the simulator running now and a channel closed when it is
// replaced.
func (c *chaosSMSC) sim() (*smsc.Server, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.changed
}

// stop ends the running simulator: with graceful, unbind first.
func (c *chaosSMSC) stop(graceful bool) {
	c.mu.Lock()
	srv, done := c.cur, c.done
	c.mu.Unlock()
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
	srv.Close()
	<-done
}

// restart stops the simulator and starts a new one on the same address.
func (c *chaosSMSC) restart(graceful bool) {
	c.stop(graceful)
	c.listen(c.addr)
}

// inject delivers an MO until an SMSC has it acknowledged, as an SMSC
// keeps a message until it is: across refusals, dead links and restarts.
func (c *chaosSMSC) inject(t *testing.T, from, text string) {
	t.Helper()
	deadline := time.Now().Add(4 * bound)
	for {
		srv, changed := c.sim()
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		err := srv.InjectMO(ctx, from, "10086", text)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("MO %q from %s never acknowledged: %v", text, from, err)
			return
		}
		if errors.Is(err, smsc.ErrClosed) {
			select { // the SMSC went away: its successor has the message
			case <-changed:
			case <-time.After(bound):
			}
		}
	}
}

// waitBound waits until the running simulator has n binds.
func (c *chaosSMSC) waitBound(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * bound)
	for {
		srv, _ := c.sim()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := srv.WaitBound(ctx, n)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bind: %v", err)
		}
	}
}

// blackhole is a TCP proxy that can make the links through it half-open:
// whatever either side sends is swallowed and nothing is closed, as when a
// firewall or NAT forgets a flow. Connections made afterwards pass.
type blackhole struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	flows map[*flow]struct{}
	wg    sync.WaitGroup
}

type flow struct {
	down, up net.Conn
	mu       sync.Mutex
	dead     bool // swallowing
}

func startBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target, flows: map[*flow]struct{}{}}
	b.wg.Go(b.accept)
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for f := range b.flows {
			f.down.Close()
			f.up.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackhole) Addr() string { return b.ln.Addr().String() }

func (b *blackhole) accept() {
	for {
		down, err := b.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", b.target)
		if err != nil {
			down.Close()
			continue
		}
		f := &flow{down: down, up: up}
		b.mu.Lock()
		b.flows[f] = struct{}{}
		b.mu.Unlock()
		end := func() {
			// The gateway gave the link up: the SMSC is told too, as its
			// own enquire_link would tell it (not modelled here).
			down.Close()
			up.Close()
			b.mu.Lock()
			delete(b.flows, f)
			b.mu.Unlock()
		}
		b.wg.Go(func() { f.pipe(up, down); end() })
		b.wg.Go(func() { f.pipe(down, up); end() })
	}
}

// pipe copies src to dst until src ends, dropping what it reads while
// the flow is dead.
func (f *flow) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			dead := f.dead
			f.mu.Unlock()
			if !dead {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// silence makes every current flow half-open and reports how many.
func (b *blackhole) silence() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for f := range b.flows {
		f.mu.Lock()
		f.dead = true
		f.mu.Unlock()
	}
	return len(b.flows)
}

// live counts the flows that still pass data.
func (b *blackhole) live() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for f := range b.flows {
		f.mu.Lock()
		if !f.dead {
			n++
		}
		f.mu.Unlock()
	}
	return n
}

// crowd is many subscribers with the same long history: TRIP 30 answers
// each with a prompt and then a 30-day itinerary in several parts.
type crowd struct {
	subs   []string
	prompt string // the prompt to TRIP 30
	trip   string // the itinerary after Y
}

func newCrowd(t *testing.T, n int) (*crowd, string) {
	t.Helper()
	const ref = "13700137000"
	csv, _ := longHistory(t, time.Now(), ref)
	header, rows, _ := strings.Cut(csv, "\n")
	var b strings.Builder
	b.WriteString(header + "\n" + rows)
	c := &crowd{prompt: promptEN30}
	for i := range n {
		s := fmt.Sprintf("1370014%04d", i)
		c.subs = append(c.subs, s)
		b.WriteString(strings.ReplaceAll(rows, ref, s))
	}
	return c, b.String()
}

// learn runs one clean dialogue for the crowd's first subscriber to learn
// the itinerary every one of them gets, and checks it is a long one.
func (c *crowd) learn(t *testing.T, sm *chaosSMSC) {
	t.Helper()
	s := c.subs[0]
	sm.inject(t, s, "TRIP 30")
	if got := sm.log.waitTo(t, e164(s), 1); got[0].Text != c.prompt {
		t.Fatalf("TRIP 30 answered %q", got[0].Text)
	}
	sm.inject(t, s, "Y")
	mt := sm.log.waitTo(t, e164(s), 2)[1]
	if mt.Parts < 2 {
		t.Fatalf("the itinerary came in %d part; the test needs a long one: %q", mt.Parts, mt.Text)
	}
	c.trip = mt.Text
	t.Logf("the itinerary: %d parts", mt.Parts)
}

// promptWait is how long a subscriber waits for the prompt before
// confirming anyway: a prompt written into a dying link may be lost for
// good (its outcome is unknown and it is never sent blindly again), and
// the pending request it announced is there all the same.
const promptWait = 15 * time.Second

// talk runs rounds of TRIP 30, prompt, Y, itinerary for every subscriber at
// once, at least min rounds each and on until done is closed. It returns
// when every itinerary came, or fails the test, with the rounds each
// subscriber ran.
func (c *crowd) talk(t *testing.T, sm *chaosSMSC, min int, done <-chan struct{}) map[string]int {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		rounds = map[string]int{}
	)
	for _, s := range c.subs {
		wg.Go(func() {
			for r := 0; ; r++ {
				select {
				case <-done:
					if r >= min {
						return
					}
				default:
				}
				n := len(sm.log.to(e164(s)))
				sm.inject(t, s, "TRIP 30")
				deadline := time.Now().Add(promptWait)
				for len(sm.log.to(e164(s))) == n && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				sm.inject(t, s, "Y")
				time.Sleep(100 * time.Millisecond) // a subscriber reads; the machine breathes
				mu.Lock()
				rounds[s]++
				mu.Unlock()
				deadline = time.Now().Add(6 * bound)
				for {
					got := sm.log.to(e164(s))
					if len(got) > n && got[len(got)-1].Text == c.trip {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("%s: no itinerary; MT so far:\n%s", s, mtList(got))
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return rounds
}

// check verifies what each subscriber got: per round a prompt (missing
// only where the gateway counted a reply of unknown outcome) and then the
// itinerary, whole and once; nothing else, nothing twice. It returns the
// prompts missing.
func (c *crowd) check(t *testing.T, sm *chaosSMSC, srv *serveProc, rounds map[string]int) int {
	t.Helper()
	settle(sm.log)
	missing := 0
	for _, s := range c.subs {
		var texts []string
		for _, mt := range sm.log.to(e164(s)) {
			texts = append(texts, mt.Text)
		}
		want := rounds[s]
		trips, prompts := 0, 0
		ok := true
		for j, text := range texts {
			switch {
			case text == c.prompt:
				prompts++
				if j+1 < len(texts) && texts[j+1] != c.trip {
					ok = false // two prompts in a row: one twice
				}
			case text == c.trip:
				trips++
			default:
				ok = false
			}
		}
		if !ok || trips != want || prompts > want {
			t.Errorf("%s: want %d rounds of prompt and itinerary, got:\n%s", s, want, mtList(sm.log.to(e164(s))))
		}
		missing += want - prompts
	}
	if unknown := srv.metric(t, "roamtrail_replies_total", `outcome="unknown"`); float64(missing) > unknown {
		t.Errorf("%d prompts missing, and only %v replies of unknown outcome", missing, unknown)
	}
	return missing
}

// chaosServe starts serve on a crowd's history with short link timers.
func chaosServe(t *testing.T, addr, history string, args ...string) *serveProc {
	t.Helper()
	args = append([]string{"--daily-limit", "1000", "--enquire-link", "500ms", "--enquire-link-timeout", "1s"}, args...)
	return startServe(t, serveConfig{smsc: addr, history: history, args: args})
}

// chaosRun is the common frame: the crowd talks, min rounds each and on
// while fault runs; then, the fault over, every subscriber has one more
// clean dialogue.
func chaosRun(t *testing.T, sm *chaosSMSC, srv *serveProc, cr *crowd, min int, fault func()) {
	t.Helper()
	cr.learn(t, sm)
	done := make(chan struct{})
	go func() { defer close(done); fault() }()
	rounds := cr.talk(t, sm, min, done)
	<-done
	if t.Failed() {
		return
	}
	rounds[cr.subs[0]]++ // learn's dialogue
	// Recovered by itself: bound, and a clean round answers everyone.
	sm.waitBound(t, 1)
	missing := cr.check(t, sm, srv, rounds)
	for s, n := range cr.talk(t, sm, 1, done) {
		rounds[s] += n
	}
	if got := cr.check(t, sm, srv, rounds); got != missing {
		t.Errorf("after the fault, %d more prompts missing", got-missing)
	}
	if got := srv.metric(t, "roamtrail_replies_total", `outcome="partial"`); got != 0 {
		t.Errorf("%v long replies sent in part", got)
	}
	total := 0
	for _, n := range rounds {
		total += n
	}
	t.Logf("%d subscribers, %d dialogues: %d prompts lost with the link (outcome unknown %v); replies resent on redelivery %v; parts sent again %v; submits retried after generic_nack %v",
		len(cr.subs), total, missing, srv.metric(t, "roamtrail_replies_total", `outcome="unknown"`),
		srv.metric(t, "roamtrail_replies_total", `outcome="resent"`),
		srv.metric(t, "roamtrail_smpp_submits_total", `result="part_resent",session="smsc"`),
		srv.metric(t, "roamtrail_smpp_submits_total", `result="retry_0x03",session="smsc"`))
}

// chaosSimOpts: MOs are kept and redelivered for as long as it takes, and
// an unanswered deliver_sm is given up on after 2 s.
func chaosSimOpts() smsc.Options {
	return smsc.Options{MaxDeliveryAttempts: 1 << 20, RedeliveryDelay: 100 * time.Millisecond, ResponseTimeout: 2 * time.Second}
}

// 1. The SMSC drops the link in the middle of a long reply: at its second
// or third part, having read it or not. The part is sent again on the new
// bind and the rest follow.
func TestChaosDropMidReply(t *testing.T) {
	cr, history := newCrowd(t, chaosSize(12, 40))
	sm := startChaosSMSC(t, chaosSimOpts())
	srv := chaosServe(t, sm.Addr(), history)
	sm.waitBound(t, 1)
	drops := chaosSize(3, 5)
	chaosRun(t, sm, srv, cr, chaosSize(1, 3), func() {
		sim, _ := sm.sim()
		for i := range drops {
			before := sim.Stats().SubmitDrops
			sim.DropAtPart(2+i%2, i%2 == 0)
			deadline := time.Now().Add(bound)
			for sim.Stats().SubmitDrops == before {
				if time.Now().After(deadline) {
					t.Errorf("drop %d never happened", i+1)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			sm.waitBound(t, 1)
		}
	})
	if got := srv.metric(t, "roamtrail_smpp_submits_total", `result="part_resent",session="smsc"`); got < 1 {
		t.Errorf("no part was sent again")
	}
}

// 2. The SMSC stops answering: the link goes half-open (the proxy swallows
// everything both ways and closes nothing). The gateway sees it by its
// enquire_link and rebinds; MOs whose resp was swallowed come again, and
// with --resend-lost their replies, swallowed with them, are sent again.
func TestChaosHalfOpen(t *testing.T) {
	cr, history := newCrowd(t, chaosSize(12, 40))
	sm := startChaosSMSC(t, chaosSimOpts())
	hole := startBlackhole(t, sm.Addr())
	srv := chaosServe(t, hole.Addr(), history, "--resend-lost")
	sm.waitBound(t, 1)
	silences := chaosSize(2, 5)
	chaosRun(t, sm, srv, cr, chaosSize(1, 3), func() {
		sim, _ := sm.sim()
		for range silences {
			time.Sleep(300 * time.Millisecond) // traffic flows
			binds := sim.Stats().Binds
			if hole.silence() == 0 {
				t.Errorf("no link to silence")
				return
			}
			// The gateway gives the silent link up and binds anew.
			deadline := time.Now().Add(bound)
			for sim.Stats().Binds == binds || hole.live() == 0 {
				if time.Now().After(deadline) {
					t.Errorf("the gateway never rebound after the link went silent")
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	if got := srv.metric(t, "roamtrail_smpp_reconnects_total", `link="trx",session="smsc"`); got < float64(silences) {
		t.Errorf("%v reconnects after %d silences", got, silences)
	}
}

// 3. The SMSC answers every submit_sm late, near the gateway's response
// timeout (1.2 s of 1.5 s): slow, and nothing lost or sent twice. A resp
// that comes later still (a busy machine) makes a reply's outcome unknown
// (the SMSC has it: not sent again) or, for a part, lets the rest follow.
func TestChaosSlowSMSC(t *testing.T) {
	cr, history := newCrowd(t, chaosSize(8, 30))
	sm := startChaosSMSC(t, chaosSimOpts())
	srv := chaosServe(t, sm.Addr(), history, "--response-timeout", "1500ms")
	sm.waitBound(t, 1)
	chaosRun(t, sm, srv, cr, 1, func() {
		sim, _ := sm.sim()
		sim.SetResponseDelay(1200 * time.Millisecond)
		time.Sleep(time.Duration(chaosSize(5, 60)) * time.Second)
		sim.SetResponseDelay(0)
	})
	t.Logf("%v resps came after the timeout", srv.metric(t, "roamtrail_smpp_stray_responses_total", `session="smsc"`))
}

// 4. The SMSC answers submit_sm with generic_nack, two at a time: each
// nacked part or reply is sent again and arrives once.
func TestChaosGenericNack(t *testing.T) {
	cr, history := newCrowd(t, chaosSize(12, 40))
	sm := startChaosSMSC(t, chaosSimOpts())
	srv := chaosServe(t, sm.Addr(), history)
	sm.waitBound(t, 1)
	bursts := chaosSize(2, 10)
	chaosRun(t, sm, srv, cr, chaosSize(1, 3), func() {
		sim, _ := sm.sim()
		for range bursts {
			// Two nacks at most for any one submit (it tries three times):
			// the next burst waits until the last one's retries are over.
			sent := sim.Stats().GenericNacksSent
			sim.NackSubmits(2, 0x03)
			deadline := time.Now().Add(bound)
			for sim.Stats().GenericNacksSent < sent+2 {
				if time.Now().After(deadline) {
					t.Errorf("the nacks were never sent")
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
		}
	})
	if got := srv.metric(t, "roamtrail_smpp_submits_total", `result="retry_0x03",session="smsc"`); got != float64(2*bursts) {
		t.Errorf("%v submits retried after generic_nack, want %d", got, 2*bursts)
	}
}

// 5. The SMSC restarts: it goes away (unbinding first, or at once as in a
// crash) and a new one listens on the same address. MOs it had not had
// acknowledged are delivered by its successor.
func TestChaosSMSCRestart(t *testing.T) {
	cr, history := newCrowd(t, chaosSize(12, 40))
	sm := startChaosSMSC(t, chaosSimOpts())
	srv := chaosServe(t, sm.Addr(), history)
	sm.waitBound(t, 1)
	restarts := chaosSize(2, 5)
	chaosRun(t, sm, srv, cr, chaosSize(1, 3), func() {
		for i := range restarts {
			time.Sleep(500 * time.Millisecond) // traffic flows
			sm.restart(i%2 == 0)
			sm.waitBound(t, 1)
		}
	})
}

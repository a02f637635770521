package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// The pieces of an end-to-end test: the SMSC simulator with a log of the MT
// it took (simHarness), `roamtrail serve` run in-process (serveProc), a TCP
// proxy that can fail and can watch the SMPP frames an ESME sends
// (tcpProxy), and the independent node-smpp SMSC (nodePeer). Timeouts here
// are failure bounds, never expectations of speed.

const (
	bound    = 30 * time.Second // the most any one step may take
	quietFor = 2 * time.Second  // no further MT for this long: none is coming
)

// simHarness is the SMSC simulator on loopback with every MT it took.
type simHarness struct {
	*smsc.Server

	mu   sync.Mutex
	mts  []smsc.MT
	more chan struct{} // closed and replaced on each MT
}

func startSim(t *testing.T, opts smsc.Options) *simHarness {
	t.Helper()
	h := &simHarness{more: make(chan struct{})}
	opts.OnMT = func(mt smsc.MT) {
		h.mu.Lock()
		h.mts = append(h.mts, mt)
		close(h.more)
		h.more = make(chan struct{})
		h.mu.Unlock()
	}
	var err error
	if h.Server, err = smsc.Listen("127.0.0.1:0", opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.Serve(ctx) })
	t.Cleanup(func() { h.Close(); cancel(); wg.Wait() })
	return h
}

// mark is the number of MT so far: since(mark) is what came after it.
func (h *simHarness) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.mts)
}

func (h *simHarness) since(mark int) []smsc.MT {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]smsc.MT(nil), h.mts[mark:]...)
}

// to is every MT to number so far.
func (h *simHarness) to(number string) []smsc.MT {
	var out []smsc.MT
	for _, mt := range h.since(0) {
		if mt.To == number {
			out = append(out, mt)
		}
	}
	return out
}

// collect waits up to first for an MT after mark, then for more until none
// came for quiet, and returns them all.
func (h *simHarness) collect(mark int, first, quiet time.Duration) []smsc.MT {
	wait := time.NewTimer(first)
	defer wait.Stop()
	seen := mark
	for {
		h.mu.Lock()
		n, ch := len(h.mts), h.more
		h.mu.Unlock()
		if n > seen {
			seen = n
			wait.Reset(quiet)
		}
		select {
		case <-ch:
		case <-wait.C:
			return h.since(mark)
		}
	}
}

// waitFor waits until ok holds for the MT log, failing the test after bound.
func (h *simHarness) waitFor(t testing.TB, what string, ok func(all []smsc.MT) bool) []smsc.MT {
	t.Helper()
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ch := h.more
		h.mu.Unlock()
		if all := h.since(0); ok(all) {
			return all
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waiting for %s; MT so far:\n%s", what, mtList(h.since(0)))
		}
	}
}

// waitTo waits until number has had n MT in all and returns them.
func (h *simHarness) waitTo(t testing.TB, number string, n int) []smsc.MT {
	t.Helper()
	h.waitFor(t, fmt.Sprintf("%d MT to %s", n, number), func([]smsc.MT) bool { return len(h.to(number)) >= n })
	return h.to(number)
}

// inject delivers an MO and fails the test unless the gateway took it.
func (h *simHarness) inject(t testing.TB, from, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := h.InjectMO(ctx, from, "10086", text); err != nil {
		t.Fatalf("inject %q from %s: %v", text, from, err)
	}
}

// waitStats waits until ok holds for the simulator's counters.
func (h *simHarness) waitStats(t testing.TB, what string, ok func(smsc.Stats) bool) smsc.Stats {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		st := h.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; stats %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mtList(mts []smsc.MT) string {
	var b strings.Builder
	for _, mt := range mts {
		fmt.Fprintf(&b, "  %s -> %s (%d parts): %q\n", mt.From, mt.To, mt.Parts, mt.Text)
	}
	return b.String()
}

// serveConfig says how to run serve.
type serveConfig struct {
	smsc    string // HOST:PORT of the SMSC; required
	dataDir string // default: a new one, ingested with history
	history string // default: historyCSV(now)
	keyFile string // --key-file for ingest and serve; default none
	args    []string
}

// serveProc is `roamtrail serve` running in-process, as main runs it:
// cancelling its context is SIGTERM.
type serveProc struct {
	t        *testing.T
	dataDir  string
	httpAddr string
	stderr   *syncBuffer
	cancel   context.CancelFunc
	done     chan error

	once sync.Once
	err  error
}

func startServe(t *testing.T, cfg serveConfig) *serveProc {
	t.Helper()
	p := &serveProc{t: t, dataDir: cfg.dataDir, stderr: &syncBuffer{}, done: make(chan error, 1)}
	var keyArgs []string
	if cfg.keyFile != "" {
		keyArgs = []string{"--key-file", cfg.keyFile}
	}
	if p.dataDir == "" {
		p.dataDir = filepath.Join(t.TempDir(), "data")
		history := cfg.history
		if history == "" {
			history = historyCSV(time.Now())
		}
		args := append([]string{"ingest", "--data-dir", p.dataDir}, keyArgs...)
		if _, stderr, err := runCmd(t, history, append(args, "-")...); err != nil {
			t.Fatalf("ingest: %v\n%s", err, stderr)
		}
	}
	p.httpAddr = freeAddr(t)
	args := []string{"roamtrail", "--log-level", "warn", "serve", "--smsc", cfg.smsc, "--data-dir", p.dataDir, "--http", p.httpAddr}
	args = append(append(args, keyArgs...), cfg.args...)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- run(ctx, args, strings.NewReader(""), io.Discard, p.stderr) }()
	p.waitHTTP(t)
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("serve exited with %v", err)
		}
		if t.Failed() {
			t.Logf("serve stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// waitHTTP waits until serve answers on --http: then it has parsed its
// flags and started. The next command may start only then, since
// urfave/cli's help flag is a global that parsing writes.
func (p *serveProc) waitHTTP(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		resp, err := http.Get("http://" + p.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-p.done:
			p.done <- err // for stop
			t.Fatalf("serve exited at start: %v\n%s", err, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never answered on --http\n%s", p.stderr.String())
		}
	}
}

// stop is SIGTERM: it returns serve's result. Safe to call again.
func (p *serveProc) stop() error {
	p.once.Do(func() {
		p.cancel()
		select {
		case p.err = <-p.done:
		case <-time.After(40*time.Second + bound):
			p.err = errors.New("serve did not exit after SIGTERM")
		}
	})
	return p.err
}

// metric reads one sample of /metrics: name with labels exactly as
// Prometheus prints them (`outcome="help"`), 0 when absent.
func (p *serveProc) metric(t testing.TB, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %s: %v", want, err)
			}
			return f
		}
	}
	return 0
}

// freeAddr is a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitBound(t *testing.T, sim *simHarness, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := sim.WaitBound(ctx, n); err != nil {
		t.Fatalf("%d binds never came: %v", n, err)
	}
}

// smppFrame is the header of one PDU a proxy saw.
type smppFrame struct {
	ID, Status, Seq uint32
}

// tcpProxy forwards loopback connections to target. Down cuts every
// connection and then closes new ones at once, as a network failure does;
// Up ends that. With watch set it records the header of every SMPP PDU the
// client sends.
type tcpProxy struct {
	ln     net.Listener
	target string
	watch  bool

	mu     sync.Mutex
	down   bool
	lose   uint32        // the next PDU with this command id from the client is lost with the connection
	delay  time.Duration // added to every answer from the target
	conns  map[net.Conn]struct{}
	frames []smppFrame
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string, watch bool) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, watch: watch, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Go(func() {
			p.copyDelayed(c, up)
			p.untrack(c, up)
		})
		p.wg.Go(func() {
			if p.watch {
				p.copyFrames(up, c)
			} else {
				io.Copy(up, c)
			}
			p.untrack(c, up)
		})
	}
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// copyDelayed forwards src to dst, each read held back by the delay.
func (p *tcpProxy) copyDelayed(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := p.delay
			p.mu.Unlock()
			time.Sleep(d)
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// setDelay makes every answer from the target late by d.
func (p *tcpProxy) setDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// copyFrames forwards SMPP PDUs from src to dst, recording their headers.
func (p *tcpProxy) copyFrames(dst, src net.Conn) {
	br := bufio.NewReader(src)
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:])
		if n < 16 || n > 1<<20 {
			return
		}
		body := make([]byte, n-16)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		f := smppFrame{ID: binary.BigEndian.Uint32(hdr[4:]), Status: binary.BigEndian.Uint32(hdr[8:]), Seq: binary.BigEndian.Uint32(hdr[12:])}
		p.mu.Lock()
		p.frames = append(p.frames, f)
		lose := p.lose != 0 && p.lose == f.ID
		if lose {
			p.lose = 0
		}
		p.mu.Unlock()
		if lose {
			return // and the caller closes both ends
		}
		if _, err := dst.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

// mark is the number of PDUs seen so far, for waitFrame.
func (p *tcpProxy) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.frames)
}

// waitFrame waits for a PDU from the client, after mark, with command id
// and sequence number seq (any sequence number when seq is 0).
func (p *tcpProxy) waitFrame(t testing.TB, mark int, id, seq uint32) smppFrame {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		p.mu.Lock()
		for _, f := range p.frames[mark:] {
			if f.ID == id && (seq == 0 || f.Seq == seq) {
				p.mu.Unlock()
				return f
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("the ESME never sent command 0x%08X seq %d", id, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loseNext makes the next PDU with command id from the client vanish with
// its connection, as when a link dies with a response in flight.
func (p *tcpProxy) loseNext(id uint32) {
	p.mu.Lock()
	p.lose = id
	p.mu.Unlock()
}

// Down cuts every connection and refuses new ones until Up.
func (p *tcpProxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.cut()
}

func (p *tcpProxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// nodePeer runs smsgw/testdata/peer/smsc.js, an SMSC built on node-smpp,
// which shares no code with go-smpp: what our session and our simulator
// agree on wrongly, it does not.
type nodePeer struct {
	t      *testing.T
	addr   string
	stdin  io.WriteCloser
	events chan map[string]any
	held   []map[string]any // events read ahead, not yet consumed
	ref    int
}

func startNodePeer(t *testing.T) *nodePeer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: skipping the node-smpp end-to-end test")
	}
	dir, _ := filepath.Abs(filepath.Join("..", "..", "smsgw", "testdata", "peer"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smpp", "package.json")); err != nil {
		t.Skip("node-smpp not installed: run `npm ci --prefix smsgw/testdata/peer` to enable this test")
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

// next returns the next event, or nil when none came within wait.
func (p *nodePeer) next(wait time.Duration) map[string]any {
	p.t.Helper()
	if len(p.held) > 0 {
		ev := p.held[0]
		p.held = p.held[1:]
		return ev
	}
	select {
	case ev, ok := <-p.events:
		if !ok {
			p.t.Fatal("node peer exited")
		}
		if ev["event"] == "error" {
			p.t.Fatalf("node peer: %v", ev)
		}
		return ev
	case <-time.After(wait):
		return nil
	}
}

// expect returns the next event named name. An MT met on the way is kept
// for reply (a reply may overtake the deliver_sm_resp of its MO); any other
// event is skipped.
func (p *nodePeer) expect(name string) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(bound)
	var mts []map[string]any
	defer func() { p.held = append(mts, p.held...) }()
	for {
		ev := p.next(time.Until(deadline))
		switch {
		case ev == nil:
			p.t.Fatalf("no %s event from node peer", name)
		case ev["event"] == name:
			return ev
		case ev["event"] == "mt":
			mts = append(mts, ev)
		}
	}
}

// mo delivers an MO through node-smpp and waits for its deliver_sm_resp.
func (p *nodePeer) mo(from, text string, dc int) {
	p.t.Helper()
	p.ref++
	ref := p.ref
	p.send(map[string]any{"cmd": "mo", "ref": ref, "from": from, "to": "10086", "text": text, "dc": dc})
	ev := p.expect("mo_resp")
	if num(ev["ref"]) != ref || num(ev["status"]) != 0 {
		p.t.Fatalf("mo %q: resp %v", text, ev)
	}
}

// reply reads the next MT, joining its parts (UDH or SAR).
func (p *nodePeer) reply() string {
	p.t.Helper()
	var text strings.Builder
	for part, total := 1, 1; part <= total; part++ {
		ev := p.expect("mt")
		text.WriteString(ev["text"].(string))
		tot, seq := 1, 1
		if udh, _ := ev["udh"].(string); udh != "" {
			// node-smpp gives the information element: 00 03 ref total seq.
			if len(udh) != 10 || !strings.HasPrefix(udh, "0003") {
				p.t.Fatalf("unexpected UDH %q", udh)
			}
			tot, _ = strconvHex(udh[6:8])
			seq, _ = strconvHex(udh[8:10])
		} else if sar, _ := ev["sar"].([]any); len(sar) == 3 {
			tot, seq = num(sar[1]), num(sar[2])
		}
		if seq != part || (part > 1 && tot != total) {
			p.t.Fatalf("part %d of %d came as %d of %d", part, total, seq, tot)
		}
		total = tot
	}
	return text.String()
}

// noMore checks that no MT comes for a while.
func (p *nodePeer) noMore() {
	p.t.Helper()
	for {
		ev := p.next(quietFor)
		if ev == nil {
			return
		}
		if ev["event"] == "mt" {
			p.t.Fatalf("an MT nobody asked for: %v", ev)
		}
	}
}

func strconvHex(s string) (int, error) {
	v, err := strconv.ParseUint(s, 16, 8)
	return int(v), err
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

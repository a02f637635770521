package smpp

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
)

// These tests drive conn.write directly over a real loopback TCP
// connection: the grouping of frames into writes is internal, and what
// the peer reads is the proof.

// gatedConn counts writes; the write numbered gateAt waits for release,
// and the one numbered cutAt writes only cut bytes and fails.
type gatedConn struct {
	net.Conn
	writes  atomic.Int32
	gateAt  int32
	entered chan struct{}
	release chan struct{}
	cutAt   int32
	cut     int
}

var errCut = errors.New("cut")

func (g *gatedConn) Write(b []byte) (int, error) {
	n := g.writes.Add(1)
	if n == g.gateAt {
		close(g.entered)
		<-g.release
	}
	if n == g.cutAt {
		w, _ := g.Conn.Write(b[:g.cut])
		return w, errCut
	}
	return g.Conn.Write(b)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- s
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func testConn(nc net.Conn) *conn {
	return &conn{s: &Session{opts: Options{WriteTimeout: 10 * time.Second}}, nc: nc, closed: make(chan struct{})}
}

// queued is how many bytes wait behind the write in progress.
func (c *conn) queued() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.next == nil {
		return 0
	}
	return len(c.next.buf)
}

func frame(seq uint32) []byte { return pduio.Empty(pdu.EnquireLinkRespID, seq, 0) }

// readSeqs reads n frames and returns their sequence numbers.
func readSeqs(t *testing.T, nc net.Conn, n int) []uint32 {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	var seqs []uint32
	for range n {
		f, err := pduio.ReadFrame(br, 4096)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(seqs), err)
		}
		seqs = append(seqs, f.Seq)
	}
	return seqs
}

// queueBehind starts write (one frame's) and returns once its frame is
// queued behind the write in progress.
func queueBehind(t *testing.T, c *conn, wg *sync.WaitGroup, write func()) {
	t.Helper()
	before := c.queued()
	wg.Go(write)
	deadline := time.Now().Add(10 * time.Second)
	for c.queued() == before {
		if time.Now().After(deadline) {
			t.Fatal("frame never queued")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFramesQueuedBehindAWriteGoOutInOne(t *testing.T) {
	client, server := tcpPair(t)
	g := &gatedConn{Conn: client, gateAt: 1, entered: make(chan struct{}), release: make(chan struct{})}
	c := testConn(g)
	res := make([]error, 11)
	var wg sync.WaitGroup
	wg.Go(func() { _, res[0] = c.write(frame(0)) })
	<-g.entered
	for seq := uint32(1); seq <= 10; seq++ {
		queueBehind(t, c, &wg, func() {
			n, err := c.write(frame(seq))
			if err == nil && n != pduio.HeaderLen {
				err = errors.New("short count without an error")
			}
			res[seq] = err
		})
	}
	close(g.release)
	wg.Wait()
	for seq, err := range res {
		if err != nil {
			t.Errorf("frame %d: %v", seq, err)
		}
	}
	if w := g.writes.Load(); w != 2 {
		t.Errorf("%d writes, want 2: the one in progress and the ten queued behind it", w)
	}
	seqs := readSeqs(t, server, 11)
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("frames out of order: %v", seqs)
		}
	}
	// Alone again, a writer writes at once.
	if _, err := c.write(frame(11)); err != nil {
		t.Fatal(err)
	}
	if w := g.writes.Load(); w != 3 {
		t.Errorf("%d writes after a lone one, want 3", w)
	}
}

// A write that fails partway reports each frame truthfully: whole frames
// before the cut went out, the one cut through went out in part, the rest
// not at all. A request relies on this to know whether resending is safe.
func TestCutWriteReportsEachFrame(t *testing.T) {
	client, server := tcpPair(t)
	hl := pduio.HeaderLen
	g := &gatedConn{Conn: client, gateAt: 1, entered: make(chan struct{}), release: make(chan struct{}), cutAt: 2, cut: hl + hl/2}
	c := testConn(g)
	type result struct {
		n   int
		err error
	}
	res := make([]result, 4)
	var wg sync.WaitGroup
	wg.Go(func() { res[0].n, res[0].err = c.write(frame(0)) })
	<-g.entered
	for seq := 1; seq <= 3; seq++ {
		queueBehind(t, c, &wg, func() { res[seq].n, res[seq].err = c.write(frame(uint32(seq))) })
	}
	close(g.release)
	wg.Wait()
	want := []int{hl, hl, hl / 2, 0}
	for i, r := range res {
		if r.n != want[i] {
			t.Errorf("frame %d: %d bytes reported, want %d", i, r.n, want[i])
		}
		if failed := r.err != nil; failed != (want[i] < hl) {
			t.Errorf("frame %d: error %v", i, r.err)
		}
		if r.err != nil && !errors.Is(r.err, ErrConnLost) {
			t.Errorf("frame %d: %v, want ErrConnLost", i, r.err)
		}
	}
	select {
	case <-c.done():
	default:
		t.Error("connection still open after a failed write")
	}
	if seqs := readSeqs(t, server, 2); seqs[0] != 0 || seqs[1] != 1 {
		t.Errorf("peer read %v", seqs)
	}
	if _, err := c.write(frame(4)); !errors.Is(err, ErrConnLost) {
		t.Errorf("write after close: %v", err)
	}
}

// Many writers at once: every frame arrives whole, each writer's in the
// order it wrote them.
func TestConcurrentWritersFramesWholeAndOrdered(t *testing.T) {
	client, server := tcpPair(t)
	c := testConn(client)
	const writers, each = 32, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := c.write(frame(uint32(w)<<16 | uint32(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seqs := readSeqs(t, server, writers*each)
	wg.Wait()
	next := make([]uint32, writers)
	for _, s := range seqs {
		w, i := s>>16, s&0xffff
		if i != next[w] {
			t.Fatalf("writer %d: frame %d after %d", w, i, next[w])
		}
		next[w]++
	}
}

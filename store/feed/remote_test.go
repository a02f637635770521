package feed_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/feed"
)

var (
	_ feed.Purger = (*store.DB)(nil)
)

// records is a feed.Recorder that keeps what it was told.
type records struct {
	mu      sync.Mutex
	ingests []string
	purges  int
}

func (r *records) RecordIngest(_ context.Context, sum feed.Summary, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	r.ingests = append(r.ingests, fmt.Sprintf("%s rows=%d", outcome, sum.Rows))
	return nil
}

func (r *records) RecordPurge(context.Context, store.PurgeStats) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.purges++
	return nil
}

func (r *records) snapshot() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ingests...), r.purges
}

// MustServer runs an ingest socket on e's store, in a dir of its own (a
// short path: a socket's may have 107 bytes).
func MustServer(tb testing.TB, e *env) (*feed.Server, *records) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "rt-sock")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	rec := &records{}
	srv, err := feed.Listen(feed.ServerOptions{Path: filepath.Join(dir, "ingest.sock")}, feed.ServerDeps{
		Regions: e.catalog, Pseudonyms: e.ps, Store: e.db, Purger: e.db, Recorder: rec,
	})
	if errors.Is(err, errors.ErrUnsupported) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	tb.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			tb.Error(err)
		}
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return srv, rec
}

func mustDial(tb testing.TB, path string) *feed.Client {
	tb.Helper()
	cl, err := feed.Dial(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	return cl
}

func TestRemoteIngest(t *testing.T) {
	e := MustEnv(t)
	srv, rec := MustServer(t, e)
	in := csvFeed(
		"13800138000,2026-11-27T08:00:00+08:00,130100",
		"13800138000,2026-11-27T13:00:00+08:00,130100",
		"bad,2026-11-27T08:00:00+08:00,130100",
		"13800138001,2026-11-26T08:00:00+08:00,440",
		"13800138001,2026-11-26T08:00:00+08:00,440",
	)
	var acks []feed.Ack
	res, err := mustDial(t, srv.Path()).Ingest(context.Background(), strings.NewReader(in), 2, func(a feed.Ack) { acks = append(acks, a) })
	if err != nil {
		t.Fatal(err)
	}
	if res.PID != os.Getpid() {
		t.Errorf("pid %d, want %d", res.PID, os.Getpid())
	}
	if s := res.Summary; s.Rows != 5 || s.Rejected != 1 || s.Stats.Accepted != 4 || len(s.Errors) != 1 || s.Errors[0].Line != 4 {
		t.Errorf("summary %+v", s)
	}
	if want := (feed.Ack{Line: 6, Offset: int64(len(in)), Rows: 4}); res.Acked != want {
		t.Errorf("acked %+v, want %+v", res.Acked, want)
	}
	// Batches of two valid rows: acks after lines 3 and 6, each durable.
	if len(acks) != 2 || acks[0].Line != 3 || acks[0].Rows != 2 || acks[1].Line != 6 || acks[1].Rows != 4 {
		t.Errorf("acks %+v", acks)
	}
	if vs := e.visits(t, "13800138000"); len(vs) != 1 || vs[0].Region != 130100 || vs[0].Dwell() != 5*time.Hour {
		t.Errorf("visits %+v", vs)
	}
	if vs := e.visits(t, "13800138001"); len(vs) != 1 {
		t.Errorf("visits %+v", vs)
	}
	if got, _ := rec.snapshot(); len(got) != 1 || got[0] != "ok rows=5" {
		t.Errorf("recorded %v", got)
	}

	// The same input again converges: nothing written.
	res, err = mustDial(t, srv.Path()).Ingest(context.Background(), strings.NewReader(in), 0, nil)
	if err != nil || res.Summary.Stats.Written != 0 || res.Summary.Stats.Accepted != 4 {
		t.Fatalf("again: %v %+v", err, res.Summary)
	}
}

// A connection that ends without the end mark stores no line of the batch
// being read, not even a last line that parses: a cut line may parse too.
func TestRemoteCutOff(t *testing.T) {
	e := MustEnv(t)
	srv, rec := MustServer(t, e)
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := "msisdn,time,region\n" +
		"13800138000,2026-11-27T08:00:00+08:00,130100\n" +
		"13800138001,2026-11-27T08:00:00+08:00,440" // a whole row, but no end mark follows
	fmt.Fprintf(c, "{\"op\":\"ingest\",\"batch\":1}\n%d\n%s", len(body), body)
	c.(*net.UnixConn).CloseWrite()
	br := bufio.NewReader(c)
	var last feed.Reply
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			break
		}
		if last, err = feed.ParseReply(line); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(last.Error, "cut off") || last.Ack == nil || last.Ack.Line != 2 || last.Ack.Rows != 1 {
		t.Fatalf("last reply %+v %+v", last, last.Ack)
	}
	if vs := e.visits(t, "13800138000"); len(vs) != 1 {
		t.Errorf("acknowledged row: %+v", vs)
	}
	if vs := e.visits(t, "13800138001"); len(vs) != 0 {
		t.Errorf("the row of the cut input was stored: %+v", vs)
	}
	if got, _ := rec.snapshot(); len(got) != 1 || !strings.HasPrefix(got[0], "failed") {
		t.Errorf("recorded %v", got)
	}
}

// A client whose input fails ends the stream without the end mark and is
// told how far the service got.
func TestRemoteInputFails(t *testing.T) {
	e := MustEnv(t)
	srv, _ := MustServer(t, e)
	in := io.MultiReader(strings.NewReader(csvFeed("13800138000,2026-11-27T08:00:00+08:00,130100")), errReader{})
	_, err := mustDial(t, srv.Path()).Ingest(context.Background(), in, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "reading the input") {
		t.Fatalf("err %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// Shutdown stops an ingest in hand after its batch; the client learns how
// far it was acknowledged.
func TestRemoteShutdown(t *testing.T) {
	e := MustEnv(t)
	srv, _ := MustServer(t, e)
	pr, pw := io.Pipe()
	defer pw.Close()
	acked := make(chan feed.Ack, 10)
	type result struct {
		res feed.IngestResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := mustDial(t, srv.Path()).Ingest(context.Background(), pr, 1, func(a feed.Ack) { acked <- a })
		done <- result{res, err}
	}()
	io.WriteString(pw, csvFeed("13800138000,2026-11-27T08:00:00+08:00,130100"))
	<-acked // the row is durable; the client sends nothing more
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "shutting down") || r.res.Acked.Line != 2 {
		t.Fatalf("%v %+v", r.err, r.res.Acked)
	}
	if _, err := feed.Dial(context.Background(), srv.Path()); !errors.Is(err, feed.ErrNoService) {
		t.Errorf("dial after shutdown: %v", err)
	}
}

func TestRemotePurge(t *testing.T) {
	e := MustEnv(t)
	srv, rec := MustServer(t, e)
	e.mustIngest(t, csvFeed("13800138000,2026-11-27T08:00:00+08:00,130100"), feed.Options{})
	st, pid, err := mustDial(t, srv.Path()).Purge(context.Background())
	if err != nil || pid != os.Getpid() || st.Cutoff == "" {
		t.Fatalf("purge: %v %d %+v", err, pid, st)
	}
	if _, n := rec.snapshot(); n != 1 {
		t.Errorf("%d purges recorded", n)
	}
}

func TestDialNoService(t *testing.T) {
	dir := t.TempDir()
	if _, err := feed.Dial(context.Background(), filepath.Join(dir, "ingest.sock")); !errors.Is(err, feed.ErrNoService) {
		t.Errorf("no socket: %v", err)
	}
	// A stale socket, as kill -9 leaves it.
	ln, err := net.Listen("unix", filepath.Join(dir, "ingest.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := feed.Dial(context.Background(), filepath.Join(dir, "ingest.sock")); !errors.Is(err, feed.ErrNoService) {
		t.Errorf("stale socket: %v", err)
	}
}

func TestRemoteBadRequest(t *testing.T) {
	e := MustEnv(t)
	srv, _ := MustServer(t, e)
	for _, req := range []string{"{\"op\":\"drop\"}\n", "nonsense\n", "{\"op\":\"ingest\",\"batch\":-1}\n"} {
		c, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		line, _ := bufio.NewReader(c).ReadBytes('\n')
		c.Close()
		r, err := feed.ParseReply(line)
		if err != nil || !strings.Contains(r.Error, "protocol") {
			t.Errorf("%q: %v %+v", req, err, r)
		}
	}
}

func TestChunksRoundTrip(t *testing.T) {
	for _, in := range []string{"", "a", strings.Repeat("x\n", 100_000)} {
		var b bytes.Buffer
		if _, err := feed.WriteChunks(&b, strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		cr := feed.NewChunkReader(bufio.NewReader(&b))
		got, err := io.ReadAll(cr)
		if err != nil || string(got) != in {
			t.Fatalf("round trip of %d bytes: %v, %d bytes", len(in), err, len(got))
		}
		if line, off := cr.End(); off != int64(len(in)) || line != int64(strings.Count(in, "\n")+min(len(in)%2, 1)) {
			t.Errorf("end %d %d", line, off)
		}
	}
}

// FuzzChunkReader: any bytes give data, io.EOF, ErrCutOff or ErrProtocol,
// never a panic; what WriteChunks wrote reads back the same.
func FuzzChunkReader(f *testing.F) {
	f.Add([]byte("3\nabc0\n"), []byte("abc"))
	f.Add([]byte("5\nab"), []byte(""))
	f.Add([]byte("99999999999999999999\n"), []byte("x\ny"))
	f.Add([]byte("-1\n"), []byte("\n\n"))
	f.Add([]byte("0\n"), []byte("msisdn,time,region\n13800138000,2026-11-27T08:00:00+08:00,130100\n"))
	f.Fuzz(func(t *testing.T, raw, data []byte) {
		cr := feed.NewChunkReader(bufio.NewReader(bytes.NewReader(raw)))
		got, err := io.ReadAll(cr)
		if err != nil && !errors.Is(err, feed.ErrCutOff) && !errors.Is(err, feed.ErrProtocol) {
			t.Fatalf("error %v", err)
		}
		if len(got) > len(raw) {
			t.Fatalf("read %d bytes from %d", len(got), len(raw))
		}
		var b bytes.Buffer
		if _, err := feed.WriteChunks(&b, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(feed.NewChunkReader(bufio.NewReader(&b)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseReply and FuzzParseRequest: any line is a reply (request) or
// an error, never a panic; a parsed one encodes and parses back.
func FuzzParseReply(f *testing.F) {
	f.Add([]byte(`{"pid":12,"ack":{"line":65537,"offset":3801234,"rows":65536}}`))
	f.Add([]byte(`{"pid":12,"error":"feed: input cut off","ack":{"line":3,"offset":90,"rows":2}}`))
	f.Add([]byte(`{"pid":12,"done":{"Rows":5,"Rejected":1,"Errors":[{"Line":4,"Reason":"msisdn"}]},"ack":{"line":6}}`))
	f.Add([]byte(`{"pid":1,"purged":{"Cutoff":"2026-10-29"}}`))
	f.Add([]byte(`{"pid":-1,"ack":{"line":-1}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := feed.ParseReply(line)
		if err != nil {
			if !errors.Is(err, feed.ErrProtocol) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if r.PID <= 0 {
			t.Fatalf("pid %d accepted", r.PID)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"op":"ingest","batch":65536}`))
	f.Add([]byte(`{"op":"purge"}`))
	f.Add([]byte(`{"op":"ingest","batch":99999999999}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := feed.ParseRequest(line)
		if err != nil {
			if !errors.Is(err, feed.ErrProtocol) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if r.Op != feed.OpIngest && r.Op != feed.OpPurge || r.Batch < 0 || r.Batch > feed.MaxBatch {
			t.Fatalf("accepted %+v", r)
		}
	})
}

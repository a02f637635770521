package state

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/itinerary"
)

func TestRedisKeys(t *testing.T) {
	c := mustReachRedis(t)
	prefix := testPrefix(t, c)
	clk := newClock()
	r := mustRedis(t, RedisOptions{Prefix: prefix, Now: clk.Now})
	sub := randomSub(t)
	h := hex.EncodeToString(sub[:])
	const job = "0187a1b2c3d4e5f60718293a4b5c6d7e"

	if _, err := r.Claim(ctx, "+8613800138000/42", job, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := r.Ask(ctx, sub, Request{Nonce: job, Days: 15, Lang: itinerary.English}, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, day := range []string{"2026-11-25", "2026-11-26", "2026-11-27", "2026-11-27"} {
		if _, _, err := r.CountRequest(ctx, sub, day, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.AllowGlobal(ctx, 10, time.Minute); err != nil {
		t.Fatal(err)
	}

	keys := keysOf(t, c, prefix)
	slices.Sort(keys)
	want := []*regexp.Regexp{ // in byte order
		regexp.MustCompile(`^` + prefix + `:budget:60000:[0-9]+$`),
		regexp.MustCompile(`^` + prefix + `:claim:[0-9a-f]{32}$`),
		regexp.MustCompile(`^` + prefix + `:\{` + h + `\}:days$`),
		regexp.MustCompile(`^` + prefix + `:\{` + h + `\}:dialog$`),
	}
	if len(keys) != len(want) {
		t.Fatalf("keys %q, want %d", keys, len(want))
	}
	for i, k := range keys {
		if !want[i].MatchString(k) {
			t.Errorf("key %q, want %s", k, want[i])
		}
		if strings.Contains(k, "8613800138000") {
			t.Errorf("key %q holds the number", k)
		}
	}
	budget, claim, days, dialog := keys[0], keys[1], keys[2], keys[3]

	// TTLs: the server's view.
	wantTTL := func(key string, min, max time.Duration) {
		t.Helper()
		ttl, err := c.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < min || ttl > max {
			t.Errorf("%s: TTL %v, want %v to %v", key, ttl, min, max)
		}
	}
	wantTTL(budget, time.Minute, 2*time.Minute)
	wantTTL(claim, 59*time.Minute, time.Hour)
	wantTTL(days, dayCounterTTL-time.Minute, dayCounterTTL)
	wantTTL(dialog, 9*time.Minute, 10*time.Minute)

	if v, err := c.Get(ctx, claim).Result(); err != nil || v != job {
		t.Errorf("claim holds %q, %v; want the owner", v, err)
	}
	wantHash := func(key string, want map[string]string) {
		t.Helper()
		fields, err := c.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if !mapsEqual(fields, want) {
			t.Errorf("%s: %v, want %v", key, fields, want)
		}
	}
	// The days hash kept yesterday and today only.
	wantHash(days, map[string]string{"2026-11-26": "1", "2026-11-27": "2", "2026-11-27!": "1"})
	wantHash(dialog, map[string]string{"st": "p", "n": job, "days": "15", "lang": "1"})
	if _, _, err := r.Resolve(ctx, sub, "taker", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	wantHash(dialog, map[string]string{"st": "d", "n": job, "days": "15", "lang": "1", "taker": "taker"})
	wantTTL(dialog, 4*time.Minute, 5*time.Minute)

	if err := r.Forget(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for _, k := range keysOf(t, c, prefix) {
		if strings.Contains(k, h) {
			t.Errorf("key %q survived Forget", k)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRedisCorrupt: records this package does not write are ErrCorrupt,
// whoever reads them, and Ask replaces them.
func TestRedisCorrupt(t *testing.T) {
	c := mustReachRedis(t)
	r := mustRedis(t, RedisOptions{Prefix: testPrefix(t, c)})
	good := map[string]any{"st": "p", "n": "job-1", "days": "15", "lang": "0"}
	with := func(kv ...string) map[string]any {
		m := maps.Clone(good)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for name, fields := range map[string]map[string]any{
		"state unknown":    with("st", "x"),
		"state missing":    with("st", "-"),
		"nonce missing":    with("n", "-"),
		"nonce long":       with("n", strings.Repeat("j", maxID+1)),
		"days missing":     with("days", "-"),
		"days not number":  with("days", "fifteen"),
		"days zero":        with("days", "0"),
		"lang missing":     with("lang", "-"),
		"lang over a byte": with("lang", "256"),
		"lang negative":    with("lang", "-1"),
		"done no taker":    with("st", "d"),
		"done no nonce":    with("st", "d", "taker", "job-2", "n", "-"),
		"wrong type":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			sub := randomSub(t)
			k := r.dialogKey(sub)
			var err error
			if fields == nil {
				err = c.Set(ctx, k, "garbage", time.Minute).Err()
			} else {
				err = c.HSet(ctx, k, fields).Err()
			}
			if err != nil {
				t.Fatal(err)
			}
			for op, call := range map[string]func() error{
				"Dialog":  func() error { _, err := r.Dialog(ctx, sub); return err },
				"Resolve": func() error { _, _, err := r.Resolve(ctx, sub, "job-2", time.Minute); return err },
			} {
				err := call()
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: %v, want ErrCorrupt", op, err)
					continue
				}
				checkErrText(t, err)
			}
			req := Request{Nonce: "job-3", Days: 30}
			if err := r.Ask(ctx, sub, req, time.Minute); err != nil {
				t.Fatalf("Ask over a corrupt record: %v", err)
			}
			if d, err := r.Dialog(ctx, sub); err != nil || d.Pending == nil || *d.Pending != req {
				t.Errorf("Dialog after Ask: %s, %v", showDialog(d), err)
			}
		})
	}
	t.Run("claim wrong type", func(t *testing.T) {
		if err := c.HSet(ctx, r.claimKey("k"), "x", "y").Err(); err != nil {
			t.Fatal(err)
		}
		_, err := r.Claim(ctx, "k", "job-1", time.Minute)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Claim: %v, want ErrCorrupt", err)
		}
		checkErrText(t, err)
	})
}

func TestNewRedisInvalid(t *testing.T) {
	for name, o := range map[string]RedisOptions{
		"no URL":           {},
		"URL scheme":       {URL: "http://user:s3cret@127.0.0.1:6379/0"},
		"URL db":           {URL: "redis://user:s3cret@127.0.0.1:6379/zero"},
		"prefix brace":     {URL: redisURL(), Prefix: "rt{x}"},
		"prefix space":     {URL: redisURL(), Prefix: "r t"},
		"prefix long":      {URL: redisURL(), Prefix: strings.Repeat("r", 65)},
		"negative timeout": {URL: redisURL(), ReadTimeout: -1},
		"negative retries": {URL: redisURL(), MaxRetries: -2},
		"negative pool":    {URL: redisURL(), PoolSize: -1},
	} {
		_, err := NewRedis(ctx, o)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
			continue
		}
		checkErrText(t, err)
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error text holds the password: %q", name, err)
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestRedisDown(t *testing.T) {
	start := time.Now()
	_, err := NewRedis(ctx, RedisOptions{URL: "redis://user:s3cret@" + closedAddr(t) + "/0"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewRedis on a closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("NewRedis on a closed port took %v", d)
	}
	checkErrText(t, err)
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error text holds the password: %q", err)
	}
	t.Logf("%v", err)
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestRedisBlackHole(t *testing.T) {
	addr := blackHole(t)
	t.Run("timeouts", func(t *testing.T) {
		start := time.Now()
		_, err := NewRedis(ctx, RedisOptions{URL: "redis://" + addr + "/0", ReadTimeout: 100 * time.Millisecond})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("NewRedis on a silent server: %v, want ErrUnavailable", err)
		}
		// One try and one retry, each bounded by ReadTimeout.
		if d := time.Since(start); d > time.Second {
			t.Errorf("NewRedis on a silent server took %v", d)
		}
		checkErrText(t, err)
	})
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := NewRedis(ctx, RedisOptions{URL: "redis://" + addr + "/0", ReadTimeout: time.Minute})
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("NewRedis past the context's deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("NewRedis ignored the context's deadline: %v", d)
		}
	})
}

// proxy forwards connections to Redis until it is cut; while cut it
// accepts and drops connections at once.
type proxy struct {
	t      *testing.T
	l      net.Listener
	target string

	// dropReply, when set, makes the next reply from Redis vanish with
	// its connection, as if the network failed after Redis acted.
	dropReply atomic.Bool

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, l: l, target: target}
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.setCut(true)
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		if !cut {
			p.conns = append(p.conns, c)
		}
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() {
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := up.Read(buf)
				if err != nil {
					return
				}
				if p.dropReply.CompareAndSwap(true, false) {
					_ = up.Close()
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// setCut cuts (closing every open connection) or restores the link.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRedisGoesAway(t *testing.T) {
	c := mustReachRedis(t)
	o, _ := redis.ParseURL(redisURL())
	p := newProxy(t, o.Addr)
	var logs syncBuffer
	logger := zerolog.New(&logs)
	r := mustRedis(t, RedisOptions{
		URL:    viaProxy(o, p.l.Addr().String()),
		Prefix: testPrefix(t, c),
		Logger: &logger,
	})
	sub := randomSub(t)
	req := Request{Nonce: "job-1", Days: 15}
	if err := r.Ask(ctx, sub, req, time.Minute); err != nil {
		t.Fatal(err)
	}

	p.setCut(true)
	for name, call := range map[string]func() error{
		"Claim":        func() error { _, err := r.Claim(ctx, "x", "job-2", time.Minute); return err },
		"Ask":          func() error { return r.Ask(ctx, sub, Request{Nonce: "job-2", Days: 30}, time.Minute) },
		"Dialog":       func() error { _, err := r.Dialog(ctx, sub); return err },
		"Resolve":      func() error { _, _, err := r.Resolve(ctx, sub, "job-2", time.Minute); return err },
		"CountRequest": func() error { _, _, err := r.CountRequest(ctx, sub, "2026-11-27", 3); return err },
		"AllowGlobal":  func() error { _, err := r.AllowGlobal(ctx, 3, time.Minute); return err },
		"Forget":       func() error { return r.Forget(ctx, sub) },
	} {
		start := time.Now()
		err := call()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis gone: %v, want ErrUnavailable", name, err)
			continue
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s with Redis gone took %v", name, d)
		}
		checkErrText(t, err)
	}

	p.setCut(false)
	got, ok, err := r.Resolve(ctx, sub, "job-3", time.Minute)
	if err != nil || !ok || got != req {
		t.Fatalf("Resolve with Redis back: %+v, %v, %v", got, ok, err)
	}

	// One warning when Redis went, one note when it came back.
	log := logs.String()
	if n := strings.Count(log, "shared state unavailable"); n != 1 {
		t.Errorf("%d unavailability warnings, want 1:\n%s", n, log)
	}
	if n := strings.Count(log, "shared state available again"); n != 1 {
		t.Errorf("%d recovery notes, want 1:\n%s", n, log)
	}
	if strings.Contains(log, hex.EncodeToString(sub[:])) {
		t.Errorf("the log names the subscriber:\n%s", log)
	}
}

// viaProxy is the test Redis's URL with addr in place of its address.
func viaProxy(o *redis.Options, addr string) string {
	u := url.URL{Scheme: "redis", Host: addr, Path: "/" + strconv.Itoa(o.DB)}
	if o.Password != "" {
		u.User = url.UserPassword(o.Username, o.Password)
	}
	return u.String()
}

func TestDescribe(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, c := range []struct {
		err  error
		want string
	}{
		{context.Canceled, "context canceled"},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), "deadline exceeded"},
		{redis.ErrClosed, "client closed"},
		{redis.ErrPoolTimeout, "no free connection in time"},
		{refused, "connection refused"},
		{&net.DNSError{Err: "no such host", Name: "redis-7.internal"}, "host not found"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, "timeout"},
		{io.EOF, "connection lost"},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, "connection lost"},
		{redis.ErrCrossSlot, "server replied CROSSSLOT"},
		{redis.ErrNoScript, "server replied NOSCRIPT"},
		{errors.New("something else at 10.0.0.7:6379"), "i/o error"},
	} {
		if got := describe(c.err); got != c.want {
			t.Errorf("describe(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	for msg, want := range map[string]string{
		"WRONGTYPE Operation against a key holding the wrong kind of value": "WRONGTYPE",
		"ERR value is not an integer or out of range":                       "ERR",
		"":            "an error",
		"-1 negative": "an error",
		"Loading":     "an error",
	} {
		if got := errorCode(msg); got != want {
			t.Errorf("errorCode(%q) = %q, want %q", msg, got, want)
		}
	}
}

// TestRedisReplyLost loses the reply to a script after Redis ran it:
// go-redis resends it on a new connection, and the resent script must
// give the first run's answer, not the answer to a stranger.
func TestRedisReplyLost(t *testing.T) {
	c := mustReachRedis(t)
	o, _ := redis.ParseURL(redisURL())
	p := newProxy(t, o.Addr)
	r := mustRedis(t, RedisOptions{URL: viaProxy(o, p.l.Addr().String()), Prefix: testPrefix(t, c)})
	sub := randomSub(t)
	req := Request{Nonce: "job-1", Days: 15}
	if err := r.Ask(ctx, sub, req, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Load the scripts first: a lost NOSCRIPT reply would prove nothing.
	if _, err := r.Claim(ctx, "warm", "job-0", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Resolve(ctx, randomSub(t), "job-0", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func(owner string) (bool, error)
	}{
		{"Claim", func(owner string) (bool, error) { return r.Claim(ctx, "key", owner, time.Minute) }},
		{"Resolve", func(owner string) (bool, error) {
			got, ok, err := r.Resolve(ctx, sub, owner, time.Minute)
			if ok && got != req {
				t.Errorf("Resolve = %+v, want %+v", got, req)
			}
			return ok, err
		}},
	} {
		p.dropReply.Store(true)
		ok, err := tc.call("job-2")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.dropReply.Load() {
			t.Fatalf("%s: no reply was dropped", tc.name)
		}
		if !ok {
			t.Errorf("%s: a call whose reply was lost was refused when resent", tc.name)
		}
		if ok, err := tc.call("job-3"); err != nil || ok {
			t.Errorf("%s by another owner after it: %v, %v; want refused", tc.name, ok, err)
		}
	}
}

package state

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
)

func TestRedisKeys(t *testing.T) {
	c := mustReachRedis(t)
	prefix := testPrefix(t, c)
	clk := newClock()
	r := mustRedis(t, RedisOptions{Prefix: prefix, Now: clk.Now})
	sub := randomSub(t)
	h := hex.EncodeToString(sub[:])

	if _, err := r.FirstDelivery(ctx, "+8613800138000/42", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := r.SetPending(ctx, sub, Pending{Days: 15}, 10*time.Minute); err != nil {
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
		regexp.MustCompile(`^` + prefix + `:seen:[0-9a-f]{32}$`),
		regexp.MustCompile(`^` + prefix + `:\{` + h + `\}:days$`),
		regexp.MustCompile(`^` + prefix + `:\{` + h + `\}:pending$`),
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

	// TTLs: the server's view.
	for _, c2 := range []struct {
		key      string
		min, max time.Duration
	}{
		{keys[0], time.Minute, 2 * time.Minute},
		{keys[1], 59 * time.Minute, time.Hour},
		{keys[2], dayCounterTTL - time.Minute, dayCounterTTL},
		{keys[3], 9 * time.Minute, 10 * time.Minute},
	} {
		ttl, err := c.PTTL(ctx, c2.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < c2.min || ttl > c2.max {
			t.Errorf("%s: TTL %v, want %v to %v", c2.key, ttl, c2.min, c2.max)
		}
	}

	// The days hash kept yesterday and today only.
	fields, err := c.HGetAll(ctx, keys[2]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"2026-11-26": "1", "2026-11-27": "2", "2026-11-27!": "1"}; !mapsEqual(fields, want) {
		t.Errorf("days hash %v, want %v", fields, want)
	}

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

// TestRedisFirstDeliveryResent plays go-redis resending a SET whose reply
// was lost: the same token finds itself and still reports a first
// delivery; another call's token does not.
func TestRedisFirstDeliveryResent(t *testing.T) {
	c := mustReachRedis(t)
	r := mustRedis(t, RedisOptions{Prefix: testPrefix(t, c)})
	tok := r.token()
	for i, want := range []bool{true, true} {
		ok, err := r.firstDelivery(ctx, "id", time.Minute, tok)
		if err != nil {
			t.Fatal(err)
		}
		if ok != want {
			t.Errorf("attempt %d with the same token: %v, want %v", i+1, ok, want)
		}
	}
	if ok, err := r.firstDelivery(ctx, "id", time.Minute, r.token()); err != nil || ok {
		t.Errorf("another call: %v, %v; want a duplicate", ok, err)
	}
}

func TestRedisCorruptPending(t *testing.T) {
	c := mustReachRedis(t)
	r := mustRedis(t, RedisOptions{Prefix: testPrefix(t, c)})
	sub := randomSub(t)
	if err := c.Set(ctx, r.pendingKey(sub), "garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.TakePending(ctx, sub); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("TakePending of garbage: %v, want ErrCorrupt", err)
	}
	if n, _ := c.Exists(ctx, r.pendingKey(sub)).Result(); n != 0 {
		t.Error("corrupt request left behind")
	}
}

func TestNewRedisInvalid(t *testing.T) {
	for name, o := range map[string]RedisOptions{
		"no URL":              {},
		"URL scheme":          {URL: "http://user:s3cret@127.0.0.1:6379/0"},
		"URL db":              {URL: "redis://user:s3cret@127.0.0.1:6379/zero"},
		"prefix brace":        {URL: redisURL(), Prefix: "rt{x}"},
		"prefix space":        {URL: redisURL(), Prefix: "r t"},
		"prefix long":         {URL: redisURL(), Prefix: strings.Repeat("r", 65)},
		"negative timeout":    {URL: redisURL(), ReadTimeout: -1},
		"negative retries":    {URL: redisURL(), MaxRetries: -2},
		"negative pool":       {URL: redisURL(), PoolSize: -1},
		"Rand short of bytes": {URL: redisURL(), Rand: bytes.NewReader(nil)},
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
	if err := r.SetPending(ctx, sub, Pending{Days: 15}, time.Minute); err != nil {
		t.Fatal(err)
	}

	p.setCut(true)
	for name, call := range map[string]func() error{
		"FirstDelivery": func() error { _, err := r.FirstDelivery(ctx, "x", time.Minute); return err },
		"SetPending":    func() error { return r.SetPending(ctx, sub, Pending{}, time.Minute) },
		"TakePending":   func() error { _, _, err := r.TakePending(ctx, sub); return err },
		"CancelPending": func() error { _, err := r.CancelPending(ctx, sub); return err },
		"CountRequest":  func() error { _, _, err := r.CountRequest(ctx, sub, "2026-11-27", 3); return err },
		"AllowGlobal":   func() error { _, err := r.AllowGlobal(ctx, 3, time.Minute); return err },
		"Forget":        func() error { return r.Forget(ctx, sub) },
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
	got, ok, err := r.TakePending(ctx, sub)
	if err != nil || !ok || got.Days != 15 {
		t.Fatalf("TakePending with Redis back: %+v, %v, %v", got, ok, err)
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

// TestRedisFirstDeliveryReplyLost loses the reply to FirstDelivery's SET
// after Redis stored the key: go-redis resends it on a new connection,
// and the delivery must still count as the first.
func TestRedisFirstDeliveryReplyLost(t *testing.T) {
	c := mustReachRedis(t)
	o, _ := redis.ParseURL(redisURL())
	p := newProxy(t, o.Addr)
	r := mustRedis(t, RedisOptions{URL: viaProxy(o, p.l.Addr().String()), Prefix: testPrefix(t, c)})
	p.dropReply.Store(true)
	ok, err := r.FirstDelivery(ctx, "id", time.Minute)
	if err != nil {
		t.Fatalf("FirstDelivery: %v", err)
	}
	if p.dropReply.Load() {
		t.Fatal("no reply was dropped")
	}
	if !ok {
		t.Error("a first delivery whose reply was lost counted as a duplicate")
	}
	if ok, err := r.FirstDelivery(ctx, "id", time.Minute); err != nil || ok {
		t.Errorf("redelivery: %v, %v; want a duplicate", ok, err)
	}
}

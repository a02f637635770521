package state

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Defaults of RedisOptions.
const (
	DefaultPrefix       = "rt"
	DefaultDialTimeout  = time.Second
	DefaultReadTimeout  = 500 * time.Millisecond
	DefaultWriteTimeout = 500 * time.Millisecond
	DefaultMaxRetries   = 1
)

// Log field names.
const (
	logOp     = "op"
	logCause  = "cause"
	logAddr   = "addr"
	logDB     = "db"
	logPrefix = "prefix"
)

// RedisOptions configures a Redis. Every field's default applies to its
// zero value. A timeout or pool setting left zero here is taken from the
// URL's query (dial_timeout=2s, ...) when it has one, else from the
// default below; a timeout of zero or less in the URL is replaced by the
// default, since the gateway must never wait forever.
type RedisOptions struct {
	// URL is redis://[[user]:password@]host:port/db, rediss:// for TLS,
	// or unix:///path?db=N, as go-redis's ParseURL reads it. Required.
	URL string
	// Prefix starts every key, so that several deployments (or tests)
	// can share one Redis. Letters, digits and "-_.:" only, at most 64
	// bytes. Default DefaultPrefix ("rt").
	Prefix string
	// Now is the clock that AllowGlobal's windows are measured by (TTLs
	// run on Redis's own clock). Default time.Now.
	Now func() time.Time
	// Logger gets a warning when Redis becomes unavailable and a note
	// when it is back, once per transition. Default zerolog.Nop().
	Logger *zerolog.Logger
	// Rand seeds the tokens that make FirstDelivery safe to retry.
	// Default crypto/rand.Reader.
	Rand io.Reader
	// DialTimeout bounds each connection attempt. Default
	// DefaultDialTimeout (1 s).
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command's socket reads and
	// writes. Default DefaultReadTimeout and DefaultWriteTimeout (500 ms).
	ReadTimeout, WriteTimeout time.Duration
	// MaxRetries is how many times go-redis retries a command after a
	// network error; -1 disables retries. Default DefaultMaxRetries (1):
	// a failing Redis is reported quickly and the SMSC redelivers.
	MaxRetries int
	// PoolSize is the number of connections kept per client. Default
	// go-redis's, 10 per GOMAXPROCS.
	PoolSize int
}

// Redis is the shared state of several gateway instances, kept in Redis.
// Each method is one round trip. Every key of a subscriber carries the
// subscriber's hex pseudonym as its hash tag, so they share one Redis
// Cluster slot; see the package documentation for the layout.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
	log    *zerolog.Logger

	countDay    *redis.Script
	spendBudget *redis.Script
	claim       *redis.Script
	resolve     *redis.Script

	nonce  [8]byte       // this client's part of FirstDelivery tokens
	seq    atomic.Uint64 // the other part
	down   atomic.Bool   // the last command failed for want of Redis
	closed atomic.Bool
}

// countDayScript counts one request of a subscriber on a day, in a hash of
// day -> count (plus day.."!" -> 1 once the limit has been reported).
// The first request of a day drops the days before yesterday and keeps
// the hash for the TTL, so the hash holds two or three days at most.
//
// KEYS[1] the subscriber's days hash
// ARGV[1] day, ARGV[2] limit, ARGV[3] TTL in ms, ARGV[4] yesterday
// returns {count, notify (0 or 1)}
//
// Days are compared as numbers (YYYYMMDD): Lua compares strings with
// strcoll, and Redis sets the collation from its environment.
const countDayScript = `
local function daynum(f)
  return tonumber(string.sub(f, 1, 4) .. string.sub(f, 6, 7) .. string.sub(f, 9, 10))
end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then
  local oldest = daynum(ARGV[4])
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    local d = daynum(f)
    if d == nil or d < oldest then redis.call('HDEL', KEYS[1], f) end
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local notify = 0
if n > tonumber(ARGV[2]) then
  notify = redis.call('HSETNX', KEYS[1], ARGV[1] .. '!', 1)
end
return {n, notify}
`

// spendBudgetScript counts one reply in a fixed window; the window's key
// outlives the window by one length, then expires.
//
// KEYS[1] the window's counter
// ARGV[1] TTL in ms
// returns the count
const spendBudgetScript = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`

// NewRedis connects to Redis and pings it. A Redis that does not answer
// is ErrUnavailable, a bad option ErrInvalid; neither message holds the
// URL.
func NewRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	ro, err := opts.client()
	if err != nil {
		return nil, err
	}
	r := &Redis{
		prefix:      opts.Prefix,
		now:         opts.Now,
		log:         opts.Logger,
		countDay:    redis.NewScript(countDayScript),
		spendBudget: redis.NewScript(spendBudgetScript),
		claim:       redis.NewScript(claimScript),
		resolve:     redis.NewScript(resolveScript),
	}
	if _, err := io.ReadFull(opts.Rand, r.nonce[:]); err != nil {
		return nil, fmt.Errorf("%w: RedisOptions.Rand: %w", ErrInvalid, quiet{err, "read failed"})
	}
	r.rdb = redis.NewClient(ro)
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		_ = r.rdb.Close()
		return nil, fmt.Errorf("%w: ping on start: %w", ErrUnavailable, quiet{err, describe(err)})
	}
	r.log.Info().Str(logAddr, ro.Addr).Int(logDB, ro.DB).Str(logPrefix, r.prefix).Msg("shared state on redis")
	return r, nil
}

// client validates and completes o, and returns go-redis's options.
func (o *RedisOptions) client() (*redis.Options, error) {
	if o.URL == "" {
		return nil, invalid("RedisOptions.URL is required")
	}
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		// ParseURL's text can quote the URL, password included.
		return nil, fmt.Errorf("%w: RedisOptions.URL: %w", ErrInvalid, quiet{err, "not a redis URL"})
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !validPrefix(o.Prefix) {
		return nil, invalid(`RedisOptions.Prefix: letters, digits and "-_.:" only, at most sixty-four bytes`)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	for _, t := range []struct {
		name     string
		opt      time.Duration
		client   *time.Duration
		fallback time.Duration
	}{
		{"DialTimeout", o.DialTimeout, &ro.DialTimeout, DefaultDialTimeout},
		{"ReadTimeout", o.ReadTimeout, &ro.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", o.WriteTimeout, &ro.WriteTimeout, DefaultWriteTimeout},
	} {
		switch {
		case t.opt < 0:
			return nil, invalid("RedisOptions." + t.name + " must not be negative")
		case t.opt > 0:
			*t.client = t.opt
		case *t.client <= 0:
			*t.client = t.fallback
		}
	}
	switch {
	case o.MaxRetries < -1:
		return nil, invalid("RedisOptions.MaxRetries below minus one")
	case o.MaxRetries != 0:
		ro.MaxRetries = o.MaxRetries
	case ro.MaxRetries == 0:
		ro.MaxRetries = DefaultMaxRetries
	}
	switch {
	case o.PoolSize < 0:
		return nil, invalid("RedisOptions.PoolSize must not be negative")
	case o.PoolSize > 0:
		ro.PoolSize = o.PoolSize
	}
	// One dial attempt per command attempt: MaxRetries is the one retry
	// knob, so that a dead Redis costs (MaxRetries+1) dials, not five
	// times as many.
	ro.DialerRetries = 1
	// Deadlines of the caller's context bound commands too.
	ro.ContextTimeoutEnabled = true
	// Maintenance notifications are a Redis Enterprise/8 feature; "auto"
	// probes the server on every new connection.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return ro, nil
}

func validPrefix(p string) bool {
	if len(p) > 64 {
		return false
	}
	for _, c := range []byte(p) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// Keys. A subscriber's keys are "<prefix>:{<hex pseudonym>}:<what>": the
// braces make the pseudonym the Redis Cluster hash tag.

func (r *Redis) subKey(sub itinerary.Pseudonym, what string) string {
	b := make([]byte, 0, len(r.prefix)+2+2*len(sub)+2+len(what))
	b = append(b, r.prefix...)
	b = append(b, ":{"...)
	b = hex.AppendEncode(b, sub[:])
	b = append(b, "}:"...)
	b = append(b, what...)
	return string(b)
}

func (r *Redis) pendingKey(sub itinerary.Pseudonym) string { return r.subKey(sub, "pending") }
func (r *Redis) daysKey(sub itinerary.Pseudonym) string    { return r.subKey(sub, "days") }

// seenKey is "<prefix>:seen:<hex of a hash of id>": the id's own text,
// built from SMSC fields, never reaches Redis.
func (r *Redis) seenKey(id string) string {
	h := seenHash(id)
	return r.prefix + ":seen:" + hex.EncodeToString(h[:])
}

// budgetKey is "<prefix>:budget:<per in ms>:<window number>".
func (r *Redis) budgetKey(perMs, window int64) string {
	return r.prefix + ":budget:" + strconv.FormatInt(perMs, 10) + ":" + strconv.FormatInt(window, 10)
}

// token returns a value no other FirstDelivery call, of this client or
// another, will store.
func (r *Redis) token() string {
	var b [16]byte
	copy(b[:8], r.nonce[:])
	binary.BigEndian.PutUint64(b[8:], r.seq.Add(1))
	return string(b[:])
}

// FirstDelivery reports whether id is seen for the first time within ttl:
// SET NX with a token unique to the call, returning the previous value
// (SET ... NX GET, Redis 7). go-redis resends a command whose reply was
// lost; finding its own token tells the resent SET that the first one
// took, where a plain SET NX would report a first delivery as a
// duplicate. (go-redis's AutoPipeline is not used for the same reason:
// it retries whole batches.)
func (r *Redis) FirstDelivery(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	return r.firstDelivery(ctx, id, ttl, r.token())
}

func (r *Redis) firstDelivery(ctx context.Context, id string, ttl time.Duration, token string) (bool, error) {
	const op = "first delivery"
	old, err := r.rdb.SetArgs(ctx, r.seenKey(id), token, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
	if err := r.check(op, err); err != nil {
		return false, err
	}
	// No previous value: ours is stored.
	return errors.Is(err, redis.Nil) || old == token, nil
}

// SetPending stores p as sub's pending request for ttl, replacing any
// previous one.
func (r *Redis) SetPending(ctx context.Context, sub itinerary.Pseudonym, p Pending, ttl time.Duration) error {
	const op = "set pending"
	if err := checkTTL(ttl); err != nil {
		return err
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	return r.check(op, r.rdb.Set(ctx, r.pendingKey(sub), b, ttl).Err())
}

// TakePending removes sub's pending request and returns it: GETDEL, so of
// two instances taking at once only one gets it. A reply lost on the way
// loses the request too (the resent GETDEL finds nothing): the gateway
// then answers "nothing to confirm" rather than send twice.
func (r *Redis) TakePending(ctx context.Context, sub itinerary.Pseudonym) (Pending, bool, error) {
	const op = "take pending"
	b, err := r.rdb.GetDel(ctx, r.pendingKey(sub)).Bytes()
	if err := r.check(op, err); err != nil {
		return Pending{}, false, err
	}
	if errors.Is(err, redis.Nil) {
		return Pending{}, false, nil
	}
	var p Pending
	if err := p.UnmarshalBinary(b); err != nil {
		return Pending{}, false, err
	}
	return p, true, nil
}

// CancelPending removes sub's pending request and reports whether there
// was one.
func (r *Redis) CancelPending(ctx context.Context, sub itinerary.Pseudonym) (bool, error) {
	const op = "cancel pending"
	n, err := r.rdb.Del(ctx, r.pendingKey(sub)).Result()
	if err := r.check(op, err); err != nil {
		return false, err
	}
	return n > 0, nil
}

// CountRequest counts a request of sub on day against the daily limit,
// in one script (EVALSHA).
func (r *Redis) CountRequest(ctx context.Context, sub itinerary.Pseudonym, day string, limit int) (allowed, notifyLimit bool, err error) {
	const op = "count request"
	yesterday, err := checkDay(day)
	if err != nil {
		return false, false, err
	}
	if err := checkLimit(limit); err != nil {
		return false, false, err
	}
	res, err := r.countDay.Run(ctx, r.rdb, []string{r.daysKey(sub)},
		day, limit, dayCounterTTL.Milliseconds(), yesterday).Int64Slice()
	if err == nil && len(res) != 2 {
		err = errors.New("unexpected script reply")
	}
	if err := r.check(op, err); err != nil {
		return false, false, err
	}
	return res[0] <= int64(limit), res[1] == 1, nil
}

// AllowGlobal spends one unit of the reply budget of limit per window of
// length per, shared by every client on the same prefix (one script,
// EVALSHA).
func (r *Redis) AllowGlobal(ctx context.Context, limit int, per time.Duration) (bool, error) {
	const op = "allow global"
	if err := checkLimit(limit); err != nil {
		return false, err
	}
	if err := checkPer(per); err != nil {
		return false, err
	}
	perMs, w := window(r.now(), per)
	n, err := r.spendBudget.Run(ctx, r.rdb, []string{r.budgetKey(perMs, w)}, 2*perMs).Int64()
	if err := r.check(op, err); err != nil {
		return false, err
	}
	return n <= int64(limit), nil
}

// Forget removes everything held about sub: its pending request and its
// day counters, in one DEL (the keys share a hash tag, hence a slot).
// Delivery ids seen are not removed: they are hashes, unreadable without
// the id, and expire with their TTL.
func (r *Redis) Forget(ctx context.Context, sub itinerary.Pseudonym) error {
	const op = "forget"
	return r.check(op, r.rdb.Del(ctx, r.pendingKey(sub), r.daysKey(sub), r.dialogKey(sub)).Err())
}

// Close closes the connections; every later call returns ErrClosed (from
// go-redis's closed pool, mapped by check). It is safe to call more than
// once.
func (r *Redis) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := r.rdb.Close(); err != nil {
		return fmt.Errorf("%w: close: %w", ErrUnavailable, quiet{err, describe(err)})
	}
	return nil
}

// check turns the error of a go-redis command into this package's: nil
// when Redis answered (redis.Nil, "no such key", included), ErrClosed
// after Close, else ErrUnavailable. It logs the first failure after a
// success, and the first success after a failure.
func (r *Redis) check(op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		r.up()
		return nil
	}
	if errors.Is(err, redis.ErrClosed) && r.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	cause := describe(err)
	// A cancelled context says nothing about Redis.
	if !errors.Is(err, context.Canceled) && r.down.CompareAndSwap(false, true) {
		r.log.Warn().Str(logOp, op).Str(logCause, cause).Msg("shared state unavailable")
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, quiet{err, cause})
}

// up notes a command that Redis answered.
func (r *Redis) up() {
	if r.down.Load() && r.down.CompareAndSwap(true, false) {
		r.log.Info().Msg("shared state available again")
	}
}

// describe names the cause of a go-redis error in words free of
// addresses, keys and numbers.
func describe(err error) string {
	var (
		rerr   redis.Error
		nerr   net.Error
		dnserr *net.DNSError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "context canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, redis.ErrClosed):
		return "client closed"
	case errors.Is(err, redis.ErrPoolTimeout):
		return "no free connection in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dnserr):
		return "host not found"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return "connection lost"
	case errors.As(err, &rerr):
		return "server replied " + errorCode(rerr.Error())
	}
	return "i/o error"
}

// errorCode returns the leading word of a Redis error reply (ERR,
// LOADING, READONLY, WRONGPASS, ...); the rest can quote a key.
func errorCode(msg string) string {
	code, _, _ := strings.Cut(msg, " ")
	if code == "" {
		return "an error"
	}
	for _, c := range []byte(code) {
		if c < 'A' || c > 'Z' {
			return "an error"
		}
	}
	return code
}

package state

import (
	"context"
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
	ask         *redis.Script

	down   atomic.Bool // the last command failed for want of Redis
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

// claimScript is SET NX that also succeeds for the key's owner, so that a
// step repeated after a crash, or go-redis resending the script after a
// lost reply, finds its own claim. The claim is not extended.
//
// KEYS[1] the claim
// ARGV[1] owner, ARGV[2] TTL in ms
// returns 1 (taken for owner) or 0
const claimScript = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`

// dialogFields are the fields of a dialogue hash, in the order Dialog
// reads them and resolveScript returns them: st ("p" pending, "d" done),
// taker (once done), n (the nonce), days, lang (a number).
var dialogFields = [...]string{"st", "taker", "n", "days", "lang"}

// resolveScript marks a pending request done by ARGV[1] and keeps the
// record for the TTL; a record already done by ARGV[1] is left as it is,
// so a resent or repeated Resolve gets the same answer. It returns
// whether ARGV[1] holds the request, then the record as it was read,
// which the caller parses (a record that does not parse is corrupt
// whatever the answer).
//
// KEYS[1] the dialogue hash
// ARGV[1] taker, ARGV[2] TTL in ms
// returns {1 or 0, st, taker, n, days, lang}, absent fields nil
const resolveScript = `
local r = redis.call('HMGET', KEYS[1], 'st', 'taker', 'n', 'days', 'lang')
local took = 0
if r[1] == 'p' then
  redis.call('HSET', KEYS[1], 'st', 'd', 'taker', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  took = 1
elseif r[1] == 'd' and r[2] == ARGV[1] then
  took = 1
end
table.insert(r, 1, took)
return r
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
		ask:         redis.NewScript(askScript),
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

func (r *Redis) dialogKey(sub itinerary.Pseudonym) string { return r.subKey(sub, "dialog") }
func (r *Redis) daysKey(sub itinerary.Pseudonym) string   { return r.subKey(sub, "days") }

// claimKey is "<prefix>:claim:<hex of a hash of key>": the caller's key
// never reaches Redis as it is.
func (r *Redis) claimKey(key string) string {
	h := claimHash(key)
	return r.prefix + ":claim:" + hex.EncodeToString(h[:])
}

// budgetKey is "<prefix>:budget:<per in ms>:<window number>".
func (r *Redis) budgetKey(perMs, window int64) string {
	return r.prefix + ":budget:" + strconv.FormatInt(perMs, 10) + ":" + strconv.FormatInt(window, 10)
}

// Claim takes key for ttl on behalf of owner (one script): true when key
// was free or is already owner's. A repeated Claim does not extend the
// claim.
func (r *Redis) Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	const op = "claim"
	if err := checkClaim(key, owner, ttl); err != nil {
		return false, err
	}
	n, err := r.claim.Run(ctx, r.rdb, []string{r.claimKey(key)}, owner, ttl.Milliseconds()).Int64()
	if err := r.check(op, err); err != nil {
		return false, err
	}
	return n == 1, nil
}

// Ask makes req sub's pending request for ttl, replacing whatever the
// dialogue held (DEL, HSET and PEXPIRE in one MULTI).
func (r *Redis) Ask(ctx context.Context, sub itinerary.Pseudonym, req Request, ttl time.Duration) error {
	const op = "ask"
	if err := checkAsk(req, ttl); err != nil {
		return err
	}
	err := r.ask.Run(ctx, r.rdb, []string{r.dialogKey(sub)}, req.Nonce, req.Days, int(req.Lang), ttl.Milliseconds()).Err()
	return r.check(op, err)
}

// askScript replaces the dialogue with a pending request, unless the
// dialogue already holds that very request answered: a job repeated after
// a crash must not bring back a request its subscriber already confirmed.
//
// KEYS[1] the dialogue hash; ARGV nonce, days, lang, TTL in ms.
const askScript = `
if redis.call('TYPE', KEYS[1]).ok == 'hash'
  and redis.call('HGET', KEYS[1], 'st') == 'd' and redis.call('HGET', KEYS[1], 'n') == ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'st', 'p', 'n', ARGV[1], 'days', ARGV[2], 'lang', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`

// Dialog returns sub's dialogue (one HMGET).
func (r *Redis) Dialog(ctx context.Context, sub itinerary.Pseudonym) (Dialog, error) {
	const op = "dialog"
	v, err := r.rdb.HMGet(ctx, r.dialogKey(sub), dialogFields[:]...).Result()
	if err := r.check(op, err); err != nil {
		return Dialog{}, err
	}
	d, ok, err := parseDialog(op, v)
	if err != nil || !ok {
		return Dialog{}, err
	}
	return d.dialog(), nil
}

// Resolve ends sub's pending request on behalf of taker and returns it;
// the record of who took it is kept for ttl (one script). Resolving again
// with the same taker returns the same request; ok is false when nothing
// is pending and taker did not take it earlier.
func (r *Redis) Resolve(ctx context.Context, sub itinerary.Pseudonym, taker string, ttl time.Duration) (req Request, ok bool, err error) {
	const op = "resolve"
	if err := checkResolve(taker, ttl); err != nil {
		return Request{}, false, err
	}
	res, err := r.resolve.Run(ctx, r.rdb, []string{r.dialogKey(sub)}, taker, ttl.Milliseconds()).Slice()
	if err == nil && len(res) != 1+len(dialogFields) {
		err = errors.New("unexpected script reply")
	}
	if err := r.check(op, err); err != nil {
		return Request{}, false, err
	}
	d, found, err := parseDialog(op, res[1:])
	if err != nil || !found || res[0] != int64(1) {
		return Request{}, false, err
	}
	return d.req, true, nil
}

// parseDialog reads a dialogue hash's dialogFields, as HMGET returns
// them; found is false when the hash does not exist. A record that is not
// what Ask and Resolve write is ErrCorrupt: the caller cannot tell what
// the dialogue is.
func parseDialog(op string, v []any) (d dialogRec, found bool, err error) {
	var f [len(dialogFields)]string
	if len(v) != len(f) {
		return dialogRec{}, false, corruptDialog(op)
	}
	for i, x := range v {
		switch x := x.(type) {
		case nil:
		case string:
			f[i], found = x, true
		default:
			return dialogRec{}, false, corruptDialog(op)
		}
	}
	if !found {
		return dialogRec{}, false, nil
	}
	st, taker, nonce := f[0], f[1], f[2]
	days, err1 := strconv.Atoi(f[3])
	lang, err2 := strconv.ParseUint(f[4], 10, 8)
	d = dialogRec{req: Request{Nonce: nonce, Days: days, Lang: itinerary.Lang(lang)}}
	if st == "d" {
		d.done, d.taker = true, taker
	}
	switch {
	case st != "p" && st != "d", err1 != nil, err2 != nil, checkRequest(d.req) != nil,
		d.done && checkID("taker", taker) != nil:
		return dialogRec{}, false, corruptDialog(op)
	}
	return d, true, nil
}

func corruptDialog(op string) error { return fmt.Errorf("%w: %s: dialogue record", ErrCorrupt, op) }

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

// Forget removes everything held about sub: its dialogue and its day
// counters, in one DEL (the keys share a hash tag, hence a slot). Claims
// are not removed: see the package documentation.
func (r *Redis) Forget(ctx context.Context, sub itinerary.Pseudonym) error {
	const op = "forget"
	return r.check(op, r.rdb.Del(ctx, r.dialogKey(sub), r.daysKey(sub)).Err())
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
// after Close, ErrCorrupt when one of our keys holds another type, else
// ErrUnavailable. It logs the first failure after a success, and the
// first success after a failure.
func (r *Redis) check(op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		r.up()
		return nil
	}
	if errors.Is(err, redis.ErrClosed) && r.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && errorCode(rerr.Error()) == "WRONGTYPE" {
		// Redis answered; the key holds what this package never writes.
		r.up()
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, op, quiet{err, "wrong type"})
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

package compare

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/roamtrail/roamtrail/itinerary"
)

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// URL is the server, e.g. redis://127.0.0.1:6379/0. Required.
	URL string

	// Prefix starts every key: letters, digits, ':', '_' and '-' (it is
	// also a SCAN pattern). Keys under it are deleted by NewRedis and by
	// Close, so it must be the caller's own. The default is "rtcmp:".
	Prefix string

	// Batch is how many subscribers' ZADDs go in one pipeline. The
	// default is 1000.
	Batch int
}

var keyPrefix = regexp.MustCompile(`^[A-Za-z0-9:_-]{1,64}$`)

// Redis keeps each subscriber's visits in one sorted set scored by day:
// a lookup is one ZRANGEBYSCORE. Sets of a month's visits stay within
// Redis's listpack encoding (128 entries), the compact one.
type Redis struct {
	c      *redis.Client
	prefix string
	batch  int
}

// visitMember is a visit as a set member: day, region, first and last as
// big-endian uint32s. The day is in the member as well as in the score
// because members are unique: the same region with the same sightings on
// two days would otherwise be one member.
const visitMember = 16

// NewRedis connects and deletes what an earlier run left under the prefix.
func NewRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	if o.URL == "" {
		return nil, fmt.Errorf("%w: RedisOptions.URL is required", ErrBadOption)
	}
	if o.Prefix == "" {
		o.Prefix = "rtcmp:"
	}
	if !keyPrefix.MatchString(o.Prefix) {
		return nil, fmt.Errorf("%w: RedisOptions.Prefix %q: want letters, digits, ':', '_' or '-'", ErrBadOption, o.Prefix)
	}
	if o.Batch == 0 {
		o.Batch = 1000
	}
	if o.Batch < 1 {
		return nil, fmt.Errorf("%w: RedisOptions.Batch %d: want at least 1", ErrBadOption, o.Batch)
	}
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: RedisOptions.URL: %w", ErrBadOption, err)
	}
	r := &Redis{c: redis.NewClient(opts), prefix: o.Prefix, batch: o.Batch}
	if err := r.deleteAll(ctx); err != nil {
		r.c.Close()
		return nil, err
	}
	return r, nil
}

func (r *Redis) key(sub itinerary.Pseudonym) string { return r.prefix + string(sub[:]) }

// Load ZADDs every subscriber's visits, Batch subscribers to a pipeline.
// Load.Bytes is the sum of MEMORY USAGE over the keys written (value,
// key and the keyspace's entry: what the data costs, whatever else the
// server holds); Load.ServerBytes is used_memory after minus before.
func (r *Redis) Load(ctx context.Context, subs []Subscriber) (Load, error) {
	var ld Load
	before, err := r.usedMemory(ctx)
	if err != nil {
		return ld, err
	}
	args := make([]redis.Z, 0, 64)
	for start := 0; start < len(subs); start += r.batch {
		pipe := r.c.Pipeline()
		for _, s := range subs[start:min(start+r.batch, len(subs))] {
			if len(s.Visits) == 0 {
				continue
			}
			args = args[:0]
			for _, v := range s.Visits {
				var m [visitMember]byte
				binary.BigEndian.PutUint32(m[0:], uint32(v.Day))
				binary.BigEndian.PutUint32(m[4:], uint32(v.Region))
				binary.BigEndian.PutUint32(m[8:], v.First)
				binary.BigEndian.PutUint32(m[12:], v.Last)
				args = append(args, redis.Z{Score: float64(v.Day), Member: string(m[:])})
			}
			pipe.ZAdd(ctx, r.key(s.Sub), args...)
			ld.Visits += len(s.Visits)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return ld, fmt.Errorf("compare: redis: load: %w", err)
		}
	}
	after, err := r.usedMemory(ctx)
	if err != nil {
		return ld, err
	}
	ld.ServerBytes = after - before
	for start := 0; start < len(subs); start += r.batch {
		pipe := r.c.Pipeline()
		var cmds []*redis.IntCmd
		for _, s := range subs[start:min(start+r.batch, len(subs))] {
			if len(s.Visits) > 0 {
				cmds = append(cmds, pipe.MemoryUsage(ctx, r.key(s.Sub)))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return ld, fmt.Errorf("compare: redis: memory usage: %w", err)
		}
		for _, c := range cmds {
			ld.Bytes += c.Val()
		}
	}
	return ld, nil
}

func (r *Redis) usedMemory(ctx context.Context) (int64, error) {
	info, err := r.c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("compare: redis: info: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("%w: redis INFO memory has no used_memory", ErrCorrupt)
}

// Visits appends sub's visits on the days of w to dst, sorted by day.
func (r *Redis) Visits(ctx context.Context, sub itinerary.Pseudonym, w itinerary.Window, dst []itinerary.Visit) ([]itinerary.Visit, error) {
	ms, err := r.c.ZRangeByScore(ctx, r.key(sub), &redis.ZRangeBy{
		Min: strconv.Itoa(int(w.First)), Max: strconv.Itoa(int(w.Last)),
	}).Result()
	if err != nil {
		return dst, fmt.Errorf("compare: redis: lookup: %w", err)
	}
	for _, m := range ms {
		if len(m) != visitMember {
			return dst, fmt.Errorf("%w: redis member of %d bytes", ErrCorrupt, len(m))
		}
		b := []byte(m)
		dst = append(dst, itinerary.Visit{
			Day:    itinerary.Day(int32(binary.BigEndian.Uint32(b[0:]))),
			Region: itinerary.Region(binary.BigEndian.Uint32(b[4:])),
			First:  binary.BigEndian.Uint32(b[8:]),
			Last:   binary.BigEndian.Uint32(b[12:]),
		})
	}
	return dst, nil
}

// Close deletes every key under the prefix and closes the client. It is
// safe to call more than once and after an interrupted Load; ctx bounds
// the deletion.
func (r *Redis) Close(ctx context.Context) error {
	if r.c == nil {
		return nil
	}
	err := r.deleteAll(ctx)
	err = errors.Join(err, r.c.Close())
	r.c = nil
	return err
}

// deleteAll UNLINKs the keys under the prefix, found with SCAN: it needs
// no record of what was written, so it also cleans up after a run that
// was killed.
func (r *Redis) deleteAll(ctx context.Context) error {
	var cursor uint64
	for {
		keys, next, err := r.c.Scan(ctx, cursor, r.prefix+"*", 10_000).Result()
		if err != nil {
			return fmt.Errorf("compare: redis: scan: %w", err)
		}
		if len(keys) > 0 {
			if err := r.c.Unlink(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("compare: redis: unlink: %w", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

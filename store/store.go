package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Errors. None carries a number or a pseudonym.
var (
	ErrLocked      = errors.New("store: data dir is in use")
	ErrCorrupt     = errors.New("store: corrupt data")
	ErrWrongKey    = errors.New("store: pseudonym key does not match this data dir")
	ErrWrongZone   = errors.New("store: time zone differs from the one this data dir was made with")
	ErrClosed      = errors.New("store: closed")
	ErrBadOption   = errors.New("store: bad option")
	ErrTooManyRegs = errors.New("store: too many distinct regions")
)

// formatVersion names the key and value layout of package doc. A data dir
// written with another layout is refused rather than misread.
const formatVersion = "roamtrail-visits-1"

// Options configure a store. The zero value is usable: every field has a
// default.
type Options struct {
	// Location is the time zone whose calendar days the store counts.
	// It is recorded when the store is made; opening with another is
	// ErrWrongZone, since stored day numbers would shift. The default is
	// Asia/Shanghai.
	Location *time.Location

	// Retention is how many days, today included, are kept and returned.
	// Older visits are never returned and Purge deletes them. The default is
	// 30.
	Retention int

	// KeyFingerprint identifies the pseudonym key (privacy.Pseudonymizer's
	// Fingerprint). It is recorded when the store is made; opening with
	// another is ErrWrongKey. Nil skips the check.
	KeyFingerprint []byte

	// CacheSize is Pebble's block cache in bytes. Lookups are served from
	// memory, so the cache only serves writes, purges and Open's scan. The
	// default is 64 MiB.
	CacheSize int64

	// MemTableSize is Pebble's memtable size in bytes. The default is
	// 64 MiB.
	MemTableSize uint64

	// WALMinSyncInterval is the least time between two fsyncs of Pebble's
	// write-ahead log (Pebble's option of that name): synced writes that
	// come meanwhile share the next one, and wait for it. Where an fsync
	// costs CPU (about 0.2 ms on this project's machine), a few
	// milliseconds under load take fewer fsyncs for the same writes;
	// serve's --sync-interval says what was measured. The default, 0,
	// syncs at once.
	WALMinSyncInterval time.Duration

	// FS is the filesystem. The default is the operating system's;
	// vfs.NewMem() gives a store in memory for fast tests (no dir lock).
	FS vfs.FS

	// Now is the clock: it decides "today" for retention. The default is
	// time.Now.
	Now func() time.Time

	// Logger receives the store's few log lines (open, purge). The default
	// discards them.
	Logger *zerolog.Logger

	// MinFree is the free space, in bytes, kept on the data dir's file
	// system for Pebble's flushes and compactions: a write that adds data
	// (an ingest batch, a queued job, a code) is refused with ErrDiskFull
	// while less is free, rather than let Pebble meet a full disk, which it
	// takes as fatal. Negative turns the check off. The default is twice
	// MemTableSize plus 16 MiB. Only with the operating system's FS.
	MinFree int64

	// Collect says whose events Apply keeps: CollectAll (the default)
	// keeps everyone's but those who opted out; CollectOptedIn keeps only
	// those who opted in. Either way events from before an opt-in or a
	// reassignment are dropped. It is not recorded in the store: a
	// deployment may move from one policy to the other.
	Collect Collect
}

func (o *Options) withDefaults() (Options, error) {
	r := *o
	if r.Location == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			return r, fmt.Errorf("%w: Location: %w", ErrBadOption, err)
		}
		r.Location = loc
	}
	if r.Retention == 0 {
		r.Retention = 30
	}
	if r.Retention < 1 || r.Retention > 3660 {
		return r, fmt.Errorf("%w: Retention %d days is outside 1..3660", ErrBadOption, r.Retention)
	}
	if r.CacheSize == 0 {
		r.CacheSize = 64 << 20
	}
	if r.MemTableSize == 0 {
		r.MemTableSize = 64 << 20
	}
	if r.FS == nil {
		r.FS = vfs.Default
	}
	if r.MinFree == 0 {
		r.MinFree = 2*int64(r.MemTableSize) + 16<<20
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.WALMinSyncInterval < 0 || r.WALMinSyncInterval > time.Second {
		return r, fmt.Errorf("%w: WALMinSyncInterval %s is outside 0..1s", ErrBadOption, r.WALMinSyncInterval)
	}
	if r.Collect > CollectOptedIn {
		return r, fmt.Errorf("%w: Collect %d is neither CollectAll nor CollectOptedIn", ErrBadOption, r.Collect)
	}
	if r.Logger == nil {
		l := zerolog.Nop()
		r.Logger = &l
	}
	return r, nil
}

// DB is an open visit store. It is safe for concurrent use.
type DB struct {
	opts Options
	log  zerolog.Logger
	pdb  *pebble.DB
	lock *dirLock
	mem  *memIndex
	// spaceDir is where roomFor measures free space; empty with a FS other
	// than the operating system's.
	spaceDir string
	// spaceFree and spaceAt are roomFor's last measurement: bytes free,
	// and when (unix nanoseconds).
	spaceFree, spaceAt atomic.Int64

	// writeMu serialises writers (Apply, Erase, Purge): each reads the index
	// to compute what it writes, and the index must not change in between.
	writeMu sync.Mutex
	closed  bool
	purged  itinerary.Day // the cutoff of the last purge in this process

	// consentGen counts consent changes (under writeMu), so that Apply can
	// tell whether its fold outside writeMu saw the consent it commits
	// under.
	consentGen atomic.Uint64

	// lifeMu keeps Close from closing Pebble under the calls that do not
	// take writeMu (jobs): Pebble panics on use after close.
	lifeMu sync.RWMutex
}

// Open opens the store in dir, creating it if needed, and loads its index
// into memory.
func Open(ctx context.Context, dir string, o Options) (_ *DB, err error) {
	opts, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	db := &DB{opts: opts, log: opts.Logger.With().Str("component", "store").Logger(), mem: newMemIndex()}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if opts.FS == vfs.Default {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: data dir: %w", err)
		}
		if db.lock, err = lockDir(dir); err != nil {
			return nil, err
		}
		db.spaceDir = dir
		// Pebble replays its log into a flush as it opens: with no room
		// for that it retries for ever, so a full disk is refused here.
		if err := db.roomFor("open"); err != nil {
			return nil, err
		}
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:                 noRecycleFS{opts.FS}, // see fs.go: retention
		Cache:              cache,
		MemTableSize:       opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{db.log},
	}
	popts.CompactionConcurrencyRange = func() (int, int) { return 1, 2 }
	if d := opts.WALMinSyncInterval; d > 0 {
		popts.WALMinSyncInterval = func() time.Duration { return d }
	}
	// Rotate the MANIFEST as soon as Pebble's own rule allows (edits since
	// the last snapshot outnumber the live files) rather than at 128 MiB: the
	// MANIFEST records each sstable's first and last key, which are visit keys,
	// and would keep those of purged files for months.
	popts.MaxManifestFileSize = 1
	db.pdb, err = pebble.Open(filepath.Join(dir, "visits"), popts)
	if err != nil {
		return nil, fmt.Errorf("store: open pebble: %w", err)
	}
	if err := db.checkMeta(); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := db.loadConsent(ctx); err != nil {
		return nil, err
	}
	if err := db.load(ctx); err != nil {
		return nil, err
	}
	subs, visits := db.mem.stats()
	db.log.Info().Int("subscribers", subs).Int("visits", visits).Int64("consent_records", db.mem.consents.Load()).
		Dur("took", time.Since(start)).Msg("store open")
	return db, nil
}

// checkMeta records the layout, zone and key of a new store and checks them
// on an existing one.
func (db *DB) checkMeta() error {
	b := db.pdb.NewBatch()
	defer b.Close()
	for _, m := range []struct {
		name string
		want []byte
		err  error
	}{
		{"format", []byte(formatVersion), ErrCorrupt},
		{"tz", []byte(db.opts.Location.String()), ErrWrongZone},
		{"key", db.opts.KeyFingerprint, ErrWrongKey},
	} {
		if m.want == nil {
			continue
		}
		got, err := db.getMeta(m.name)
		switch {
		case err != nil:
			return err
		case got == nil:
			b.Set(metaKey(m.name), m.want, nil)
		case !bytes.Equal(got, m.want):
			if m.name == "tz" {
				return fmt.Errorf("%w: made with %s", m.err, got)
			}
			return m.err
		}
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(pebble.Sync)
}

func (db *DB) getMeta(name string) ([]byte, error) {
	v, c, err := db.pdb.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read meta: %w", err)
	}
	defer c.Close()
	return bytes.Clone(v), nil
}

// load reads every live visit into the index. Visits already past
// retention are left for Purge: they are never returned.
func (db *DB) load(ctx context.Context) error {
	cutoff := db.cutoff()
	it, err := db.pdb.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: dayKey(cutoff), UpperBound: dayKey(maxDay + 1)})
	if err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		day, sub, err := parseVisitKey(it.Key())
		if err != nil {
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: load: %w", err)
		}
		var perr error
		err = parseVisitValue(v, func(dv dayVisit) {
			idx, ok := db.mem.index(dv.region)
			if !ok {
				perr = ErrTooManyRegs
				return
			}
			db.mem.appendLoaded(sub, pack(day, idx, dv.first, dv.last))
		})
		if err = errors.Join(err, perr); err != nil {
			return err
		}
		if n++; n%(1<<16) == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	return nil
}

// Close flushes nothing (every acknowledged write is already synced) and
// releases the data dir. It is safe to call more than once and after a
// failed Open.
func (db *DB) Close() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return nil
	}
	db.lifeMu.Lock()
	defer db.lifeMu.Unlock()
	db.closed = true
	var err error
	if db.pdb != nil {
		err = db.pdb.Close()
	}
	return errors.Join(err, db.lock.release())
}

// enterRead takes lifeMu for reading unless the store is closed; the
// caller releases it.
func (db *DB) enterRead() bool {
	db.lifeMu.RLock()
	if db.closed {
		db.lifeMu.RUnlock()
		return false
	}
	return true
}

// today is the current local day.
func (db *DB) today() itinerary.Day {
	d, _ := itinerary.DayOf(db.opts.Now(), db.opts.Location)
	return d
}

// cutoff is the oldest day still inside retention.
func (db *DB) cutoff() itinerary.Day { return db.today() - itinerary.Day(db.opts.Retention) + 1 }

// Location is the time zone the store counts days in.
func (db *DB) Location() *time.Location { return db.opts.Location }

// Visits appends to dst sub's visits on the days of w that are still within
// retention, sorted by day. It never touches the disk.
func (db *DB) Visits(ctx context.Context, sub itinerary.Pseudonym, w itinerary.Window, dst []itinerary.Visit) ([]itinerary.Visit, error) {
	from := max(w.First, db.cutoff())
	if from > w.Last {
		return dst, nil
	}
	return db.mem.visits(dst, sub, from, w.Last), nil
}

// Offset returns the offset stored by the last Apply for source, and whether
// there was one.
func (db *DB) Offset(source string) (int64, bool, error) {
	if !db.enterRead() {
		return 0, false, ErrClosed
	}
	defer db.lifeMu.RUnlock()
	v, err := db.getMeta("offset/" + source)
	if err != nil || v == nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: offset", ErrCorrupt)
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// Stats describes what the store holds.
type Stats struct {
	Subscribers int   // subscribers with a live visit
	Visits      int   // live visits in memory
	DiskBytes   int64 // bytes Pebble uses on disk
}

// Stats reports what the store holds.
func (db *DB) Stats() Stats {
	subs, visits := db.mem.stats()
	m := db.pdb.Metrics()
	return Stats{Subscribers: subs, Visits: visits, DiskBytes: int64(m.DiskSpaceUsage())}
}

type pebbleLogger struct{ l zerolog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug().Msgf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error().Msgf(format, args...)
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error().Msgf(format, args...)
	panic(fmt.Sprintf(format, args...))
}

// Flush writes the memtable out to sstables. Writes are durable without it
// (the WAL is synced); it serves measurements of what the store holds on
// disk and an orderly shutdown that leaves no WAL to replay.
func (db *DB) Flush() error {
	if err := db.pdb.Flush(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	return nil
}

// Compact compacts the whole store, so that its size on disk is what it
// settles to (tombstones applied, WAL recycled). Serving never needs it;
// the benchmarks use it to report bytes per subscriber-day honestly.
func (db *DB) Compact(ctx context.Context) error {
	if err := db.pdb.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	return nil
}

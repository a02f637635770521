package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"
)

// DefaultName is the log name used when Options.Name is empty.
const DefaultName = "roamtrail-audit"

// Defaults.
const (
	DefaultMaxFileSize = 64 << 20
	DefaultRetention   = 3 * 365 * 24 * time.Hour
)

// Log field names.
const (
	logFile  = "file"
	logSeq   = "seq"
	logBytes = "bytes"
	logFiles = "files"
)

// Options configure Open.
type Options struct {
	// Name names the log in its genesis hash and in every checkpoint, so
	// that one deployment's log cannot pass for another's. Verify must be
	// given the same name. The default is DefaultName.
	Name string
	// Signer signs checkpoints and prune anchors: an Ed25519 key from
	// GenerateKey or LoadOrCreateSigner. Required.
	Signer note.Signer
	// MaxFileSize is the size past which the next entry starts a new file.
	// The default is 64 MiB.
	MaxFileSize int64
	// Retention is how long a file is kept after its day; Prune deletes older
	// ones. The default is three years (3*365 days), what PIPL asks of
	// records of processing.
	Retention time.Duration
	// Now is the clock. The default is time.Now.
	Now func() time.Time
	// Logger receives repairs, rotations, prunes and failures. The default
	// is zerolog.Nop().
	Logger *zerolog.Logger
	// NoSync skips the fsync after each Append. The default (false) syncs,
	// so that an entry Append returned is on disk before any data is
	// released; turn it off only for tests and benchmarks.
	NoSync bool
	// MinSyncInterval is the least time between two fsyncs. Appends that
	// come meanwhile wait for the next one, which covers them all: where
	// an fsync costs CPU (about 0.2 ms on this project's machine), a few
	// milliseconds under load take fewer fsyncs for the same appends. It
	// delays an append by at most the interval; one with no fsync in the
	// last interval syncs at once. The default, 0, syncs at once always.
	MinSyncInterval time.Duration
}

// Log is an append-only, hash-chained access log in a directory. It is safe
// for concurrent use; appends are serialised.
type Log struct {
	dir     string
	opts    Options
	log     zerolog.Logger
	genesis string
	lock    *os.File // held (flock) while the log is open

	// ckMu serialises writers of the checkpoints file (Checkpoint, Prune,
	// Close) so that their signing and I/O happen outside mu. Take it
	// before mu.
	ckMu sync.Mutex

	mu     sync.Mutex
	f      *os.File // the current file, opened for appending; nil before the first
	cur    segment
	size   int64
	seq    uint64 // of the last entry, 0 if none
	hash   string // of the last entry, the genesis hash if none
	ckSeq  uint64 // seq of the last checkpoint written
	err    error  // the first write failure; sticky
	closed bool

	// Group commit: appenders write their line under mu, then wait until
	// an fsync covers it. One of them at a time (syncing) runs the fsync
	// with mu released, so the lines others write meanwhile share the
	// next one. synced is the last seq known to be on disk.
	syncCond *sync.Cond
	syncing  bool
	synced   uint64
	lastSync time.Time // when the last fsync ended, for MinSyncInterval

	done      chan struct{} // closed by Close; stops RunCheckpoints
	closeOnce sync.Once
	closeErr  error
}

// Open opens the log in dir, creating dir with mode 0700 if needed; a dir
// that group or others can enter is refused.
//
// Open reads only the tail of the last file, to recover the last Seq and
// Hash; Verify reads everything. A torn last line, left by a crash in the
// middle of a write, is cut away and the cut is recorded as an ActRepair
// entry, so that it shows in the log rather than passing silently. Any other
// bad line in the tail is an error: Open refuses the log and Verify names the
// line. So is a log that ends before checkpoint.latest.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, log: *opts.Logger, genesis: genesis(opts.Name), done: make(chan struct{})}
	l.syncCond = sync.NewCond(&l.mu)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, ErrPerms
	}
	if l.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			l.closeFile()
			l.lock.Close()
		}
	}()
	torn, err := l.recover()
	if err != nil {
		return nil, err
	}
	if err := l.checkLatest(); err != nil {
		return nil, err
	}
	if err := repairCheckpoints(dir, l.log); err != nil {
		return nil, err
	}
	if torn > 0 {
		_, err := l.append(Entry{Actor: ActorSystem, Role: RoleSystem, Action: ActRepair, Outcome: "ok",
			Detail: fmt.Sprintf("dropped a torn last line of %d bytes left by a crash", torn)})
		if err != nil {
			return nil, err
		}
	}
	ok = true
	return l, nil
}

func (o *Options) resolve() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if !validName(o.Name) {
		return errors.New("audit: Options.Name must be non-empty, without spaces or +")
	}
	if o.Signer == nil {
		return errors.New("audit: Options.Signer is required")
	}
	switch {
	case o.MaxFileSize < 0:
		return errors.New("audit: Options.MaxFileSize is negative")
	case o.MaxFileSize == 0:
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MinSyncInterval < 0 {
		return errors.New("audit: Options.MinSyncInterval is negative")
	}
	switch {
	case o.Retention < 0:
		return errors.New("audit: Options.Retention is negative")
	case o.Retention == 0:
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	return nil
}

// recover finds the last entry, cutting a torn last line away; it returns
// how many bytes it cut. On return l.f is the last file, open for appending,
// or nil if the log is empty.
func (l *Log) recover() (torn int, err error) {
	l.seq, l.hash = 0, l.genesis
	files, err := listFiles(l.dir)
	if err != nil {
		return 0, err
	}
	for last := true; len(files) > 0; last = false {
		lf := files[len(files)-1]
		f, err := os.OpenFile(filepath.Join(l.dir, lf.name), os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			return torn, fmt.Errorf("audit: %w", err)
		}
		e, n, err := l.recoverFile(f, lf.name, last)
		torn += n
		if err != nil {
			f.Close()
			return torn, err
		}
		if e.Seq > 0 {
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return torn, fmt.Errorf("audit: %w", err)
			}
			l.f, l.cur, l.size, l.seq, l.hash = f, lf, st.Size(), e.Seq, e.Hash
			l.synced = e.Seq // read back from the file: on disk already
			return torn, nil
		}
		// An empty file: a rotation that crashed before its first write, or
		// a torn first line just cut away. It holds nothing to keep.
		f.Close()
		if err := os.Remove(filepath.Join(l.dir, lf.name)); err != nil {
			return torn, fmt.Errorf("audit: %w", err)
		}
		if err := syncDir(l.dir); err != nil {
			return torn, err
		}
		l.log.Warn().Str(logFile, lf.name).Msg("audit: removed an empty log file")
		files = files[:len(files)-1]
	}
	return torn, nil
}

// recoverFile checks the tail of f and returns its last entry (Seq 0 if it
// has none) and how many torn bytes it cut. Only the last file may be torn.
func (l *Log) recoverFile(f *os.File, name string, last bool) (Entry, int, error) {
	st, err := f.Stat()
	if err != nil {
		return Entry{}, 0, fmt.Errorf("audit: %w", err)
	}
	data, off, err := readTail(f, st.Size(), 8*maxLine)
	if err != nil {
		return Entry{}, 0, fmt.Errorf("audit: %w", err)
	}
	lines, torn := completeLines(data, off)
	if torn == len(data) && off > 0 {
		return Entry{}, 0, fmt.Errorf("%w: %s: no complete line in its last %d bytes", ErrTampered, name, len(data))
	}
	if torn > 0 {
		if !last {
			return Entry{}, 0, fmt.Errorf("%w: %s: ends in %d bytes that are not a line", ErrTampered, name, torn)
		}
		if err := f.Truncate(st.Size() - int64(torn)); err != nil {
			return Entry{}, 0, fmt.Errorf("audit: cut torn line: %w", err)
		}
		if err := f.Sync(); err != nil {
			return Entry{}, 0, fmt.Errorf("audit: cut torn line: %w", err)
		}
		l.log.Warn().Str(logFile, name).Int(logBytes, torn).Msg("audit: cut a torn last line")
	}
	if len(lines) == 0 {
		return Entry{}, torn, nil
	}
	var prev Entry
	for i, line := range lines {
		e, err := parseEntry(line)
		if err == nil && hashOf(e.canonical()) != e.Hash {
			err = errors.New("hash does not match")
		}
		if err == nil && i > 0 && (e.Seq != prev.Seq+1 || e.Prev != prev.Hash) {
			err = errors.New("does not follow the line before")
		}
		if err != nil {
			return Entry{}, 0, fmt.Errorf("%w: %s: line %d from the end: %v (run Verify)", ErrTampered, name, len(lines)-i, err)
		}
		prev = e
	}
	return prev, torn, nil
}

// checkLatest refuses a log that ends before checkpoint.latest: entries a
// signed checkpoint vouched for are gone, and appending would fork the
// chain. The note is read but not verified; Open has no verifier key, and
// Verify checks it properly.
func (l *Log) checkLatest() error {
	b, err := os.ReadFile(filepath.Join(l.dir, latestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	c, err := parseCheckpointText(unverifiedText(b), l.opts.Name)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadCheckpoint, latestName, err)
	}
	switch {
	case c.seq > l.seq:
		return fmt.Errorf("%w: the log ends at seq %d, %s is at seq %d", ErrTruncated, l.seq, latestName, c.seq)
	case c.seq == l.seq && c.hash != l.hash:
		return fmt.Errorf("%w: the last entry, seq %d, differs from %s", ErrTampered, l.seq, latestName)
	}
	l.ckSeq = c.seq
	return nil
}

// Append writes e to the log, filling Seq, Time, Prev and Hash, and returns
// the entry as written. When it returns nil the entry is on disk (unless
// Options.NoSync); when it returns an error the caller must refuse the
// request the entry was for.
//
// An entry that breaks a rule of Entry is refused with ErrInvalid or
// ErrNumber and the log carries on. A failed write or sync fails the log
// closed: every later Append returns ErrFailed until it is reopened.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	return l.append(e)
}

// Write appends e like Append, but returns once its line is written and
// before the fsync that makes it durable; Synced waits for that fsync.
// It is for a caller that holds a durable record of its own from which the
// entry can be written again after a crash, and keeps that record until
// Synced returns: the gateway, whose queued job records a confirmed
// request before its itinerary is looked up, writes the entry, sends the
// itinerary while the fsync runs, and deletes the job only after Synced.
// A Write that returns an error wrote nothing durable (as Append).
func (l *Log) Write(ctx context.Context, e Entry) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	if err := e.validate(); err != nil {
		return Entry{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(e)
}

// Synced returns once an fsync covers the entry numbered seq (from Write),
// running it if no other appender is; with Options.NoSync at once. An
// error means the log failed (or closed) before seq was known to be on
// disk: the caller's own record must then write the entry again.
func (l *Log) Synced(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.opts.NoSync {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.seq {
		return fmt.Errorf("%w: seq %d was never written", ErrInvalid, seq)
	}
	if err := l.waitSynced(seq); err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return nil
}

// append validates e outside the lock, then appends it and waits for its
// fsync.
func (l *Log) append(e Entry) (Entry, error) {
	if err := e.validate(); err != nil {
		return Entry{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := l.appendLocked(e)
	if err != nil {
		return Entry{}, err
	}
	if !l.opts.NoSync {
		if err := l.waitSynced(e.Seq); err != nil {
			return Entry{}, fmt.Errorf("%w: %w", ErrFailed, err)
		}
	}
	return e, nil
}

// appendLocked writes e's line, without waiting for its fsync. Called with
// mu held.
func (l *Log) appendLocked(e Entry) (Entry, error) {
	switch {
	case l.closed:
		return Entry{}, ErrClosed
	case l.err != nil:
		return Entry{}, fmt.Errorf("%w: %w", ErrFailed, l.err)
	}
	e.Seq = l.seq + 1
	e.Time = l.opts.Now().UTC().Truncate(time.Microsecond)
	e.Prev = l.hash
	line := e.seal()
	if err := l.write(e.Time, line); err != nil {
		var u undoneError
		if errors.As(err, &u) {
			// Nothing of the entry is in the file: the log is as it was,
			// and the next append may succeed (a full disk that was
			// cleared, say).
			l.log.Error().Err(u.err).Str(logFile, l.cur.name).Uint64(logSeq, e.Seq).Msg("audit: append failed and undone")
			return Entry{}, fmt.Errorf("%w: %w", ErrFailed, u.err)
		}
		l.err = err
		l.log.Error().Err(err).Str(logFile, l.cur.name).Uint64(logSeq, e.Seq).Msg("audit: append failed; refusing appends until reopened")
		return Entry{}, fmt.Errorf("%w: %w", ErrFailed, err)
	}
	l.seq, l.hash = e.Seq, e.Hash
	return e, nil
}

// waitSynced returns once an fsync covers seq, running it itself when no
// other appender is. Called with mu held; it releases mu while it waits or
// syncs. A failed fsync fails the log closed, as a failed write does.
func (l *Log) waitSynced(seq uint64) error {
	for l.synced < seq {
		if l.err != nil {
			return l.err
		}
		if l.syncing {
			l.syncCond.Wait()
			continue
		}
		if l.f == nil {
			return ErrClosed // and Close could not sync it
		}
		l.syncing = true
		if wait := l.opts.MinSyncInterval - time.Since(l.lastSync); wait > 0 {
			// Lines written while this one waits share its fsync.
			l.mu.Unlock()
			time.Sleep(wait)
			l.mu.Lock()
			if l.synced >= seq || l.f == nil {
				// A rotation or Close synced it meanwhile (or Close
				// could not: the loop says so).
				l.syncing = false
				l.syncCond.Broadcast()
				continue
			}
		}
		f, upto := l.f, l.seq
		l.mu.Unlock()
		err := f.Sync()
		l.mu.Lock()
		l.lastSync = time.Now()
		l.syncing = false
		// A rotation may have closed f meanwhile: it synced f first.
		if err != nil && !errors.Is(err, os.ErrClosed) {
			if l.err == nil {
				l.err = err
				l.log.Error().Err(err).Uint64(logSeq, upto).Msg("audit: fsync failed; refusing appends until reopened")
			}
			l.syncCond.Broadcast()
			return err
		}
		l.synced = max(l.synced, upto)
		l.syncCond.Broadcast()
	}
	return nil
}

// write writes one line, starting a new file first if the line's day is
// past the current file's or the line would take the file past MaxFileSize.
func (l *Log) write(t time.Time, line []byte) error {
	day := utcDay(t)
	if l.f == nil || day.After(l.cur.day) || l.size > 0 && l.size+int64(len(line)) > l.opts.MaxFileSize {
		if err := l.rotate(day); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	if err != nil && l.f.Truncate(l.size) == nil {
		// The file is cut back to its last whole entry (the file is in
		// append mode: the next write goes after it).
		return undoneError{err}
	}
	l.size += int64(n)
	return err // synced by append (group commit)
}

// undoneError is a write that failed and left nothing in the file.
type undoneError struct{ err error }

func (u undoneError) Error() string { return u.err.Error() }
func (u undoneError) Unwrap() error { return u.err }

// rotate closes the current file and starts the next. A file is named for
// the day of its first entry, and never earlier than the file before it if
// the clock stepped back, so a file never holds an entry from a later day
// than its name: Scan relies on that to skip files.
func (l *Log) rotate(day time.Time) error {
	if l.f != nil {
		// Synced even with NoSync: a rotation is rare and the old file is
		// done.
		if err := l.f.Sync(); err != nil {
			return err
		}
		l.synced = max(l.synced, l.seq)
		if err := l.f.Close(); err != nil {
			l.f = nil
			return err
		}
		l.f = nil
	}
	if day.Before(l.cur.day) {
		day = l.cur.day
	}
	lf := segment{idx: l.cur.idx + 1, day: day}
	lf.name = fileName(lf.idx, lf.day)
	f, err := os.OpenFile(filepath.Join(l.dir, lf.name), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if !l.opts.NoSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return err
		}
	}
	l.f, l.cur, l.size = f, lf, 0
	l.log.Debug().Str(logFile, lf.name).Msg("audit: new log file")
	return nil
}

// Close writes a final checkpoint if there were entries since the last one
// (and the log has not failed), and closes the log. It is idempotent, and safe on a nil *Log.
// Healthy says whether the log takes appends: nil, ErrClosed, or an error
// wrapping ErrFailed after a write or fsync failed (the service must then
// send no itinerary, and says so on its health check).
func (l *Log) Healthy() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case l.err != nil:
		return fmt.Errorf("%w: %w", ErrFailed, l.err)
	}
	return nil
}

func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Log) close() error {
	close(l.done)
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.mu.Lock()
	l.closed = true
	seq, hash, dirty := l.seq, l.hash, l.seq != l.ckSeq && l.err == nil
	err := l.closeFile()
	l.mu.Unlock()
	if dirty && err == nil {
		_, err = l.writeCheckpoint(checkpoint{seq: seq, hash: hash})
	}
	// The lock goes last: another process may start appending once it is
	// released.
	if cerr := l.lock.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit: unlock: %w", cerr)
	}
	return err
}

// closeFile syncs and closes the current file. Call with mu held, or from
// Open before the log is shared.
func (l *Log) closeFile() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if err == nil {
		l.synced = l.seq // for appenders waiting out MinSyncInterval
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if l.syncCond != nil {
		l.syncCond.Broadcast()
	}
	// After a write failure the file may be gone bad already; that failure
	// was reported when it happened.
	if err != nil && l.err == nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync dir: %w", err)
	}
	return nil
}

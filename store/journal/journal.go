// Package journal is the gateway's durable job queue: an MO is written here,
// and synced, before its deliver_sm_resp says OK, and deleted once its reply
// is sent. It is an append-only log of puts and deletes in segment files,
// with the live jobs held in memory.
//
// # Why not Pebble
//
// Jobs used to live in the visit store. A job lives for milliseconds: put,
// maybe updated, deleted. In Pebble each of those went through the commit
// pipeline and the memtable, and every few seconds a memtable flush wrote
// them all to an sstable, with fsyncs of its own on the same disk as the WAL
// the next MO waited on; then compactions rewrote them. None of that is
// needed for a queue that is read only at start. Here a write is a record
// appended to a buffer, and one goroutine writes the buffer and fdatasyncs
// it: every write that came during the last fsync shares the next one
// (group commit), which starts as soon as the last one is done, without
// waiting for a writer to be scheduled.
//
// # Segments, and what bounds the disk
//
// Records go to the newest segment. Once it is past Options.SegmentSize the
// live jobs (a backlog, bounded by the gateway) are written to a new segment
// as puts, synced, and every older segment is removed: the disk holds about
// one segment, whatever the traffic. The removal runs on a goroutine of its
// own: unlinking a full segment took 13-16 ms here (ext4 freeing 16 MiB),
// and every MO waiting for the next fsync waited for it too. Open does the
// same after replaying, so a segment torn by a crash is never appended to.
//
// # What a crash keeps
//
// A put is durable when PutJob returns. UpdateJob and DeleteJob are
// written to the file at once but not synced on their own: the next synced
// write, or SyncJobs, makes them durable. A crash of the process keeps
// them (the kernel has them); a crash of the machine before the next fsync
// resumes a job in an earlier state, which the gateway's jobs are built to
// tolerate (every step is idempotent). A write
// torn by a crash ends the newest segment; damage anywhere else is
// ErrCorrupt, and nothing is thrown away. After a failed write or fsync the
// journal refuses every write: what reached the disk is unknown (an fsync
// error may drop dirty pages), and the next start replays what is there.
package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Options configure a Journal. Every field's zero value selects its default.
type Options struct {
	// MinSyncInterval is the least time between the starts of two
	// fsyncs: writes that come meanwhile share the next one. Default 0:
	// the next fsync starts when the last one is done (writes that come
	// during an fsync share the next one anyway).
	MinSyncInterval time.Duration
	// SegmentSize is the size past which the newest segment is replaced by a
	// new one that starts with the live jobs. Default 16 MiB.
	SegmentSize int64
	// Room is asked before a put or an update; an error refuses the write,
	// wrapped. The store's disk reserve (store.DB.RoomFor) goes here, so that
	// the queue cannot eat the room Pebble needs for its own work. Default:
	// no check.
	Room func(op string) error
}

const defaultSegmentSize = 16 << 20

// ErrClosed reports a call after Close.
var ErrClosed = errors.New("store/journal: closed")

// ErrLocked reports a journal another process has open.
var ErrLocked = errors.New("store/journal: in use by another process")

// ErrFailed wraps the error of the write or fsync after which the journal
// refuses every write (see the package doc).
var ErrFailed = errors.New("store/journal: unusable after a failed write")

// Journal is a durable job queue. It is safe for concurrent use.
type Journal struct {
	dir  string
	opts Options
	lock *os.File

	mu   sync.Mutex
	live map[string][]byte
	// buf holds the records not yet written, and cur is the batch they
	// are in: its done is closed once they are synced. spare is the buffer
	// the syncer wrote last, reused.
	buf, spare []byte
	cur        *batch
	err        error // sticky: ErrFailed
	closed     bool
	syncWanted bool     // a writer waits for buf to be synced
	unsynced   bool     // the file holds writes no fsync covered yet
	f          *os.File // the newest segment
	seg        uint64   // its number
	size       int64    // its length, as written

	kick    chan struct{} // there is something to write (capacity 1)
	quit    chan struct{} // Close: write what is left and stop
	stopped chan struct{} // the syncer is done

	pruneBelow uint64                  // under mu: the segments below it are to go
	pruneKick  chan struct{}           // pruneBelow moved (capacity 1)
	pruned     chan struct{}           // the pruner is done
	removeFile func(name string) error // os.Remove; tests refuse it
}

// batch is the records the syncer takes in one go: done is closed once
// they are written, and synced if a writer waited for them.
type batch struct {
	done chan struct{}
	err  error // set before done is closed
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Open opens or creates the journal in dir (made if missing) and replays it.
// It takes a lock on dir: a second process gets an error.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.MinSyncInterval < 0 || opts.SegmentSize < 0 {
		return nil, errors.New("store/journal: negative option")
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store/journal: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		dir: dir, opts: opts, lock: lock, live: make(map[string][]byte), cur: newBatch(),
		kick: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{}),
		pruneKick: make(chan struct{}, 1), pruned: make(chan struct{}), removeFile: os.Remove,
	}
	segs, err := segments(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store/journal: %w", err)
	}
	for i, n := range segs {
		if err := replay(filepath.Join(dir, segmentName(n)), i == len(segs)-1, j.live); err != nil {
			lock.Close()
			if !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("store/journal: open: %w", err)
			}
			return nil, err
		}
		j.seg = n
	}
	// Start a new segment with what is live, and drop the replayed ones:
	// the newest may end in a tear, and is never appended to.
	b := j.snapshot(nil)
	if err := j.rotate(b, true); err != nil {
		if j.f != nil {
			j.f.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("store/journal: open: %w", err)
	}
	go j.syncer()
	go j.pruner()
	return j, nil
}

// PutJob stores or replaces a job and returns once it is synced.
func (j *Journal) PutJob(ctx context.Context, id, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return j.write(opPut, id, value, true, "put job")
}

// UpdateJob replaces a job without waiting for an fsync; the next synced
// write or SyncJobs makes it durable. It is written to the file at once, so
// that a crash of the process alone does not lose it.
func (j *Journal) UpdateJob(ctx context.Context, id, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return j.write(opPut, id, value, false, "update job")
}

// DeleteJob removes a job; a missing job is not an error. It does not wait
// for an fsync (see the package doc).
func (j *Journal) DeleteJob(_ context.Context, id []byte) error {
	return j.write(opDelete, id, nil, false, "delete job")
}

// SyncJobs makes every earlier write durable.
func (j *Journal) SyncJobs(_ context.Context) error {
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	if len(j.buf) == 0 && !j.unsynced {
		j.mu.Unlock()
		return nil
	}
	j.syncWanted = true
	b := j.cur
	j.mu.Unlock()
	j.wake()
	<-b.done
	return b.err
}

// Jobs calls fn for every job in id order. The slices are fn's to keep; fn
// may call the Journal.
func (j *Journal) Jobs(ctx context.Context, fn func(id, value []byte) error) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	ids := make([]string, 0, len(j.live))
	for id := range j.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	values := make([][]byte, len(ids))
	for i, id := range ids {
		values[i] = slices.Clone(j.live[id])
	}
	j.mu.Unlock()
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn([]byte(id), values[i]); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of jobs stored.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.live)
}

// Close syncs what was written and closes the journal; after a failure
// (ErrFailed) it returns that error again. Later calls return ErrClosed;
// Close itself is safe to call again.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	last := j.cur
	j.mu.Unlock()
	close(j.quit)
	<-j.stopped // it wrote and synced what was buffered
	<-j.pruned
	// A failure is reported again here: what the last writes were (deletes
	// nobody waited for, say) may not be on disk.
	err := last.err
	if cerr := j.f.Close(); err == nil && cerr != nil && j.err == nil {
		err = fmt.Errorf("store/journal: close: %w", cerr)
	}
	j.lock.Close()
	return err
}

func (j *Journal) write(op byte, id, value []byte, wait bool, what string) error {
	if len(id) == 0 || len(id) > maxID {
		return fmt.Errorf("store/journal: %s: id of %d bytes", what, len(id))
	}
	if len(value) > maxRecord-maxID-16 {
		return fmt.Errorf("store/journal: %s: value of %d bytes", what, len(value))
	}
	if op == opPut && j.opts.Room != nil {
		if err := j.opts.Room(what); err != nil {
			return fmt.Errorf("store/journal: %w", err)
		}
	}
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	j.buf = appendRecord(j.buf, op, id, value)
	if op == opPut {
		j.live[string(id)] = slices.Clone(value)
	} else {
		delete(j.live, string(id))
	}
	if wait {
		j.syncWanted = true
	}
	b := j.cur
	j.mu.Unlock()
	j.wake()
	if !wait {
		return nil
	}
	<-b.done
	return b.err
}

// wake tells the syncer there is something to do.
func (j *Journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default: // already told
	}
}

func (j *Journal) usable() error {
	switch {
	case j.closed:
		return ErrClosed
	case j.err != nil:
		return j.err
	}
	return nil
}

// syncer writes what is buffered, one batch at a time, and fdatasyncs it
// when a writer waits for that (PutJob, SyncJobs), until Close; then it
// writes and syncs what is left and stops. Writes nobody waits for
// (UpdateJob, DeleteJob) are written at once all the same, without an
// fsync: in the kernel they outlive a crash of the process, as a Pebble
// WAL's did, so that a kill -9 resumes no job that was finished.
func (j *Journal) syncer() {
	defer close(j.stopped)
	var last time.Time
	for {
		quit := false
		select {
		case <-j.kick:
		case <-j.quit:
			quit = true
		}
		j.mu.Lock()
		if j.syncWanted && !quit {
			if wait := j.opts.MinSyncInterval - time.Since(last); wait > 0 {
				// More writes join while this one waits.
				j.mu.Unlock()
				time.Sleep(wait)
				j.mu.Lock()
			}
		}
		sync := j.syncWanted || quit
		if len(j.buf) == 0 && !(sync && j.unsynced) && !quit {
			j.mu.Unlock()
			continue
		}
		b, buf, f, unsynced := j.cur, j.buf, j.f, j.unsynced
		j.cur, j.buf, j.syncWanted = newBatch(), j.spare, false
		rotate := j.err == nil && j.size+int64(len(buf)) > j.opts.SegmentSize
		var snap []byte
		if rotate {
			snap = j.snapshot(buf)
		}
		failed := j.err
		j.mu.Unlock()

		var err error
		switch {
		case failed != nil:
			err = failed
		case rotate:
			// The old segment is synced before it is left: should its
			// removal be undone by a crash, it is replayed whole, deletes
			// included (see removeBelow).
			if unsynced {
				err = fdatasync(f)
			}
			if err == nil {
				err = j.rotate(snap, false) // synced
			}
		default:
			if len(buf) > 0 {
				_, err = f.Write(buf)
			}
			if err == nil && sync && (len(buf) > 0 || unsynced) {
				last = time.Now() // the interval runs from one start to the next
				err = fdatasync(f)
			}
		}

		j.mu.Lock()
		if cap(buf) <= 1<<20 { // a burst's buffer is let go
			j.spare = buf[:0]
		} else {
			j.spare = nil
		}
		if err != nil && j.err == nil {
			j.err = fmt.Errorf("%w: %w", ErrFailed, err)
		}
		switch {
		case err != nil:
			b.err = j.err
		case rotate:
			j.unsynced = false
		default:
			j.size += int64(len(buf))
			j.unsynced = !sync && (j.unsynced || len(buf) > 0)
		}
		j.mu.Unlock()
		close(b.done)
		if quit {
			return
		}
	}
}

// snapshot is a new segment's contents: the magic, the live jobs as puts,
// then buf, the records not yet written. The live jobs already reflect
// them, so replaying them after them changes nothing, but their deletes
// must be on disk for a job whose put is in an older segment not removed
// yet (see removeBelow). Called with mu held.
func (j *Journal) snapshot(buf []byte) []byte {
	b := make([]byte, 0, headerSize+len(j.live)*256+len(buf))
	b = append(b, magic...)
	for id, v := range j.live {
		b = appendRecord(b, opPut, []byte(id), v)
	}
	return append(b, buf...)
}

// rotate writes b as segment seg+1, syncs it, makes it the newest, and
// has the older segments removed: at once when opening, else by the
// pruner. A segment that could not be removed is replayed before the newer
// ones, which is harmless (see removeBelow); the next rotation tries
// again, and only Open (opening) reports it. Called by Open before the
// syncer starts, then only by the syncer.
func (j *Journal) rotate(b []byte, opening bool) error {
	j.mu.Lock()
	next, old := j.seg+1, j.f
	j.mu.Unlock()
	f, err := createSegment(j.dir, next, b)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.f, j.seg, j.size = f, next, int64(len(b))
	j.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if opening {
		return removeBelow(j.dir, next, j.removeFile)
	}
	j.mu.Lock()
	j.pruneBelow = next
	j.mu.Unlock()
	select {
	case j.pruneKick <- struct{}{}:
	default: // told already; it reads the newest pruneBelow
	}
	return nil
}

// pruner removes the segments a rotation left behind, until Close. What
// it has not removed by then (or could not remove) is removed by the next
// Open.
func (j *Journal) pruner() {
	defer close(j.pruned)
	for {
		select {
		case <-j.pruneKick:
		case <-j.quit:
			return
		}
		j.mu.Lock()
		n := j.pruneBelow
		j.mu.Unlock()
		removeBelow(j.dir, n, j.removeFile) // an error: the next rotation tries again
	}
}

// createSegment writes a new segment whole and syncs it and dir, so that
// it is there after a crash.
func createSegment(dir string, n uint64, b []byte) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, segmentName(n)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err = f.Write(b); err == nil {
		if err = fdatasync(f); err == nil {
			err = syncDir(dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// removeBelow removes the segments numbered below n, oldest first, and
// stops at the first it cannot. What is left is a run of the newest before
// segment n, and every delete is written in the segment of its put or a
// newer one, so replaying them before segment n (which holds every live
// job) brings back no finished job. Each removal is synced before the next,
// so that a crash, whatever the file system keeps of them, leaves such a run
// too (a run with a hole could lose the deletes of the missing segment).
func removeBelow(dir string, n uint64, remove func(string) error) error {
	segs, err := segments(dir)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s >= n {
			break
		}
		if err := remove(filepath.Join(dir, segmentName(s))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

package store

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// How long a measurement of free space far from the reserve is trusted,
// and how far is far.
const (
	spaceFresh  = 100 * time.Millisecond
	spaceMargin = 256 << 20
)

// ErrDiskFull reports a write refused because the data dir's file system
// has less free space than Options.MinFree. Nothing was written; the same
// write succeeds once space is freed.
var ErrDiskFull = errors.New("store: disk full")

// roomFor refuses a write (or Open) that would eat into the reserve (Options.MinFree)
// kept for Pebble's own work: Pebble takes a failed write as fatal (it
// panics, through its logger's Fatalf), and a write ahead of a flush or a
// compaction can leave them no room. Writes that only remove data (job
// deletes, erasure, consent changes, purge) are let through: they are
// small, they free space, and an erasure must not wait for any.
//
// Far from the reserve, a measurement is trusted for spaceFresh: a statfs
// per MO the gateway takes was a tenth of its CPU, and no write here fills
// spaceMargin within that time.
func (db *DB) roomFor(op string) error {
	if db.spaceDir == "" || db.opts.MinFree < 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now-db.spaceAt.Load() < int64(spaceFresh) && db.spaceFree.Load() >= db.opts.MinFree+spaceMargin {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(db.spaceDir, &st); err != nil {
		return nil // cannot tell: let the write try
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	db.spaceFree.Store(free)
	db.spaceAt.Store(now)
	if free < db.opts.MinFree {
		return fmt.Errorf("%w: %s refused: %d MiB free on the data dir's file system, %d MiB kept in reserve (--min-free)",
			ErrDiskFull, op, free>>20, db.opts.MinFree>>20)
	}
	return nil
}

// RoomFor is roomFor for a writer on the same file system that is not the
// store: the gateway's job queue (store/journal), whose writes would eat the
// same reserve.
func (db *DB) RoomFor(op string) error { return db.roomFor(op) }

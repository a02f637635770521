package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Jobs were the gateway's durable queue until it moved to its own journal
// (store/journal: a job lives for milliseconds, and here every one went
// through Pebble's memtable, flushes and compactions). What an earlier
// version left here is moved there when serve starts (cmd/roamtrail,
// openJobs), which is what these methods are kept for, with the tests that
// pin their behaviour. Keys are the caller's, values opaque; the caller
// seals anything personal in them.
const prefixJob = 'j'

func jobKey(id []byte) []byte { return append([]byte{prefixJob}, id...) }

// PutJob stores or replaces a job.
func (db *DB) PutJob(ctx context.Context, id, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	if err := db.roomFor("put job"); err != nil {
		return err
	}
	if err := db.pdb.Set(jobKey(id), value, pebble.Sync); err != nil {
		return fmt.Errorf("store: put job: %w", err)
	}
	return nil
}

// DeleteJob removes a job; a missing job is not an error. The delete is
// not synced on its own: the WAL is sequential, so the next synced write
// (the next PutJob, or the flush SyncJobs does) makes it durable. A crash
// before then resumes a job that was already answered, a window the
// gateway has anyway between the SMSC's submit_sm_resp and this call;
// syncing here too would double the fsyncs per message for no guarantee
// the caller can use.
func (db *DB) DeleteJob(ctx context.Context, id []byte) error {
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	if err := db.pdb.Delete(jobKey(id), pebble.NoSync); err != nil {
		return fmt.Errorf("store: delete job: %w", err)
	}
	return nil
}

// Jobs calls fn for every stored job in key order. The slices are fn's to
// keep.
func (db *DB) Jobs(ctx context.Context, fn func(id, value []byte) error) error {
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	it, err := db.pdb.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{prefixJob}, UpperBound: []byte{prefixJob + 1}})
	if err != nil {
		return fmt.Errorf("store: jobs: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: jobs: %w", err)
		}
		if err := fn(bytes.Clone(it.Key()[1:]), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return it.Error()
}

// SyncJobs makes every earlier job write durable (one fsync of the WAL).
// The gateway calls it when it goes idle, so an unsynced delete does not
// wait for the next MO.
func (db *DB) SyncJobs(ctx context.Context) error {
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync jobs: %w", err)
	}
	return nil
}

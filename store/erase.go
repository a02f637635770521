package store

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Erase removes every visit of sub, at once: it is gone from lookups when
// Erase returns, and from disk when compaction next passes the erased keys,
// at the latest when Purge compacts the days they fall in. It serves a
// subscriber's request made to staff as well as OptOut; unlike OptOut it
// leaves consent as it is, so later events are recorded as before.
func (db *DB) Erase(ctx context.Context, sub itinerary.Pseudonym) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	if err := db.eraseBefore(b, sub, maxDay+1); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	db.mem.forget(sub)
	return nil
}

// firstDay is the oldest day with a visit on disk, or today when none.
func (db *DB) firstDay() (itinerary.Day, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: dayKey(0), UpperBound: dayKey(maxDay + 1)})
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	defer it.Close()
	if !it.First() {
		return db.today(), it.Error()
	}
	day, _, err := parseVisitKey(it.Key())
	return day, err
}

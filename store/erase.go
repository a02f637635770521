package store

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Erase removes every visit of sub, at once: it is gone from lookups when
// Erase returns, and from disk when compaction next passes the erased keys,
// at the latest when Purge compacts the days they fall in.
func (db *DB) Erase(ctx context.Context, sub itinerary.Pseudonym) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	first, err := db.firstDay()
	if err != nil {
		return err
	}
	// Every day from the oldest on disk to tomorrow, not only the days the
	// index holds: days past retention are on disk but not in the index.
	// A tombstone for a missing key costs a few bytes until compaction.
	last := db.today() + 1
	b := db.pdb.NewBatch()
	defer b.Close()
	var key []byte
	for d := first; d <= last && d <= maxDay; d++ {
		key = visitKey(key[:0], d, sub)
		if err := b.Delete(key, nil); err != nil {
			return fmt.Errorf("store: erase: %w", err)
		}
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

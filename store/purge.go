package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// PurgeStats says what a purge removed and what it cost.
type PurgeStats struct {
	Cutoff     string        // the oldest day kept, as a date
	MemVisits  int           // visits dropped from memory
	DiskBefore int64         // bytes on disk before
	DiskAfter  int64         // bytes on disk after
	Took       time.Duration // wall time
}

// Purge deletes every visit older than the retention window from disk and
// memory. On disk it is one range deletion of the expired days followed by
// a compaction of just that range, which drops the files holding them: the
// cost grows with what expires. It is idempotent and cheap when nothing has
// expired since the last run.
func (db *DB) Purge(ctx context.Context) (PurgeStats, error) {
	start := time.Now()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return PurgeStats{}, ErrClosed
	}
	cutoff := db.cutoff()
	st := PurgeStats{Cutoff: cutoff.String(), DiskBefore: int64(db.pdb.Metrics().DiskSpaceUsage())}
	if cutoff <= db.purged {
		// Nothing expired since the last purge; hourly runs cost nothing.
		st.DiskAfter, st.Took = st.DiskBefore, time.Since(start)
		return st, nil
	}
	lo, hi := dayKey(0), dayKey(cutoff)
	if err := db.pdb.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return st, fmt.Errorf("store: purge: %w", err)
	}
	// Compact flushes the memtable first if it overlaps the range, so
	// expired visits still in the WAL or memtable go too.
	if err := db.pdb.Compact(ctx, lo, hi, true); err != nil {
		return st, fmt.Errorf("store: purge: %w", err)
	}
	st.MemVisits = db.mem.trim(cutoff)
	db.purged = cutoff
	st.DiskAfter = int64(db.pdb.Metrics().DiskSpaceUsage())
	st.Took = time.Since(start)
	db.log.Info().Str("cutoff", st.Cutoff).Int("mem_visits", st.MemVisits).
		Int64("disk_before", st.DiskBefore).Int64("disk_after", st.DiskAfter).Dur("took", st.Took).Msg("purge")
	return st, nil
}

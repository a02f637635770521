package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/journal"
)

// openJobs opens the gateway's durable job queue, DATA_DIR/jobs
// (store/journal), and moves into it the jobs an earlier version queued in
// the visit store, so that an upgrade loses no query in hand. Each job is
// synced into the queue before it leaves the store, and the move is over
// before the gateway runs: a crash midway leaves a job in both places, with
// the same value, and the next start moves it again.
func openJobs(ctx context.Context, dataDir string, db *store.DB, syncInterval time.Duration, log zerolog.Logger) (*journal.Journal, error) {
	jobs, err := journal.Open(filepath.Join(dataDir, "jobs"), journal.Options{MinSyncInterval: syncInterval, Room: db.RoomFor})
	if err != nil {
		return nil, err
	}
	moved := 0
	err = db.Jobs(ctx, func(id, value []byte) error {
		if err := jobs.PutJob(ctx, id, value); err != nil {
			return err
		}
		moved++
		return db.DeleteJob(ctx, id)
	})
	if err == nil && moved > 0 {
		err = db.SyncJobs(ctx)
		log.Info().Int("jobs", moved).Msg("moved the jobs an earlier version queued in the visit store to DATA_DIR/jobs")
	}
	if err != nil {
		jobs.Close()
		return nil, fmt.Errorf("jobs: moving the visit store's queued jobs: %w", err)
	}
	return jobs, nil
}

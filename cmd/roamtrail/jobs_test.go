package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/store/journal"
)

// An upgrade from a version that queued jobs in the visit store loses none:
// serve's start moves them to the job journal, and a start cut short after
// a job was synced there but before it left the store moves it again,
// unchanged.
func TestOpenJobsMovesTheStoresQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, _ := openStopped(t, dir)
	for _, id := range []string{"job-b", "job-a"} {
		if err := db.PutJob(ctx, []byte(id), []byte("value of "+id)); err != nil {
			t.Fatal(err)
		}
	}
	// The cut-short start: job-a already in the journal.
	jobs, err := journal.Open(filepath.Join(dir, "jobs"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.PutJob(ctx, []byte("job-a"), []byte("value of job-a")); err != nil {
		t.Fatal(err)
	}
	jobs.Close()

	jobs, err = openJobs(ctx, dir, db, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	jobs.Jobs(ctx, func(id, v []byte) error { got = append(got, string(id)+"="+string(v)); return nil })
	jobs.Close()
	if want := []string{"job-a=value of job-a", "job-b=value of job-b"}; !slices.Equal(got, want) {
		t.Fatalf("journal after the move: %q, want %q", got, want)
	}
	left := 0
	db.Jobs(ctx, func(_, _ []byte) error { left++; return nil })
	db.Close()
	if left != 0 {
		t.Fatalf("%d jobs left in the visit store", left)
	}
	// And they stay moved.
	db, _ = openStopped(t, dir)
	defer db.Close()
	db.Jobs(ctx, func(_, _ []byte) error { left++; return nil })
	if left != 0 {
		t.Fatalf("%d jobs back in the visit store after reopening it", left)
	}
}

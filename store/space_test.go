package store

import (
	"context"
	"errors"
	"testing"
)

// Below the reserve, writes that add data are refused with ErrDiskFull
// before Pebble sees them; writes that remove data go through; with the
// reserve met again, the refused write succeeds.
func TestDiskFullReserve(t *testing.T) {
	ctx := context.Background()
	clock := newClock(t, nowString)
	db := MustOpen(t, t.TempDir(), Options{Now: clock.Now})
	if err := db.PutJob(ctx, []byte("a"), []byte("job")); err != nil {
		t.Fatal(err)
	}
	db.opts.MinFree = 1 << 62 // more than any disk has
	batch := []Sighting{{sub(1), at(today, 8*3600), 110100}}
	if _, err := db.Apply(ctx, batch, nil); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Apply below the reserve: %v", err)
	}
	if err := db.PutJob(ctx, []byte("b"), []byte("job")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("PutJob below the reserve: %v", err)
	}
	if err := db.PutCode(ctx, []byte("c"), []byte("code")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("PutCode below the reserve: %v", err)
	}
	if err := db.DeleteJob(ctx, []byte("a")); err != nil {
		t.Fatalf("DeleteJob below the reserve: %v", err)
	}
	if err := db.OptOut(ctx, sub(2), clock.Now()); err != nil {
		t.Fatalf("OptOut below the reserve: %v", err)
	}
	if err := db.Erase(ctx, sub(3)); err != nil {
		t.Fatalf("Erase below the reserve: %v", err)
	}
	db.opts.MinFree = 0
	MustApply(t, db, batch, nil)
	if vs := MustVisits(t, db, sub(1)); len(vs) != 1 {
		t.Fatalf("after space returned: %d visits", len(vs))
	}
}

// Below the reserve the store does not open: Pebble's own open flushes,
// and with no room it would retry for ever.
func TestDiskFullOpen(t *testing.T) {
	_, err := Open(context.Background(), t.TempDir(), Options{MinFree: 1 << 62})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Open below the reserve: %v", err)
	}
}

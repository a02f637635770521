package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestCodes(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db := MustOpen(t, dir, Options{})

	if _, ok, err := db.GetCode(ctx, []byte("a")); ok || err != nil {
		t.Fatalf("GetCode on an empty store: ok %v, err %v", ok, err)
	}
	for _, kv := range [][2]string{{"b", "2"}, {"a", "1"}, {"a", "1'"}} {
		if err := db.PutCode(ctx, []byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutJob(ctx, []byte("a"), []byte("job")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := db.GetCode(ctx, []byte("a")); !ok || err != nil || string(v) != "1'" {
		t.Fatalf("GetCode(a) = %q, %v, %v; want the replaced value", v, ok, err)
	}
	var got []string
	if err := db.Codes(ctx, func(k, v []byte) error { got = append(got, string(k)+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "a=1'" || got[1] != "b=2" {
		t.Fatalf("Codes = %q, want a and b only, in order (jobs are another keyspace)", got)
	}
	if err := db.DeleteCode(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteCode(ctx, []byte("missing")); err != nil {
		t.Fatalf("deleting a missing code: %v", err)
	}
	stop := errors.New("stop")
	if err := db.Codes(ctx, func(k, v []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Codes returned %v, want fn's error", err)
	}

	// A deleted code stays deleted, a kept one stays, across a reopen.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = MustOpen(t, dir, Options{})
	if _, ok, _ := db.GetCode(ctx, []byte("a")); ok {
		t.Error("a deleted code came back after a reopen")
	}
	if v, ok, _ := db.GetCode(ctx, []byte("b")); !ok || string(v) != "2" {
		t.Errorf("GetCode(b) after a reopen = %q, %v", v, ok)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCode(ctx, []byte("c"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("PutCode after Close: %v, want ErrClosed", err)
	}
	if _, _, err := db.GetCode(ctx, []byte("b")); !errors.Is(err, ErrClosed) {
		t.Errorf("GetCode after Close: %v, want ErrClosed", err)
	}
}

func TestCodesCanceled(t *testing.T) {
	db := MustOpen(t, "", Options{FS: vfs.NewMem()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.PutCode(ctx, []byte("a"), []byte("1")); !errors.Is(err, context.Canceled) {
		t.Errorf("PutCode: %v", err)
	}
	if _, ok, _ := db.GetCode(context.Background(), []byte("a")); ok {
		t.Error("a canceled PutCode stored its code")
	}
}

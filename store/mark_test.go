package store

import (
	"context"
	"errors"
	"testing"
)

// A mark survives a reopen.
func TestMark(t *testing.T) {
	dir := t.TempDir()
	db := MustOpen(t, dir, Options{})
	if _, ok, err := db.Mark("consent"); ok || err != nil {
		t.Fatalf("a mark before any: %t %v", ok, err)
	}
	if err := db.SetMark(context.Background(), "consent", "1790000000000-3 42"); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, dir, Options{})
	if v, ok, err := db.Mark("consent"); !ok || err != nil || v != "1790000000000-3 42" {
		t.Fatalf("after reopen: %q %t %v", v, ok, err)
	}
	if err := db.SetMark(context.Background(), "", "x"); !errors.Is(err, ErrBadMark) {
		t.Errorf("an empty name: %v", err)
	}
}

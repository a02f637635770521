package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Marks are where this store got to in a stream it follows (the consent
// changes other instances publish, say): opaque strings by name, kept
// with the data they describe, so that a restart resumes where the data
// is.

// ErrBadMark reports a mark name or value out of bounds.
var ErrBadMark = errors.New("store: bad mark")

// maxMark bounds a mark's name and value.
const maxMark = 256

// Mark returns the mark saved under name; ok is false when there is none.
func (db *DB) Mark(name string) (value string, ok bool, err error) {
	if len(name) == 0 || len(name) > maxMark {
		return "", false, fmt.Errorf("%w: mark name", ErrBadMark)
	}
	if !db.enterRead() {
		return "", false, ErrClosed
	}
	defer db.lifeMu.RUnlock()
	v, err := db.getMeta("mark/" + name)
	if err != nil || v == nil {
		return "", false, err
	}
	return string(v), true, nil
}

// SetMark saves value under name, synced.
func (db *DB) SetMark(ctx context.Context, name, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(name) == 0 || len(name) > maxMark || len(value) > maxMark {
		return fmt.Errorf("%w: mark", ErrBadMark)
	}
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	if err := db.pdb.Set(metaKey("mark/"+name), []byte(value), pebble.Sync); err != nil {
		return fmt.Errorf("store: set mark: %w", err)
	}
	return nil
}

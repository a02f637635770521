package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Codes are a small keyspace for the staff one-time codes (privacy/staff):
// opaque keys and values, owned by the caller, who hashes the codes and
// enforces their expiry. They live here rather than in a file of their own
// because whoever issues or checks a code (the running service, or a CLI
// run when none runs) already holds this store, whose lock makes the two
// exclusive; a crash between issuing a code and checking it loses nothing,
// since every write is synced.
//
//	c | key -> value
const prefixCode = 'c'

func codeKey(key []byte) []byte { return append([]byte{prefixCode}, key...) }

// PutCode stores or replaces value under key, synced.
func (db *DB) PutCode(ctx context.Context, key, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	if err := db.roomFor("put code"); err != nil {
		return err
	}
	if err := db.pdb.Set(codeKey(key), value, pebble.Sync); err != nil {
		return fmt.Errorf("store: put code: %w", err)
	}
	return nil
}

// GetCode returns the value under key; ok is false when there is none.
func (db *DB) GetCode(ctx context.Context, key []byte) (value []byte, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if !db.enterRead() {
		return nil, false, ErrClosed
	}
	defer db.lifeMu.RUnlock()
	v, c, err := db.pdb.Get(codeKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: get code: %w", err)
	}
	defer c.Close()
	return bytes.Clone(v), true, nil
}

// DeleteCode removes key, synced: a used one-time code must stay used
// after a crash. A missing key is not an error.
func (db *DB) DeleteCode(ctx context.Context, key []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	if err := db.pdb.Delete(codeKey(key), pebble.Sync); err != nil {
		return fmt.Errorf("store: delete code: %w", err)
	}
	return nil
}

// Codes calls fn with every key and value in key order, so that the
// caller can sweep what expired. The slices are fn's to keep.
func (db *DB) Codes(ctx context.Context, fn func(key, value []byte) error) error {
	if !db.enterRead() {
		return ErrClosed
	}
	defer db.lifeMu.RUnlock()
	it, err := db.pdb.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{prefixCode}, UpperBound: []byte{prefixCode + 1}})
	if err != nil {
		return fmt.Errorf("store: codes: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: codes: %w", err)
		}
		if err := fn(bytes.Clone(it.Key()[1:]), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return it.Error()
}

package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// errBadLine marks a line Scan could not parse, for scanFile to locate.
var errBadLine = errors.New("bad line")

// Filter selects entries for Scan. Empty fields match everything.
type Filter struct {
	Subject string    // SubjectOf the subscriber
	Actor   string    // ActorSelf, ActorSystem or an operator ID
	Action  string    // one of the Act constants
	Since   time.Time // entries at or after
}

// needles returns byte strings a matching line must contain, so that most
// lines are skipped without being decoded. A JSON string cannot contain an
// unescaped quote, so `"subject":"…"` can only be the field itself.
func (f Filter) needles() [][]byte {
	var ns [][]byte
	for _, kv := range [][2]string{{"subject", f.Subject}, {"actor", f.Actor}, {"action", f.Action}} {
		if kv[1] == "" {
			continue
		}
		v, _ := json.Marshal(kv[1])
		ns = append(ns, append([]byte(`"`+kv[0]+`":`), v...))
	}
	return ns
}

func (f Filter) match(e Entry) bool {
	return (f.Subject == "" || e.Subject == f.Subject) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		(f.Action == "" || e.Action == f.Action) &&
		!e.Time.Before(f.Since)
}

func containsAll(line []byte, needles [][]byte) bool {
	for _, n := range needles {
		if !bytes.Contains(line, n) {
			return false
		}
	}
	return true
}

// Scan calls fn with each entry of the log in dir that matches f, oldest
// first, until fn returns an error, which Scan returns. It is what
// `roamtrail audit show` prints.
//
// Scan reads; it does not verify (Verify does). It can run while a Log
// appends to dir: a last line still being written is skipped. With Since
// set it skips whole files from earlier days; otherwise it reads every file,
// at disk speed, decoding only lines that contain the filter's values.
func Scan(ctx context.Context, dir string, f Filter, fn func(Entry) error) error {
	files, err := listFiles(dir)
	if err != nil {
		return err
	}
	needles := f.needles()
	since := utcDay(f.Since)
	for i, lf := range files {
		if !f.Since.IsZero() && lf.day.Before(since) {
			continue // a file holds no entry from after its day
		}
		err := scanFile(ctx, filepath.Join(dir, lf.name), i == len(files)-1, func(line []byte) error {
			if !containsAll(line, needles) {
				return nil
			}
			e, err := parseEntry(line)
			if err != nil {
				return fmt.Errorf("%w: %w", errBadLine, err)
			}
			if !f.match(e) {
				return nil
			}
			return fn(e)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func scanFile(ctx context.Context, path string, last bool, fn func(line []byte) error) error {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // pruned since it was listed
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, maxLine+1)
	for n := 1; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, io.EOF) && (len(line) == 0 || last):
			return nil
		case err != nil:
			return fmt.Errorf("%w: %s:%d: incomplete or overlong line", ErrTampered, filepath.Base(path), n)
		}
		if err := fn(line[:len(line)-1]); err != nil {
			if errors.Is(err, errBadLine) {
				return fmt.Errorf("%w: %s:%d: %v", ErrTampered, filepath.Base(path), n, err)
			}
			return err
		}
	}
}

// Last returns the newest n entries about subject, newest first: what a
// subscriber's "JL" command lists.
//
// It reads the log backwards from the end of the newest file, 256 KiB at a
// time, looks for the subject in each chunk at memory speed and decodes only
// the lines that hold it, and stops when it has n. Its cost is the bytes
// between the end of the log and the subject's n-th newest entry: nothing
// much for a subject who was just logged, the whole log (about 0.1 s per
// 100 MB in the page cache, disk speed otherwise) for one with fewer than n.
// Give ctx a deadline to bound it: when ctx ends, Last returns the entries
// it found so far with ctx's error.
func Last(ctx context.Context, dir, subject string, n int) ([]Entry, error) {
	if !isHex(subject, 32) {
		return nil, fmt.Errorf("%w: Subject is not a pseudonym's 32 lowercase hex digits", ErrInvalid)
	}
	if n <= 0 {
		return nil, nil
	}
	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	needle := Filter{Subject: subject}.needles()[0]
	var out []Entry
	var at []int // where needle is in a chunk
	for i := len(files) - 1; i >= 0 && len(out) < n; i-- {
		name := files[i].name
		fh, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			break // pruned since it was listed; older ones are gone too
		}
		if err != nil {
			return out, fmt.Errorf("audit: %w", err)
		}
		st, err := fh.Stat()
		if err == nil {
			err = reverseChunks(ctx, fh, st.Size(), reverseChunk, func(chunk []byte) (bool, error) {
				at = at[:0]
				for i := 0; ; {
					j := bytes.Index(chunk[i:], needle)
					if j < 0 {
						break
					}
					at = append(at, i+j)
					i += j + len(needle)
				}
				for k := len(at) - 1; k >= 0; k-- {
					start := bytes.LastIndexByte(chunk[:at[k]], '\n') + 1
					end := at[k] + bytes.IndexByte(chunk[at[k]:], '\n')
					e, err := parseEntry(chunk[start:end])
					if err != nil {
						return true, fmt.Errorf("%w: %s: %v", ErrTampered, name, err)
					}
					out = append(out, e)
					if len(out) == n {
						return true, nil
					}
				}
				return false, nil
			})
		}
		fh.Close()
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRecords: whatever a segment holds, parsing returns an error or
// records, never panics, and what appendRecord writes reads back the same.
func FuzzParseRecords(f *testing.F) {
	f.Add([]byte{}, []byte("id"), []byte("value"))
	f.Add(appendRecord(nil, opPut, []byte("a"), []byte("1")), []byte("0123456789abcdef"), []byte{})
	f.Add(appendRecord(nil, opDelete, []byte("a"), nil), []byte("x"), bytes.Repeat([]byte{0xff}, 300))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, []byte("x"), []byte("y"))
	f.Fuzz(func(t *testing.T, segment, id, value []byte) {
		end, err := parseRecords(segment, func(r record) {
			if r.op != opPut && r.op != opDelete || len(r.id) == 0 {
				t.Fatalf("parsed a bad record: %+v", r)
			}
		})
		if end < 0 || end > len(segment) || (err == nil) != (end == len(segment)) {
			t.Fatalf("end %d of %d, err %v", end, len(segment), err)
		}
		if len(id) == 0 || len(id) > maxID {
			return
		}
		b := appendRecord(segment[:end:end], opPut, id, value)
		var got []record
		if _, err := parseRecords(b, func(r record) { got = append(got, r) }); err != nil {
			t.Fatalf("a record we wrote does not read back: %v", err)
		}
		last := got[len(got)-1]
		if last.op != opPut || !bytes.Equal(last.id, id) || !bytes.Equal(last.value, value) {
			t.Fatalf("read back %+v", last)
		}
	})
}

// FuzzOpen: Open of a journal whose newest segment holds anything returns
// a journal or an error, never panics.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(magic))
	f.Add(append([]byte(magic), appendRecord(nil, opPut, []byte("a"), []byte("1"))...))
	f.Add([]byte("RTJO"))
	f.Fuzz(func(t *testing.T, segment []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), segment, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := Open(dir, Options{})
		if err != nil {
			return
		}
		j.Close()
	})
}

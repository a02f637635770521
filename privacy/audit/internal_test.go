package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"
)

func mustSigner(tb testing.TB) (note.Signer, string) {
	tb.Helper()
	skey, vkey, err := GenerateKey("test-audit", nil)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, vkey
}

func testEntry() Entry {
	return Entry{Actor: ActorSelf, Role: RoleSubscriber, Action: ActSelfQuery,
		Subject: strings.Repeat("ab", 16), Window: 15, Outcome: "ok"}
}

// TestFailClosed breaks the file under the log: the failed Append and every
// one after it are refused until the log is reopened.
func TestFailClosed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	s, vkey := mustSigner(t)
	ctx := context.Background()
	l, err := Open(dir, Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEntry()); err != nil {
		t.Fatal(err)
	}
	l.f.Close() // as if the disk went away

	if _, err := l.Append(ctx, testEntry()); !errors.Is(err, ErrFailed) || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Append on a broken file: %v, want ErrFailed wrapping the cause", err)
	}
	// Even with the file working again, the log stays failed.
	l.f, err = os.OpenFile(filepath.Join(dir, l.cur.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEntry()); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after a failure: %v, want ErrFailed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir, Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(ctx, testEntry())
	if err != nil || e.Seq != 2 {
		t.Fatalf("Append after reopening: seq %d, %v; want 2", e.Seq, err)
	}
	l.Close()
	if _, err := Verify(ctx, dir, VerifyOptions{VerifierKey: vkey}); err != nil {
		t.Fatal(err)
	}
}

func TestLooksLikeNumber(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"", false},
		{"13800138000", true},
		{"1234567", true},
		{"123456", false},
		{"ticket 123456 and 654321", false},
		{"138 0013 8000", true},
		{"138-0013-8000", true},
		{"138.0013.8000", true},
		{"138  0013  8000", false}, // two spaces end a run
		{"138 - 0013", false},
		{"(010) 6552 9988", true},
		{"１３８００１３８０００", true},
		{"١٢٣٤٥٦٧", true}, // Arabic-Indic digits
		{"138****8000", false},
		{"rows=1,200,000", false},
		{"v1.2.3.4.5.6.7", true},
		{"2026-11-27", true},
		{"op-17", false},
	} {
		if got := looksLikeNumber(tc.s); got != tc.want {
			t.Errorf("looksLikeNumber(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestNoteReaderAndRepair(t *testing.T) {
	s, _ := mustSigner(t)
	var file []byte
	var ends []int // where each note, with its blank line, ends
	for _, seq := range []uint64{1, 2, 3} {
		msg, err := note.Sign(&note.Note{Text: checkpoint{seq: seq, hash: strings.Repeat("0", 64)}.text(DefaultName)}, s)
		if err != nil {
			t.Fatal(err)
		}
		file = append(append(file, msg...), '\n')
		ends = append(ends, len(file))
	}
	nr := newNoteReader(bytes.NewReader(file))
	for want := 1; ; want += 6 {
		msg, line, err := nr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || line != want {
			t.Fatalf("note at line %d (want %d): %v", line, want, err)
		}
		if _, err := note.Open(msg, nil); !errors.As(err, new(*note.UnverifiedNoteError)) {
			t.Fatalf("note at line %d does not parse as a note: %v", line, err)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, checkpointsName)
	for cut := 0; cut <= len(file); cut++ {
		want := -1
		for _, e := range ends {
			if e <= cut {
				want = e
			}
		}
		if got := completeNotesEnd(file[:cut]); got != want {
			t.Fatalf("completeNotesEnd(file[:%d]) = %d, want %d", cut, got, want)
		}
		if cut%17 != 0 && cut != len(file) {
			continue // repairing syncs; a sample of cuts will do
		}
		os.WriteFile(path, file[:cut], 0o600)
		if err := repairCheckpoints(dir, zerolog.Nop()); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		if st.Size() != int64(max(want, 0)) {
			t.Fatalf("after repairing file[:%d]: %d bytes, want %d", cut, st.Size(), max(want, 0))
		}
	}
}

// FuzzParseEntry: the line parser never panics, and what it accepts is the
// canonical encoding of what it returns.
func FuzzParseEntry(f *testing.F) {
	e := testEntry()
	e.Seq, e.Time, e.Prev = 7, time.Date(2026, 11, 27, 8, 15, 0, 123456000, time.UTC), genesis(DefaultName)
	line := e.seal()
	f.Add(line[:len(line)-1])
	e.Detail, e.Masked, e.Ticket = `<"quoted"> & 中文 \ \u2028`, "138****8000", "T-42"
	line = e.seal()
	f.Add(line[:len(line)-1])
	if b, err := os.ReadFile(filepath.Join("testdata", "entry.golden")); err == nil {
		f.Add(bytes.TrimSuffix(b, []byte("\n")))
	}
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":1,"seq":2}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseEntry(line)
		if err != nil {
			return
		}
		b, err := json.Marshal(e.wire())
		if err != nil || !bytes.Equal(b, line) {
			t.Fatalf("parsed %q, re-encodes as %q", line, b)
		}
		if lineHash(line) != hashOf(e.canonical()) {
			t.Fatalf("lineHash and canonical disagree on %q", line)
		}
		if e.Time.Location() != time.UTC {
			t.Fatalf("time %v not in UTC", e.Time)
		}
	})
}

func TestReverseChunks(t *testing.T) {
	var want []string // newest first
	var file []byte
	for i := range 3000 {
		line := fmt.Sprintf("%d:%s", i, strings.Repeat("x", (i*7919)%600))
		want = append([]string{line}, want...)
		file = append(append(file, line...), '\n')
	}
	file = append(file, "torn"...)
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, file, 0o600)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int64{maxLine + 1, 5000, 12345, 1 << 20} {
		var got []string
		err := reverseChunks(context.Background(), f, int64(len(file)), chunk, func(lines []byte) (bool, error) {
			ls := strings.Split(strings.TrimSuffix(string(lines), "\n"), "\n")
			for i := len(ls) - 1; i >= 0; i-- {
				got = append(got, ls[i])
			}
			return false, nil
		})
		if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("chunk %d: %d lines, %v; want %d lines newest first", chunk, len(got), err, len(want))
		}
	}
}

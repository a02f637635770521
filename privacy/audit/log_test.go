package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/privacy/audit"
)

func TestAppendFillsTheEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0.In(time.FixedZone("CST", 8*3600)))
	l := MustOpen(t, dir, k, c)
	defer MustClose(t, l)

	e := lookup(1)
	e.Seq, e.Hash, e.Prev = 99, "x", "y" // ignored
	got := MustAppend(t, l, e)
	if got.Seq != 1 || got.Time.Location() != time.UTC || got.Time.Nanosecond()%1000 != 0 {
		t.Errorf("Seq %d, Time %v: want 1, UTC to the microsecond", got.Seq, got.Time)
	}
	second := MustAppend(t, l, lookup(2))
	if second.Seq != 2 || second.Prev != got.Hash || len(second.Hash) != 64 {
		t.Errorf("second entry: Seq %d, Prev %.8s, want 2, %.8s", second.Seq, second.Prev, got.Hash)
	}
	if !second.Time.After(got.Time) {
		t.Errorf("times %v, %v do not increase", got.Time, second.Time)
	}
}

func TestAppendReopenContinuesTheChain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	var last audit.Entry
	for i := range 3 {
		last = MustAppend(t, l, lookup(byte(i)))
	}
	MustClose(t, l)

	l = MustOpen(t, dir, k, c)
	e := MustAppend(t, l, lookup(9))
	if e.Seq != last.Seq+1 || e.Prev != last.Hash {
		t.Fatalf("after reopen: Seq %d Prev %.8s, want %d %.8s", e.Seq, e.Prev, last.Seq+1, last.Hash)
	}
	MustClose(t, l)
	r := MustVerify(t, dir, k)
	if r.Entries != 4 || r.First != 1 || r.Last != 4 || r.Checkpoints != 2 || r.Bad != nil {
		t.Errorf("report %+v: want 4 entries 1..4, 2 checkpoints (one per Close)", r)
	}
}

func TestConcurrentAppendsMakeOneChain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c, func(o *audit.Options) { o.MaxFileSize = 16 << 10 })
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { l.RunCheckpoints(ctx, time.Millisecond) })
	bg.Go(func() { // a reader, as `audit show` would be
		for ctx.Err() == nil {
			if _, err := audit.Last(ctx, dir, audit.SubjectOf([16]byte{3}), 5); err != nil && ctx.Err() == nil {
				t.Errorf("Last during appends: %v", err)
				return
			}
		}
	})

	const writers, each = 8, 200
	seqs := appendFrom(ctx, t, l, writers, each)
	cancel()
	bg.Wait()
	MustClose(t, l)
	seen := map[uint64]bool{}
	for _, s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d given twice", s)
		}
		seen[s] = true
	}
	r := MustVerify(t, dir, k)
	if r.Entries != writers*each || r.Files < 2 || r.Checkpoints == 0 {
		t.Errorf("report %+v: want %d entries over several files, some checkpoints", r, writers*each)
	}
}

func TestRotateBySize(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c, func(o *audit.Options) { o.MaxFileSize = 1500 })
	for i := range 20 {
		MustAppend(t, l, lookup(byte(i)))
	}
	MustClose(t, l)
	files := logFiles(t, dir)
	if len(files) < 5 {
		t.Fatalf("files %v: want 20 entries of ~460 bytes split by 1500 bytes", files)
	}
	for i, name := range files {
		want := "audit-00000" + string(rune('1'+i)) + "-20261127.jsonl"
		if i < 9 && name != want {
			t.Errorf("file %d is %s, want %s", i, name, want)
		}
		st, _ := os.Stat(filepath.Join(dir, name))
		if st.Size() > 1500 {
			t.Errorf("%s is %d bytes, over MaxFileSize", name, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	if r := MustVerify(t, dir, k); r.Entries != 20 || r.Files != len(files) {
		t.Errorf("report %+v", r)
	}
}

func TestRotateByDay(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	at := func(days, h, m int) {
		c.Set(time.Date(2026, 11, 27+days, h, m, 0, 0, time.UTC))
		MustAppend(t, l, lookup(1))
	}
	at(0, 10, 0)
	at(0, 23, 59)
	at(1, 0, 1)
	at(3, 12, 0)
	at(2, 12, 0) // the clock stepped back: stays in the day-3 file
	MustClose(t, l)

	want := []string{"audit-000001-20261127.jsonl", "audit-000002-20261128.jsonl", "audit-000003-20261130.jsonl"}
	if got := logFiles(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", got, want)
	}
	if n := len(readLines(t, filepath.Join(dir, want[2]))); n != 2 {
		t.Errorf("%s has %d lines, want 2", want[2], n)
	}
	MustVerify(t, dir, k)
}

func TestTornLastLineIsCutAndRecorded(t *testing.T) {
	for _, tc := range []struct {
		name string
		torn string
		new  bool // in a file of its own, as if the crash came right after a rotation
	}{
		{"partial JSON", `{"seq":4,"time":"2026-11-27T08:16:00.0000`, false},
		{"zeros", "\x00\x00\x00\x00\x00\x00", false},
		{"in a new file", `{"seq":4,"ti`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "audit")
			k, c := MustKey(t), newClock(day0)
			l := MustOpen(t, dir, k, c)
			for i := range 3 {
				MustAppend(t, l, lookup(byte(i)))
			}
			MustClose(t, l)
			path := filepath.Join(dir, logFiles(t, dir)[0])
			if tc.new {
				path = filepath.Join(dir, "audit-000002-20261128.jsonl")
				writeLines(t, path, nil)
			}
			appendFile(t, path, []byte(tc.torn))
			if _, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{VerifierKey: k.vkey}); !errors.Is(err, audit.ErrTampered) {
				t.Errorf("Verify before repair: %v, want ErrTampered", err)
			}

			l = MustOpen(t, dir, k, c)
			e := MustAppend(t, l, lookup(7))
			MustClose(t, l)
			if e.Seq != 5 {
				t.Errorf("next entry is seq %d, want 5 (4 is the repair)", e.Seq)
			}
			r := MustVerify(t, dir, k)
			if r.Repairs != 1 || r.Entries != 5 {
				t.Errorf("report %+v: want 5 entries, 1 repair", r)
			}
			var repair audit.Entry
			audit.Scan(context.Background(), dir, audit.Filter{Action: audit.ActRepair}, func(e audit.Entry) error { repair = e; return nil })
			if repair.Seq != 4 || repair.Actor != audit.ActorSystem || repair.Role != audit.RoleSystem {
				t.Errorf("repair entry %+v", repair)
			}
		})
	}
}

func TestOpenRefusesACorruptLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	for i := range 5 {
		MustAppend(t, l, lookup(byte(i)))
	}
	MustClose(t, l)
	path := filepath.Join(dir, logFiles(t, dir)[0])
	lines := readLines(t, path)
	lines[2] = strings.Replace(lines[2], `"outcome":"ok"`, `"outcome":"no"`, 1)
	writeLines(t, path, lines)

	if _, err := audit.Open(dir, audit.Options{Signer: k.signer}); !errors.Is(err, audit.ErrTampered) {
		t.Errorf("Open: %v, want ErrTampered", err)
	}
	_, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{VerifierKey: k.vkey})
	if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), ":3 (seq 3)") {
		t.Errorf("Verify: %v, want ErrTampered naming line 3", err)
	}
}

func TestOpenRefusesALogShorterThanItsLatestCheckpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	for i := range 5 {
		MustAppend(t, l, lookup(byte(i)))
	}
	MustClose(t, l) // checkpoints seq 5
	path := filepath.Join(dir, logFiles(t, dir)[0])
	writeLines(t, path, readLines(t, path)[:4])
	if _, err := audit.Open(dir, audit.Options{Signer: k.signer}); !errors.Is(err, audit.ErrTruncated) {
		t.Errorf("Open: %v, want ErrTruncated", err)
	}
}

func TestAppendRefusesNumbersAndBadFields(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	defer MustClose(t, l)
	for _, tc := range []struct {
		name string
		edit func(*audit.Entry)
		want error
	}{
		{"number in Detail", func(e *audit.Entry) { e.Detail = "caller 13800138000" }, audit.ErrNumber},
		{"number in Ticket", func(e *audit.Entry) { e.Ticket = "13800138000" }, audit.ErrNumber},
		{"number as Actor", func(e *audit.Entry) { e.Actor = "+8613800138000" }, audit.ErrNumber},
		{"spaced number", func(e *audit.Entry) { e.Detail = "138 0013 8000" }, audit.ErrNumber},
		{"hyphenated number", func(e *audit.Entry) { e.Outcome = "+86-138-0013-8000" }, audit.ErrNumber},
		{"full-width digits", func(e *audit.Entry) { e.Detail = "号码１３８００１３８０００" }, audit.ErrNumber},
		{"unmasked Masked", func(e *audit.Entry) { e.Masked = "13800138000" }, audit.ErrInvalid},
		{"short unmasked Masked", func(e *audit.Entry) { e.Masked = "10086" }, audit.ErrInvalid},
		{"Subject not a pseudonym", func(e *audit.Entry) { e.Subject = "13800138000" }, audit.ErrInvalid},
		{"unknown Action", func(e *audit.Entry) { e.Action = "peek" }, audit.ErrInvalid},
		{"unknown Role", func(e *audit.Entry) { e.Role = "intern" }, audit.ErrInvalid},
		{"no Actor", func(e *audit.Entry) { e.Actor = "" }, audit.ErrInvalid},
		{"no Outcome", func(e *audit.Entry) { e.Outcome = "" }, audit.ErrInvalid},
		{"negative Window", func(e *audit.Entry) { e.Window = -1 }, audit.ErrInvalid},
		{"control character", func(e *audit.Entry) { e.Detail = "ok\x1b[2J" }, audit.ErrInvalid},
		{"invalid UTF-8", func(e *audit.Entry) { e.Ticket = "T-\xff" }, audit.ErrInvalid},
		{"long Detail", func(e *audit.Entry) { e.Detail = strings.Repeat("x", 257) }, audit.ErrInvalid},
		{"masked number", func(e *audit.Entry) { e.Masked = "138****8000" }, nil},
		{"hex subject with a digit run", func(e *audit.Entry) { e.Subject = "12345678901234567890123456789012" }, nil},
		{"counts with labels", func(e *audit.Entry) { e.Detail = "rows=120000 kept=110000" }, nil},
		{"a count of seven digits", func(e *audit.Entry) { e.Detail = "rows=1200000" }, audit.ErrNumber},
		{"a count grouped with commas", func(e *audit.Entry) { e.Detail = "rows=1,200,000" }, nil},
		{"six digits", func(e *audit.Entry) { e.Ticket = "INC-123456" }, nil},
		{"no subject, as for purge", func(e *audit.Entry) { e.Subject, e.Masked, e.Action = "", "", audit.ActPurge }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := lookup(1)
			tc.edit(&e)
			_, err := l.Append(context.Background(), e)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Append: %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "8000") {
				t.Errorf("error %q repeats the value", err)
			}
		})
	}
	// A refused entry does not fail the log.
	MustAppend(t, l, lookup(2))
}

func TestOpenOptionsAndDir(t *testing.T) {
	k := MustKey(t)
	base := t.TempDir()
	for _, tc := range []struct {
		name string
		opts audit.Options
		want string
	}{
		{"no signer", audit.Options{}, "Options.Signer"},
		{"negative size", audit.Options{Signer: k.signer, MaxFileSize: -1}, "Options.MaxFileSize"},
		{"negative retention", audit.Options{Signer: k.signer, Retention: -time.Hour}, "Options.Retention"},
		{"bad name", audit.Options{Signer: k.signer, Name: "two words"}, "Options.Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.Open(filepath.Join(base, "x"), tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	t.Run("open dir", func(t *testing.T) {
		dir := filepath.Join(base, "open")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Open(dir, audit.Options{Signer: k.signer}); !errors.Is(err, audit.ErrPerms) {
			t.Errorf("Open: %v, want ErrPerms", err)
		}
	})
	t.Run("created 0700", func(t *testing.T) {
		dir := filepath.Join(base, "new", "audit")
		l, err := audit.Open(dir, audit.Options{Signer: k.signer})
		if err != nil {
			t.Fatal(err)
		}
		MustClose(t, l)
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
			t.Errorf("mode %v, want 0700", st.Mode().Perm())
		}
	})
}

func TestClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	MustAppend(t, l, lookup(1))
	MustClose(t, l)
	MustClose(t, l) // idempotent
	if _, err := l.Append(context.Background(), lookup(1)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Checkpoint(context.Background()); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Checkpoint after Close: %v, want ErrClosed", err)
	}
	var nilLog *audit.Log
	if err := nilLog.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
}

// With MinSyncInterval, appenders wait for a shared fsync: every append
// that returned is in the log, across rotations, and a Close racing the
// waiting appenders neither hangs nor loses one that returned.
func TestMinSyncIntervalSharesFsyncs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c, func(o *audit.Options) {
		o.NoSync, o.MinSyncInterval, o.MaxFileSize = false, 5*time.Millisecond, 8<<10
	})
	ctx := context.Background()
	const writers, each = 16, 40
	if returned := appendFrom(ctx, t, l, writers, each); len(returned) != writers*each {
		t.Fatalf("%d appends returned, want %d", len(returned), writers*each)
	}

	// Close while appenders are waiting out the interval: each gets its
	// entry or an error, and none hangs.
	var late sync.WaitGroup
	var lateOK atomic.Int64
	for w := range writers {
		late.Go(func() {
			if _, err := l.Append(ctx, lookup(byte(w))); err == nil {
				lateOK.Add(1)
			} else if !errors.Is(err, audit.ErrClosed) {
				t.Errorf("append racing Close: %v, want nil or ErrClosed", err)
			}
		})
	}
	MustClose(t, l)
	late.Wait()

	r := MustVerify(t, dir, k)
	if want := uint64(writers*each + lateOK.Load()); r.Entries < want || r.Files < 2 {
		t.Errorf("report %+v: want at least %d entries (every append that returned) over several files", r, want)
	}
}

package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/roamtrail/roamtrail/privacy/audit"
)

// tamperFixture is a log of ten entries in one file, with a checkpoint at
// seq 6 and another at seq 10.
type tamperFixture struct {
	dir      string
	k        key
	file     string // the log file's name
	ckAt6    []byte // the checkpoints file as it was after the first checkpoint
	latest6  []byte
	latest10 []byte // what an auditor took home
}

func newTamperFixture(t *testing.T) tamperFixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	ctx := context.Background()
	for i := range 6 {
		MustAppend(t, l, lookup(byte(i)))
	}
	latest6, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ckAt6, err := os.ReadFile(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		MustAppend(t, l, lookup(byte(10+i)))
	}
	latest10, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	MustClose(t, l)
	return tamperFixture{dir, k, logFiles(t, dir)[0], ckAt6, latest6, latest10}
}

func TestVerifyDetectsTampering(t *testing.T) {
	fx := newTamperFixture(t)
	other := MustKey(t)
	otherNote := func(text string) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, other.signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	editLog := func(f func([]string) []string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			path := filepath.Join(dir, fx.file)
			writeLines(t, path, f(readLines(t, path)))
		}
	}
	rollBackCheckpoints := func(t *testing.T, dir string) {
		os.WriteFile(filepath.Join(dir, "checkpoints"), fx.ckAt6, 0o600)
		os.WriteFile(filepath.Join(dir, "checkpoint.latest"), fx.latest6, 0o600)
	}

	for _, tc := range []struct {
		name     string
		tamper   func(t *testing.T, dir string)
		held     []byte // the auditor's checkpoint
		vkey     string // default fx.k.vkey
		want     error
		file     string // default the log file
		line     int
		seq      uint64
		inReason string
	}{
		{name: "untouched", tamper: func(*testing.T, string) {}, held: fx.latest10},
		{name: "edit a field", tamper: editLog(func(l []string) []string {
			l[2] = strings.Replace(l[2], `"outcome":"ok"`, `"outcome":"denied"`, 1)
			return l
		}), want: audit.ErrTampered, line: 3, seq: 3, inReason: "hash does not match"},
		{name: "edit a field and rehash it", tamper: editLog(func(l []string) []string {
			l[2] = rehash(strings.Replace(l[2], `"outcome":"ok"`, `"outcome":"denied"`, 1))
			return l
		}), want: audit.ErrTampered, line: 4, seq: 4, inReason: "prev is not the hash"},
		{name: "edit a field and rewrite the chain after it", tamper: editLog(func(l []string) []string {
			l[2] = strings.Replace(l[2], `"outcome":"ok"`, `"outcome":"denied"`, 1)
			return rechain(l, 2)
		}), want: audit.ErrTampered, line: 6, seq: 6, inReason: "signed checkpoint at checkpoints:1"},
		{name: "rewrite a line in another form", tamper: editLog(func(l []string) []string {
			l[2] = rehash(strings.Replace(l[2], `"outcome":"ok"`, `"outcome": "ok"`, 1))
			return l
		}), want: audit.ErrTampered, line: 3, seq: 3, inReason: "canonical"},
		{name: "insert a line", tamper: editLog(func(l []string) []string {
			return append(l[:3], l[2:]...)
		}), want: audit.ErrTampered, line: 4, seq: 3, inReason: "seq 3 follows seq 3"},
		{name: "delete a line", tamper: editLog(func(l []string) []string {
			return append(l[:3], l[4:]...)
		}), want: audit.ErrTampered, line: 4, seq: 5, inReason: "seq 5 follows seq 3"},
		{name: "reorder two lines", tamper: editLog(func(l []string) []string {
			l[3], l[4] = l[4], l[3]
			return l
		}), want: audit.ErrTampered, line: 4, seq: 5, inReason: "seq 5 follows seq 3"},
		{name: "delete the first line", tamper: editLog(func(l []string) []string {
			return l[1:]
		}), want: audit.ErrTruncated, line: 1, seq: 2, inReason: "no signed prune anchor"},
		{name: "truncate the tail past a checkpoint in the dir", tamper: editLog(func(l []string) []string {
			return l[:8]
		}), want: audit.ErrTruncated, seq: 9, inReason: "checkpoints:7 vouches for seq 10"},
		{name: "truncate the tail and roll back the checkpoints", tamper: func(t *testing.T, dir string) {
			editLog(func(l []string) []string { return l[:8] })(t, dir)
			rollBackCheckpoints(t, dir)
		}}, // consistent in itself: the dir alone cannot show it
		{name: "truncate the tail and roll back the checkpoints, with the auditor's checkpoint", tamper: func(t *testing.T, dir string) {
			editLog(func(l []string) []string { return l[:8] })(t, dir)
			rollBackCheckpoints(t, dir)
		}, held: fx.latest10, want: audit.ErrTruncated, seq: 9, inReason: "auditor checkpoint is at seq 10"},
		{name: "torn last line", tamper: func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, fx.file), []byte(`{"seq":11,`))
		}, want: audit.ErrTampered, line: 11, seq: 11, inReason: "incomplete last line"},
		{name: "edit a checkpoint", tamper: func(t *testing.T, dir string) {
			path := filepath.Join(dir, "checkpoints")
			b, _ := os.ReadFile(path)
			os.WriteFile(path, []byte(strings.Replace(string(b), "\n6\n", "\n5\n", 1)), 0o600)
		}, want: audit.ErrBadSignature, file: "checkpoints", line: 1},
		{name: "add a checkpoint signed with another key", tamper: func(t *testing.T, dir string) {
			lines := readLines(t, filepath.Join(dir, fx.file))
			appendFile(t, filepath.Join(dir, "checkpoints"),
				append(otherNote("roamtrail-audit\n3\n"+hashField(lines[2])+"\n"), '\n'))
		}, want: audit.ErrBadSignature, file: "checkpoints", line: 13},
		{name: "replace checkpoint.latest with one signed with another key", tamper: func(t *testing.T, dir string) {
			lines := readLines(t, filepath.Join(dir, fx.file))
			os.WriteFile(filepath.Join(dir, "checkpoint.latest"), otherNote("roamtrail-audit\n10\n"+hashField(lines[9])+"\n"), 0o600)
		}, want: audit.ErrBadSignature, file: "checkpoint.latest"},
		{name: "verify with another key", tamper: func(*testing.T, string) {}, vkey: other.vkey,
			want: audit.ErrBadSignature, file: "checkpoints", line: 1},
		{name: "an auditor's checkpoint signed with another key", tamper: func(*testing.T, string) {},
			held: otherNote("roamtrail-audit\n10\n" + strings.Repeat("0", 64) + "\n"),
			want: audit.ErrBadSignature, file: "auditor checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, fx.dir)
			tc.tamper(t, dir)
			vkey := tc.vkey
			if vkey == "" {
				vkey = fx.k.vkey
			}
			r, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{VerifierKey: vkey, Checkpoint: tc.held})
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				if r.Bad != nil {
					t.Errorf("Bad %v on success", r.Bad)
				}
				return
			}
			file := tc.file
			if file == "" {
				file = fx.file
			}
			b := r.Bad
			if b == nil || b.File != file || b.Line != tc.line || b.Seq != tc.seq || !strings.Contains(b.Reason, tc.inReason) {
				t.Errorf("Bad %+v, want %s line %d seq %d, reason with %q", b, file, tc.line, tc.seq, tc.inReason)
			}
			if !strings.Contains(err.Error(), b.String()) {
				t.Errorf("error %q does not name %q", err, b.String())
			}
		})
	}
}

// pruneFixture writes one entry an hour for ten days, a checkpoint each
// day, and a file a day.
func pruneFixture(t *testing.T) (dir string, k key, c *clock, l *audit.Log, held []byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "audit")
	k, c = MustKey(t), newClock(day0)
	l = MustOpen(t, dir, k, c, func(o *audit.Options) { o.Retention = 72 * time.Hour })
	start := time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC)
	for h := range 240 {
		c.Set(start.Add(time.Duration(h) * time.Hour))
		MustAppend(t, l, lookup(byte(h)))
		if h%24 == 12 {
			ck, err := l.Checkpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if h == 36 {
				held = ck // an auditor's, from 2 November
			}
		}
	}
	return dir, k, c, l, held
}

func TestPruneKeepsTheLogVerifiable(t *testing.T) {
	dir, k, c, l, held := pruneFixture(t)
	ctx := context.Background()
	if n := len(logFiles(t, dir)); n != 10 {
		t.Fatalf("%d files, want one a day for 10 days", n)
	}
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC) // cutoff 7 November noon
	c.Set(now)
	if err := l.Prune(ctx, now); err != nil {
		t.Fatal(err)
	}
	files := logFiles(t, dir)
	if len(files) != 4 || files[0] != "audit-000007-20261107.jsonl" {
		t.Fatalf("after Prune: %v, want 7 to 10 November", files)
	}
	var prune audit.Entry
	audit.Scan(ctx, dir, audit.Filter{Action: audit.ActPrune}, func(e audit.Entry) error { prune = e; return nil })
	if prune.Seq != 241 || !strings.Contains(prune.Detail, "deleted 6 log files") {
		t.Errorf("prune entry %+v", prune)
	}
	r := MustVerify(t, dir, k)
	if r.Anchor != 144 || r.First != 145 || r.Last != 241 || r.Entries != 97 || r.Checkpoints != 5 {
		t.Errorf("report %+v: want anchor 144, entries 145..241, checkpoints of 7-10 Nov and the anchor", r)
	}
	// The checkpoints of pruned days are gone from the file.
	b, _ := os.ReadFile(filepath.Join(dir, "checkpoints"))
	if n := strings.Count(string(b), "roamtrail-audit\n"); n != 5 {
		t.Errorf("checkpoints holds %d notes, want the anchor and 4 days'", n)
	}

	// Pruning again later moves the anchor; nothing to prune is a no-op.
	if err := l.Prune(ctx, now); err != nil {
		t.Fatal(err)
	}
	later := now.Add(48 * time.Hour)
	c.Set(later)
	if err := l.Prune(ctx, later); err != nil {
		t.Fatal(err)
	}
	MustClose(t, l)
	if r := MustVerify(t, dir, k); r.Anchor != 192 || r.Last != 242 {
		t.Errorf("after a second prune: %+v, want anchor 192", r)
	}

	t.Run("an auditor's checkpoint from before the retained log", func(t *testing.T) {
		_, err := audit.Verify(ctx, dir, audit.VerifyOptions{VerifierKey: k.vkey, Checkpoint: held})
		if !errors.Is(err, audit.ErrPruned) {
			t.Errorf("Verify: %v, want ErrPruned", err)
		}
	})
	t.Run("a file deleted without Prune", func(t *testing.T) {
		dir := copyDir(t, dir)
		os.Remove(filepath.Join(dir, logFiles(t, dir)[0]))
		r, err := audit.Verify(ctx, dir, audit.VerifyOptions{VerifierKey: k.vkey})
		if !errors.Is(err, audit.ErrTruncated) || r.Bad.Line != 1 || r.Bad.Seq != 217 {
			t.Errorf("Verify: %v, want ErrTruncated at the new first line", err)
		}
	})
	t.Run("a file in the middle deleted", func(t *testing.T) {
		dir := copyDir(t, dir)
		os.Remove(filepath.Join(dir, logFiles(t, dir)[1]))
		if _, err := audit.Verify(ctx, dir, audit.VerifyOptions{VerifierKey: k.vkey}); !errors.Is(err, audit.ErrTampered) {
			t.Errorf("Verify: %v, want ErrTampered", err)
		}
	})
	t.Run("the log reopens after pruning", func(t *testing.T) {
		l := MustOpen(t, dir, k, c)
		MustAppend(t, l, lookup(1))
		MustClose(t, l)
		MustVerify(t, dir, k)
	})
}

func TestPruneRefusesABrokenLink(t *testing.T) {
	dir, k, c, l, _ := pruneFixture(t)
	MustClose(t, l)
	first := filepath.Join(dir, logFiles(t, dir)[0])
	lines := readLines(t, first)
	lines[len(lines)-1] = rehash(strings.Replace(lines[len(lines)-1], `"outcome":"ok"`, `"outcome":"no"`, 1))
	writeLines(t, first, lines)

	l = MustOpen(t, dir, k, c, func(o *audit.Options) { o.Retention = 72 * time.Hour })
	defer MustClose(t, l)
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	if err := l.Prune(context.Background(), now); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Prune: %v, want ErrTampered", err)
	}
	if n := len(logFiles(t, dir)); n != 10 {
		t.Errorf("%d files left, want all 10: the evidence stays", n)
	}
}

func TestVerifyAnEmptyLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	held, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	MustClose(t, l)
	r, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{VerifierKey: k.vkey, Checkpoint: held})
	if err != nil || r.Entries != 0 || r.Checkpoints != 1 {
		t.Errorf("Verify: %+v, %v", r, err)
	}
	if _, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "VerifierKey") {
		t.Errorf("Verify without a key: %v", err)
	}
}

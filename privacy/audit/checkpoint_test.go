package audit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/roamtrail/roamtrail/privacy/audit"
)

func TestCheckpointNotes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	ctx := context.Background()
	var last audit.Entry
	for i := range 3 {
		last = MustAppend(t, l, lookup(byte(i)))
	}
	msg, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(k.vkey)
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if want := "roamtrail-audit\n3\n" + last.Hash + "\n"; n.Text != want {
		t.Errorf("text %q, want %q", n.Text, want)
	}
	latest, _ := os.ReadFile(filepath.Join(dir, "checkpoint.latest"))
	if !bytes.Equal(latest, msg) {
		t.Errorf("checkpoint.latest is not the checkpoint")
	}
	MustAppend(t, l, lookup(4))
	MustClose(t, l) // writes the second
	all, _ := os.ReadFile(filepath.Join(dir, "checkpoints"))
	notes := strings.Split(strings.TrimSuffix(string(all), "\n\n"), "\n\n")
	if len(notes) != 4 || !strings.HasPrefix(notes[2], "roamtrail-audit\n4\n") {
		t.Errorf("checkpoints file:\n%s\nwant two notes, each text, blank, signature, blank", all)
	}
	for _, name := range []string{"checkpoints", "checkpoint.latest"} {
		if st, _ := os.Stat(filepath.Join(dir, name)); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", name, st.Mode().Perm())
		}
	}
}

func TestRunCheckpointsWritesWhenThereIsActivity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	count := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "checkpoints"))
		return strings.Count(string(b), "roamtrail-audit\n")
	}
	done := make(chan error)
	go func() { done <- l.RunCheckpoints(context.Background(), 5*time.Millisecond) }()

	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); count() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d checkpoints, want %d", count(), n)
			}
		}
	}
	MustAppend(t, l, lookup(1))
	waitFor(1)
	time.Sleep(30 * time.Millisecond) // idle ticks write nothing
	if n := count(); n != 1 {
		t.Errorf("%d checkpoints after idle ticks, want 1", n)
	}
	MustAppend(t, l, lookup(2))
	waitFor(2)
	MustAppend(t, l, lookup(3))
	MustClose(t, l) // stops RunCheckpoints and writes the last
	if err := <-done; err != nil {
		t.Errorf("RunCheckpoints: %v", err)
	}
	if r := MustVerify(t, dir, k); r.Checkpoints != 3 || r.Last != 3 {
		t.Errorf("report %+v, want checkpoints at 1, 2, 3", r)
	}
}

func TestTornCheckpointIsCutOnOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	MustAppend(t, l, lookup(1))
	MustClose(t, l)
	appendFile(t, filepath.Join(dir, "checkpoints"), []byte("roamtrail-audit\n1\n"))
	if _, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{VerifierKey: k.vkey}); !errors.Is(err, audit.ErrBadCheckpoint) {
		t.Errorf("Verify: %v, want ErrBadCheckpoint", err)
	}
	l = MustOpen(t, dir, k, c)
	MustClose(t, l)
	MustVerify(t, dir, k)
}

func TestLoadOrCreateSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "audit.key")
	s, vkey, err := audit.LoadOrCreateSigner(path, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	s2, vkey2, err := audit.LoadOrCreateSigner(path, rand.Reader)
	if err != nil || vkey2 != vkey || s2.KeyHash() != s.KeyHash() {
		t.Fatalf("reloaded a different key: %v", err)
	}
	// The verifier key checks the signer's notes.
	msg, _ := note.Sign(&note.Note{Text: "x\n"}, s)
	v, _ := note.NewVerifier(vkey)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("verifier key does not verify: %v", err)
	}
	os.Chmod(path, 0o640)
	if _, _, err := audit.LoadOrCreateSigner(path, rand.Reader); !errors.Is(err, audit.ErrKeyPerms) {
		t.Errorf("group-readable key: %v, want ErrKeyPerms", err)
	}
	for range 50 { // base64 keys often hold a +, the encoding's separator
		skey, vkey, err := audit.GenerateKey("k", nil)
		if got, err2 := audit.VerifierKey(skey); err != nil || err2 != nil || got != vkey {
			t.Fatalf("VerifierKey = %q, %v; want %q", got, err2, vkey)
		}
	}
	if _, err := audit.VerifierKey("not a key"); err == nil {
		t.Error("VerifierKey accepted garbage")
	}
	if _, _, err := audit.GenerateKey("two words", nil); err == nil {
		t.Error("GenerateKey accepted a name with a space")
	}
}

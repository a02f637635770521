package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/privacy/audit"
)

// The access log keeps its files three years (as PIPL asks of processing
// records) and `purge` enforces that too: an older file goes, with a
// signed anchor so that the rest still verifies.
func TestPurgePrunesTheAccessLog(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.LoadOrCreateSigner(filepath.Join(data, "audit.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(-4, 0, 0)
	nop := zerolog.Nop()
	l, err := audit.Open(auditDir(data), audit.Options{Signer: signer, Logger: &nop, Now: func() time.Time { return old }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), systemEntry(audit.ActPurge, "ok", "four years ago")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	oldFiles, _ := filepath.Glob(filepath.Join(auditDir(data), "audit-*-"+old.UTC().Format("20060102")+"*"))
	if len(oldFiles) != 1 {
		t.Fatalf("the old file: %v", oldFiles)
	}
	if _, stderr, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", data, "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCmd(t, "", "purge", "--data-dir", data); err != nil {
		t.Fatalf("purge: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(oldFiles[0]); !os.IsNotExist(err) {
		t.Errorf("a file from four years ago outlived purge: %v", err)
	}
	var pruned bool
	for _, e := range auditEntries(t, data) {
		pruned = pruned || e.Action == audit.ActPrune
	}
	if !pruned {
		t.Error("the prune is not in the access log")
	}
	staffSub(t, data, "operators", "add", "--role", "admin", "--bootstrap", "root")
	staffSub(t, data, "operators", "add", "--operator", "root", "--role", "auditor", "aud")
	staffSub(t, data, "audit", "verify", "--operator", "aud")
}

//go:build unix

package audit_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/roamtrail/roamtrail/privacy/audit"
)

func TestOneWriterAtATime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	k, c := MustKey(t), newClock(day0)
	l := MustOpen(t, dir, k, c)
	if _, err := audit.Open(dir, audit.Options{Signer: k.signer}); !errors.Is(err, audit.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	MustClose(t, l)
	l = MustOpen(t, dir, k, c)
	MustClose(t, l)
}

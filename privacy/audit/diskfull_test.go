package audit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A full disk fails an append without failing the log: the torn tail is
// cut off, and once space returns the next append continues the chain. It
// needs a small file system of its own, so it mounts a tmpfs (root only).
func TestDiskFullAppendUndone(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	dir := filepath.Join(mnt, "audit")
	s, vkey := mustSigner(t)
	ctx := context.Background()
	l, err := Open(dir, Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, testEntry()); err != nil {
		t.Fatal(err)
	}
	size := l.size

	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{64 << 10, 1} {
		for buf := make([]byte, chunk); ; {
			if _, err := filler.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	filler.Close()
	// A new page is needed for the entry: the file's last one may have
	// room, so append until one does not fit.
	var failed error
	for range 100 {
		if _, failed = l.Append(ctx, testEntry()); failed != nil {
			break
		}
		size = l.size
	}
	if !errors.Is(failed, ErrFailed) || !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk: %v, want ErrFailed wrapping ENOSPC", failed)
	}
	if fi, err := os.Stat(filepath.Join(dir, l.cur.name)); err != nil || fi.Size() != size {
		t.Fatalf("after the failed append the file is %v bytes (%v), want %d", fi.Size(), err, size)
	}

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(ctx, testEntry())
	if err != nil {
		t.Fatalf("Append once space returned: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(ctx, dir, VerifyOptions{VerifierKey: vkey}); err != nil {
		t.Fatalf("Verify: %v", err)
	} else {
		t.Logf("verified %+v; last seq %d", n, e.Seq)
	}
}

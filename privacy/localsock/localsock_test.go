package localsock_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roamtrail/roamtrail/privacy/localsock"
)

func TestListen(t *testing.T) {
	if !localsock.Supported {
		t.Skip("no SO_PEERCRED here")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	if _, _, err := localsock.Listen(path, nil); err == nil || !strings.Contains(err.Error(), "open to group or others") {
		t.Fatalf("a dir open to its group: %v", err)
	}
	os.Chmod(dir, 0o700)

	ln, owner, err := localsock.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if owner != uint32(os.Getuid()) {
		t.Errorf("owner %d, want %d", owner, os.Getuid())
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	// A live socket is refused, with the pid ping reads.
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if _, _, err := localsock.Listen(path, func(net.Conn) int { return 4242 }); err == nil || !strings.Contains(err.Error(), "pid 4242") {
		t.Fatalf("a live socket: %v", err)
	}
	// The client's view of the server: our own uid, which Admits.
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err == nil {
		uid, pid, own, err := localsock.ServerCred(c, path)
		c.Close()
		if err != nil || !localsock.Admits(uid, own) || pid != int32(os.Getpid()) {
			t.Errorf("ServerCred = %d, %d, %d, %v; want our own uid and pid", uid, pid, own, err)
		}
	}
	// A stale socket (nothing listens) is removed and made again. Close
	// unlinks it, so leave one behind the way a kill -9 does.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ln2, _, err := localsock.Listen(path, nil)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	ln2.Close()

	// Not a socket: refused, left alone.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, _, err := localsock.Listen(file, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a regular file: %v", err)
	}
}

func TestAdmits(t *testing.T) {
	for _, tc := range []struct {
		uid, owner uint32
		want       bool
	}{{1000, 1000, true}, {0, 1000, true}, {1001, 1000, false}} {
		if got := localsock.Admits(tc.uid, tc.owner); got != tc.want {
			t.Errorf("Admits(%d, %d) = %v", tc.uid, tc.owner, got)
		}
	}
}

// Package localsock is what the service's two local sockets share: the
// admin socket (privacy/staff) and the ingest socket (store/feed). Each is
// a unix socket in the data dir, mode 0600 in a dir open to no one but its
// owner, that admits only the dir's owner and root as the kernel reports
// the peer (SO_PEERCRED, which the peer cannot forge); a client checks the
// same of the process answering before it sends it a number or a code.
//
// Errors carry no prefix: each socket wraps them in its own.
package localsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Supported says whether this system reports a socket peer's credentials.
// Without them a server cannot tell who connects and must not start.
const Supported = peerCredSupported

// PeerCred is who is at the other end of c, as the kernel says.
func PeerCred(c *net.UnixConn) (uid uint32, pid int32, err error) { return peerCred(c) }

// OwnerOf is the uid owning a file.
func OwnerOf(fi fs.FileInfo) (uint32, error) { return ownerOf(fi) }

// Admits says whether a peer running as uid may use a socket whose dir
// belongs to owner: the owner and root may.
func Admits(uid, owner uint32) bool { return uid == 0 || uid == owner }

// pingTimeout bounds the dial that tells a stale socket from a live one.
const pingTimeout = 2 * time.Second

// Listen creates the socket at path, mode 0600, once it has checked that
// path's dir is open to no one but its owner, and returns it with that
// owner's uid (for Admits). A stale socket, left by a crash, is removed
// first; one a process answers on is an error, naming the pid ping reads
// from it when ping is not nil and finds one.
func Listen(path string, ping func(net.Conn) int) (*net.UnixListener, uint32, error) {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, 0, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, 0, fmt.Errorf("%s is open to group or others (want mode 0700)", dir)
	}
	owner, err := ownerOf(st)
	if err != nil {
		return nil, 0, err
	}
	if err := clearStale(path, ping); err != nil {
		return nil, 0, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, 0, err
	}
	// The dir (0700) already keeps others out; the mode says so again.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, 0, err
	}
	return ln, owner, nil
}

// clearStale removes a socket nothing listens on. A live one is an error:
// two services must not share a data dir (the store's lock refuses that
// too, but a socket replaced under a running service would strand it).
func clearStale(path string, ping func(net.Conn) int) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, pingTimeout)
	if err == nil {
		pid := 0
		if ping != nil {
			pid = ping(c)
		}
		c.Close()
		if pid > 0 {
			return fmt.Errorf("another process (pid %d) answers on %s", pid, path)
		}
		return fmt.Errorf("another process answers on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove a stale socket: %w", err)
	}
	return nil
}

// ServerCred is who answers on c, dialled at path, and who owns path's
// dir: a client sends nothing unless Admits(uid, owner).
func ServerCred(c *net.UnixConn, path string) (uid uint32, pid int32, owner uint32, err error) {
	uid, pid, err = peerCred(c)
	if err != nil {
		return 0, 0, 0, err
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return 0, 0, 0, err
	}
	owner, err = ownerOf(st)
	if err != nil {
		return 0, 0, 0, err
	}
	return uid, pid, owner, nil
}

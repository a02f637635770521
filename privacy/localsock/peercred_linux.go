//go:build linux

package localsock

import (
	"errors"
	"io/fs"
	"net"
	"syscall"
)

const peerCredSupported = true

// peerCred is who is at the other end of c, as the kernel says
// (SO_PEERCRED): not something the peer can claim.
func peerCred(c *net.UnixConn) (uid uint32, pid int32, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if cerr != nil {
		return 0, 0, cerr
	}
	return cred.Uid, cred.Pid, nil
}

// ownerOf is the uid owning a file.
func ownerOf(fi fs.FileInfo) (uint32, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no owner in the file's stat")
	}
	return st.Uid, nil
}

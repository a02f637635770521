package journal

import (
	"os"
	"syscall"
)

// fdatasync syncs f's data and the metadata needed to read it back (its
// size), not its times: on ext4 an fsync would also journal the mtime.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

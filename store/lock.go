package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// dirLock is an exclusive advisory lock on a data dir. The lock file also
// says who holds it, so that a second process can be told which one to look
// at instead of a bare "resource temporarily unavailable".
type dirLock struct{ f *os.File }

const lockName = "LOCK"

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "another process"
			}
			return nil, fmt.Errorf("%w: held by %s", ErrLocked, h)
		}
		return nil, fmt.Errorf("store: lock data dir: %w", err)
	}
	exe, _ := os.Executable()
	cmd := strings.Join(append([]string{filepath.Base(exe)}, subcommand(os.Args)...), " ")
	info := fmt.Sprintf("pid %d (%s) since %s\n", os.Getpid(), cmd, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(info), 0)
	}
	return &dirLock{f: f}, nil
}

// subcommand returns the words of args that name the command, not its
// arguments: arguments may carry a phone number, which must not be written
// into the data dir.
func subcommand(args []string) []string {
	var out []string
	for _, a := range args[min(1, len(args)):] {
		if strings.HasPrefix(a, "-") || strings.ContainsAny(a, "0123456789/.") {
			break
		}
		out = append(out, a)
	}
	return out
}

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}

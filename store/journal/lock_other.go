//go:build !unix

package journal

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens DIR/LOCK without locking it: there is no flock here, and
// nothing stops a second process from using the queue. Run one serve per
// data dir.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store/journal: lock: %w", err)
	}
	return f, nil
}

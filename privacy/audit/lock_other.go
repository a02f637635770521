//go:build !unix

package audit

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens DIR/LOCK without locking it: there is no flock here, and
// nothing stops a second process from appending to the log. Run one writer.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: lock: %w", err)
	}
	return f, nil
}

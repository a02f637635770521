package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Prune deletes the log files whose day ended more than Options.Retention
// before now, oldest first, and never the current file. The chain stays
// verifiable: before deleting a file Prune signs a prune anchor for its last
// entry (the Seq and Hash the next file's first entry continues from) into
// DIR/checkpoints, and Verify accepts a log that starts right after an
// anchor. It then drops the checkpoints about deleted entries, and records
// what it did as an ActPrune entry.
//
// Prune refuses (ErrTampered) to delete a file whose last entry does not
// link to the next file's first: that is evidence, not waste. A crash in the
// middle leaves some files deleted and an anchor for each, so the log
// verifies at every step.
func (l *Log) Prune(ctx context.Context, now time.Time) error {
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	// Listing under mu sees every file with its first line written: a
	// rotation creates a file and writes to it in one critical section.
	l.mu.Lock()
	closed := l.closed
	files, err := listFiles(l.dir)
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err != nil {
		return err
	}

	cutoff := now.Add(-l.opts.Retention)
	var anchors []checkpoint
	for i := 0; i < len(files)-1 && !files[i].day.AddDate(0, 0, 1).After(cutoff); i++ {
		a, ok, err := l.boundary(files[i], files[i+1])
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		anchors = append(anchors, a)
	}
	if len(anchors) == 0 {
		return nil
	}

	for _, a := range anchors {
		if _, err := l.writeCheckpoint(a); err != nil {
			return err
		}
	}
	deleted := 0
	for _, lf := range files[:len(anchors)] {
		if err := ctx.Err(); err != nil {
			break
		}
		if err := os.Remove(filepath.Join(l.dir, lf.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit: prune: %w", err)
		}
		deleted++
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	if deleted == 0 {
		return ctx.Err()
	}
	l.log.Info().Int(logFiles, deleted).Str(logFile, files[deleted-1].name).Msg("audit: pruned log files past retention")
	if deleted == len(anchors) {
		if err := l.dropCheckpointsBefore(anchors[len(anchors)-1].seq); err != nil {
			return err
		}
	}
	_, err = l.append(Entry{Actor: ActorSystem, Role: RoleSystem, Action: ActPrune, Outcome: "ok",
		Detail: fmt.Sprintf("deleted %d log files past the retention period", deleted)})
	if err != nil {
		return err
	}
	return ctx.Err()
}

// boundary returns the prune anchor for deleting old, the file before next:
// old's last entry, which must be what next's first entry links to. ok is
// false if either file has no entry.
func (l *Log) boundary(old, next segment) (a checkpoint, ok bool, err error) {
	last, ok1, err := lastEntry(filepath.Join(l.dir, old.name))
	if err != nil {
		return a, false, err
	}
	first, ok2, err := firstEntry(filepath.Join(l.dir, next.name))
	if err != nil || !ok1 || !ok2 {
		return a, false, err
	}
	if first.Seq != last.Seq+1 || first.Prev != last.Hash || hashOf(last.canonical()) != last.Hash {
		return a, false, fmt.Errorf("%w: refusing to prune: %s does not link to %s (run Verify)", ErrTampered, old.name, next.name)
	}
	return checkpoint{seq: last.Seq, hash: last.Hash, anchor: true}, true, nil
}

// dropCheckpointsBefore rewrites DIR/checkpoints without the notes about
// entries before seq, which no longer exist; the anchor at seq stays. Notes
// it cannot read are kept. Call with ckMu held.
func (l *Log) dropCheckpointsBefore(seq uint64) error {
	path := filepath.Join(l.dir, checkpointsName)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: prune checkpoints: %w", err)
	}
	defer f.Close()
	tmp, err := os.CreateTemp(l.dir, "."+checkpointsName+"-*")
	if err != nil {
		return fmt.Errorf("audit: prune checkpoints: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	nr := newNoteReader(f)
	for {
		msg, _, err := nr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadCheckpoint, checkpointsName, err)
		}
		if c, err := parseCheckpointText(unverifiedText(msg), l.opts.Name); err == nil && c.seq < seq {
			continue
		}
		if _, err := tmp.Write(append(msg, '\n')); err != nil {
			return fmt.Errorf("audit: prune checkpoints: %w", err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("audit: prune checkpoints: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit: prune checkpoints: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("audit: prune checkpoints: %w", err)
	}
	return syncDir(l.dir)
}

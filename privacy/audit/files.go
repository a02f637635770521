package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names in the audit dir.
const (
	filePrefix      = "audit-"
	fileSuffix      = ".jsonl"
	dayLayout       = "20060102"
	checkpointsName = "checkpoints"
	latestName      = "checkpoint.latest"
	lockName        = "LOCK"
)

// segment is one file of the log: audit-<index>-<UTC day>.jsonl. Index
// orders the files; day is the UTC day of the entries in it (a file never
// holds an entry from a later day, see Log.rotate).
type segment struct {
	name string
	idx  uint64
	day  time.Time
}

func fileName(idx uint64, day time.Time) string {
	return fmt.Sprintf("%s%06d-%s%s", filePrefix, idx, day.Format(dayLayout), fileSuffix)
}

// listFiles returns dir's log files in index order. A name that starts and
// ends like a log file but does not parse is an error: a file renamed out of
// the sequence must not be skipped quietly.
func listFiles(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var files []segment
	for _, de := range des {
		name := de.Name()
		mid, ok := strings.CutPrefix(name, filePrefix)
		if !ok {
			continue
		}
		mid, ok = strings.CutSuffix(mid, fileSuffix)
		if !ok {
			continue
		}
		idxs, days, _ := strings.Cut(mid, "-")
		idx, err1 := strconv.ParseUint(idxs, 10, 64)
		day, err2 := time.Parse(dayLayout, days)
		if err1 != nil || err2 != nil || idx == 0 || fileName(idx, day) != name {
			return nil, fmt.Errorf("%w: %s: not a log file name", ErrTampered, name)
		}
		files = append(files, segment{name, idx, day})
	}
	slices.SortFunc(files, func(a, b segment) int { return cmpUint(a.idx, b.idx) })
	for i := 1; i < len(files); i++ {
		if files[i].idx == files[i-1].idx {
			return nil, fmt.Errorf("%w: %s and %s: same index", ErrTampered, files[i-1].name, files[i].name)
		}
	}
	return files, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// utcDay returns the start of t's UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// readTail returns the last n bytes of f (fewer if f is shorter) and the
// offset they start at.
func readTail(f *os.File, size, n int64) ([]byte, int64, error) {
	off := max(size-n, 0)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	return buf, off, nil
}

// completeLines splits data, read from offset off of a file, into the
// lines wholly inside it: a first line that may have started before off is
// dropped, and so is anything after the last newline, which is returned as
// the torn length.
func completeLines(data []byte, off int64) (lines [][]byte, torn int) {
	end := bytes.LastIndexByte(data, '\n') + 1
	torn = len(data) - end
	data = data[:end]
	if off > 0 {
		i := bytes.IndexByte(data, '\n')
		data = data[i+1:]
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		lines = append(lines, data[:i])
		data = data[i+1:]
	}
	return lines, torn
}

// firstEntry returns the first entry of the file at path; ok is false if
// the file holds no complete line.
func firstEntry(path string) (e Entry, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, false, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, maxLine+1).ReadSlice('\n')
	if errors.Is(err, io.EOF) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %s:1: %v", ErrTampered, filepath.Base(path), err)
	}
	e, err = parseEntry(line[:len(line)-1])
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %s:1: %v", ErrTampered, filepath.Base(path), err)
	}
	return e, true, nil
}

// lastEntry returns the last complete entry of the file at path; ok is
// false if it holds none.
func lastEntry(path string) (e Entry, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Entry{}, false, err
	}
	data, off, err := readTail(f, st.Size(), 2*maxLine)
	if err != nil {
		return Entry{}, false, err
	}
	lines, _ := completeLines(data, off)
	if len(lines) == 0 {
		return Entry{}, false, nil
	}
	e, err = parseEntry(lines[len(lines)-1])
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %s: last line: %v", ErrTampered, filepath.Base(path), err)
	}
	return e, true, nil
}

// reverseChunk is how much of a file Last reads at a time.
const reverseChunk = 256 << 10

// reverseChunks calls fn with f's complete lines, about chunk bytes of
// whole lines at a time (chunk > maxLine), the newest first, until fn
// returns stop or an error. Bytes after the last newline (a line still being
// written, or a torn one) are skipped.
func reverseChunks(ctx context.Context, f *os.File, size, chunk int64, fn func(lines []byte) (stop bool, err error)) error {
	name := filepath.Base(f.Name())
	buf := make([]byte, chunk+maxLine)
	carry := make([]byte, 0, maxLine) // the end of a line that starts in an earlier chunk
	for end, first := size, true; end > 0; first = false {
		if err := ctx.Err(); err != nil {
			return err
		}
		off := max(end-chunk, 0)
		b := buf[:end-off]
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		b = append(b, carry...)
		if first {
			n := bytes.LastIndexByte(b, '\n') + 1
			if n == 0 && off > 0 {
				return fmt.Errorf("%w: %s: last line longer than %d bytes", ErrTampered, name, maxLine)
			}
			b = b[:n]
		}
		start := 0
		if off > 0 {
			start = bytes.IndexByte(b, '\n') + 1
			if start == 0 || start > maxLine {
				return fmt.Errorf("%w: %s: line longer than %d bytes", ErrTampered, name, maxLine)
			}
		}
		carry = append(carry[:0], b[:start]...)
		if start < len(b) {
			if stop, err := fn(b[start:]); stop || err != nil {
				return err
			}
		}
		end = off
	}
	return nil
}

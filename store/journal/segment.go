package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A segment is a file named by its number (%016x.jnl) holding the magic,
// then records:
//
//	length (uint32 LE, of the payload) | crc32c of the payload (uint32 LE) | payload
//	payload: op (1 byte: put or delete) | id length (uvarint) | id | value (the rest)
//
// A record is applied only whole and with its checksum right, so a write
// torn by a crash ends the last segment where the tear begins.
const (
	magic      = "RTJOBS1\n"
	headerSize = 8
	suffix     = ".jnl"
	// maxRecord bounds a record's payload: a length past it is damage, not
	// a job (the gateway's jobs are a few hundred bytes).
	maxRecord = 1 << 20
	// maxID bounds a job id the same way.
	maxID = 1 << 10
)

const (
	opPut    byte = 1
	opDelete byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a segment that is damaged somewhere other than at the
// end of the newest one, where a crash can tear a write. Nothing is removed:
// the operator decides (the error names the file and offset).
var ErrCorrupt = errors.New("store/journal: corrupt segment")

// appendRecord appends one record to b: the payload first, behind room for
// its length and checksum, which are filled in after.
func appendRecord(b []byte, op byte, id, value []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = append(b, value...)
	p := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(p, castagnoli))
	return b
}

// record is one parsed record; id and value alias the segment's bytes.
type record struct {
	op        byte
	id, value []byte
}

// parseRecords reads the records of a segment's body (after the magic) and
// calls fn for each. It returns the offset in b where the whole records end
// and, if they end before b does, why.
func parseRecords(b []byte, fn func(record)) (int, error) {
	off := 0
	for off < len(b) {
		r, n, err := parseRecord(b[off:])
		if err != nil {
			return off, err
		}
		fn(r)
		off += n
	}
	return off, nil
}

var (
	errShort = errors.New("record cut short")
	errCRC   = errors.New("checksum mismatch")
)

func parseRecord(b []byte) (record, int, error) {
	if len(b) < 8 {
		return record{}, 0, errShort
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxRecord {
		return record{}, 0, fmt.Errorf("record length %d", n)
	}
	if uint64(len(b)-8) < uint64(n) {
		return record{}, 0, errShort
	}
	p := b[8 : 8+n]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, 0, errCRC
	}
	op := p[0]
	if op != opPut && op != opDelete {
		return record{}, 0, fmt.Errorf("unknown op %d", op)
	}
	idLen, k := binary.Uvarint(p[1:])
	if k <= 0 || idLen == 0 || idLen > maxID || idLen > uint64(len(p)-1-k) {
		return record{}, 0, errors.New("bad id length")
	}
	id := p[1+k : 1+k+int(idLen)]
	value := p[1+k+int(idLen):]
	if op == opDelete && len(value) != 0 {
		return record{}, 0, errors.New("delete with a value")
	}
	return record{op: op, id: id, value: value}, 8 + int(n), nil
}

func segmentName(n uint64) string { return fmt.Sprintf("%016x%s", n, suffix) }

// segments lists dir's segment numbers in ascending order. Files that are
// not segments are left alone.
func segments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok || len(name) != 16 || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// replay applies the segment at path to live. last says it is the newest
// segment: a tear at its end is what a crash leaves, and replay stops
// there (Open then starts a new segment, so the torn one is never appended
// to). Damage anywhere else is ErrCorrupt.
func replay(path string, last bool, live map[string][]byte) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) < headerSize {
		if last && string(b) == magic[:len(b)] {
			return nil // created, crash before its magic was whole
		}
		return fmt.Errorf("%w: %s: no header", ErrCorrupt, filepath.Base(path))
	}
	if string(b[:headerSize]) != magic {
		return fmt.Errorf("%w: %s: not a job journal segment", ErrCorrupt, filepath.Base(path))
	}
	n, perr := parseRecords(b[headerSize:], func(r record) { apply(live, r) })
	if perr != nil && !last {
		return fmt.Errorf("%w: %s at offset %d: %w", ErrCorrupt, filepath.Base(path), headerSize+n, perr)
	}
	return nil
}

func apply(live map[string][]byte, r record) {
	switch r.op {
	case opPut:
		live[string(r.id)] = append([]byte(nil), r.value...)
	case opDelete:
		delete(live, string(r.id))
	}
}

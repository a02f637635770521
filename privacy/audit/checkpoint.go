package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"
)

// A checkpoint is the text of a signed note: the log's name, a Seq and the
// Hash of the entry at that Seq, each on its own line:
//
//	roamtrail-audit
//	1234
//	9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// A prune anchor has a fourth line, "prune-anchor": it is written by Prune
// for the last entry it deletes, and it is what lets Verify accept a log
// that starts after Seq 1. An ordinary checkpoint cannot stand in for one,
// or deleting old files up to any checkpoint would pass for pruning.
type checkpoint struct {
	seq    uint64
	hash   string
	anchor bool
}

const anchorLine = "prune-anchor"

func (c checkpoint) text(name string) string {
	t := name + "\n" + strconv.FormatUint(c.seq, 10) + "\n" + c.hash + "\n"
	if c.anchor {
		t += anchorLine + "\n"
	}
	return t
}

func parseCheckpointText(text, name string) (checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || len(lines) > 5 || lines[len(lines)-1] != "" {
		return checkpoint{}, errors.New("not a checkpoint")
	}
	if lines[0] != name {
		return checkpoint{}, errors.New("a checkpoint of another log")
	}
	seq, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != lines[1] {
		return checkpoint{}, errors.New("bad seq")
	}
	if !isHex(lines[2], 64) {
		return checkpoint{}, errors.New("bad hash")
	}
	c := checkpoint{seq: seq, hash: lines[2]}
	if len(lines) == 5 {
		if lines[3] != anchorLine {
			return checkpoint{}, errors.New("not a checkpoint")
		}
		c.anchor = true
	}
	return c, nil
}

// unverifiedText returns a note's text without checking its signature.
func unverifiedText(msg []byte) string {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return ""
	}
	return string(msg[:i+1])
}

// Checkpoint signs the log's current head (the last Seq and Hash), appends
// the note to DIR/checkpoints and replaces DIR/checkpoint.latest with it,
// and returns it. Give it to auditors: held outside the data dir, it lets
// Verify detect a log cut back to before it.
//
// In DIR/checkpoints the notes follow one another, each followed by a blank
// line; within a note the text and its signature lines are separated by a
// blank line too (the note format), so the file reads
// text, blank, signature, blank, text, blank, signature, blank, ...
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, ErrClosed
	case l.err != nil:
		// A failed log vouches for nothing more; reopening repairs it.
		err := fmt.Errorf("%w: %w", ErrFailed, l.err)
		l.mu.Unlock()
		return nil, err
	}
	c := checkpoint{seq: l.seq, hash: l.hash}
	if l.f != nil && l.synced < l.seq {
		// A checkpoint must not vouch for entries still in the page cache.
		if err := l.f.Sync(); err != nil {
			l.err = err
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", ErrFailed, err)
		}
		l.synced = l.seq
	}
	l.mu.Unlock()
	return l.writeCheckpoint(c)
}

// writeCheckpoint signs c and appends it to DIR/checkpoints; an ordinary
// checkpoint also becomes DIR/checkpoint.latest. Call with ckMu held.
func (l *Log) writeCheckpoint(c checkpoint) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: c.text(l.opts.Name)}, l.opts.Signer)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(l.dir, checkpointsName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	_, err = f.Write(append(msg[:len(msg):len(msg)], '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	if c.anchor {
		return msg, nil
	}
	if err := writeFileAtomic(l.dir, latestName, msg); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.ckSeq = max(l.ckSeq, c.seq)
	l.mu.Unlock()
	l.log.Debug().Uint64(logSeq, c.seq).Msg("audit: checkpoint")
	return msg, nil
}

// RunCheckpoints writes a checkpoint every interval (a minute if every is 0)
// when there were entries since the last one, until ctx is done or the log
// is closed; Close writes the last one. A failed checkpoint is logged and
// tried again at the next tick.
func (l *Log) RunCheckpoints(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.done:
			return nil
		case <-t.C:
		}
		l.mu.Lock()
		dirty := l.seq != l.ckSeq
		l.mu.Unlock()
		if !dirty {
			continue
		}
		if _, err := l.Checkpoint(ctx); err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			l.log.Error().Err(err).Msg("audit: checkpoint failed")
		}
	}
}

// noteReader reads the notes of a checkpoints file one at a time.
type noteReader struct {
	r    *bufio.Reader
	line int // lines read so far
}

func newNoteReader(r io.Reader) *noteReader {
	return &noteReader{r: bufio.NewReaderSize(r, maxLine)}
}

// next returns the next note and the line it starts on, or io.EOF.
func (nr *noteReader) next() (msg []byte, start int, err error) {
	start = nr.line + 1
	sigs := false // past the text, in the signature lines
	for {
		line, err := nr.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 && len(msg) == 0 {
				return nil, 0, io.EOF
			}
			return nil, start, fmt.Errorf("line %d: incomplete note", nr.line+1)
		}
		nr.line++
		if len(line) > 1 {
			msg = append(msg, line...)
			continue
		}
		switch {
		case len(msg) == 0 || sigs && msg[len(msg)-2] == '\n':
			return nil, start, fmt.Errorf("line %d: unexpected blank line", nr.line)
		case sigs:
			return msg, start, nil
		}
		msg = append(msg, '\n')
		sigs = true
	}
}

// completeNotesEnd returns how much of data, the tail of a checkpoints file,
// is whole notes: up to the blank line after the last signature block, or
// -1 if data holds none.
func completeNotesEnd(data []byte) int {
	sep := []byte("\n\n")
	for i := bytes.LastIndex(data, sep); i >= 0; i = bytes.LastIndex(data[:i], sep) {
		start := bytes.LastIndex(data[:i], sep) + 2
		if start < 2 {
			start = 0
		}
		if bytes.HasPrefix(data[start:i], []byte("— ")) {
			return i + 2
		}
	}
	return -1
}

// repairCheckpoints cuts a torn note, left by a crash in the middle of a
// checkpoint, off the end of DIR/checkpoints. Notes are only ever appended,
// so only the last can be torn; the log itself vouches for what it lost.
func repairCheckpoints(dir string, log zerolog.Logger) error {
	f, err := os.OpenFile(filepath.Join(dir, checkpointsName), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	data, off, err := readTail(f, st.Size(), 16*maxLine)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	end := completeNotesEnd(data)
	if end == len(data) {
		return nil
	}
	if end < 0 {
		if off > 0 {
			return fmt.Errorf("%w: %s: no whole note in its last %d bytes", ErrBadCheckpoint, checkpointsName, len(data))
		}
		end = 0
	}
	if err := f.Truncate(off + int64(end)); err != nil {
		return fmt.Errorf("audit: cut torn checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit: cut torn checkpoint: %w", err)
	}
	log.Warn().Str(logFile, checkpointsName).Int(logBytes, len(data)-end).Msg("audit: cut a torn checkpoint")
	return nil
}

func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("audit: write %s: %w", name, err)
	}
	return syncDir(dir)
}

// GenerateKey returns a new Ed25519 signer key and its verifier key, in the
// encodings of golang.org/x/mod/sumdb/note, for a key named name (no spaces
// or +). random is crypto/rand.Reader if nil.
func GenerateKey(name string, random io.Reader) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", errors.New("audit: key name must be non-empty, without spaces or +")
	}
	if random == nil {
		random = rand.Reader
	}
	skey, vkey, err = note.GenerateKey(random, name)
	if err != nil {
		return "", "", fmt.Errorf("audit: generate key: %w", err)
	}
	return skey, vkey, nil
}

// VerifierKey returns the verifier key of a signer key, for auditors.
func VerifierKey(skey string) (string, error) {
	if _, err := note.NewSigner(skey); err != nil {
		return "", fmt.Errorf("audit: not a signer key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the Ed25519 seed>
	parts := strings.SplitN(skey, "+", 5) // base64 has + in its alphabet
	key, _ := base64.StdEncoding.DecodeString(parts[4])
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// LoadOrCreateSigner reads the signer key at path, or, when no file is
// there, generates one named DefaultName from random (crypto/rand.Reader if
// nil) and writes it with mode 0600. It returns the signer and its verifier
// key. A key file that group or others can read is refused.
//
// Keeping the key in the data dir, as a development setup does, means that
// whoever can rewrite the log can also re-sign its checkpoints. In
// production keep the signing key outside the data dir (another mount, a
// secrets manager) and give the verifier key to the auditors, who check the
// log with it and keep copies of checkpoint.latest of their own.
func LoadOrCreateSigner(path string, random io.Reader) (note.Signer, string, error) {
	skey, err := readSignerKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		skey, err = createSignerKey(path, random)
	}
	if err != nil {
		return nil, "", err
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("audit: %s: not a signer key: %w", filepath.Base(path), err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}

func readSignerKey(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", ErrKeyPerms
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("audit: read key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func createSignerKey(path string, random io.Reader) (string, error) {
	skey, _, err := GenerateKey(DefaultName, random)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("audit: key dir: %w", err)
	}
	// Write to a temporary name and link it in, so that a crash never
	// leaves a short key and two processes racing here agree on one key.
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return "", fmt.Errorf("audit: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(skey + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("audit: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSignerKey(path)
		}
		return "", fmt.Errorf("audit: install key: %w", err)
	}
	return skey, nil
}

// validName is note's rule for key names, which this package also applies
// to log names: non-empty, valid UTF-8, no spaces, no +.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

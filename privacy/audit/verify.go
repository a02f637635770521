package audit

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Name is the log's name, as in Options.Name. The default is
	// DefaultName.
	Name string
	// Verifier checks checkpoint signatures. Either it or VerifierKey is
	// required.
	Verifier note.Verifier
	// VerifierKey is the verifier key, as GenerateKey or
	// LoadOrCreateSigner return it; used when Verifier is nil.
	VerifierKey string
	// Checkpoint is a checkpoint note the auditor kept (a copy of
	// checkpoint.latest taken at the last audit). The log must still hold
	// the entry it names, with the same hash: that is what detects a log cut
	// back and its checkpoints with it. Optional.
	Checkpoint []byte
}

// Report is what Verify found.
type Report struct {
	Files   int    // log files read
	Entries uint64 // entries checked
	First   uint64 // Seq of the first entry, 0 if none
	Last    uint64 // Seq of the last entry, 0 if none
	// Anchor is the Seq the retained log continues from: 0 when it starts
	// at the genesis, else the last Seq Prune deleted.
	Anchor uint64
	// Checkpoints counts the Seqs vouched for by a verified checkpoint (in
	// checkpoints, checkpoint.latest or VerifyOptions.Checkpoint; notes
	// naming the same Seq count once) whose entry matched.
	Checkpoints int
	// PrunedCheckpoints counts the Seqs vouched for by a verified
	// checkpoint that Prune has deleted since.
	PrunedCheckpoints int
	// Repairs counts ActRepair entries: crashes Open recovered from.
	Repairs int
	// Bad is the first thing found wrong, nil if none.
	Bad *Bad
}

// Bad locates what Verify found wrong. File is a log file, "checkpoints",
// "checkpoint.latest" or "auditor checkpoint"; Line counts from 1 (0 when
// the fault is a missing line).
type Bad struct {
	File   string
	Line   int
	Seq    uint64
	Reason string
}

func (b *Bad) String() string {
	s := b.File
	if b.Line > 0 {
		s += fmt.Sprintf(":%d", b.Line)
	}
	if b.Seq > 0 {
		s += fmt.Sprintf(" (seq %d)", b.Seq)
	}
	return s + ": " + b.Reason
}

// badError carries a Bad up to Verify.
type badError struct {
	err error // a sentinel
	bad Bad
}

func (e *badError) Error() string { return e.err.Error() + ": " + e.bad.String() }
func (e *badError) Unwrap() error { return e.err }

func bad(err error, b Bad) error { return &badError{err, b} }

const heldName = "auditor checkpoint"

// ck is a verified checkpoint, kept compact: a busy log's checkpoints file
// holds a note a minute, 1.6 million over three years.
type ck struct {
	hash   [32]byte
	line   int32
	src    uint8 // 0 checkpoints, 1 checkpoint.latest
	anchor bool
}

func (c ck) where() string {
	if c.src == 1 {
		return latestName
	}
	return fmt.Sprintf("%s:%d", checkpointsName, c.line)
}

// Verify checks the log in dir, and returns what it checked and, if
// something is wrong, the first thing wrong, as Report.Bad and as an error
// wrapping ErrTampered, ErrTruncated, ErrPruned, ErrBadSignature or
// ErrBadCheckpoint.
//
// It checks that every line is an entry in canonical form, that its Hash
// recomputes, that its Prev is the Hash of the line before and its Seq one
// more, across the files in order; that every checkpoint note verifies with
// the key, names this log, and matches the entry at its Seq; and, given the
// auditor's checkpoint, that the log still holds that entry.
//
// The log starts at the genesis hash (Seq 1), or, after Prune, at the entry
// after a signed prune anchor: the anchor's Seq and Hash must be the first
// retained entry's Seq-1 and Prev. A log whose start is not anchored so was
// cut at the head, and is ErrTruncated. Cutting the tail back (and the
// checkpoints with it) cannot be seen in the dir alone; only a checkpoint
// held elsewhere, VerifyOptions.Checkpoint, shows it.
//
// Verify reads every line once, decoding and re-encoding it (some 8 µs an
// entry on one core, see BenchmarkVerify), and keeps the checkpoints in
// memory, under 100 bytes each.
func Verify(ctx context.Context, dir string, opts VerifyOptions) (Report, error) {
	var r Report
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	v := opts.Verifier
	if v == nil {
		if opts.VerifierKey == "" {
			return r, errors.New("audit: VerifyOptions.Verifier or VerifierKey is required")
		}
		var err error
		if v, err = note.NewVerifier(opts.VerifierKey); err != nil {
			return r, fmt.Errorf("audit: VerifyOptions.VerifierKey: %w", err)
		}
	}
	vr := &verifier{name: opts.Name, v: note.VerifierList(v), cks: make(map[uint64]ck), firstPrev: genesis(opts.Name)}
	err := vr.run(ctx, dir, opts.Checkpoint, &r)
	if be := (*badError)(nil); errors.As(err, &be) {
		r.Bad = &be.bad
	}
	return r, err
}

type verifier struct {
	name      string
	v         note.Verifiers
	cks       map[uint64]ck
	firstPrev string // Prev of the first entry, the genesis if none
}

func (vr *verifier) run(ctx context.Context, dir string, heldMsg []byte, r *Report) error {
	if err := vr.loadCheckpoints(dir); err != nil {
		return err
	}
	var held *checkpoint
	if heldMsg != nil {
		c, err := vr.open(heldMsg, heldName, 0)
		if err != nil {
			return err
		}
		held = &c
	}
	files, err := listFiles(dir)
	if err != nil {
		return err
	}
	var prev Entry
	for _, lf := range files {
		r.Files++
		if err := vr.checkFile(ctx, filepath.Join(dir, lf.name), r, &prev, held); err != nil {
			if be := (*badError)(nil); errors.As(err, &be) {
				be.bad.File = lf.name
			}
			return err
		}
	}

	// Whatever a checkpoint vouches for beyond the last entry is missing.
	end := Bad{Seq: r.Last + 1}
	if len(files) > 0 {
		end.File = files[len(files)-1].name
	}
	var beyond *ck
	beyondSeq := uint64(0)
	for seq, c := range vr.cks {
		switch {
		case seq > r.Last:
			if beyond == nil || seq < beyondSeq {
				beyond, beyondSeq = &c, seq
			}
		case seq < r.Anchor:
			r.PrunedCheckpoints++
		case seq == r.Anchor:
			if hex.EncodeToString(c.hash[:]) != vr.firstPrev {
				return bad(ErrTampered, Bad{File: c.where(), Seq: seq, Reason: "differs from the first entry's prev"})
			}
			r.Checkpoints++
		}
	}
	if beyond != nil {
		end.Reason = fmt.Sprintf("%s vouches for seq %d; the log ends at seq %d", beyond.where(), beyondSeq, r.Last)
		return bad(ErrTruncated, end)
	}
	if held != nil {
		switch {
		case held.seq > r.Last:
			end.Reason = fmt.Sprintf("the %s is at seq %d; the log ends at seq %d", heldName, held.seq, r.Last)
			return bad(ErrTruncated, end)
		case held.seq < r.Anchor:
			return bad(ErrPruned, Bad{File: heldName, Seq: held.seq,
				Reason: fmt.Sprintf("the log was pruned through seq %d", r.Anchor)})
		case held.seq == r.Anchor && held.hash != vr.firstPrev:
			return bad(ErrTampered, Bad{File: heldName, Seq: held.seq, Reason: "differs from the first entry's prev"})
		}
		if _, dup := vr.cks[held.seq]; !dup {
			r.Checkpoints++
		}
	}
	return nil
}

// open verifies a note and parses its checkpoint.
func (vr *verifier) open(msg []byte, file string, line int) (checkpoint, error) {
	b := Bad{File: file, Line: line}
	n, err := note.Open(msg, vr.v)
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		if errors.As(err, &inv) || errors.As(err, &unv) {
			b.Reason = "signature does not verify with the verifier key"
			return checkpoint{}, bad(ErrBadSignature, b)
		}
		b.Reason = err.Error()
		return checkpoint{}, bad(ErrBadCheckpoint, b)
	}
	c, err := parseCheckpointText(n.Text, vr.name)
	if err != nil {
		b.Reason = err.Error()
		return checkpoint{}, bad(ErrBadCheckpoint, b)
	}
	return c, nil
}

// add records a verified checkpoint. Two signed checkpoints naming one Seq
// with different hashes mean the signer vouched for two histories.
func (vr *verifier) add(c checkpoint, src uint8, line int) error {
	k := ck{line: int32(line), src: src, anchor: c.anchor}
	hex.Decode(k.hash[:], []byte(c.hash))
	old, ok := vr.cks[c.seq]
	if !ok {
		vr.cks[c.seq] = k
		return nil
	}
	if old.hash != k.hash {
		return bad(ErrTampered, Bad{File: k.where(), Seq: c.seq, Reason: "signed checkpoints disagree: " + old.where() + " names another hash"})
	}
	old.anchor = old.anchor || k.anchor
	vr.cks[c.seq] = old
	return nil
}

// loadCheckpoints verifies every note in checkpoints and checkpoint.latest.
func (vr *verifier) loadCheckpoints(dir string) error {
	f, err := os.Open(filepath.Join(dir, checkpointsName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("audit: %w", err)
	default:
		defer f.Close()
		nr := newNoteReader(f)
		for {
			msg, line, err := nr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return bad(ErrBadCheckpoint, Bad{File: checkpointsName, Line: line, Reason: err.Error()})
			}
			c, err := vr.open(msg, checkpointsName, line)
			if err != nil {
				return err
			}
			if err := vr.add(c, 0, line); err != nil {
				return err
			}
		}
	}
	msg, err := os.ReadFile(filepath.Join(dir, latestName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("audit: %w", err)
	}
	c, err := vr.open(msg, latestName, 0)
	if err != nil {
		return err
	}
	return vr.add(c, 1, 0)
}

// checkFile checks one log file's lines, carrying prev and r from the file
// before.
func (vr *verifier) checkFile(ctx context.Context, path string, r *Report, prev *Entry, held *checkpoint) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, maxLine+1)
	for n := 1; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadSlice('\n')
		b := Bad{Line: n, Seq: prev.Seq + 1}
		switch {
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil
		case errors.Is(err, io.EOF):
			b.Reason = "incomplete last line (a crash; Open repairs it)"
			return bad(ErrTampered, b)
		case errors.Is(err, bufio.ErrBufferFull):
			b.Reason = fmt.Sprintf("line longer than %d bytes", maxLine)
			return bad(ErrTampered, b)
		case err != nil:
			return fmt.Errorf("audit: %w", err)
		}
		e, err := parseEntry(line[:len(line)-1])
		if err != nil {
			b.Reason = err.Error()
			return bad(ErrTampered, b)
		}
		b.Seq = e.Seq
		if sentinel, reason := vr.checkEntry(e, lineHash(line[:len(line)-1]), r, prev, held); sentinel != nil {
			b.Reason = reason
			return bad(sentinel, b)
		}
		*prev = e
		if e.Action == ActRepair {
			r.Repairs++
		}
	}
}

// checkEntry checks e, whose line hashes to hash, against the entry before it (prev), or, for the first
// entry, against the genesis or a prune anchor; and against any checkpoint
// at its Seq. It returns a sentinel and the reason.
func (vr *verifier) checkEntry(e Entry, hash string, r *Report, prev *Entry, held *checkpoint) (sentinel error, reason string) {
	if hash != e.Hash {
		return ErrTampered, "hash does not match the entry"
	}
	if r.Entries == 0 {
		r.First, r.Anchor, vr.firstPrev = e.Seq, e.Seq-1, e.Prev
		switch a, ok := vr.cks[e.Seq-1]; {
		case e.Seq == 0:
			return ErrTampered, "seq 0"
		case e.Seq == 1 && e.Prev != genesis(vr.name):
			return ErrTampered, "the first entry does not link to the genesis of log " + vr.name
		case e.Seq == 1:
		case !ok || !a.anchor:
			return ErrTruncated, fmt.Sprintf("the log starts at seq %d, and no signed prune anchor vouches for seq %d", e.Seq, e.Seq-1)
		}
		// A checkpoint at the anchor is compared with e.Prev in run.
	} else {
		switch {
		case e.Seq != prev.Seq+1:
			return ErrTampered, fmt.Sprintf("seq %d follows seq %d", e.Seq, prev.Seq)
		case e.Prev != prev.Hash:
			return ErrTampered, "prev is not the hash of the entry before"
		}
	}
	if c, ok := vr.cks[e.Seq]; ok {
		if hex.EncodeToString(c.hash[:]) != e.Hash {
			return ErrTampered, "differs from the signed checkpoint at " + c.where()
		}
		r.Checkpoints++
	}
	if held != nil && held.seq == e.Seq && held.hash != e.Hash {
		return ErrTampered, "differs from the " + heldName
	}
	r.Entries++
	r.Last = e.Seq
	return nil, ""
}

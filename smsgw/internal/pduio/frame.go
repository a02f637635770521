// Package pduio is the SMPP wire layer shared by the ESME session
// (smsgw/smpp) and the simulator (smsgw/smsc): framing with bounds checks,
// sequence numbers, and typed views of the PDU bodies roamtrail uses, built
// and parsed with go-smpp's pdu, pdufield and pdutlv packages.
//
// Why not go-smpp's pdu.Decode: it caps frames at 4096 bytes, parses a
// UDH out of deliver_sm in a way that breaks with message_payload (notes
// problem #6), rejects data_sm and alert_notification outright, and gives
// up on a whole PDU for one bad TLV. Here the frame is read first, so a
// body that does not parse costs one generic_nack, never the connection.
package pduio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/fiorix/go-smpp/smpp/pdu"
)

// HeaderLen is the length of the SMPP header.
const HeaderLen = 16

// DefaultMaxPDU is the default bound on command_length.
const DefaultMaxPDU = 64 << 10

// discardLimit bounds how much of an over-long frame is read and thrown
// away to stay in step with the stream; longer than that, the length is
// taken for garbage and the connection must go.
const discardLimit = 1 << 20

var (
	// ErrFrameLength reports a command_length below 16 or beyond any
	// plausible size: the stream cannot be resynchronised.
	ErrFrameLength = errors.New("pduio: bad command_length")
	// ErrMalformed reports a PDU body that does not parse.
	ErrMalformed = errors.New("pduio: malformed PDU body")
	// ErrFieldTooLong reports a field longer than SMPP allows.
	ErrFieldTooLong = errors.New("pduio: field too long")
)

// Frame is one PDU as read off the wire: the header and the raw body.
type Frame struct {
	ID     pdu.ID
	Status pdu.Status
	Seq    uint32
	Body   []byte
}

// IsResponse reports whether the command id has the response bit.
func (f Frame) IsResponse() bool { return uint32(f.ID)&0x80000000 != 0 }

// Bytes serialises the frame.
func (f Frame) Bytes() []byte {
	b := make([]byte, HeaderLen+len(f.Body))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.BigEndian.PutUint32(b[4:8], uint32(f.ID))
	binary.BigEndian.PutUint32(b[8:12], uint32(f.Status))
	binary.BigEndian.PutUint32(b[12:16], f.Seq)
	copy(b[HeaderLen:], f.Body)
	return b
}

// TooLongError reports a frame longer than the reader's bound. Its body
// was read and discarded, so the stream is still in step and the caller
// can answer generic_nack ESME_RINVCMDLEN with Frame.Seq.
type TooLongError struct {
	Frame  Frame // header only
	Length uint32
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("pduio: PDU of %d bytes over the limit", e.Length)
}

// ReadFrame reads one whole PDU. A command_length below 16 or absurdly
// large returns ErrFrameLength (the connection must close); one above max
// but plausible is read, discarded and reported as *TooLongError.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	f := Frame{
		ID:     pdu.ID(binary.BigEndian.Uint32(h[4:8])),
		Status: pdu.Status(binary.BigEndian.Uint32(h[8:12])),
		Seq:    binary.BigEndian.Uint32(h[12:16]),
	}
	if n < HeaderLen || n > discardLimit {
		return f, fmt.Errorf("%w: %d", ErrFrameLength, n)
	}
	if int(n) > max {
		if _, err := io.CopyN(io.Discard, r, int64(n)-HeaderLen); err != nil {
			return f, err
		}
		return f, &TooLongError{Frame: f, Length: n}
	}
	f.Body = make([]byte, n-HeaderLen)
	if _, err := io.ReadFull(r, f.Body); err != nil {
		return f, err
	}
	return f, nil
}

// Encode serialises a go-smpp PDU with the given sequence number and
// status.
func Encode(b pdu.Body, seq uint32, status pdu.Status) ([]byte, error) {
	h := b.Header()
	h.Seq, h.Status = seq, status
	var buf writeBuf
	if err := b.SerializeTo(&buf); err != nil {
		return nil, err
	}
	return buf, nil
}

type writeBuf []byte

func (w *writeBuf) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

// Sequence hands out SMPP sequence numbers 1..0x7FFFFFFF, wrapping. The
// zero value starts at 1. Safe for concurrent use.
type Sequence struct{ n atomic.Uint32 }

// Next returns the next sequence number.
func (s *Sequence) Next() uint32 {
	for {
		old := s.n.Load()
		next := old + 1
		if next > 0x7FFFFFFF {
			next = 1
		}
		if s.n.CompareAndSwap(old, next) {
			return next
		}
	}
}

// Set makes the next Next return n (simulator fault knob).
func (s *Sequence) Set(n uint32) { s.n.Store(n - 1) }

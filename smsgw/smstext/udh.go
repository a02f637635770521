package smstext

import (
	"errors"
	"fmt"
)

// Information element identifiers this package understands.
const (
	IEIConcat8  byte = 0x00 // concatenated SMS, 8-bit reference
	IEIConcat16 byte = 0x08 // concatenated SMS, 16-bit reference
)

// ErrBadUDH reports a user data header whose lengths do not add up.
var ErrBadUDH = errors.New("smstext: malformed user data header")

// Concat is the concatenation information of one part, from a UDH
// (IEI 0x00 or 0x08) or from the SMPP SAR TLVs.
type Concat struct {
	Ref   uint16 // reference shared by every part of one message
	Total uint8  // number of parts, ≥ 1
	Seq   uint8  // this part's number, 1..Total
}

// valid reports whether c describes a part of a real set.
func (c Concat) valid() bool { return c.Total >= 1 && c.Seq >= 1 && c.Seq <= c.Total }

// IE is one information element of a user data header.
type IE struct {
	ID   byte
	Data []byte
}

// UDH is a parsed user data header.
type UDH struct {
	IEs []IE
	// Concat is the concatenation element, nil when there is none or its
	// values are impossible (total 0, seq 0 or seq > total): such a part
	// is then handled as a message on its own.
	Concat *Concat
}

// ParseUDH reads the user data header at the start of b (b[0] is the
// UDHL octet) and returns it with the payload that follows. A header whose
// lengths overrun b is ErrBadUDH. It never panics.
func ParseUDH(b []byte) (UDH, []byte, error) {
	var h UDH
	if len(b) == 0 {
		return h, nil, fmt.Errorf("%w: empty", ErrBadUDH)
	}
	udhl := int(b[0])
	if 1+udhl > len(b) {
		return h, nil, fmt.Errorf("%w: length %d exceeds %d octets", ErrBadUDH, udhl, len(b)-1)
	}
	hdr, payload := b[1:1+udhl], b[1+udhl:]
	for len(hdr) > 0 {
		if len(hdr) < 2 {
			return UDH{}, nil, fmt.Errorf("%w: truncated element", ErrBadUDH)
		}
		id, l := hdr[0], int(hdr[1])
		if 2+l > len(hdr) {
			return UDH{}, nil, fmt.Errorf("%w: element 0x%02X overruns header", ErrBadUDH, id)
		}
		data := hdr[2 : 2+l]
		h.IEs = append(h.IEs, IE{ID: id, Data: data})
		if h.Concat == nil {
			var c Concat
			switch {
			case id == IEIConcat8 && l == 3:
				c = Concat{Ref: uint16(data[0]), Total: data[1], Seq: data[2]}
			case id == IEIConcat16 && l == 4:
				c = Concat{Ref: uint16(data[0])<<8 | uint16(data[1]), Total: data[2], Seq: data[3]}
			}
			if c.valid() {
				h.Concat = &c
			}
		}
		hdr = hdr[2+l:]
	}
	return h, payload, nil
}

package smstext

import (
	"fmt"
	"unicode/utf16"
)

// SplitOptions bounds segmentation. The zero value means the defaults.
//
// Why 140/134 GSM septets and not the 160/153 a handset counts: SMPP
// carries data_coding 0x00 as unpacked septets, one octet each, so a
// 160-septet part is a 160-octet short_message. Many SMSCs pack it for the
// air and accept that, but some pass data_coding 0 through as 8-bit and
// reject or truncate anything over 140 octets. Sizing every part so that
// short_message (UDH included) is at most 140 octets works with both; it
// costs 20 characters per single message and 19 per part. An operator
// whose SMSC is known to pack can raise GSMSingle/GSMPart to 160/153.
type SplitOptions struct {
	// GSMSingle is the most septets a message without UDH may hold.
	// Default 140 (one octet per unpacked septet, 140 octets).
	GSMSingle int
	// GSMPart is the most septets per concatenated part; the 6-octet UDH
	// comes on top. Default 134 (134 + 6 = 140 octets).
	GSMPart int
	// UCS2Single is the most UTF-16 units without UDH. Default 70.
	UCS2Single int
	// UCS2Part is the most UTF-16 units per concatenated part. Default 67
	// (134 octets + 6-octet UDH = 140).
	UCS2Part int
	// MaxParts is the most parts a text may need; more is ErrTooLong.
	// Default 8.
	MaxParts int
}

func (o SplitOptions) withDefaults() SplitOptions {
	if o.GSMSingle <= 0 {
		o.GSMSingle = 140
	}
	if o.GSMPart <= 0 {
		o.GSMPart = 134
	}
	if o.UCS2Single <= 0 {
		o.UCS2Single = 70
	}
	if o.UCS2Part <= 0 {
		o.UCS2Part = 67
	}
	if o.MaxParts <= 0 {
		o.MaxParts = 8
	}
	return o
}

// Segments is a text encoded and cut into parts. Parts hold the encoded
// payload of each part without any header; WithUDH, SAR and Payload say
// how the parts travel.
type Segments struct {
	DataCoding byte
	Parts      [][]byte
}

// Concatenated reports whether the text needs more than one part.
func (s Segments) Concatenated() bool { return len(s.Parts) > 1 }

// Split encodes text (GSM 03.38 if it fits, else UCS-2) and cuts it into
// parts with the default SplitOptions.
func Split(text string) (Segments, error) {
	return SplitWith(text, SplitOptions{})
}

// SplitWith is Split with explicit limits. A text that fits one part is
// one part. Otherwise parts are cut on character boundaries: a GSM escape
// pair or a UTF-16 surrogate pair is never split. A text needing more than
// MaxParts parts is ErrTooLong; Split never truncates.
func SplitWith(text string, opts SplitOptions) (Segments, error) {
	opts = opts.withDefaults()
	if n, ok := FitsGSM(text); ok {
		if n <= opts.GSMSingle {
			_, b := Encode(text)
			return Segments{DataCoding: CodingGSM, Parts: [][]byte{b}}, nil
		}
		return cut(text, CodingGSM, opts.GSMPart, opts.MaxParts, func(dst []byte, r rune) ([]byte, int) {
			return appendGSM(dst, r), gsmSeptets(r)
		})
	}
	if units := ucs2Units(text); units <= opts.UCS2Single {
		return Segments{DataCoding: CodingUCS2, Parts: [][]byte{encodeUCS2(text)}}, nil
	}
	return cut(text, CodingUCS2, opts.UCS2Part, opts.MaxParts, func(dst []byte, r rune) ([]byte, int) {
		us := utf16.Encode([]rune{r})
		for _, u := range us {
			dst = append(dst, byte(u>>8), byte(u))
		}
		return dst, len(us)
	})
}

// cut fills parts of at most perPart units, never splitting a character.
func cut(text string, dc byte, perPart, maxParts int, enc func([]byte, rune) ([]byte, int)) (Segments, error) {
	seg := Segments{DataCoding: dc}
	var cur []byte
	used := 0
	for _, r := range text {
		next, n := enc(nil, r)
		if used+n > perPart {
			seg.Parts = append(seg.Parts, cur)
			if len(seg.Parts) >= maxParts {
				return Segments{}, fmt.Errorf("%w: more than %d parts", ErrTooLong, maxParts)
			}
			cur, used = nil, 0
		}
		cur = append(cur, next...)
		used += n
	}
	if len(cur) > 0 {
		seg.Parts = append(seg.Parts, cur)
	}
	return seg, nil
}

func ucs2Units(text string) int {
	n := 0
	for _, r := range text {
		if r >= 0x10000 && r <= 0x10FFFF {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// WithUDH returns each part's short_message. A single part is returned as
// is, without UDH; concatenated parts get a 6-octet UDH with IEI 0x00
// (8-bit reference ref). The caller sets esm_class UDHI (0x40) when
// Concatenated is true.
func (s Segments) WithUDH(ref byte) [][]byte {
	if !s.Concatenated() {
		return [][]byte{s.Parts[0]}
	}
	out := make([][]byte, len(s.Parts))
	for i, p := range s.Parts {
		b := make([]byte, 0, 6+len(p))
		b = append(b, 0x05, IEIConcat8, 0x03, ref, byte(len(s.Parts)), byte(i+1))
		out[i] = append(b, p...)
	}
	return out
}

// SARPart is one part expressed with the SMPP SAR TLVs instead of a UDH.
// The three values are already encoded as the TLV values go on the wire
// (2 octets, 1 octet, 1 octet): go-smpp writes an int TLV as one octet,
// so pass these []byte values, not integers.
type SARPart struct {
	ShortMessage []byte
	MsgRefNum    []byte // sar_msg_ref_num (0x020C), 2 octets
	Total        []byte // sar_total_segments (0x020E), 1 octet
	Seqnum       []byte // sar_segment_seqnum (0x020F), 1 octet
}

// SAR expresses concatenated parts with SAR TLVs and reference ref. For a
// single part the TLV fields are nil: send it plainly.
func (s Segments) SAR(ref uint16) []SARPart {
	out := make([]SARPart, len(s.Parts))
	for i, p := range s.Parts {
		out[i].ShortMessage = p
		if s.Concatenated() {
			out[i].MsgRefNum = []byte{byte(ref >> 8), byte(ref)}
			out[i].Total = []byte{byte(len(s.Parts))}
			out[i].Seqnum = []byte{byte(i + 1)}
		}
	}
	return out
}

// Payload is the whole text as one message_payload TLV value (the SMSC
// segments it); short_message is then empty.
func (s Segments) Payload() []byte {
	var b []byte
	for _, p := range s.Parts {
		b = append(b, p...)
	}
	return b
}

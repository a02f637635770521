// Package smstext holds the text side of SMS over SMPP: decoding
// short_message bytes by data_coding, encoding replies (GSM 03.38 when the
// text fits, UCS-2 otherwise), splitting long text into concatenated parts,
// reassembling concatenated MO, and masking phone numbers for logs.
//
// Everything here is a pure function or a self-contained value: no I/O, no
// goroutines. Decoders never panic on what an SMSC sends; bytes they cannot
// interpret become U+FFFD.
package smstext

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Data coding values used for replies.
const (
	CodingGSM  byte = 0x00 // GSM 03.38 default alphabet, unpacked septets
	CodingUCS2 byte = 0x08 // UCS-2 / UTF-16 big-endian
)

// Alphabet is the character set a data_coding value selects.
type Alphabet int

// Alphabets a data_coding value can select.
const (
	AlphabetGSM     Alphabet = iota // GSM 03.38, unpacked
	AlphabetASCII                   // IA5 / ASCII
	AlphabetLatin1                  // ISO-8859-1
	AlphabetUCS2                    // UCS-2, read as UTF-16BE
	AlphabetBinary                  // 8-bit data: not text
	AlphabetUnknown                 // a coding this package cannot read
)

var (
	// ErrBinary reports 8-bit data (data_coding 0x02, 0x04, class variants,
	// 0xF4-0xF7...). The caller usually answers with help or ignores it.
	ErrBinary = errors.New("smstext: binary data, not text")
	// ErrUnknownCoding reports a data_coding this package does not decode
	// (JIS, Cyrillic, Hebrew, KS C 5601, compressed, reserved groups).
	ErrUnknownCoding = errors.New("smstext: unsupported data coding")
	// ErrTooLong reports text that needs more parts than allowed.
	ErrTooLong = errors.New("smstext: text too long")
)

// AlphabetOf classifies an SMPP data_coding value. Values 0x00-0x0F follow
// the SMPP 3.4 table; the rest follow the GSM 23.038 coding groups.
func AlphabetOf(dc byte) Alphabet {
	switch {
	case dc == 0x00:
		return AlphabetGSM
	case dc == 0x01:
		return AlphabetASCII
	case dc == 0x02 || dc == 0x04:
		return AlphabetBinary
	case dc == 0x03:
		return AlphabetLatin1
	case dc == 0x08:
		return AlphabetUCS2
	case dc < 0x10:
		return AlphabetUnknown
	case dc < 0x80: // general data coding groups 00xx and 01xx
		if dc&0x20 != 0 { // compressed
			return AlphabetUnknown
		}
		switch (dc >> 2) & 0x03 {
		case 0:
			return AlphabetGSM
		case 1:
			return AlphabetBinary
		case 2:
			return AlphabetUCS2
		}
		return AlphabetUnknown
	case dc < 0xC0: // reserved
		return AlphabetUnknown
	case dc < 0xE0: // message waiting indication, GSM
		return AlphabetGSM
	case dc < 0xF0: // message waiting indication, UCS-2
		return AlphabetUCS2
	default: // data coding / message class group
		if dc&0x04 != 0 {
			return AlphabetBinary
		}
		return AlphabetGSM
	}
}

// Decode turns short_message bytes (without any UDH) into text according
// to dc. It returns ErrBinary for 8-bit data and ErrUnknownCoding for
// codings it cannot read; the text is then empty. Invalid bytes become
// U+FFFD; Decode never panics.
func Decode(dc byte, b []byte) (string, error) {
	switch AlphabetOf(dc) {
	case AlphabetGSM:
		return decodeGSM(b), nil
	case AlphabetASCII:
		return decodeASCII(b), nil
	case AlphabetLatin1:
		return decodeLatin1(b), nil
	case AlphabetUCS2:
		return decodeUCS2(b), nil
	case AlphabetBinary:
		return "", ErrBinary
	}
	return "", ErrUnknownCoding
}

func decodeASCII(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if c >= 0x80 {
			sb.WriteRune(utf8.RuneError)
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func decodeLatin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// decodeUCS2 reads UTF-16BE: surrogate pairs combine, a lone surrogate or
// an odd trailing byte becomes U+FFFD.
func decodeUCS2(b []byte) string {
	// Straight into UTF-8, as utf16.Decode would decode (lone surrogates
	// → U+FFFD) but without its two intermediate slices: the simulator
	// decodes every UCS-2 reply this way.
	out := make([]byte, 0, len(b)+len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		r := rune(b[i])<<8 | rune(b[i+1])
		if utf16.IsSurrogate(r) {
			r2 := utf8.RuneError // a high surrogate needs a low one after it
			if i+3 < len(b) {
				r2 = rune(b[i+2])<<8 | rune(b[i+3])
			}
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				r = d
				i += 2
			} else {
				r = utf8.RuneError
			}
		}
		out = utf8.AppendRune(out, r)
	}
	if len(b)%2 == 1 {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return string(out)
}

// FitsGSM reports whether every character of text has a GSM 03.38
// representation, and how many septets it takes (extension characters
// count two).
func FitsGSM(text string) (septets int, ok bool) {
	for _, r := range text {
		n := gsmSeptets(r)
		if n == 0 {
			return 0, false
		}
		septets += n
	}
	return septets, true
}

// Encode encodes text for a reply: GSM 03.38 unpacked septets (data_coding
// 0x00) when every character fits, UCS-2 big-endian (0x08) otherwise.
// Invalid UTF-8 in text is encoded as U+FFFD.
func Encode(text string) (dataCoding byte, b []byte) {
	if n, ok := FitsGSM(text); ok {
		b = make([]byte, 0, n)
		for _, r := range text {
			b = appendGSM(b, r)
		}
		return CodingGSM, b
	}
	return CodingUCS2, encodeUCS2(text)
}

// EncodeUCS2 encodes text as UTF-16 big-endian.
func encodeUCS2(text string) []byte {
	b := make([]byte, 0, 2*len(text))
	var units [2]uint16
	for _, r := range text {
		for _, u := range utf16.AppendRune(units[:0], r) {
			b = append(b, byte(u>>8), byte(u))
		}
	}
	return b
}

package smstext

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func FuzzDecode(f *testing.F) {
	for _, s := range []struct {
		dc byte
		b  []byte
	}{
		{0x00, []byte("Hello @ 1B")}, {0x00, []byte{0x1B, 0x65, 0x1B}}, {0x08, []byte{0xD8, 0x3D, 0xDE}},
		{0x08, []byte{0x4F, 0x60}}, {0x03, []byte{0xE9}}, {0xF4, []byte{1}}, {0x18, []byte{0, 'a'}},
	} {
		f.Add(s.dc, s.b)
	}
	f.Fuzz(func(t *testing.T, dc byte, b []byte) {
		s, err := Decode(dc, b)
		if err != nil && s != "" {
			t.Fatalf("text %q with error %v", s, err)
		}
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 out: %q", s)
		}
		// Text that Decode produced re-encodes and decodes to itself.
		if err == nil {
			edc, eb := Encode(s)
			if back, err := Decode(edc, eb); err != nil || back != s {
				t.Fatalf("re-encode of %q: %q, %v", s, back, err)
			}
		}
	})
}

func FuzzParseUDH(f *testing.F) {
	f.Add([]byte{5, 0, 3, 7, 2, 1, 'h', 'i'})
	f.Add([]byte{6, 8, 4, 0x12, 0x34, 3, 3, 'x'})
	f.Add([]byte{3, 0, 3, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := ParseUDH(b)
		if err != nil {
			return
		}
		if len(rest) > len(b) || !bytes.HasSuffix(b, rest) {
			t.Fatalf("payload not a suffix of input")
		}
		if c := h.Concat; c != nil && (c.Seq == 0 || c.Seq > c.Total) {
			t.Fatalf("impossible concat accepted: %+v", c)
		}
		// A part built from any parse result must not break the reassembler.
		r := NewReassembler(ReassemblerOptions{MaxSets: 2, MaxBytes: 64})
		p := Part{Source: "a", Destination: "b", Data: rest}
		if h.Concat != nil {
			p.Concat = *h.Concat
		}
		r.Add(p)
		r.Add(p)
	})
}

func FuzzSplitRoundTrip(f *testing.F) {
	f.Add("hello")
	f.Add(strings.Repeat("€", 100))
	f.Add(strings.Repeat("你好😀", 40))
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			return
		}
		seg, err := Split(text)
		if err != nil {
			return // ErrTooLong
		}
		checkSegments(t, text, seg)
		r := NewReassembler(ReassemblerOptions{})
		var got *Message
		for _, p := range splitToParts(t, "s", "d", text, 3) {
			if m := r.Add(p); m != nil {
				got = m
			}
		}
		if got == nil || got.Text != text {
			t.Fatalf("round trip lost text: %+v", got)
		}
	})
}

// The UCS-2 codec against the standard library's UTF-16, which it
// reimplements without the intermediate slices.
func FuzzUCS2MatchesUTF16(f *testing.F) {
	f.Add([]byte{0x00, 0x41, 0xd8, 0x3d, 0xde, 0x00})
	f.Add([]byte{0xd8, 0x3d})
	f.Add([]byte{0xde, 0x00, 0xd8, 0x3d, 0x00})
	f.Add([]byte("行程"))
	f.Fuzz(func(t *testing.T, b []byte) {
		units := make([]uint16, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			units = append(units, uint16(b[i])<<8|uint16(b[i+1]))
		}
		want := string(utf16.Decode(units))
		if len(b)%2 == 1 {
			want += string(utf8.RuneError)
		}
		if got := decodeUCS2(b); got != want {
			t.Fatalf("decodeUCS2(% x) = %q, want %q", b, got, want)
		}
		text := string(b) // any bytes, valid UTF-8 or not
		var enc []byte
		for _, u := range utf16.Encode([]rune(text)) {
			enc = append(enc, byte(u>>8), byte(u))
		}
		if got := encodeUCS2(text); !bytes.Equal(got, enc) {
			t.Fatalf("encodeUCS2(%q) = % x, want % x", text, got, enc)
		}
	})
}

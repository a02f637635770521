package state

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

func TestPendingEncoding(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Pending
		hex  string
	}{
		{"zero", Pending{}, "0100" + "00000000" + "ffffc77cedd32800"},
		{"CXMYD", Pending{Days: 15, Lang: itinerary.Chinese, Created: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}, "0100" + "0000000f" + "000001a21c5719c0"},
		{"English", Pending{Days: 7, Lang: itinerary.English, Created: time.UnixMilli(1)}, "0101" + "00000007" + "0000000000000001"},
		{"largest", Pending{Days: math.MaxInt32, Lang: 255, Created: time.UnixMilli(-1)}, "01ff" + "7fffffff" + "ffffffffffffffff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != c.hex {
				t.Errorf("MarshalBinary = %s, want %s", got, c.hex)
			}
			var p Pending
			if err := p.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !samePending(p, c.p) || p.Created.IsZero() != c.p.Created.IsZero() {
				t.Errorf("round trip = %+v, want %+v", p, c.p)
			}
		})
	}
}

func TestPendingDecodeErrors(t *testing.T) {
	good, _ := Pending{Days: 15}.MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        good[:13],
		"long":         append(append([]byte(nil), good...), 0),
		"version 0":    append([]byte{0}, good[1:]...),
		"version 2":    append([]byte{2}, good[1:]...),
		"days > int32": {1, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		var p Pending
		err := p.UnmarshalBinary(b)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		} else {
			checkErrText(t, err)
		}
	}
}

// FuzzDecodePending: the decoder never panics, and what it accepts
// encodes back to the same bytes (the encoding is canonical).
func FuzzDecodePending(f *testing.F) {
	for _, p := range []Pending{
		{},
		{Days: 15, Lang: itinerary.Chinese, Created: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)},
		{Days: math.MaxInt32, Lang: 255, Created: time.UnixMilli(math.MinInt64)},
	} {
		b, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Pending
		if err := p.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded %+v: %v", p, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, p, again)
		}
	})
}

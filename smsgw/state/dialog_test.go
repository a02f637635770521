package state

import (
	"errors"
	"strconv"
	"testing"
)

// dialogFieldsOf is rec as Ask and Resolve write it, field by field as
// HMGET returns dialogFields.
func dialogFieldsOf(d dialogRec) []any {
	v := []any{"p", nil, d.req.Nonce, strconv.Itoa(d.req.Days), strconv.Itoa(int(d.req.Lang))}
	if d.done {
		v[0], v[1] = "d", d.taker
	}
	return v
}

// FuzzParseDialog: the parser of Redis dialogue records never panics,
// fails only with ErrCorrupt, accepts only records that Ask would take,
// and reads back what Ask and Resolve write. Each input is five fields
// and a mask of those present.
func FuzzParseDialog(f *testing.F) {
	f.Add(uint8(0b11101), "p", "", "0187a1b2c3d4e5f60718293a4b5c6d7e", "15", "0")
	f.Add(uint8(0b11111), "d", "job-2", "job-1", "366", "255")
	f.Add(uint8(0), "", "", "", "", "")
	f.Add(uint8(0b11101), "x", "", "job-1", "15", "0")
	f.Add(uint8(0b11101), "p", "", "job-1", "+15", "256")
	f.Fuzz(func(t *testing.T, mask uint8, st, taker, nonce, days, lang string) {
		var v []any
		for i, s := range []string{st, taker, nonce, days, lang} {
			if mask&(1<<i) != 0 {
				v = append(v, s)
			} else {
				v = append(v, nil)
			}
		}
		d, found, err := parseDialog("dialog", v)
		switch {
		case err != nil:
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		case !found:
			if mask&0b11111 != 0 {
				t.Fatalf("%q read as no record", v)
			}
			return
		}
		if err := checkRequest(d.req); err != nil {
			t.Fatalf("%q accepted as %+v: %v", v, d.req, err)
		}
		again, found, err := parseDialog("dialog", dialogFieldsOf(d))
		if err != nil || !found || again != d {
			t.Fatalf("%q reads as %+v, which written reads as %+v, %v, %v", v, d, again, found, err)
		}
	})
}

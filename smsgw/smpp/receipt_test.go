package smpp

import (
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseReceiptText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Receipt
	}{
		{
			"canonical",
			"id:0123456789 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Hello there",
			Receipt{MessageID: "0123456789", Sub: "001", Dlvrd: "001", State: "DELIVRD", Err: "000", Text: "Hello there",
				SubmitDate: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC), DoneDate: time.Date(2025, 1, 1, 12, 1, 0, 0, time.UTC)},
		},
		{
			"upper case keys, seconds, text with keys",
			"ID:ab12 SUB:001 DLVRD:000 SUBMIT DATE:250101120030 DONE DATE:250101120131 STAT:undeliv ERR:005 TEXT:stat:fake id:x",
			Receipt{MessageID: "ab12", Sub: "001", Dlvrd: "000", State: "UNDELIV", Err: "005", Text: "stat:fake id:x",
				SubmitDate: time.Date(2025, 1, 1, 12, 0, 30, 0, time.UTC), DoneDate: time.Date(2025, 1, 1, 12, 1, 31, 0, time.UTC)},
		},
		{"missing fields", "id:77 stat:EXPIRED", Receipt{MessageID: "77", State: "EXPIRED"}},
		{"garbage", "hello world", Receipt{}},
		{"bad date", "id:1 submit date:99999 stat:DELIVRD", Receipt{MessageID: "1", State: "DELIVRD"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseReceiptText(tc.in); got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseReceiptText(f *testing.F) {
	f.Add("id:0123456789 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Hello")
	f.Add("text:id: stat:")
	f.Add("ID:1 STAT:x")
	f.Fuzz(func(t *testing.T, s string) {
		r := ParseReceiptText(s)
		if utf8.ValidString(s) && !utf8.ValidString(r.MessageID+r.State+r.Text+r.Err) {
			t.Fatalf("invalid UTF-8 out of valid input: %+v", r)
		}
		if len(r.MessageID) > len(s) || len(r.Text) > len(s) {
			t.Fatalf("fields longer than input")
		}
	})
}

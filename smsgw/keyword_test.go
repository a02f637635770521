package smsgw

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roamtrail/roamtrail/itinerary"
)

func TestParseKeyword(t *testing.T) {
	zh, en := itinerary.Chinese, itinerary.English
	for _, tc := range []struct {
		in   string
		want Command
	}{
		{"CXMYD", Command{KindRequest, 15, zh}},
		{"cxmyd", Command{KindRequest, 15, zh}},
		{" CXMYD15 ", Command{KindRequest, 15, zh}},
		{"CXMYD 15", Command{KindRequest, 15, zh}},
		{"CXMYD30", Command{KindRequest, 30, zh}},
		{"CXMYD 30", Command{KindRequest, 30, zh}},
		{"ＣＸＭＹＤ３０", Command{KindRequest, 30, zh}},
		{"ｃｘｍｙｄ　１５", Command{KindRequest, 15, zh}},
		{"行程", Command{KindRequest, 15, zh}},
		{"行程30", Command{KindRequest, 30, zh}},
		{"行程３０", Command{KindRequest, 30, zh}},
		{"TRIP", Command{KindRequest, 15, en}},
		{"trip 15", Command{KindRequest, 15, en}},
		{"Trip 30", Command{KindRequest, 30, en}},
		{"Y", Command{Kind: KindConfirm, Lang: en}},
		{"y", Command{Kind: KindConfirm, Lang: en}},
		{"Ｙ", Command{Kind: KindConfirm, Lang: en}},
		{"是", Command{Kind: KindConfirm, Lang: zh}},
		{"N", Command{Kind: KindCancel, Lang: en}},
		{"否", Command{Kind: KindCancel, Lang: zh}},
		{"TD", Command{Kind: KindOptOut, Lang: zh}},
		{"stop", Command{Kind: KindOptOut, Lang: en}},
		{"KT", Command{Kind: KindOptIn, Lang: zh}},
		{"START", Command{Kind: KindOptIn, Lang: en}},
		{"JL", Command{Kind: KindAccesses, Lang: zh}},
		{"BZ", Command{Kind: KindHelp, Lang: zh}},
		{"HELP", Command{Kind: KindHelp, Lang: en}},
		{"?", Command{Kind: KindHelp, Lang: en}},
		{"where was I", Command{Kind: KindHelp, Lang: en}},
		{"我去过哪里", Command{Kind: KindHelp, Lang: zh}},
		{"", Command{Kind: KindHelp, Lang: zh}},
		{"12345", Command{Kind: KindHelp, Lang: zh}},
		{"CXMYD 45", Command{Kind: KindHelp, Lang: zh}},
		{"TRIP 0", Command{Kind: KindHelp, Lang: en}},
		{strings.Repeat("A", 3000), Command{Kind: KindHelp, Lang: en}},
	} {
		t.Run(tc.in[:min(len(tc.in), 20)], func(t *testing.T) {
			if got := ParseKeyword(tc.in); got != tc.want {
				t.Fatalf("ParseKeyword(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseKeyword(f *testing.F) {
	for _, s := range []string{"CXMYD", "ＣＸＭＹＤ３０", "行程30", "TRIP 15", "Y", "是", "\x00\xff", "\u200b", strings.Repeat("行", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseKeyword(s)
		if c.Kind > KindAccesses || (c.Lang != itinerary.Chinese && c.Lang != itinerary.English) {
			t.Fatalf("ParseKeyword(%q) = %+v", s, c)
		}
		if c.Kind == KindRequest && c.Days != 15 && c.Days != 30 {
			t.Fatalf("request for %d days", c.Days)
		}
		if c.Kind != KindRequest && c.Days != 0 {
			t.Fatalf("days on a non-request")
		}
		_ = utf8.ValidString(s)
	})
}

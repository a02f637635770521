package smsgw

import (
	"strings"
	"unicode"

	"golang.org/x/text/width"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Kind is what a subscriber's message asks for.
type Kind uint8

const (
	KindHelp     Kind = iota // anything not understood: a short help text
	KindRequest              // an itinerary request, to be confirmed
	KindConfirm              // Y / 是
	KindCancel               // N / 否
	KindOptOut               // TD / STOP
	KindOptIn                // KT / START
	KindAccesses             // JL: the last accesses to my data
)

var kindNames = [...]string{"help", "request", "confirm", "cancel", "opt_out", "opt_in", "accesses"}

// String names k for logs and metrics.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Command is a parsed MO.
type Command struct {
	Kind Kind
	Days int            // for a request: 15 or 30
	Lang itinerary.Lang // the language to answer in
}

// maxKeyword bounds the text the parser looks at: every keyword is short,
// and a 3,000-character message_payload must cost nothing to reject.
const maxKeyword = 64

// ParseKeyword reads a subscriber's message. Keywords are case-insensitive;
// surrounding spaces, full-width letters and digits (ＣＸＭＹＤ１５) and
// spaces between keyword and number are accepted. It never fails: what it
// does not understand is KindHelp, in Chinese when the text has Chinese in
// it or is not plainly Latin, in English otherwise.
func ParseKeyword(text string) Command {
	if len(text) > maxKeyword*4 {
		return Command{Kind: KindHelp, Lang: guessLang(text[:maxKeyword*4])}
	}
	s := strings.ToUpper(strings.Join(strings.FieldsFunc(width.Fold.String(text), unicode.IsSpace), ""))
	s = strings.TrimRight(s, ".!。！")
	switch s {
	case "CXMYD", "CXMYD15", "行程", "行程15":
		return Command{Kind: KindRequest, Days: 15, Lang: itinerary.Chinese}
	case "CXMYD30", "行程30":
		return Command{Kind: KindRequest, Days: 30, Lang: itinerary.Chinese}
	case "TRIP", "TRIP15":
		return Command{Kind: KindRequest, Days: 15, Lang: itinerary.English}
	case "TRIP30":
		return Command{Kind: KindRequest, Days: 30, Lang: itinerary.English}
	case "Y", "YES", "是":
		return Command{Kind: KindConfirm, Lang: langOf(s)}
	case "N", "NO", "否":
		return Command{Kind: KindCancel, Lang: langOf(s)}
	case "TD", "退订":
		return Command{Kind: KindOptOut, Lang: itinerary.Chinese}
	case "STOP":
		return Command{Kind: KindOptOut, Lang: itinerary.English}
	case "KT", "开通":
		return Command{Kind: KindOptIn, Lang: itinerary.Chinese}
	case "START":
		return Command{Kind: KindOptIn, Lang: itinerary.English}
	case "JL", "记录":
		return Command{Kind: KindAccesses, Lang: itinerary.Chinese}
	case "ACCESS", "LOG":
		return Command{Kind: KindAccesses, Lang: itinerary.English}
	case "BZ", "帮助":
		return Command{Kind: KindHelp, Lang: itinerary.Chinese}
	case "HELP", "?":
		return Command{Kind: KindHelp, Lang: itinerary.English}
	}
	if strings.HasPrefix(s, "CXMYD") {
		// A mistyped Chinese keyword ("CXMYD 45") is a Chinese speaker.
		return Command{Kind: KindHelp, Lang: itinerary.Chinese}
	}
	return Command{Kind: KindHelp, Lang: guessLang(text)}
}

func langOf(s string) itinerary.Lang {
	if s == "是" || s == "否" {
		return itinerary.Chinese
	}
	return itinerary.English
}

// guessLang answers in English only when the text is plainly Latin: a
// subscriber of a Chinese operator who writes something odd gets Chinese.
func guessLang(text string) itinerary.Lang {
	latin := 0
	for _, r := range text {
		switch {
		case unicode.Is(unicode.Han, r):
			return itinerary.Chinese
		case r < 0x80 && unicode.IsLetter(r):
			latin++
		}
	}
	if latin > 0 {
		return itinerary.English
	}
	return itinerary.Chinese
}

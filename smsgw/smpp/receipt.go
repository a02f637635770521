package smpp

import (
	"strings"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/internal/pduio"
)

// Receipt is a delivery receipt. The receipted_message_id and
// message_state TLVs win when present; the rest comes from the text form
// "id:... sub:... dlvrd:... submit date:... done date:... stat:... err:...
// text:...", parsed tolerantly. Message ids may be hex in submit_sm_resp
// and decimal here, depending on the SMSC: compare with care.
type Receipt struct {
	MessageID  string
	State      string // DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD, ENROUTE
	Err        string
	Sub, Dlvrd string
	SubmitDate time.Time // zero when absent or unparsable
	DoneDate   time.Time
	Text       string
}

// Delivered reports whether the receipt says the message reached the
// handset.
func (r *Receipt) Delivered() bool { return r.State == "DELIVRD" }

var messageStates = map[byte]string{
	1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED",
	5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
}

func receiptFrom(sm *pduio.SM, text string) *Receipt {
	r := ParseReceiptText(text)
	if v, ok := sm.TLVs[pduio.TagReceiptedMsgID]; ok {
		if id := strings.TrimRight(string(v), "\x00"); id != "" {
			r.MessageID = id
		}
	}
	if v, ok := sm.TLVs[pduio.TagMessageState]; ok && len(v) == 1 {
		if s, ok := messageStates[v[0]]; ok {
			r.State = s
		}
	}
	return &r
}

var receiptKeys = []string{"id:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:", "text:"}

// ParseReceiptText parses the customary text form of a receipt. Keys are
// matched case-insensitively at word starts, in any order; missing keys
// leave fields empty; "text:" runs to the end. It never fails: an
// unrecognisable text gives an empty Receipt.
func ParseReceiptText(s string) Receipt {
	lower := asciiLower(s) // byte for byte, so indices stay valid in s
	type hit struct{ key, at int }
	var hits []hit
	for k, key := range receiptKeys {
		from := 0
		for from < len(lower) {
			i := strings.Index(lower[from:], key)
			if i < 0 {
				break
			}
			i += from
			// "id:" also occurs inside "...id:" words; need a word start.
			if i == 0 || lower[i-1] == ' ' || lower[i-1] == '\n' || lower[i-1] == '\t' {
				hits = append(hits, hit{k, i})
				break
			}
			from = i + 1
		}
	}
	// Order hits by position; each value runs to the next hit.
	for i := 1; i < len(hits); i++ {
		for j := i; j > 0 && hits[j].at < hits[j-1].at; j-- {
			hits[j], hits[j-1] = hits[j-1], hits[j]
		}
	}
	var r Receipt
	text := -1
	for i, h := range hits {
		if text >= 0 && h.at > text {
			break // everything after text: belongs to the text
		}
		start := h.at + len(receiptKeys[h.key])
		end := len(s)
		if i+1 < len(hits) && receiptKeys[h.key] != "text:" {
			end = hits[i+1].at
		}
		v := strings.TrimSpace(s[start:end])
		switch receiptKeys[h.key] {
		case "id:":
			r.MessageID = v
		case "sub:":
			r.Sub = v
		case "dlvrd:":
			r.Dlvrd = v
		case "submit date:":
			r.SubmitDate = parseReceiptDate(v)
		case "done date:":
			r.DoneDate = parseReceiptDate(v)
		case "stat:":
			r.State = strings.ToUpper(v)
		case "err:":
			r.Err = v
		case "text:":
			r.Text, text = s[start:], h.at
		}
	}
	return r
}

// parseReceiptDate reads YYMMDDhhmm or YYMMDDhhmmss as UTC.
func parseReceiptDate(v string) time.Time {
	for _, layout := range []string{"0601021504", "060102150405"} {
		if len(v) == len(layout) {
			if t, err := time.Parse(layout, v); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// asciiLower lowercases ASCII letters only; unlike strings.ToLower it
// never changes the length (invalid UTF-8 would become U+FFFD there).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

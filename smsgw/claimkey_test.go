package smsgw

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Claim keys are shared state (Redis) that outlives a version: they must
// stay what the fmt-based form of earlier versions computed.
func TestClaimKeyKeepsItsForm(t *testing.T) {
	oldToken := func(dialog string, c itinerary.Consent) string {
		u := func(t time.Time) int64 {
			if t.IsZero() {
				return 0
			}
			return t.Unix()
		}
		return fmt.Sprintf("%s|%d.%d.%d", dialog, u(c.OptedOut), u(c.OptedIn), u(c.Reassigned))
	}
	oldKey := func(sub itinerary.Pseudonym, c Command, token string) string {
		h := sha256.New()
		h.Write(sub[:])
		fmt.Fprintf(h, "|%d|%d|%d|%s", c.Kind, c.Days, c.Lang, token)
		return hex.EncodeToString(h.Sum(nil)[:16])
	}
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	consents := []itinerary.Consent{{}, {OptedOut: at}, {OptedIn: at, Reassigned: at.Add(-time.Hour)}, {OptedOut: time.Unix(-5, 0)}}
	cmds := []Command{{}, {Kind: KindRequest, Days: 30, Lang: itinerary.English}, {Kind: KindConfirm, Days: -1, Lang: 7}}
	for i, c := range consents {
		for _, dialog := range []string{"", "done:01J", "0123456789abcdef|x"} {
			if got, want := tokenOf(dialog, c), oldToken(dialog, c); got != want {
				t.Errorf("tokenOf(%q, consent %d) = %q, want %q", dialog, i, got, want)
			}
			for _, cmd := range cmds {
				sub := itinerary.Pseudonym{byte(i), 0xff}
				tok := tokenOf(dialog, c)
				if got, want := claimKey(sub, cmd, tok), oldKey(sub, cmd, tok); got != want {
					t.Errorf("claimKey(%v, %q) = %s, want %s", cmd, tok, got, want)
				}
			}
		}
	}
}

package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/roamtrail/roamtrail/itinerary"
)

// Actions. An entry's Action is one of these.
const (
	ActSelfQuery   = "self-query"      // a subscriber asked for their own itinerary
	ActStaffLookup = "staff-lookup"    // an operator looked up a subscriber's itinerary
	ActCodeSent    = "code-sent"       // a one-time code went out
	ActCodeFailed  = "code-failed"     // a one-time code was wrong or expired
	ActErase       = "erase"           // a subscriber's data was erased on request
	ActOptOut      = "opt-out"         // consent withdrawn
	ActOptIn       = "opt-in"          // consent given
	ActPurge       = "purge"           // visits past the retention window deleted
	ActIngest      = "ingest-batch"    // a batch of location events stored
	ActDenied      = "denied"          // a request refused
	ActReassigned  = "reassigned"      // a number moved to a new subscriber
	ActRepair      = "repair"          // Open dropped a torn last line after a crash
	ActPrune       = "prune"           // Prune deleted log files past the retention period
	ActOperatorAdd = "operator-add"    // an operator was given a role
	ActOperatorDel = "operator-remove" // an operator was removed
)

// Roles. An entry's Role is one of these.
const (
	RoleSubscriber = "subscriber"
	RoleAgent      = "agent"
	RoleAuditor    = "auditor"
	RoleAdmin      = "admin"
	RoleSystem     = "system"
)

// Actors with fixed names; any other Actor is an operator ID.
const (
	ActorSelf   = "self"   // the subscriber, on their own request
	ActorSystem = "system" // the service itself: ingest, purge, repair, prune
)

// Entry is one line of the access log: who did what to whose data, when,
// and with what outcome. It never holds location data or a phone number.
//
// Append fills Seq, Time, Prev and Hash; whatever the caller put there is
// ignored.
type Entry struct {
	Seq     uint64    // 1 for the first entry of a log, then one more for each
	Time    time.Time // UTC, microseconds
	Actor   string    // ActorSelf or an operator ID
	Role    string    // one of the Role constants
	Action  string    // one of the Act constants
	Subject string    // the subscriber's pseudonym (SubjectOf), empty for purge and ingest
	Masked  string    // the number as shown to staff, e.g. 138****8000; may be empty
	Window  int       // days of history looked at, 0 if none
	Ticket  string    // the ticket or case a staff lookup was made under
	Outcome string    // "ok", "denied", "failed", ...
	Detail  string    // short, optional: e.g. an ingest batch's counts
	Prev    string    // Hash of the previous entry; the genesis hash for the first
	Hash    string    // hex SHA-256 of this entry's canonical encoding without Hash
}

// SubjectOf returns the Subject naming p: its 32 lowercase hex digits.
func SubjectOf(p itinerary.Pseudonym) string { return hex.EncodeToString(p[:]) }

// Field limits, in bytes. They keep a line well under maxLine and the log
// readable; an entry is a record, not a message.
const (
	maxActor   = 64
	maxMasked  = 32
	maxTicket  = 64
	maxOutcome = 32
	maxDetail  = 256
	maxWindow  = 3660 // ten years of days
	maxLine    = 4096 // no valid line comes near; a longer one is corrupt
)

// minNumberDigits is the shortest run of digits taken for a phone number:
// a local landline without its area code.
const minNumberDigits = 7

var (
	actions = set(ActSelfQuery, ActStaffLookup, ActCodeSent, ActCodeFailed, ActErase,
		ActOptOut, ActOptIn, ActPurge, ActIngest, ActDenied, ActReassigned, ActRepair, ActPrune,
		ActOperatorAdd, ActOperatorDel)
	roles = set(RoleSubscriber, RoleAgent, RoleAuditor, RoleAdmin, RoleSystem)
)

// IsAction says whether a is one of the Act constants.
func IsAction(a string) bool { return actions[a] }

// Actions lists the Act constants, sorted.
func Actions() []string {
	out := make([]string, 0, len(actions))
	for a := range actions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func set(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, x := range s {
		m[x] = true
	}
	return m
}

// validate checks the fields a caller fills. Errors name the field, never
// its value: the value may be the very number that must not leak.
func (e *Entry) validate() error {
	if !actions[e.Action] {
		return fmt.Errorf("%w: Action is not one of the Act constants", ErrInvalid)
	}
	if !roles[e.Role] {
		return fmt.Errorf("%w: Role is not one of the Role constants", ErrInvalid)
	}
	if e.Actor == "" {
		return fmt.Errorf("%w: Actor is empty", ErrInvalid)
	}
	if e.Outcome == "" {
		return fmt.Errorf("%w: Outcome is empty", ErrInvalid)
	}
	if e.Subject != "" && !isHex(e.Subject, 2*len(itinerary.Pseudonym{})) {
		return fmt.Errorf("%w: Subject is not a pseudonym's 32 lowercase hex digits", ErrInvalid)
	}
	if e.Masked != "" && !isMasked(e.Masked) {
		return fmt.Errorf("%w: Masked must be digits and at least one *", ErrInvalid)
	}
	if e.Window < 0 || e.Window > maxWindow {
		return fmt.Errorf("%w: Window must be 0 to %d days", ErrInvalid, maxWindow)
	}
	// Subject is left out of the number check: 32 hex digits hold a run of
	// seven decimal digits about a third of the time, and its format is
	// checked above instead.
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{
		{"Actor", e.Actor, maxActor},
		{"Masked", e.Masked, maxMasked},
		{"Ticket", e.Ticket, maxTicket},
		{"Outcome", e.Outcome, maxOutcome},
		{"Detail", e.Detail, maxDetail},
	} {
		switch {
		case len(f.v) > f.max:
			return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, f.name, f.max)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, f.name)
		case hasControl(f.v):
			return fmt.Errorf("%w: %s holds a control character", ErrInvalid, f.name)
		case looksLikeNumber(f.v):
			return fmt.Errorf("%w: %s", ErrNumber, f.name)
		}
	}
	return nil
}

// looksLikeNumber reports whether s holds minNumberDigits or more digits in
// a row, counting any Unicode decimal digit (full-width １３８ is typed on
// Chinese keyboards) and letting a single space, hyphen or dot between two
// digits continue the run, so that "138 0013 8000" and "+86-138-0013-8000"
// are caught as well as "13800138000". The price is that a date written
// 2026-11-27, a ticket like INC-0012345 and a count of a million or more
// are refused too: dates belong in Time, and large counts are written
// grouped, "rows=1,200,000" (a comma ends a run).
func looksLikeNumber(s string) bool {
	run := 0
	sep := false // the previous rune was a separator following a digit
	for _, r := range s {
		switch {
		case unicode.IsDigit(r):
			run++
			sep = false
			if run >= minNumberDigits {
				return true
			}
		case run > 0 && !sep && (r == ' ' || r == '-' || r == '.'):
			sep = true
		default:
			run, sep = 0, false
		}
	}
	return false
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isMasked reports whether s looks like a masked number: ASCII digits, an
// optional leading +, and at least one star.
func isMasked(s string) bool {
	star := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '*':
			star = true
		case c == '+' && i == 0, '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return star
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// timeLayout is the canonical form of Entry.Time: UTC, fixed width, to the
// microsecond.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// wire is an entry's JSON form. The field order is the canonical order;
// encoding/json writes struct fields in declaration order and escapes
// strings one way, so Marshal is the canonical encoding.
type wire struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Actor   string `json:"actor"`
	Role    string `json:"role"`
	Action  string `json:"action"`
	Subject string `json:"subject"`
	Masked  string `json:"masked"`
	Window  int    `json:"window"`
	Ticket  string `json:"ticket"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"`
	Prev    string `json:"prev"`
	Hash    string `json:"hash,omitempty"`
}

func (e *Entry) wire() wire {
	return wire{e.Seq, e.Time.UTC().Format(timeLayout), e.Actor, e.Role, e.Action, e.Subject,
		e.Masked, e.Window, e.Ticket, e.Outcome, e.Detail, e.Prev, e.Hash}
}

// canonical returns the bytes Hash is the SHA-256 of: the entry's JSON
// without the hash field.
func (e *Entry) canonical() []byte {
	w := e.wire()
	w.Hash = ""
	b, err := json.Marshal(w)
	if err != nil {
		panic(err) // strings and integers always marshal
	}
	return b
}

// hashOf returns the hex SHA-256 of canonical.
func hashOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// seal sets e.Hash and returns e's line: the canonical JSON with the hash
// as its last field, and a newline.
func (e *Entry) seal() []byte {
	c := e.canonical()
	e.Hash = hashOf(c)
	line := make([]byte, 0, len(c)+len(`,"hash":""`)+len(e.Hash)+1)
	line = append(line, c[:len(c)-1]...)
	line = append(line, `,"hash":"`...)
	line = append(line, e.Hash...)
	line = append(line, "\"}\n"...)
	return line
}

var errNotCanonical = errors.New("not in canonical form")

// parseEntry parses one line (without its newline). It accepts only the
// canonical encoding, byte for byte, so that a line cannot be rewritten into
// an equivalent form and two readers cannot disagree on what it says. It does
// not check Hash; Verify does.
func parseEntry(line []byte) (Entry, error) {
	// Unknown or repeated fields, other spellings and trailing bytes all
	// fail the comparison with the re-encoding below.
	var w wire
	if err := json.Unmarshal(line, &w); err != nil {
		return Entry{}, fmt.Errorf("not an entry: %w", err)
	}
	t, err := time.Parse(timeLayout, w.Time)
	if err != nil {
		return Entry{}, errors.New("not an entry: bad time")
	}
	if !isHex(w.Hash, 64) || !isHex(w.Prev, 64) {
		return Entry{}, errors.New("not an entry: bad hash or prev")
	}
	e := Entry{w.Seq, t, w.Actor, w.Role, w.Action, w.Subject, w.Masked, w.Window,
		w.Ticket, w.Outcome, w.Detail, w.Prev, w.Hash}
	b, err := json.Marshal(e.wire())
	if err != nil || !bytes.Equal(b, line) {
		return Entry{}, errNotCanonical
	}
	return e, nil
}

// lineHash returns the Hash a canonical line must carry: the SHA-256 of the
// line without its hash field, which is e.canonical() without encoding e
// again.
func lineHash(line []byte) string {
	i := bytes.LastIndex(line, []byte(`,"hash":"`))
	if i < 0 {
		return ""
	}
	h := sha256.New()
	h.Write(line[:i])
	h.Write([]byte("}"))
	return hex.EncodeToString(h.Sum(nil))
}

// genesis returns the Prev of a log's first entry: a hash naming the log,
// so that a chain cannot be passed off as another log's.
func genesis(name string) string {
	return hashOf([]byte("roamtrail audit log v1\n" + name + "\n"))
}

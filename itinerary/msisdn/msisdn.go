// Package msisdn parses and masks subscriber numbers.
//
// A number is normalised once, at the edge (ingest, an MO's source address,
// a staff command), to E.164; everything after that (pseudonyms, rate limits,
// replies) works on the normal form, so that 13800138000, 8613800138000 and
// +8613800138000 are one subscriber.
package msisdn

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// Number is a valid phone number in E.164 form, with the leading plus:
// "+8613800138000".
type Number string

// Errors. Their text never carries the number: numbers are personal data and
// errors end up in logs.
var (
	ErrEmpty   = errors.New("msisdn: empty number")
	ErrSyntax  = errors.New("msisdn: not a phone number")
	ErrInvalid = errors.New("msisdn: not a valid number")
)

// maxLen bounds the input: E.164 allows 15 digits; punctuation and an
// international prefix may add a few characters, nothing legitimate adds more.
const maxLen = 32

// Parse normalises s to E.164. Accepted forms: E.164 with or without the
// plus ("+8613800138000", "8613800138000"), an international prefix
// ("008613800138000"), or an 11-digit Chinese mobile number ("13800138000",
// taken as +86). Spaces and dashes between digits are ignored.
func Parse(s string) (Number, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrEmpty
	}
	if len(s) > maxLen {
		return "", fmt.Errorf("%w: too long", ErrSyntax)
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' && i == 0:
			b.WriteByte(c)
		case c == ' ' || c == '-':
		default:
			return "", fmt.Errorf("%w: unexpected character", ErrSyntax)
		}
	}
	digits := b.String()
	switch {
	case strings.HasPrefix(digits, "+"):
	case strings.HasPrefix(digits, "00"):
		digits = "+" + digits[2:]
	case len(digits) == 11 && digits[0] == '1':
		digits = "+86" + digits
	default:
		digits = "+" + digits
	}
	if len(digits) < 4 {
		return "", fmt.Errorf("%w: too short", ErrSyntax)
	}
	pn, err := phonenumbers.Parse(digits, "CN")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	if !phonenumbers.IsValidNumber(pn) {
		return "", ErrInvalid
	}
	return Number(phonenumbers.Format(pn, phonenumbers.E164)), nil
}

// Digits returns the number without the plus, as SMPP addresses carry it.
func (n Number) Digits() string { return strings.TrimPrefix(string(n), "+") }

// National returns a Chinese number without its country code, as a
// subscriber writes it (13800138000); other numbers in E.164.
func (n Number) National() string {
	if s, ok := strings.CutPrefix(string(n), "+86"); ok {
		return s
	}
	return string(n)
}

// Masked returns the number as it may appear in logs and staff output: the
// first three and the last four digits of the national number, the rest
// starred (138****8000). Short numbers keep only their last two digits.
func (n Number) Masked() string { return Mask(n.National()) }

// Mask masks any digit string the way Masked does, for numbers that did not
// parse (a malformed sender still must not reach a log in clear).
func Mask(s string) string {
	s = strings.TrimPrefix(s, "+")
	switch {
	case len(s) >= 8:
		return s[:3] + strings.Repeat("*", len(s)-7) + s[len(s)-4:]
	case len(s) > 2:
		return strings.Repeat("*", len(s)-2) + s[len(s)-2:]
	default:
		return strings.Repeat("*", len(s))
	}
}

// Parser is Parse behind a bounded cache: libphonenumber's parse costs tens
// of microseconds, and a feed or a gateway sees the same numbers again and
// again. It is safe for concurrent use.
type Parser struct {
	mu  sync.Mutex
	m   map[string]Number
	max int
}

// NewParser returns a Parser caching up to max numbers (default 1<<20 when
// max <= 0). When full it starts over, which only costs speed.
func NewParser(max int) *Parser {
	if max <= 0 {
		max = 1 << 20
	}
	return &Parser{m: make(map[string]Number), max: max}
}

// Parse is Parse, cached. Errors are not cached: junk must not evict
// numbers.
func (p *Parser) Parse(s string) (Number, error) {
	p.mu.Lock()
	n, ok := p.m[s]
	p.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := Parse(s)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if len(p.m) >= p.max {
		clear(p.m)
	}
	p.m[s] = n
	p.mu.Unlock()
	return n, nil
}

package staff

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// CodeStore keeps code records under opaque keys (store.DB). Values are
// replaced whole; expiry is the caller's.
type CodeStore interface {
	PutCode(ctx context.Context, key, value []byte) error
	GetCode(ctx context.Context, key []byte) (value []byte, ok bool, err error)
	DeleteCode(ctx context.Context, key []byte) error
}

// CodeLister lists every code record, so that Sweep can delete what
// expired (store.DB).
type CodeLister interface {
	Codes(ctx context.Context, fn func(key, value []byte) error) error
}

// codeDigits is the length of a code.
const codeDigits = 6

// codeRecord is what is stored for one subscriber: when codes were issued
// (for the rate limit) and the codes still held for each operator.
type codeRecord struct {
	Issued []time.Time  `json:"issued"`
	Codes  []storedCode `json:"codes"`
}

// storedCode is one code, as an HMAC over everything it is bound to; the
// ticket and window are in the MAC only.
type storedCode struct {
	Operator string    `json:"operator"`
	Lang     string    `json:"lang"` // of the code SMS, for the notification that follows
	Salt     []byte    `json:"salt"`
	MAC      []byte    `json:"mac"`
	Expires  time.Time `json:"expires"`
	Left     int       `json:"left"` // tries left
}

// codeClaim is what a code is bound to.
type codeClaim struct {
	sub      itinerary.Pseudonym
	operator string
	ticket   string
	days     int
}

// checkOutcome is what checking a code found.
type checkOutcome int

const (
	checkNone      checkOutcome = iota // no code held for this operator
	checkGranted                       // right: the code is used up
	checkWrong                         // wrong, tries remain
	checkExhausted                     // wrong, and that was the last try: the code is gone
	checkExpired                       // too late: the code is gone
)

type checkResult struct {
	outcome checkOutcome
	left    int    // tries left after a wrong one
	lang    string // of the code SMS
}

// codeBook issues and checks codes over a CodeStore.
type codeBook struct {
	store  CodeStore
	key    []byte // the MAC key
	now    func() time.Time
	random io.Reader
	ttl    time.Duration
	tries  int
	limit  int
	per    time.Duration

	// mu makes each read-modify-write of a record atomic in this process;
	// the store's lock keeps other processes out.
	mu sync.Mutex
}

// codeKey derives the MAC key from the pseudonym key, so that one secret
// protects the data dir and a code record is useless without it (a
// six-digit code hashed without a secret is found by trying a million).
func codeKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, "roamtrail staff code key v1")
	return m.Sum(nil)
}

// mac binds a code to its claim and salt; fields are length-prefixed so
// that no two claims encode alike.
func (b *codeBook) mac(c codeClaim, salt []byte, code string) []byte {
	m := hmac.New(sha256.New, b.key)
	for _, f := range [][]byte{c.sub[:], []byte(c.operator), []byte(c.ticket), []byte(strconv.Itoa(c.days)), salt, []byte(code)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		m.Write(n[:])
		m.Write(f)
	}
	return m.Sum(nil)
}

// randomCode draws six digits uniformly: a 32-bit draw at or above the
// largest multiple of 10^6 below 2^32 is drawn again, so that no code is
// likelier than another (the chance of a redraw is about 1 in 4,400).
func randomCode(r io.Reader) (string, error) {
	const space = 1_000_000
	const bound = (1 << 32) / space * space
	var b [4]byte
	for range 64 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("staff: random: %w", err)
		}
		if v := binary.BigEndian.Uint32(b[:]); v < bound {
			return fmt.Sprintf("%0*d", codeDigits, v%space), nil
		}
	}
	return "", errors.New("staff: random: the source repeats out-of-range values")
}

// validCode reports whether s is six ASCII digits.
func validCode(s string) bool {
	if len(s) != codeDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (b *codeBook) load(ctx context.Context, sub itinerary.Pseudonym) (codeRecord, error) {
	var rec codeRecord
	v, ok, err := b.store.GetCode(ctx, sub[:])
	if err != nil || !ok {
		return rec, err
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("staff: a corrupt code record: %w", err)
	}
	return rec, nil
}

// save writes rec, or deletes it when it holds nothing live.
func (b *codeBook) save(ctx context.Context, key []byte, rec codeRecord) error {
	if len(rec.Issued) == 0 && len(rec.Codes) == 0 {
		return b.store.DeleteCode(ctx, key)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.store.PutCode(ctx, key, v)
}

// prune drops issue times older than the rate window and codes that
// expired more than a rate window ago. An expired code is kept that long
// so that trying it is told "expired", not "none".
func (b *codeBook) prune(rec *codeRecord, now time.Time) {
	rec.Issued = slices.DeleteFunc(rec.Issued, func(t time.Time) bool { return !now.Before(t.Add(b.per)) })
	rec.Codes = slices.DeleteFunc(rec.Codes, func(c storedCode) bool { return !now.Before(c.Expires.Add(b.per)) })
}

// issue makes a code for c, replacing any code the same operator holds for
// the same subscriber. Past the rate limit it returns ErrRateLimited and
// when the next code may be issued.
func (b *codeBook) issue(ctx context.Context, c codeClaim, lang string) (code string, expires time.Time, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec, err := b.load(ctx, c.sub)
	if err != nil {
		return "", time.Time{}, err
	}
	now := b.now()
	b.prune(&rec, now)
	if len(rec.Issued) >= b.limit {
		next := slices.MinFunc(rec.Issued, func(a, b time.Time) int { return a.Compare(b) }).Add(b.per)
		return "", next, fmt.Errorf("%w: %d in %s; the next one from %s", ErrRateLimited, b.limit, b.per, next.UTC().Format(time.RFC3339))
	}
	if code, err = randomCode(b.random); err != nil {
		return "", time.Time{}, err
	}
	salt := make([]byte, 16)
	if _, err := io.ReadFull(b.random, salt); err != nil {
		return "", time.Time{}, fmt.Errorf("staff: random: %w", err)
	}
	expires = now.Add(b.ttl).UTC()
	rec.Codes = slices.DeleteFunc(rec.Codes, func(s storedCode) bool { return s.Operator == c.operator })
	rec.Codes = append(rec.Codes, storedCode{
		Operator: c.operator, Lang: lang, Salt: salt, MAC: b.mac(c, salt, code), Expires: expires, Left: b.tries,
	})
	rec.Issued = append(rec.Issued, now.UTC())
	if err := b.save(ctx, c.sub[:], rec); err != nil {
		return "", time.Time{}, err
	}
	return code, expires, nil
}

// revoke deletes the code operator holds for sub (its SMS did not go
// out). The issue still counts against the rate limit.
func (b *codeBook) revoke(ctx context.Context, sub itinerary.Pseudonym, operator string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec, err := b.load(ctx, sub)
	if err != nil {
		return err
	}
	rec.Codes = slices.DeleteFunc(rec.Codes, func(s storedCode) bool { return s.Operator == operator })
	return b.save(ctx, sub[:], rec)
}

// check checks code against the one c's operator holds for c's subscriber.
// A right code is deleted before check returns, a wrong one costs a try,
// and the last wrong try or a late one deletes it: every change is on disk
// before check returns, so a crash cannot give a code back its tries.
// Another operator's codes are never touched: that operator was never
// told them.
func (b *codeBook) check(ctx context.Context, c codeClaim, code string) (checkResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec, err := b.load(ctx, c.sub)
	if err != nil {
		return checkResult{}, err
	}
	now := b.now()
	b.prune(&rec, now)
	i := slices.IndexFunc(rec.Codes, func(s storedCode) bool { return s.Operator == c.operator })
	if i < 0 {
		return checkResult{outcome: checkNone}, b.save(ctx, c.sub[:], rec)
	}
	sc := &rec.Codes[i]
	res := checkResult{lang: sc.Lang}
	switch {
	case !now.Before(sc.Expires):
		res.outcome = checkExpired
	case hmac.Equal(sc.MAC, b.mac(c, sc.Salt, code)):
		res.outcome = checkGranted
	default:
		sc.Left--
		res.left = sc.Left
		res.outcome = checkWrong
		if sc.Left <= 0 {
			res.outcome = checkExhausted
		}
	}
	if res.outcome != checkWrong {
		rec.Codes = slices.Delete(rec.Codes, i, i+1)
	}
	return res, b.save(ctx, c.sub[:], rec)
}

// forget deletes everything held for sub (an erase).
func (b *codeBook) forget(ctx context.Context, sub itinerary.Pseudonym) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.store.DeleteCode(ctx, sub[:])
}

// sweep deletes every record that holds nothing live any more, and
// returns how many it deleted.
func (b *codeBook) sweep(ctx context.Context, l CodeLister) (int, error) {
	var keys [][]byte
	if err := l.Codes(ctx, func(key, _ []byte) error { keys = append(keys, key); return nil }); err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		var sub itinerary.Pseudonym
		if len(key) != len(sub) {
			continue // not ours
		}
		copy(sub[:], key)
		if err := func() error {
			b.mu.Lock()
			defer b.mu.Unlock()
			rec, err := b.load(ctx, sub)
			if err != nil {
				return err
			}
			before := len(rec.Issued) + len(rec.Codes)
			b.prune(&rec, b.now())
			if len(rec.Issued)+len(rec.Codes) == before {
				return nil
			}
			if len(rec.Issued) == 0 && len(rec.Codes) == 0 {
				n++
			}
			return b.save(ctx, key, rec)
		}(); err != nil {
			return n, err
		}
	}
	return n, nil
}

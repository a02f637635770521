// Package privacy holds what keeps location data personal: pseudonyms,
// consent, one-time codes, the retention policy and the access log.
package privacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
)

// KeySize is the size of a pseudonym key: 256 bits, the HMAC-SHA256 block
// strength.
const KeySize = 32

// Errors.
var (
	ErrKeySize  = errors.New("privacy: pseudonym key must be 32 bytes")
	ErrKeyPerms = errors.New("privacy: pseudonym key file is readable by others")
)

// Pseudonymizer turns numbers into pseudonyms: HMAC-SHA256 of the E.164
// number under a secret key, truncated to 128 bits. Without the key a
// pseudonym cannot be linked to a number (the number space is small enough to
// enumerate, which is why a keyed hash and not a plain one); with a lost key
// the stored pseudonyms are unlinkable for good, which is also how the data
// dir is made anonymous at the end of its life.
//
// It is safe for concurrent use.
type Pseudonymizer struct {
	key  []byte
	pool sync.Pool
}

// NewPseudonymizer returns a Pseudonymizer for a 32-byte key.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	p := &Pseudonymizer{key: append([]byte(nil), key...)}
	p.pool.New = func() any { return hmac.New(sha256.New, p.key) }
	return p, nil
}

// Pseudonym returns n's pseudonym.
func (p *Pseudonymizer) Pseudonym(n msisdn.Number) itinerary.Pseudonym {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	io.WriteString(h, string(n))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	p.pool.Put(h)
	var ps itinerary.Pseudonym
	copy(ps[:], sum[:])
	return ps
}

// Fingerprint identifies the key without revealing it, so that a data dir
// can refuse a key file that is not the one its pseudonyms were made with
// (every lookup would silently find nothing).
func (p *Pseudonymizer) Fingerprint() []byte {
	m := hmac.New(sha256.New, p.key)
	io.WriteString(m, "roamtrail key fingerprint v1")
	return m.Sum(nil)[:16]
}

// LoadOrCreateKey reads the key at path, or, when no file is there, creates
// one from random with mode 0600. A key file that group or others can read
// is refused: whoever reads it can link every pseudonym to its number.
func LoadOrCreateKey(path string, random io.Reader) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, KeySize)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, fmt.Errorf("privacy: generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("privacy: key dir: %w", err)
	}
	// Write to a temporary name and link it in, so that a crash never leaves
	// a short key behind and two processes racing here agree on one key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("privacy: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("privacy: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("privacy: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("privacy: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, fmt.Errorf("privacy: install key: %w", err)
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, ErrKeyPerms
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("privacy: read key: %w", err)
	}
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	return key, nil
}

package privacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// ErrUnseal means a sealed value did not authenticate: corrupt, or sealed
// under another key.
var ErrUnseal = errors.New("privacy: cannot open sealed value")

// Sealer encrypts the few values that must reach the disk but must not be
// readable there: the number a queued reply goes to. AES-256-GCM under a key
// derived from the pseudonym key, so one secret protects the data dir and a
// lost key makes sealed values unreadable along with pseudonyms unlinkable.
type Sealer struct {
	aead   cipher.AEAD
	random io.Reader
}

// NewSealer derives a Sealer from the pseudonym key. random defaults to
// crypto/rand.
func NewSealer(key []byte, random io.Reader) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	m := hmac.New(sha256.New, key)
	io.WriteString(m, "roamtrail seal key v1")
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("privacy: sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("privacy: sealer: %w", err)
	}
	if random == nil {
		random = rand.Reader
	}
	return &Sealer{aead: aead, random: random}, nil
}

// Seal encrypts plaintext; ad is authenticated but not encrypted (bind the
// value to where it is stored so it cannot be moved elsewhere).
func (s *Sealer) Seal(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := io.ReadFull(s.random, nonce); err != nil {
		return nil, fmt.Errorf("privacy: seal: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open decrypts what Seal returned.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrUnseal
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

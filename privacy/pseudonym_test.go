package privacy

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
)

// MustPseudonymizer returns a Pseudonymizer for a key of 32 copies of b.
func MustPseudonymizer(tb testing.TB, b byte) *Pseudonymizer {
	tb.Helper()
	p, err := NewPseudonymizer(bytes.Repeat([]byte{b}, KeySize))
	if err != nil {
		tb.Fatalf("NewPseudonymizer: %v", err)
	}
	return p
}

// MustNumber parses a number or stops the test.
func MustNumber(tb testing.TB, s string) msisdn.Number {
	tb.Helper()
	n, err := msisdn.Parse(s)
	if err != nil {
		tb.Fatalf("msisdn.Parse: %v", err)
	}
	return n
}

func TestPseudonym(t *testing.T) {
	p1, p2 := MustPseudonymizer(t, 1), MustPseudonymizer(t, 2)
	a, b := MustNumber(t, "+8613800138000"), MustNumber(t, "+8613800138001")

	if p1.Pseudonym(a) != p1.Pseudonym(a) {
		t.Error("the same key and number give different pseudonyms")
	}
	if again := MustPseudonymizer(t, 1); again.Pseudonym(a) != p1.Pseudonym(a) {
		t.Error("a second Pseudonymizer over the same key disagrees")
	}
	if p1.Pseudonym(a) == p1.Pseudonym(b) {
		t.Error("two numbers share a pseudonym")
	}
	if p1.Pseudonym(a) == p2.Pseudonym(a) {
		t.Error("two keys give one pseudonym")
	}
	if p1.Pseudonym(a) == (itinerary.Pseudonym{}) {
		t.Error("zero pseudonym")
	}
	// Every spelling of a number is one subscriber once normalised.
	for _, s := range []string{"13800138000", "8613800138000", "+86 138-0013-8000", "008613800138000"} {
		if got := p1.Pseudonym(MustNumber(t, s)); got != p1.Pseudonym(a) {
			t.Errorf("%q has another pseudonym than its E.164 form", s)
		}
	}
	// The pseudonym is not the number in disguise: no 4-byte run of the
	// number's digits survives in it.
	ps := p1.Pseudonym(a)
	for i := 0; i+4 <= len(a); i++ {
		if bytes.Contains(ps[:], []byte(a[i:i+4])) {
			t.Errorf("pseudonym holds %q of the number", a[i:i+4])
		}
	}
}

func TestPseudonymConcurrent(t *testing.T) {
	p := MustPseudonymizer(t, 7)
	n := MustNumber(t, "+8613800138000")
	want := p.Pseudonym(n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if got := p.Pseudonym(n); got != want {
					t.Errorf("concurrent Pseudonym = %x, want %x", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewPseudonymizerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewPseudonymizer(make([]byte, n)); !errors.Is(err, ErrKeySize) {
			t.Errorf("%d-byte key: error %v, want ErrKeySize", n, err)
		}
	}
	// The key is copied: changing the caller's slice changes nothing.
	key := bytes.Repeat([]byte{3}, KeySize)
	p, err := NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	n := MustNumber(t, "+8613800138000")
	before := p.Pseudonym(n)
	key[0] ^= 0xff
	if p.Pseudonym(n) != before {
		t.Error("the Pseudonymizer shares the caller's key slice")
	}
}

func TestFingerprint(t *testing.T) {
	p1, p2 := MustPseudonymizer(t, 1), MustPseudonymizer(t, 2)
	f1 := p1.Fingerprint()
	if len(f1) != 16 {
		t.Errorf("fingerprint of %d bytes, want 16", len(f1))
	}
	if !bytes.Equal(f1, MustPseudonymizer(t, 1).Fingerprint()) {
		t.Error("one key, two fingerprints")
	}
	if bytes.Equal(f1, p2.Fingerprint()) {
		t.Error("two keys, one fingerprint")
	}
	if bytes.Contains(f1, bytes.Repeat([]byte{1}, 4)) {
		t.Error("the fingerprint shows the key")
	}
	// A fingerprint is no pseudonym: it cannot be mistaken for one.
	if bytes.Equal(f1, func() []byte { ps := p1.Pseudonym(MustNumber(t, "+8613800138000")); return ps[:] }()) {
		t.Error("fingerprint equals a pseudonym")
	}
}

// writeKey writes a key file with mode perm (chmod, so the umask does not
// interfere).
func writeKey(tb testing.TB, path string, key []byte, perm os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, key, perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		tb.Fatal(err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	key := bytes.Repeat([]byte{9}, KeySize)
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		random  string // what the random source yields
		want    []byte // the key, or nil for an error
		wantErr error
	}{
		{
			name:   "creates",
			setup:  func(*testing.T, string) {},
			random: strings.Repeat("k", KeySize),
			want:   []byte(strings.Repeat("k", KeySize)),
		},
		{
			name:   "creates its directory",
			setup:  func(t *testing.T, path string) { os.RemoveAll(filepath.Dir(path)) },
			random: strings.Repeat("d", KeySize),
			want:   []byte(strings.Repeat("d", KeySize)),
		},
		{
			name:   "reuses",
			setup:  func(t *testing.T, path string) { writeKey(t, path, key, 0o600) },
			random: strings.Repeat("x", KeySize),
			want:   key,
		},
		{
			name:   "owner read-only",
			setup:  func(t *testing.T, path string) { writeKey(t, path, key, 0o400) },
			random: strings.Repeat("x", KeySize),
			want:   key,
		},
		{
			name:    "refuses 0644",
			setup:   func(t *testing.T, path string) { writeKey(t, path, key, 0o644) },
			wantErr: ErrKeyPerms,
		},
		{
			name:    "refuses group-readable",
			setup:   func(t *testing.T, path string) { writeKey(t, path, key, 0o640) },
			wantErr: ErrKeyPerms,
		},
		{
			name:    "refuses world-writable",
			setup:   func(t *testing.T, path string) { writeKey(t, path, key, 0o602) },
			wantErr: ErrKeyPerms,
		},
		{
			name:    "rejects a short key",
			setup:   func(t *testing.T, path string) { writeKey(t, path, key[:31], 0o600) },
			wantErr: ErrKeySize,
		},
		{
			name:    "rejects a long key",
			setup:   func(t *testing.T, path string) { writeKey(t, path, append(key, '\n'), 0o600) },
			wantErr: ErrKeySize,
		},
		{
			name:    "rejects an empty file",
			setup:   func(t *testing.T, path string) { writeKey(t, path, nil, 0o600) },
			wantErr: ErrKeySize,
		},
		{
			name:    "a short random source is an error",
			setup:   func(*testing.T, string) {},
			random:  "too short",
			wantErr: errAny,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys", "pseudonym.key")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, path)
			got, err := LoadOrCreateKey(path, strings.NewReader(tt.random))
			switch {
			case tt.wantErr == errAny:
				if err == nil {
					t.Fatalf("LoadOrCreateKey = %x, want an error", got)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadOrCreateKey error = %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("a refused key was returned")
				}
				return
			case err != nil:
				t.Fatalf("LoadOrCreateKey: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("key = %q, want %q", got, tt.want)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := st.Mode().Perm(); perm&0o077 != 0 || perm&0o400 == 0 {
				t.Errorf("key file mode %v", perm)
			}
			onDisk, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(onDisk, got) {
				t.Errorf("key file holds %q (%v), want %q", onDisk, err, got)
			}
			// Loading again gives the same key and ignores the random source.
			again, err := LoadOrCreateKey(path, strings.NewReader(strings.Repeat("z", KeySize)))
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("second load = %q, %v; want %q", again, err, got)
			}
			// No temporary file is left beside the key.
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("key dir holds %v, want only the key", names)
			}
		})
	}
}

// errAny in a table means any error will do.
var errAny = errors.New("any error")

func TestLoadOrCreateKeyCreatesMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "key")
	if _, err := LoadOrCreateKey(path, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new key file mode %v, want 0600", st.Mode().Perm())
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Mode().Perm()&0o077 != 0 {
		t.Errorf("new key dir mode %v, want no access for group or others", dir.Mode().Perm())
	}
}

// TestLoadOrCreateKeyRace starts many loaders on one missing key: they must
// all end up with the same key.
func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	keys := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreateKey(path, nil)
			if err != nil {
				t.Errorf("loader %d: %v", i, err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Errorf("loader %d got another key", i)
		}
	}
}

func TestLoadOrCreateKeyUnreadableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	_, err := LoadOrCreateKey(filepath.Join(dir, "key"), nil)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %v, want a permission error", err)
	}
}

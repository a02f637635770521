package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond) // every entry a distinct time
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var day0 = time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)

type key struct {
	signer note.Signer
	vkey   string
}

// MustKey returns a fresh signing key named for the test.
func MustKey(tb testing.TB) key {
	tb.Helper()
	skey, vkey, err := audit.GenerateKey("test-audit", nil)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return key{s, vkey}
}

func testLogger(tb testing.TB) *zerolog.Logger {
	l := zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.InfoLevel)
	return &l
}

// MustOpen opens a log in dir with k and the clock, without fsync (the
// fsync path has its own tests and benchmark).
func MustOpen(tb testing.TB, dir string, k key, c *clock, tweak ...func(*audit.Options)) *audit.Log {
	tb.Helper()
	opts := audit.Options{Signer: k.signer, Now: c.Now, NoSync: true, Logger: testLogger(tb)}
	for _, f := range tweak {
		f(&opts)
	}
	l, err := audit.Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return l
}

// lookup is a typical entry: an agent's lookup of subscriber n.
// appendFrom appends each entries from each of writers goroutines at once
// and returns the seqs of the appends that returned.
func appendFrom(ctx context.Context, t *testing.T, l *audit.Log, writers, each int) []uint64 {
	t.Helper()
	var (
		mu   sync.Mutex
		seqs []uint64
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for range each {
				e, err := l.Append(ctx, lookup(byte(w)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return seqs
}

func lookup(n byte) audit.Entry {
	return audit.Entry{
		Actor: "op-17", Role: audit.RoleAgent, Action: audit.ActStaffLookup,
		Subject: audit.SubjectOf(itinerary.Pseudonym{n}), Masked: "138****8000",
		Window: 15, Ticket: "T-42", Outcome: "ok",
	}
}

func MustAppend(tb testing.TB, l *audit.Log, e audit.Entry) audit.Entry {
	tb.Helper()
	got, err := l.Append(context.Background(), e)
	if err != nil {
		tb.Fatalf("Append: %v", err)
	}
	return got
}

func MustVerify(tb testing.TB, dir string, k key) audit.Report {
	tb.Helper()
	r, err := audit.Verify(context.Background(), dir, audit.VerifyOptions{VerifierKey: k.vkey})
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return r
}

func MustClose(tb testing.TB, l *audit.Log) {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// logFiles returns the names of dir's log files in order.
func logFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	sort.Strings(m)
	return m
}

func readLines(tb testing.TB, path string) []string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func writeLines(tb testing.TB, path string, lines []string) {
	tb.Helper()
	s := strings.Join(lines, "\n")
	if len(lines) > 0 {
		s += "\n"
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		tb.Fatal(err)
	}
}

var prevField = regexp.MustCompile(`"prev":"[0-9a-f]*"`)

// rehash recomputes a line's hash as a forger without the key would.
func rehash(line string) string {
	i := strings.LastIndex(line, `,"hash":"`)
	body := line[:i] + "}"
	sum := sha256.Sum256([]byte(body))
	return line[:i] + `,"hash":"` + hex.EncodeToString(sum[:]) + `"}`
}

func hashField(line string) string {
	i := strings.LastIndex(line, `,"hash":"`)
	return line[i+len(`,"hash":"`) : len(line)-2]
}

// rechain rehashes lines[from:] and relinks each to the one before: a
// forger's full rewrite of the chain from one line on.
func rechain(lines []string, from int) []string {
	out := append([]string(nil), lines...)
	for i := from; i < len(out); i++ {
		if i > 0 {
			out[i] = prevField.ReplaceAllString(out[i], `"prev":"`+hashField(out[i-1])+`"`)
		}
		out[i] = rehash(out[i])
	}
	return out
}

// copyDir copies the flat dir src into a new temporary dir.
func copyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "audit")
	if err := os.Mkdir(dst, 0o700); err != nil {
		tb.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

func appendFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		tb.Fatal(err)
	}
}

package staff

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

// The test subscriber, and the forms that must never reach the log.
const (
	testNumber  = "13800138000"
	testMasked  = "138****8000"
	otherNumber = "13900139000"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sms is one message a fakeNotifier sent.
type sms struct {
	To   msisdn.Number
	Text string
}

type fakeNotifier struct {
	mu   sync.Mutex
	sent []sms
	fail error
}

func (n *fakeNotifier) Notify(ctx context.Context, to msisdn.Number, text string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return n.fail
	}
	n.sent = append(n.sent, sms{to, text})
	return nil
}

func (n *fakeNotifier) all() []sms {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sent)
}

func (n *fakeNotifier) last(tb testing.TB) sms {
	tb.Helper()
	all := n.all()
	if len(all) == 0 {
		tb.Fatal("no SMS was sent")
	}
	return all[len(all)-1]
}

// codeIn returns the six digits of a code SMS.
func codeIn(tb testing.TB, text string) string {
	tb.Helper()
	for i := 0; i+codeDigits <= len(text); i++ {
		if validCode(text[i:i+codeDigits]) && (i == 0 || text[i-1] < '0' || text[i-1] > '9') &&
			(i+codeDigits == len(text) || text[i+codeDigits] < '0' || text[i+codeDigits] > '9') {
			return text[i : i+codeDigits]
		}
	}
	tb.Fatalf("no code in %q", text)
	return ""
}

// memCodes is a CodeStore in memory.
type memCodes struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memCodes) PutCode(ctx context.Context, key, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]byte{}
	}
	m.m[string(key)] = bytes.Clone(value)
	return nil
}

func (m *memCodes) GetCode(ctx context.Context, key []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[string(key)]
	return bytes.Clone(v), ok, nil
}

func (m *memCodes) DeleteCode(ctx context.Context, key []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, string(key))
	return nil
}

func (m *memCodes) Codes(ctx context.Context, fn func(key, value []byte) error) error {
	m.mu.Lock()
	keys := make([]string, 0, len(m.m))
	for k := range m.m {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		v, ok, _ := m.GetCode(ctx, []byte(k))
		if !ok {
			continue
		}
		if err := fn([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (m *memCodes) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}

// fakeItineraries answers every lookup with the same places.
type fakeItineraries struct {
	now    func() time.Time
	places []itinerary.Place
}

func (f *fakeItineraries) Lookup(ctx context.Context, sub itinerary.Pseudonym, days int) (itinerary.Itinerary, error) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	return itinerary.Itinerary{Window: itinerary.LastDays(f.now(), loc, days), Places: f.places}, nil
}

type fakeEraser struct {
	mu     sync.Mutex
	erased []itinerary.Pseudonym
	fail   error
}

func (f *fakeEraser) Erase(ctx context.Context, sub itinerary.Pseudonym) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.erased = append(f.erased, sub)
	return nil
}

// harness is a Service on fakes, a real access log and a real registry in
// a temporary data dir.
type harness struct {
	t        *testing.T
	dir      string
	clock    *testClock
	sms      *fakeNotifier
	codes    *memCodes
	eraser   *fakeEraser
	forgot   *fakeEraser // a Forgetter, recorded the same way
	ps       *privacy.Pseudonymizer
	log      *audit.Log
	vkey     string
	registry *Registry
	svc      *Service
}

type forgetter struct{ *fakeEraser }

func (f forgetter) Forget(ctx context.Context, sub itinerary.Pseudonym) error {
	return f.Erase(ctx, sub)
}

// testRandom is a deterministic source for codes.
type testRandom struct{ n byte }

func (r *testRandom) Read(p []byte) (int, error) {
	for i := range p {
		r.n = r.n*31 + 7
		p[i] = r.n
	}
	return len(p), nil
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{
		t: t, dir: dir,
		clock:  &testClock{t: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)},
		sms:    &fakeNotifier{},
		codes:  &memCodes{},
		eraser: &fakeEraser{}, forgot: &fakeEraser{},
		registry: NewRegistry(filepath.Join(dir, "operators.json")),
	}
	key := bytes.Repeat([]byte{0x42}, privacy.KeySize)
	var err error
	if h.ps, err = privacy.NewPseudonymizer(key); err != nil {
		t.Fatal(err)
	}
	signer, vkey, err := audit.LoadOrCreateSigner(filepath.Join(dir, "audit.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.vkey = vkey
	if h.log, err = audit.Open(filepath.Join(dir, "audit"), audit.Options{Signer: signer, NoSync: true, Now: h.clock.Now}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.log.Close() })
	cat, err := itinerary.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	if opts.Random == nil {
		opts.Random = &testRandom{}
	}
	h.svc, err = New(opts, Deps{
		Operators: h.registry, Audit: h.log, Pseudonyms: h.ps,
		Codes: h.codes, Secret: key, Notifier: h.sms,
		Itineraries: &fakeItineraries{now: h.clock.Now, places: []itinerary.Place{
			{Region: 130100, FirstDay: 20780, LastDay: 20780},
			{Region: 110100, FirstDay: 20770, LastDay: 20783},
			{Region: 440, FirstDay: 20765, LastDay: 20765},
		}},
		Catalog: cat, Eraser: h.eraser, Forgetter: forgetter{h.forgot},
		AuditDir: filepath.Join(dir, "audit"), VerifierKey: vkey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// mustOperators adds operators ID:role, bypassing the service.
func (h *harness) mustOperators(specs ...string) {
	h.t.Helper()
	for _, s := range specs {
		id, role, _ := strings.Cut(s, ":")
		if err := h.registry.Add(Operator{ID: id, Role: Role(role), Added: h.clock.Now()}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// do runs req and returns its response and error.
func (h *harness) do(req Request) (Response, error) {
	h.t.Helper()
	resp := h.svc.Do(context.Background(), req)
	return resp, resp.Err()
}

// mustDo runs req and fails the test on an error.
func (h *harness) mustDo(req Request) Response {
	h.t.Helper()
	resp, err := h.do(req)
	if err != nil {
		h.t.Fatalf("%s: %v", req.Op, err)
	}
	return resp
}

// sendCode runs a lookup for operator and returns the code the subscriber
// got.
func (h *harness) sendCode(operator, ticket string, days int) string {
	h.t.Helper()
	h.mustDo(Request{Op: OpLookup, Operator: operator, Number: testNumber, Ticket: ticket, Days: days})
	return codeIn(h.t, h.sms.last(h.t).Text)
}

// entries is the access log, oldest first.
func (h *harness) entries() []audit.Entry {
	h.t.Helper()
	var out []audit.Entry
	err := audit.Scan(context.Background(), filepath.Join(h.dir, "audit"), audit.Filter{}, func(e audit.Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	return out
}

// lastEntry is the newest entry of the access log.
func (h *harness) lastEntry() audit.Entry {
	h.t.Helper()
	es := h.entries()
	if len(es) == 0 {
		h.t.Fatal("the access log is empty")
	}
	return es[len(es)-1]
}

// noNumberOnDisk fails the test if a file under the data dir holds the
// subscriber's number in any form.
func (h *harness) noNumberOnDisk() {
	h.t.Helper()
	filepath.WalkDir(h.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, form := range []string{testNumber, "86" + testNumber, otherNumber} {
			if bytes.Contains(b, []byte(form)) {
				h.t.Errorf("%s holds a number in clear", path)
			}
		}
		return nil
	})
}

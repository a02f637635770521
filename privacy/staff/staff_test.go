package staff

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestRoles runs every command as every kind of operator: what a role
// allows gets past the role check (and here succeeds), what it does not is
// ErrDenied with an ActDenied entry naming the operator.
func TestRoles(t *testing.T) {
	type caller struct {
		name, id string
		role     Role // "" for someone not in the registry
	}
	callers := []caller{
		{"agent", "ann", RoleAgent},
		{"auditor", "aud", RoleAuditor},
		{"admin", "root", RoleAdmin},
		{"unknown", "eve", ""},
	}
	commands := []struct {
		op  Op
		req func(h *harness, id string) Request
	}{
		{OpLookup, func(h *harness, id string) Request {
			return Request{Op: OpLookup, Operator: id, Number: testNumber, Ticket: "T-1", Days: 15}
		}},
		{OpConfirm, func(h *harness, id string) Request {
			code := "000000"
			if o, ok, _ := h.registry.Get(id); ok && o.Role.May(OpLookup) {
				code = h.sendCode(id, "T-1", 15)
			}
			return Request{Op: OpConfirm, Operator: id, Number: testNumber, Ticket: "T-1", Days: 15, Code: code}
		}},
		{OpErase, func(h *harness, id string) Request {
			return Request{Op: OpErase, Operator: id, Number: testNumber, Ticket: "T-1"}
		}},
		{OpOperatorsAdd, func(h *harness, id string) Request {
			return Request{Op: OpOperatorsAdd, Operator: id, ID: "newbie", Role: RoleAgent}
		}},
		{OpOperatorsRemove, func(h *harness, id string) Request {
			return Request{Op: OpOperatorsRemove, Operator: id, ID: "leaver"}
		}},
		{OpOperatorsList, func(h *harness, id string) Request {
			return Request{Op: OpOperatorsList, Operator: id}
		}},
		{OpAuditShow, func(h *harness, id string) Request {
			return Request{Op: OpAuditShow, Operator: id, Number: testNumber}
		}},
		{OpAuditVerify, func(h *harness, id string) Request {
			return Request{Op: OpAuditVerify, Operator: id}
		}},
	}
	for _, cmd := range commands {
		for _, c := range callers {
			t.Run(string(cmd.op)+"/"+c.name, func(t *testing.T) {
				h := newHarness(t, Options{})
				h.mustOperators("ann:agent", "aud:auditor", "root:admin", "leaver:agent")
				req := cmd.req(h, c.id)
				before := len(h.entries())
				resp, err := h.do(req)
				allowed := c.role != "" && c.role.May(cmd.op)
				if !allowed {
					if !errors.Is(err, ErrDenied) {
						t.Fatalf("got %v, want ErrDenied", err)
					}
					es := h.entries()
					if len(es) != before+1 {
						t.Fatalf("%d new entries, want the refusal", len(es)-before)
					}
					e := es[len(es)-1]
					if e.Action != audit.ActDenied || e.Actor != c.id || e.Outcome != "denied" {
						t.Errorf("entry %+v, want a denial by %s", e, c.id)
					}
					if cmd.op == OpLookup || cmd.op == OpConfirm || cmd.op == OpErase {
						if e.Masked != testMasked || e.Subject != audit.SubjectOf(h.ps.Pseudonym(mustParse(t, testNumber))) {
							t.Errorf("a refused %s does not say about whom: %+v", cmd.op, e)
						}
					}
					if resp.Itinerary != nil || resp.Erased != nil || resp.Entries != nil || resp.Operators != nil {
						t.Errorf("a refusal returned a result: %+v", resp)
					}
					if len(h.eraser.erased) != 0 {
						t.Error("a refused erase erased")
					}
					return
				}
				if err != nil {
					t.Fatalf("allowed, but: %v", err)
				}
				switch cmd.op {
				case OpConfirm:
					if resp.Itinerary == nil || len(resp.Itinerary.Places) != 3 {
						t.Errorf("no itinerary: %+v", resp)
					}
				case OpAuditShow:
					if resp.Entries == nil {
						t.Error("no entries")
					}
				case OpAuditVerify:
					if resp.Verify == nil || resp.Verify.Problem != "" {
						t.Errorf("verify: %+v", resp.Verify)
					}
				}
			})
		}
	}
}

func TestBootstrap(t *testing.T) {
	h := newHarness(t, Options{})
	// Nobody yet: list is open, everything else points at --bootstrap.
	if resp := h.mustDo(Request{Op: OpOperatorsList}); len(resp.Operators) != 0 {
		t.Fatalf("operators in an empty registry: %+v", resp.Operators)
	}
	_, err := h.do(Request{Op: OpOperatorsAdd, Operator: "root", ID: "root", Role: RoleAdmin})
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "--bootstrap") {
		t.Fatalf("add without --bootstrap: %v", err)
	}
	if _, err := h.do(Request{Op: OpOperatorsAdd, ID: "ann", Role: RoleAgent, Bootstrap: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bootstrapping an agent: %v", err)
	}
	resp := h.mustDo(Request{Op: OpOperatorsAdd, ID: "root", Role: RoleAdmin, Bootstrap: true})
	if len(resp.Operators) != 1 || resp.Operators[0].ID != "root" || resp.Operators[0].Role != RoleAdmin {
		t.Fatalf("bootstrap returned %+v", resp.Operators)
	}
	// Now there is an admin: a second bootstrap is refused and logged.
	if _, err := h.do(Request{Op: OpOperatorsAdd, ID: "mallory", Role: RoleAdmin, Bootstrap: true}); !errors.Is(err, ErrDenied) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if e := h.lastEntry(); e.Action != audit.ActDenied || e.Actor != "mallory" {
		t.Errorf("second bootstrap logged as %+v", e)
	}
	if _, err := h.do(Request{Op: OpOperatorsList}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("list without an operator once an admin exists: %v", err)
	}
	if _, err := h.do(Request{Op: OpOperatorsList, Operator: "mallory"}); !errors.Is(err, ErrDenied) {
		t.Fatalf("list by a stranger once an admin exists: %v", err)
	}
	h.mustDo(Request{Op: OpOperatorsAdd, Operator: "root", ID: "ann", Role: RoleAgent})
	if _, err := h.do(Request{Op: OpOperatorsAdd, Operator: "root", ID: "ann", Role: RoleAuditor}); !errors.Is(err, ErrInvalid) {
		t.Errorf("adding an existing ID: %v", err)
	}
	if _, err := h.do(Request{Op: OpOperatorsRemove, Operator: "root", ID: "root"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("removing the last admin: %v", err)
	}
	if _, err := h.do(Request{Op: OpOperatorsRemove, Operator: "root", ID: "nobody"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("removing an unknown operator: %v", err)
	}
	h.mustDo(Request{Op: OpOperatorsRemove, Operator: "root", ID: "ann"})
	ops := h.mustDo(Request{Op: OpOperatorsList, Operator: "root"}).Operators
	if len(ops) != 1 || ops[0].ID != "root" {
		t.Errorf("after removing ann: %+v", ops)
	}
	st, err := os.Stat(h.registry.Path())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("operators.json: %v, mode %v; want 0600", err, st.Mode())
	}
}

func TestRegistryRefusesOpenFile(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("root:admin")
	if err := os.Chmod(h.registry.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.do(Request{Op: OpOperatorsList, Operator: "root"}); !errors.Is(err, ErrRegistry) {
		t.Errorf("a world-readable registry: %v, want ErrRegistry", err)
	}
	if err := os.WriteFile(h.registry.Path(), []byte(`{"version":1,"operators":[{"id":"x","role":"god"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.registry.Get("x"); !errors.Is(err, ErrRegistry) {
		t.Errorf("an unknown role in the file: %v", err)
	}
}

func TestLookupFlow(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent")
	resp := h.mustDo(Request{Op: OpLookup, Operator: "ann", Number: "+86 138-0013-8000", Ticket: "T-42", Days: 30})
	cs := resp.CodeSent
	if cs == nil || cs.Masked != testMasked || cs.Ticket != "T-42" || cs.Days != 30 || !cs.Expires.Equal(h.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("code sent: %+v", cs)
	}
	msg := h.sms.last(t)
	code := codeIn(t, msg.Text)
	if msg.To != "+8613800138000" {
		t.Errorf("code went to %s", msg.To.Masked())
	}
	if want := codeText("zh", 30, "T-42", code, 10*time.Minute); msg.Text != want {
		t.Errorf("code SMS %q, want %q", msg.Text, want)
	}
	e := h.lastEntry()
	if e.Action != audit.ActCodeSent || e.Actor != "ann" || e.Role != audit.RoleAgent || e.Window != 30 || e.Ticket != "T-42" || e.Masked != testMasked {
		t.Errorf("code-sent entry %+v", e)
	}

	h.clock.Advance(9 * time.Minute)
	resp = h.mustDo(Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-42", Days: 30, Code: code})
	it := resp.Itinerary
	if it == nil || it.Masked != testMasked || it.Days != 30 || !it.Notified || len(it.Places) != 3 {
		t.Fatalf("itinerary %+v", it)
	}
	if p := it.Places[0]; p.NameZH != "河北省石家庄市" || p.NameEN != "Shijiazhuang, Hebei" || p.FirstDay != "2026-11-23" {
		t.Errorf("first place %+v", p)
	}
	if it.Last != "2026-11-27" || it.First != "2026-10-29" {
		t.Errorf("window %s..%s", it.First, it.Last)
	}
	e = h.lastEntry()
	if e.Action != audit.ActStaffLookup || e.Outcome != "granted" || e.Actor != "ann" || e.Window != 30 {
		t.Errorf("staff-lookup entry %+v", e)
	}
	if got, want := h.sms.last(t).Text, viewedText("zh", 30, "T-42"); got != want {
		t.Errorf("notification %q, want %q", got, want)
	}
	// Single use.
	if _, err := h.do(Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-42", Days: 30, Code: code}); !errors.Is(err, ErrCode) {
		t.Errorf("a used code again: %v", err)
	}
	if e := h.lastEntry(); e.Action != audit.ActStaffLookup || e.Outcome != "denied" {
		t.Errorf("reuse logged as %+v", e)
	}
	h.noNumberOnDisk()
}

func TestCodeRules(t *testing.T) {
	const ticket = "T-7"
	confirm := func(op, ticket string, days int, code string) Request {
		return Request{Op: OpConfirm, Operator: op, Number: testNumber, Ticket: ticket, Days: days, Code: code}
	}
	wrong := func(code string) string { return fmt.Sprintf("%06d", (mustAtoi(code)+1)%1_000_000) }

	t.Run("expired", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent")
		code := h.sendCode("ann", ticket, 15)
		h.clock.Advance(10 * time.Minute)
		_, err := h.do(confirm("ann", ticket, 15, code))
		if !errors.Is(err, ErrCode) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("an expired code: %v", err)
		}
		if e := h.lastEntry(); e.Action != audit.ActCodeFailed || e.Detail != "code expired" {
			t.Errorf("entry %+v", e)
		}
		if got, want := h.sms.last(t).Text, deniedText("zh", 15, ticket, true); got != want {
			t.Errorf("subscriber told %q, want %q", got, want)
		}
		if _, err := h.do(confirm("ann", ticket, 15, code)); !errors.Is(err, ErrCode) {
			t.Errorf("the expired code again: %v", err)
		}
	})
	t.Run("wrong operator", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent", "bob:agent")
		code := h.sendCode("ann", ticket, 15)
		for range 10 {
			if _, err := h.do(confirm("bob", ticket, 15, code)); !errors.Is(err, ErrCode) {
				t.Fatalf("another operator with the code: %v", err)
			}
		}
		if e := h.lastEntry(); e.Action != audit.ActStaffLookup || e.Outcome != "denied" || e.Actor != "bob" {
			t.Errorf("entry %+v", e)
		}
		// bob's tries cost ann's code nothing: bob was never told it.
		h.mustDo(confirm("ann", ticket, 15, code))
	})
	for _, tc := range []struct {
		name   string
		ticket string
		days   int
	}{
		{"wrong ticket", "T-8", 15},
		{"wrong window", ticket, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.mustOperators("ann:agent")
			code := h.sendCode("ann", ticket, 15)
			_, err := h.do(confirm("ann", tc.ticket, tc.days, code))
			if !errors.Is(err, ErrCode) || !strings.Contains(err.Error(), "4 tries left") {
				t.Fatalf("the right code under the %s: %v", tc.name, err)
			}
			if e := h.lastEntry(); e.Action != audit.ActCodeFailed || e.Detail != "wrong code, 4 tries left" {
				t.Errorf("entry %+v", e)
			}
			h.mustDo(confirm("ann", ticket, 15, code))
		})
	}
	t.Run("five wrong tries", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent")
		code := h.sendCode("ann", ticket, 15)
		sent := len(h.sms.all())
		for i := 4; i >= 1; i-- {
			_, err := h.do(confirm("ann", ticket, 15, wrong(code)))
			if !errors.Is(err, ErrCode) || !strings.Contains(err.Error(), fmt.Sprintf("%d tries left", i)) {
				t.Fatalf("wrong try with %d left: %v", i, err)
			}
		}
		if all := h.sms.all(); len(all) != sent+4 {
			t.Errorf("%d SMS for 4 wrong tries, want one each", len(all)-sent)
		} else if got, want := all[sent].Text, wrongText("zh", 15, ticket, 4); got != want {
			t.Errorf("subscriber told %q, want %q", got, want)
		}
		_, err := h.do(confirm("ann", ticket, 15, wrong(code)))
		if !errors.Is(err, ErrCode) || !strings.Contains(err.Error(), "no tries left") {
			t.Fatalf("fifth wrong try: %v", err)
		}
		if got, want := h.sms.last(t).Text, deniedText("zh", 15, ticket, false); got != want {
			t.Errorf("subscriber told %q, want %q", got, want)
		}
		if _, err := h.do(confirm("ann", ticket, 15, code)); !errors.Is(err, ErrCode) {
			t.Fatalf("the right code after five wrong ones: %v", err)
		}
		var failed int
		for _, e := range h.entries() {
			if e.Action == audit.ActCodeFailed {
				failed++
			}
		}
		if failed != 5 {
			t.Errorf("%d code-failed entries, want 5", failed)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent", "bob:agent")
		for i := range 3 {
			h.sendCode([]string{"ann", "bob", "ann"}[i], ticket, 15)
			h.clock.Advance(10 * time.Minute)
		}
		_, err := h.do(Request{Op: OpLookup, Operator: "bob", Number: testNumber, Ticket: ticket, Days: 15})
		if !errors.Is(err, ErrRateLimited) {
			t.Fatalf("a fourth code within the hour: %v", err)
		}
		if e := h.lastEntry(); e.Action != audit.ActDenied || !strings.Contains(e.Detail, "rate limit") {
			t.Errorf("entry %+v", e)
		}
		// Another number is not limited by this one.
		h.mustDo(Request{Op: OpLookup, Operator: "bob", Number: otherNumber, Ticket: ticket, Days: 15})
		h.clock.Advance(30 * time.Minute) // the first code is an hour old
		h.sendCode("bob", ticket, 15)
	})
	t.Run("reissue replaces", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent")
		first := h.sendCode("ann", ticket, 15)
		second := h.sendCode("ann", ticket, 15)
		if first == second {
			t.Skip("the two draws agree")
		}
		if _, err := h.do(confirm("ann", ticket, 15, first)); !errors.Is(err, ErrCode) {
			t.Errorf("a replaced code: %v", err)
		}
		h.mustDo(confirm("ann", ticket, 15, second))
	})
	t.Run("malformed code", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent")
		for _, c := range []string{"", "12345", "1234567", "12345a", "１２３４５６"} {
			if _, err := h.do(confirm("ann", ticket, 15, c)); !errors.Is(err, ErrInvalid) {
				t.Errorf("code %q: %v, want ErrInvalid", c, err)
			}
		}
	})
	t.Run("sweep", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.mustOperators("ann:agent")
		h.sendCode("ann", ticket, 15)
		if n, err := h.svc.Sweep(context.Background()); n != 0 || err != nil {
			t.Fatalf("sweep of a live code: %d, %v", n, err)
		}
		h.clock.Advance(71 * time.Minute)
		if n, err := h.svc.Sweep(context.Background()); n != 1 || err != nil || h.codes.len() != 0 {
			t.Fatalf("sweep after expiry and the rate window: %d, %v, %d left", n, err, h.codes.len())
		}
	})
}

func TestCodeNotSent(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent")
	h.sms.fail = errors.New("smsc down")
	_, err := h.do(Request{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15})
	if !errors.Is(err, ErrNotify) {
		t.Fatalf("lookup with the SMSC down: %v", err)
	}
	es := h.entries()
	if len(es) != 2 || es[0].Action != audit.ActCodeSent || es[1].Action != audit.ActCodeFailed {
		t.Errorf("entries %+v, want code-sent then code-failed", es)
	}
	h.sms.fail = nil
	if _, err := h.do(Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15, Code: "000000"}); !errors.Is(err, ErrCode) {
		t.Errorf("confirming a code that never went out: %v", err)
	}
}

func TestErase(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent")
	h.sendCode("ann", "T-1", 15)
	resp := h.mustDo(Request{Op: OpErase, Operator: "ann", Number: testNumber, Ticket: "T-9"})
	if resp.Erased == nil || resp.Erased.Masked != testMasked || resp.Erased.Ticket != "T-9" {
		t.Fatalf("erased %+v", resp.Erased)
	}
	sub := h.ps.Pseudonym(mustParse(t, testNumber))
	if len(h.eraser.erased) != 1 || h.eraser.erased[0] != sub || len(h.forgot.erased) != 1 {
		t.Errorf("erased %v, forgot %v", h.eraser.erased, h.forgot.erased)
	}
	if h.codes.len() != 0 {
		t.Error("the subscriber's code survived the erase")
	}
	if e := h.lastEntry(); e.Action != audit.ActErase || e.Outcome != "ok" || e.Ticket != "T-9" || e.Subject != audit.SubjectOf(sub) {
		t.Errorf("entry %+v", e)
	}

	h.eraser.fail = errors.New("disk on fire")
	if _, err := h.do(Request{Op: OpErase, Operator: "ann", Number: testNumber, Ticket: "T-10"}); err == nil {
		t.Fatal("a failed erase succeeded")
	}
	es := h.entries()
	if a, b := es[len(es)-2], es[len(es)-1]; a.Outcome != "ok" || b.Action != audit.ActErase || b.Outcome != "failed" {
		t.Errorf("a failed erase logged as %+v then %+v", a, b)
	}
}

func TestAuditFailsClosed(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent")
	code := h.sendCode("ann", "T-1", 15)
	sent := len(h.sms.all())
	h.log.Close() // every Append now fails
	_, err := h.do(Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15, Code: code})
	if err == nil {
		t.Fatal("an itinerary was shown without an access log entry")
	}
	if len(h.sms.all()) != sent {
		t.Error("the subscriber was told of a lookup that did not happen")
	}
	if _, err := h.do(Request{Op: OpLookup, Operator: "ann", Number: otherNumber, Ticket: "T-1", Days: 15}); err == nil {
		t.Fatal("a code went out without an access log entry")
	}
	if len(h.sms.all()) != sent {
		t.Error("a code SMS went out without an access log entry")
	}
	if _, err := h.do(Request{Op: OpErase, Operator: "ann", Number: testNumber, Ticket: "T-1"}); err == nil || len(h.eraser.erased) != 0 {
		t.Fatalf("an erase without an access log entry: %v", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent")
	for _, req := range []Request{
		{Op: "nope", Operator: "ann"},
		{Op: OpLookup, Operator: "ann", Number: "12", Ticket: "T", Days: 15},
		{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "", Days: 15},
		{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "INC-0012345", Days: 15},
		{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "T 1", Days: 15},
		{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "T", Days: 7},
		{Op: OpLookup, Operator: "ann", Number: testNumber, Ticket: "T", Days: 15, Lang: "fr"},
		{Op: OpLookup, Operator: "ann 2", Number: testNumber, Ticket: "T", Days: 15},
		{Op: OpLookup, Operator: "op13800138000", Number: testNumber, Ticket: "T", Days: 15},
		{Op: OpAuditShow, Operator: "ann", Action: "peek"},
	} {
		resp, err := h.do(req)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", req, err)
		}
		if strings.Contains(resp.Error, "13800138000") {
			t.Errorf("an error shows the number: %s", resp.Error)
		}
	}
	if n := len(h.entries()); n != 0 {
		t.Errorf("%d entries for requests that did nothing", n)
	}
	if n := len(h.sms.all()); n != 0 {
		t.Errorf("%d SMS for requests that did nothing", n)
	}
}

func TestAuditShowAndVerify(t *testing.T) {
	h := newHarness(t, Options{})
	h.mustOperators("ann:agent", "aud:auditor")
	code := h.sendCode("ann", "T-1", 15)
	h.mustDo(Request{Op: OpConfirm, Operator: "ann", Number: testNumber, Ticket: "T-1", Days: 15, Code: code})
	h.sendCode("ann", "T-2", 15)
	h.mustDo(Request{Op: OpLookup, Operator: "ann", Number: otherNumber, Ticket: "T-3", Days: 15})

	show := func(req Request) *Entries {
		t.Helper()
		req.Op, req.Operator = OpAuditShow, "aud"
		return h.mustDo(req).Entries
	}
	if es := show(Request{Number: testNumber}); len(es.Entries) != 3 {
		t.Errorf("by number: %d entries, want 3", len(es.Entries))
	}
	if es := show(Request{Action: audit.ActCodeSent}); len(es.Entries) != 3 {
		t.Errorf("by action: %d entries, want 3", len(es.Entries))
	}
	es := show(Request{Actor: "ann", Limit: 2})
	if len(es.Entries) != 2 || es.Omitted != 2 || es.Entries[1].Ticket != "T-3" || es.Entries[0].Ticket != "T-2" {
		t.Errorf("limit 2: %+v", es)
	}
	// Every action the log writes can be searched for.
	for _, a := range audit.Actions() {
		show(Request{Action: a})
	}
	if es := show(Request{Since: h.clock.Now().Add(time.Minute)}); len(es.Entries) != 0 {
		t.Errorf("since the future: %d entries", len(es.Entries))
	}

	v := h.mustDo(Request{Op: OpAuditVerify, Operator: "aud"}).Verify
	if v.Problem != "" || !v.DefaultKey || v.Report.Entries != 4 {
		t.Fatalf("verify: %+v", v)
	}
	held, err := h.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.log.Close()
	// Tamper with the second line.
	files, _ := filepath.Glob(filepath.Join(h.dir, "audit", "audit-*.jsonl"))
	b, _ := os.ReadFile(files[0])
	b = bytes.Replace(b, []byte(`"ticket":"T-1","outcome":"granted"`), []byte(`"ticket":"T-X","outcome":"granted"`), 1)
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The log is closed: denials cannot be logged, but verify still runs.
	h.log = reopen(t, h)
	v = h.mustDo(Request{Op: OpAuditVerify, Operator: "aud", VerifierKey: h.vkey, Checkpoint: held}).Verify
	if v.Problem == "" || v.Report.Bad == nil || v.Report.Bad.Seq != 2 || v.DefaultKey {
		t.Fatalf("a tampered log verified: %+v", v)
	}
}

// reopen points the harness's service at a fresh log dir, since the old
// one is tampered with and Open would refuse it.
func reopen(t *testing.T, h *harness) *audit.Log {
	t.Helper()
	signer, _, err := audit.LoadOrCreateSigner(filepath.Join(h.dir, "audit.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(filepath.Join(t.TempDir(), "audit2"), audit.Options{Signer: signer, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h.svc.deps.Audit = l
	return l
}

func TestRandomCode(t *testing.T) {
	// 0xFFFFFFFF and 4294000000 are at or past the largest multiple of a
	// million: they are drawn again, not folded onto low codes.
	r := bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xf1, 0x3d, 0x80, 0x00, 0x00, 0x00, 0x2a})
	code, err := randomCode(r)
	if err != nil || code != "000042" {
		t.Fatalf("randomCode = %q, %v; want 000042 after two rejections", code, err)
	}
	if _, err := randomCode(bytes.NewReader(bytes.Repeat([]byte{0xff}, 1000))); err == nil {
		t.Error("a source stuck out of range gave a code")
	}
	if _, err := randomCode(io.LimitReader(bytes.NewReader(nil), 0)); err == nil {
		t.Error("an empty source gave a code")
	}
	seen := map[string]bool{}
	for range 200 {
		c, err := randomCode(rand.Reader)
		if err != nil || !validCode(c) {
			t.Fatalf("%q, %v", c, err)
		}
		seen[c] = true
	}
	if len(seen) < 190 {
		t.Errorf("%d distinct codes in 200 draws", len(seen))
	}
}

// TestSMSGolden keeps every text a subscriber may get in testdata.
func TestSMSGolden(t *testing.T) {
	var b strings.Builder
	for _, lang := range []string{"zh", "en"} {
		for _, days := range []int{15, 30} {
			fmt.Fprintf(&b, "code %s %d: %s\n", lang, days, codeText(lang, days, "T-42", "123456", 10*time.Minute))
			fmt.Fprintf(&b, "viewed %s %d: %s\n", lang, days, viewedText(lang, days, "T-42"))
			fmt.Fprintf(&b, "wrong %s %d: %s\n", lang, days, wrongText(lang, days, "T-42", 3))
			fmt.Fprintf(&b, "denied %s %d: %s\n", lang, days, deniedText(lang, days, "T-42", false))
			fmt.Fprintf(&b, "expired %s %d: %s\n", lang, days, deniedText(lang, days, "T-42", true))
		}
	}
	golden(t, "sms.golden", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update and review the diff):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"ann", "zhang.wei@example.com", "op-17", "op13800138000", "T-138-0013", "", "-x", "a b", "工号"} {
		f.Add(s)
	}
	signer, _, err := audit.LoadOrCreateSigner(filepath.Join(f.TempDir(), "k"), nil)
	if err != nil {
		f.Fatal(err)
	}
	l, err := audit.Open(filepath.Join(f.TempDir(), "audit"), audit.Options{Signer: signer, NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	f.Fuzz(func(t *testing.T, s string) {
		for _, err := range []error{ValidID(s), validTicket(s)} {
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v", err)
				}
				continue
			}
			// Whatever passes, the access log takes.
			e := audit.Entry{Actor: "x", Role: audit.RoleAgent, Action: audit.ActDenied, Outcome: "denied", Ticket: s}
			if _, err := l.Append(context.Background(), e); err != nil {
				t.Fatalf("%q passed but the log refuses it: %v", s, err)
			}
		}
	})
}

func mustParse(tb testing.TB, s string) msisdn.Number {
	tb.Helper()
	n, err := msisdn.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

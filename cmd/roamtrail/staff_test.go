package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/privacy/staff"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// The subscriber of historyCSV, as the SMSC addresses them.
const (
	subNumber = "13800138000"
	subSMPP   = "8613800138000"
	subMasked = "138****8000"
)

var codeRE = regexp.MustCompile(`验证码(\d{6})|the code (\d{6})`)

// codeOf is the one-time code in an SMS.
func codeOf(t *testing.T, text string) string {
	t.Helper()
	m := codeRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no code in %q", text)
	}
	return m[1] + m[2]
}

// staffCmd runs a staff command in-process with --data-dir and fails the
// test if it fails.
func staffCmd(t *testing.T, data string, args ...string) string {
	t.Helper()
	out, stderr, err := runCmd(t, "", append([]string{args[0], "--data-dir", data}, args[1:]...)...)
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// staffCmdErr runs a staff command that must fail and returns its error.
func staffCmdErr(t *testing.T, data string, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCmd(t, "", append([]string{args[0], "--data-dir", data}, args[1:]...)...)
	if err == nil {
		t.Fatalf("%s succeeded:\n%s", strings.Join(args, " "), out)
	}
	return out, err
}

// staffCmd with a subcommand: the data dir goes after the subcommand.
func staffSub(t *testing.T, data string, cmd, subcmd string, args ...string) string {
	t.Helper()
	out, stderr, err := runCmd(t, "", append([]string{cmd, subcmd, "--data-dir", data}, args...)...)
	if err != nil {
		t.Fatalf("%s %s %s: %v\nstdout:\n%s\nstderr:\n%s", cmd, subcmd, strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// auditEntries reads the data dir's access log.
func auditEntries(t *testing.T, data string) []audit.Entry {
	t.Helper()
	var es []audit.Entry
	if err := audit.Scan(t.Context(), filepath.Join(data, "audit"), audit.Filter{}, func(e audit.Entry) error {
		es = append(es, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return es
}

func hasEntry(es []audit.Entry, action, outcome, actor string) bool {
	for _, e := range es {
		if e.Action == action && e.Outcome == outcome && e.Actor == actor {
			return true
		}
	}
	return false
}

// TestStaffViaService runs the staff commands while serve runs: each goes
// over the admin socket and is executed by the service, which sends the
// code and the notification over its own bind.
func TestStaffViaService(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)
	data := srv.dataDir
	via := fmt.Sprintf("via the running service (pid %d)\n", os.Getpid())

	out := staffSub(t, data, "operators", "add", "root", "--role", "admin", "--bootstrap")
	if !strings.HasPrefix(out, via) || !strings.Contains(out, "added root (admin)") {
		t.Fatalf("bootstrap:\n%s", out)
	}
	staffSub(t, data, "operators", "add", "--operator", "root", "ann", "--role", "agent")
	staffSub(t, data, "operators", "add", "--operator", "root", "--role", "auditor", "aud")

	// Step 1: the subscriber gets a code.
	out = staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-42", subNumber)
	if !strings.HasPrefix(out, via) || !strings.Contains(out, "code sent to "+subMasked) {
		t.Fatalf("lookup:\n%s", out)
	}
	if strings.Contains(out, subNumber) {
		t.Errorf("the output shows the number:\n%s", out)
	}
	mts := sim.waitTo(t, subSMPP, 1)
	code := codeOf(t, mts[0].Text)
	if want := fmt.Sprintf("客服正在申请查询您近15天的行程（工单T-42）。如您同意，请将验证码%s告知客服，10分钟内有效。", code); mts[0].Text != want || mts[0].From != "10086" {
		t.Errorf("code SMS %s: %q, want %q", mts[0].From, mts[0].Text, want)
	}

	// Step 2: the itinerary, and the subscriber is told.
	out = staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-42", "--code", code, subNumber)
	for _, want := range []string{via, "itinerary of " + subMasked + ", last 15 days", "PLACE", "北京市 Beijing", "河北省石家庄市 Shijiazhuang, Hebei", "told by SMS"} {
		if !strings.Contains(out, want) {
			t.Errorf("itinerary output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "保定") || strings.Contains(out, "日本") {
		t.Errorf("a place the rules exclude is shown:\n%s", out)
	}
	mts = sim.waitTo(t, subSMPP, 2)
	if want := "客服已凭您提供的验证码查询了您近15天的行程（工单T-42）。"; mts[1].Text != want {
		t.Errorf("notification %q, want %q", mts[1].Text, want)
	}
	// The code was single-use.
	if _, err := staffCmdErr(t, data, "lookup", "--operator", "ann", "--ticket", "T-42", "--code", code, subNumber); !errors.Is(err, staff.ErrCode) {
		t.Errorf("the code again: %v", err)
	}

	// An auditor may not look up; the refusal is logged.
	if _, err := staffCmdErr(t, data, "lookup", "--operator", "aud", "--ticket", "T-43", subNumber); !errors.Is(err, staff.ErrDenied) {
		t.Errorf("an auditor's lookup: %v", err)
	}

	// The auditor reads the log: by number, as JSON.
	out, stderr, err := runCmd(t, "", "audit", "show", "--data-dir", data, "--operator", "aud", "--number", subNumber, "--json")
	if err != nil {
		t.Fatalf("audit show: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "via the running service") {
		t.Errorf("audit show --json does not say how it ran on stderr: %q", stderr)
	}
	var shown []shownEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e shownEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit show --json line %q: %v", line, err)
		}
		shown = append(shown, e)
	}
	var actions []string
	for _, e := range shown {
		actions = append(actions, e.Action+"/"+e.Outcome+"/"+e.Actor)
		if e.Masked != subMasked {
			t.Errorf("entry %+v: masked %q", e, e.Masked)
		}
	}
	want := []string{"code-sent/ok/ann", "staff-lookup/granted/ann", "staff-lookup/denied/ann", "denied/denied/aud"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Errorf("entries about the subscriber:\n got %v\nwant %v", actions, want)
	}

	out = staffSub(t, data, "audit", "verify", "--operator", "aud")
	if !strings.HasPrefix(out, via) || !strings.Contains(out, "access log verified") {
		t.Errorf("audit verify:\n%s", out)
	}

	// Erase, through the service: the next lookup finds nothing.
	out = staffCmd(t, data, "erase", "--operator", "ann", "--ticket", "T-44", subNumber)
	if !strings.HasPrefix(out, via) || !strings.Contains(out, "erased every visit of "+subMasked+" (ticket T-44)") {
		t.Errorf("erase:\n%s", out)
	}
	staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-45", subNumber)
	code = codeOf(t, sim.waitTo(t, subSMPP, 3)[2].Text)
	out = staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-45", "--code", code, "--json", subNumber)
	var it staff.Itinerary
	if err := json.Unmarshal([]byte(out), &it); err != nil || it.Masked != subMasked || len(it.Places) != 0 {
		t.Errorf("after the erase, --json: %v\n%s", err, out)
	}

	es := auditEntries(t, data)
	for _, want := range []struct{ action, outcome, actor string }{
		{audit.ActCodeSent, "ok", "ann"}, {audit.ActStaffLookup, "granted", "ann"},
		{audit.ActDenied, "denied", "aud"}, {audit.ActErase, "ok", "ann"},
	} {
		if !hasEntry(es, want.action, want.outcome, want.actor) {
			t.Errorf("no %s/%s entry by %s", want.action, want.outcome, want.actor)
		}
	}

	// After SIGTERM the socket is gone and the commands open the data dir.
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "admin.sock")); !os.IsNotExist(err) {
		t.Errorf("admin.sock after serve exited: %v", err)
	}
	out = staffSub(t, data, "operators", "list", "--operator", "root")
	if !strings.HasPrefix(out, "directly on the data dir\n") || !strings.Contains(out, "ann") {
		t.Errorf("operators list without the service:\n%s", out)
	}
}

// TestStaffDirect runs the staff commands with no service: they open the
// data dir, and lookup binds to the SMSC given with --smsc itself.
func TestStaffDirect(t *testing.T) {
	data := ingestHistory(t)
	sim := startSim(t, smsc.Options{})
	const direct = "directly on the data dir\n"

	out := staffSub(t, data, "operators", "list")
	if !strings.HasPrefix(out, direct) || !strings.Contains(out, "no operators yet") {
		t.Fatalf("list on a new data dir:\n%s", out)
	}
	staffSub(t, data, "operators", "add", "--role", "admin", "--bootstrap", "root")
	staffSub(t, data, "operators", "add", "--operator", "root", "--role", "agent", "ann")
	out = staffSub(t, data, "operators", "list", "--operator", "root")
	if !regexp.MustCompile(`(?m)^ann +agent +\d{4}-`).MatchString(out) {
		t.Errorf("operators list:\n%s", out)
	}

	// Without a service and without an SMSC nothing can be sent: refused
	// before anything happens.
	before := len(auditEntries(t, data))
	_, err := staffCmdErr(t, data, "lookup", "--operator", "ann", "--ticket", "T-1", subNumber)
	if err == nil || !strings.Contains(err.Error(), "no SMSC is configured") {
		t.Fatalf("lookup without an SMSC: %v", err)
	}
	if n := len(auditEntries(t, data)); n != before {
		t.Errorf("a refused lookup left %d entries", n-before)
	}

	out = staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-1", "--days", "30", "--smsc", sim.Addr(), "--lang", "en", subNumber)
	if !strings.HasPrefix(out, direct) || !strings.Contains(out, "code sent to "+subMasked+" (ticket T-1, last 30 days)") {
		t.Fatalf("lookup:\n%s", out)
	}
	mts := sim.waitTo(t, subSMPP, 1)
	if !strings.HasPrefix(mts[0].Text, "Customer service asks to see where your phone has been in the last 30 days (ticket T-1).") {
		t.Errorf("code SMS %q", mts[0].Text)
	}
	code := codeOf(t, mts[0].Text)

	// A wrong code costs a try and is logged; the right one works after it.
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1_000_000)
	if _, err := staffCmdErr(t, data, "lookup", "--operator", "ann", "--ticket", "T-1", "--days", "30", "--code", wrong, "--smsc", sim.Addr(), subNumber); !errors.Is(err, staff.ErrCode) || !strings.Contains(err.Error(), "4 tries left") {
		t.Fatalf("a wrong code: %v", err)
	}
	// The subscriber is told of the wrong try too.
	mts = sim.waitTo(t, subSMPP, 2)
	if want := "Customer service entered a wrong code for seeing where your phone has been in the last 30 days (ticket T-1); 4 tries left."; !strings.HasPrefix(mts[1].Text, want) {
		t.Errorf("wrong-code notification %q", mts[1].Text)
	}
	// Flags after the number work too.
	out = staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-1", subNumber, "--days", "30", "--code", code, "--smsc", sim.Addr())
	for _, want := range []string{direct, "last 30 days", "日本 Japan", "北京市 Beijing"} {
		if !strings.Contains(out, want) {
			t.Errorf("itinerary lacks %q:\n%s", want, out)
		}
	}
	mts = sim.waitTo(t, subSMPP, 3)
	if want := "With your code, customer service viewed where your phone has been in the last 30 days (ticket T-1)."; mts[2].Text != want {
		t.Errorf("notification %q", mts[2].Text)
	}

	es := auditEntries(t, data)
	if !hasEntry(es, audit.ActCodeFailed, "failed", "ann") || !hasEntry(es, audit.ActStaffLookup, "granted", "ann") {
		t.Errorf("entries %+v", es)
	}
	for _, e := range es {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), subNumber) {
			t.Errorf("an entry holds the number: %s", b)
		}
	}

	staffSub(t, data, "operators", "add", "--operator", "root", "--role", "auditor", "aud")
	out = staffSub(t, data, "audit", "show", "--operator", "aud", "--action", "staff-lookup")
	if !strings.HasPrefix(out, direct) || !regexp.MustCompile(`(?m)^\d+ +\S+ \S+ +ann +agent +staff-lookup +138\*\*\*\*8000 +30 +T-1 +granted`).MatchString(out) {
		t.Errorf("audit show:\n%s", out)
	}
	out = staffSub(t, data, "audit", "verify", "--operator", "aud")
	if !strings.Contains(out, "access log verified") {
		t.Fatalf("audit verify:\n%s", out)
	}

	// Tamper with the log: verify names the first bad entry and exits 2.
	files, _ := filepath.Glob(filepath.Join(data, "audit", "audit-*.jsonl"))
	b, _ := os.ReadFile(files[0])
	b = []byte(strings.Replace(string(b), `"outcome":"granted"`, `"outcome":"denied!"`, 1))
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCmd(t, "", "audit", "verify", "--data-dir", data, "--operator", "aud")
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != exitLogBad {
		t.Fatalf("verify of a tampered log: %v, want exit %d", err, exitLogBad)
	}
	if !strings.Contains(out, "FAILED verification at audit-") || !strings.Contains(out, "(seq ") {
		t.Errorf("verify does not name the bad entry:\n%s", out)
	}
}

// ingestHistory makes a data dir holding historyCSV.
func ingestHistory(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	if _, stderr, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", data, "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	return data
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStaffRolesCLI runs every staff command as every kind of operator on
// the data dir: a role that may not is refused with "not allowed" and the
// refusal is logged; one that may gets past the check.
func TestStaffRolesCLI(t *testing.T) {
	data := ingestHistory(t)
	sim := startSim(t, smsc.Options{})
	staffSub(t, data, "operators", "add", "--role", "admin", "--bootstrap", "root")
	for _, op := range []string{"ann:agent", "aud:auditor", "leaver1:agent", "leaver2:agent", "leaver3:agent"} {
		id, role, _ := strings.Cut(op, ":")
		staffSub(t, data, "operators", "add", "--operator", "root", "--role", role, id)
	}
	smscFlag := []string{"--smsc", sim.Addr()}
	commands := []struct {
		name string
		args func(id string, i int) []string
		ok   []string // roles allowed
	}{
		{"lookup", func(id string, i int) []string {
			return append([]string{"lookup", "--operator", id, "--ticket", "T-1", fmt.Sprintf("1380013800%d", i)}, smscFlag...)
		}, []string{"agent", "admin"}},
		{"lookup --code", func(id string, i int) []string {
			// No code is pending: past the role check this is "code not accepted".
			return append([]string{"lookup", "--operator", id, "--ticket", "T-1", "--code", "123456", subNumber}, smscFlag...)
		}, []string{"agent", "admin"}},
		{"erase", func(id string, i int) []string {
			return []string{"erase", "--operator", id, "--ticket", "T-1", fmt.Sprintf("1390013900%d", i)}
		}, []string{"agent", "admin"}},
		{"operators add", func(id string, i int) []string {
			return []string{"operators", "add", "--operator", id, "--role", "agent", fmt.Sprintf("new%d", i)}
		}, []string{"admin"}},
		{"operators remove", func(id string, i int) []string {
			return []string{"operators", "remove", "--operator", id, fmt.Sprintf("leaver%d", i)}
		}, []string{"admin"}},
		{"operators list", func(id string, i int) []string {
			return []string{"operators", "list", "--operator", id}
		}, []string{"admin"}},
		{"audit show", func(id string, i int) []string {
			return []string{"audit", "show", "--operator", id}
		}, []string{"auditor", "admin"}},
		{"audit verify", func(id string, i int) []string {
			return []string{"audit", "verify", "--operator", id}
		}, []string{"auditor", "admin"}},
	}
	callers := []struct{ id, role string }{{"ann", "agent"}, {"aud", "auditor"}, {"root", "admin"}, {"eve", "unknown"}}
	for _, cmd := range commands {
		allowedSeen := 0
		for _, c := range callers {
			t.Run(strings.ReplaceAll(cmd.name, " ", "_")+"/"+c.role, func(t *testing.T) {
				allowed := strings.Contains(strings.Join(cmd.ok, " "), c.role)
				i := 0
				if allowed {
					allowedSeen++
					i = allowedSeen
				}
				args := cmd.args(c.id, i)
				// The data dir goes after the (sub)command's name.
				at := 1
				if args[0] == "operators" || args[0] == "audit" {
					at = 2
				}
				args = append(append(append([]string{}, args[:at]...), "--data-dir", data), args[at:]...)
				before := len(auditEntries(t, data))
				out, stderr, err := runCmd(t, "", args...)
				es := auditEntries(t, data)
				if !allowed {
					if err == nil || !strings.Contains(err.Error(), "not allowed") {
						t.Fatalf("got %v, want a refusal\n%s%s", err, out, stderr)
					}
					if len(es) != before+1 || es[len(es)-1].Action != audit.ActDenied || es[len(es)-1].Actor != c.id {
						t.Errorf("the refusal is not the log's last entry: %+v", es[before:])
					}
					return
				}
				if err != nil && !(cmd.name == "lookup --code" && errors.Is(err, staff.ErrCode)) {
					t.Fatalf("allowed, but: %v\n%s%s", err, out, stderr)
				}
				if len(es) > before && es[len(es)-1].Action == audit.ActDenied {
					t.Errorf("an allowed command logged a refusal: %+v", es[len(es)-1])
				}
			})
		}
	}
}

// TestStaffDirectEraseClearsRedis: with no service running, an erase given
// serve's --redis-url clears the subscriber's gateway state there too.
func TestStaffDirectEraseClearsRedis(t *testing.T) {
	data := ingestHistory(t)
	url := redisURL(t)
	prefix := redisPrefix(t, url)
	r, err := state.NewRedis(t.Context(), state.RedisOptions{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key, err := privacy.LoadOrCreateKey(filepath.Join(data, "pseudonym.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := privacy.NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := msisdn.Parse(subNumber)
	if err != nil {
		t.Fatal(err)
	}
	sub := ps.Pseudonym(n)
	if err := r.Ask(t.Context(), sub, state.Request{Nonce: "job-1", Days: 15}, time.Minute); err != nil {
		t.Fatal(err)
	}
	staffSub(t, data, "operators", "add", "--role", "admin", "--bootstrap", "root")
	staffSub(t, data, "operators", "add", "--operator", "root", "--role", "agent", "ann")
	out := staffCmd(t, data, "erase", "--operator", "ann", "--ticket", "T-9", "--redis-url", url, "--redis-prefix", prefix, subNumber)
	if !strings.Contains(out, "erased every visit") {
		t.Fatalf("erase:\n%s", out)
	}
	d, err := r.Dialog(t.Context(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if d.Pending != nil || d.Token != "" {
		t.Fatalf("the pending request survived the erase: %+v", d)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// The privacy tests: no subscriber number is ever written anywhere the
// service writes (data dir, logs, metrics), and no SMS goes to anyone but a
// subscriber who texted or the subject of a staff lookup.

// privacyHistory is a 30-day history for each number: home in Beijing,
// a full day in Shijiazhuang three days ago.
func privacyHistory(now time.Time, numbers ...string) string {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	day := func(ago, hh, mm int) string {
		d := now.In(loc).AddDate(0, 0, -ago)
		return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, loc).Format(time.RFC3339)
	}
	var b strings.Builder
	b.WriteString("msisdn,time,region\n")
	for _, n := range numbers {
		for ago := 0; ago < 30; ago++ {
			fmt.Fprintf(&b, "%s,%s,110100\n", n, day(ago, 7, 0))
			fmt.Fprintf(&b, "%s,%s,110100\n", n, day(ago, 22, 0))
		}
		fmt.Fprintf(&b, "%s,%s,130100\n", n, day(3, 9, 0))
		fmt.Fprintf(&b, "%s,%s,130100\n", n, day(3, 18, 0))
	}
	return b.String()
}

// startServeDebug is startServe on an existing data dir with
// --log-level debug, so that every log line serve can write is written.
func startServeDebug(t *testing.T, smscAddr, dataDir string) *serveProc {
	t.Helper()
	p := &serveProc{t: t, dataDir: dataDir, stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.httpAddr = freeAddr(t)
	args := []string{"roamtrail", "--log-level", "debug", "serve", "--smsc", smscAddr, "--data-dir", dataDir, "--http", p.httpAddr}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	stdout := &syncBuffer{}
	go func() { p.done <- run(ctx, args, strings.NewReader(""), stdout, p.stderr) }()
	p.waitHTTP(t)
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("serve exited with %v", err)
		}
		if s := stdout.String(); s != "" {
			t.Logf("serve stdout:\n%s", s)
		}
	})
	return p
}

// outputs is every stdout and stderr a test saw, by name.
type outputs struct {
	t    *testing.T
	data string
	all  []struct{ name, text string }
}

func (o *outputs) add(name, text string) {
	o.all = append(o.all, struct{ name, text string }{name, text})
}

// cmd runs a command with --log-level debug, keeps its output and fails
// the test if it fails.
func (o *outputs) cmd(stdin string, args ...string) string {
	o.t.Helper()
	out, stderr, err := runCmd(o.t, stdin, append([]string{"--log-level", "debug"}, args...)...)
	name := strings.Join(args, " ")
	o.add(name+" (stdout)", out)
	o.add(name+" (stderr)", stderr)
	if err != nil {
		o.t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, err, out, stderr)
	}
	return out
}

// staff runs a staff command with --data-dir after the command's words.
func (o *outputs) staff(words int, args ...string) string {
	o.t.Helper()
	a := append(append(append([]string{}, args[:words]...), "--data-dir", o.data), args[words:]...)
	return o.cmd("", a...)
}

// canaryForms are the ways a number could be written down.
func canaryForms(n string) []string {
	return []string{"+86" + n, "86" + n, n, n[len(n)-8:]}
}

func masked(n string) string { return n[:3] + "****" + n[len(n)-4:] }

// TestCanaryNumbersNeverStored runs every flow for three canary numbers and
// then looks for them, in every form, in every byte of the data dir, in
// every line serve and the commands wrote, and in /metrics.
func TestCanaryNumbersNeverStored(t *testing.T) {
	canaries := []string{"13912345678", "13898765432", "15011112222"}
	const opID = "canaryroot"

	data := filepath.Join(t.TempDir(), "data")
	o := &outputs{t: t, data: data}
	o.cmd(privacyHistory(time.Now(), canaries...), "ingest", "--data-dir", data, "-")

	sim := startSim(t, smsc.Options{})
	srv := startServeDebug(t, sim.Addr(), data)
	waitBound(t, sim, 1)
	h := &gatewayHarness{t: t, sim: sim, srv: srv}

	o.staff(2, "operators", "add", opID, "--role", "admin", "--bootstrap")
	o.staff(2, "operators", "add", "--operator", opID, "canaryann", "--role", "agent")

	for i, n := range canaries {
		smpp := "86" + n
		from := smpp
		if i == 1 {
			from = n // the SMSC may give the number without the country code
		}
		reply := func(text string) string {
			t.Helper()
			mts := h.send(from, text)
			if len(mts) != 1 || mts[0].To != smpp {
				t.Fatalf("%s %q: want one reply to %s, got:\n%s", n, text, smpp, mtList(mts))
			}
			return mts[0].Text
		}
		reply("CXMYD")
		if got := reply("Y"); !strings.Contains(got, "北京市") {
			t.Errorf("%s: itinerary %q", n, got)
		}
		reply("TRIP 30")
		if got := reply("Y"); !strings.Contains(got, "Beijing") {
			t.Errorf("%s: 30-day itinerary %q", n, got)
		}

		// A staff lookup: the code goes by SMS, then the itinerary.
		before := len(sim.to(smpp))
		ticket := fmt.Sprintf("T-%d", 100+i)
		out := o.staff(1, "lookup", "--operator", "canaryann", "--ticket", ticket, n)
		if !strings.Contains(out, "code sent to "+masked(n)) {
			t.Fatalf("lookup %s:\n%s", n, out)
		}
		code := codeOf(t, sim.waitTo(t, smpp, before+1)[before].Text)
		out = o.staff(1, "lookup", "--operator", "canaryann", "--ticket", ticket, "--code", code, n)
		if !strings.Contains(out, "itinerary of "+masked(n)) || !strings.Contains(out, "北京市 Beijing") {
			t.Fatalf("lookup --code %s:\n%s", n, out)
		}
		sim.waitTo(t, smpp, before+2) // the notification

		reply("JL")
		reply("TD")
		reply("KT")
		out = o.staff(1, "erase", "--operator", "canaryann", "--ticket", fmt.Sprintf("T-%d", 200+i), n)
		if !strings.Contains(out, "erased every visit of "+masked(n)) {
			t.Errorf("erase %s:\n%s", n, out)
		}
	}

	resp, err := http.Get("http://" + srv.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(metrics) == 0 {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	o.add("serve (stderr)", srv.stderr.String())
	o.add("/metrics", string(metrics))
	if !strings.Contains(srv.stderr.String(), `"level":"debug"`) {
		t.Errorf("serve wrote no debug line: is the log level applied?\n%s", srv.stderr.String())
	}

	// (a) Every byte of every file under the data dir.
	files := map[string][]byte{}
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, path)
		files[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("only %d files in the data dir", len(files))
	}
	// The scan sees what is there: the operator IDs are in operators.json.
	if b := files["operators.json"]; !strings.Contains(string(b), opID) || !strings.Contains(string(b), "canaryann") {
		t.Fatalf("operators.json lacks the operator IDs: the scan is broken:\n%s", b)
	}
	var names []string
	for rel, b := range files {
		names = append(names, rel)
		for _, n := range canaries {
			for _, form := range canaryForms(n) {
				if i := strings.Index(string(b), form); i >= 0 {
					lo, hi := max(0, i-40), min(len(b), i+len(form)+40)
					t.Errorf("data dir file %s holds %q at byte %d: %q", rel, form, i, b[lo:hi])
				}
			}
		}
	}
	t.Logf("scanned %d files in the data dir: %s", len(files), strings.Join(names, " "))

	// (b) and (c): every output, line by line, and /metrics.
	for _, out := range o.all {
		for ln, line := range strings.Split(out.text, "\n") {
			for _, n := range canaries {
				for _, form := range canaryForms(n) {
					if strings.Contains(line, form) {
						t.Errorf("%s line %d holds %q: %s", out.name, ln+1, form, line)
					}
				}
			}
		}
	}
}

// TestEverySMSWentToASenderOrALookupSubject: in a mixed run every MT went
// to a number that texted or to the subject of a staff lookup; a
// subscriber with history who did neither got nothing.
func TestEverySMSWentToASenderOrALookupSubject(t *testing.T) {
	const (
		asker    = "13700000001" // history; asks and consents
		decline  = "13700000002" // history; asks and declines
		chatty   = "13700000003" // history; help and garbage
		stranger = "13700000004" // no history; Y with nothing pending
		subject  = "13700000005" // history; never texts; looked up by staff
		silent   = "13700000006" // history; never texts; nobody looks
	)
	data := filepath.Join(t.TempDir(), "data")
	if _, stderr, err := runCmd(t, privacyHistory(time.Now(), asker, decline, chatty, subject, silent), "ingest", "--data-dir", data, "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr(), dataDir: data})
	waitBound(t, sim, 1)
	staffSub(t, data, "operators", "add", "root", "--role", "admin", "--bootstrap")
	staffSub(t, data, "operators", "add", "--operator", "root", "ann", "--role", "agent")

	senders := map[string]bool{}
	mo := func(from, text string) {
		t.Helper()
		senders[strings.TrimPrefix(strings.TrimPrefix(from, "+"), "86")] = true
		sim.inject(t, from, text)
	}
	mo("86"+asker, "CXMYD")
	mo("86"+decline, "TRIP 30")
	mo(chatty, "help")
	mo("86"+stranger, "Y")
	// Garbage in the other language: a second English help within the
	// dedup window would be taken for a redelivery of the first.
	mo("86"+chatty, "嗯嗯啊啊？？")
	sim.waitTo(t, "86"+asker, 1)
	sim.waitTo(t, "86"+decline, 1)
	mo("86"+asker, "Y")
	mo("86"+decline, "N")
	mo("86"+stranger, "%%%")
	mo(chatty, "JL")

	// A staff lookup of a subscriber who never texted.
	staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-7", subject)
	code := codeOf(t, sim.waitTo(t, "86"+subject, 1)[0].Text)
	staffCmd(t, data, "lookup", "--operator", "ann", "--ticket", "T-7", "--code", code, subject)
	sim.waitTo(t, "86"+subject, 2)

	// Every MO answered, then quiet: no MT is still coming.
	sim.waitTo(t, "86"+asker, 2)
	sim.waitTo(t, "86"+decline, 2)
	sim.waitTo(t, "86"+chatty, 3)
	sim.waitTo(t, "86"+stranger, 2)
	all := sim.collect(0, quietFor, quietFor)
	if err := srv.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	all = append(all, sim.since(len(all))...)

	allowed := map[string]bool{"86" + subject: true}
	for n := range senders {
		allowed["86"+n] = true
	}
	for _, mt := range all {
		if !allowed[mt.To] {
			t.Errorf("an MT to %s, who neither texted nor was looked up: %q", mt.To, mt.Text)
		}
		if mt.From != "10086" {
			t.Errorf("an MT from %s to %s: %q", mt.From, mt.To, mt.Text)
		}
	}
	if got := sim.to("86" + silent); len(got) != 0 {
		t.Errorf("the silent subscriber got:\n%s", mtList(got))
	}
	if got := sim.to(silent); len(got) != 0 {
		t.Errorf("the silent subscriber got:\n%s", mtList(got))
	}
	if len(all) < 11 {
		t.Errorf("only %d MT in the run:\n%s", len(all), mtList(all))
	}
	t.Logf("%d MT, all to senders or the lookup subject:\n%s", len(all), mtList(all))
}

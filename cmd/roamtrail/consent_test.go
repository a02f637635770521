package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/smsgw"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
	"github.com/roamtrail/roamtrail/store"
)

var (
	_ smsgw.Consent   = (*store.DB)(nil)
	_ smsgw.AccessLog = accessLog{}
)

// The privacy commands end to end: TD, KT and JL over SMPP, ingest and
// purge against consent, a reassignment, and what the access log holds.

// phone is one subscriber texting a running serve.
type phone struct {
	t      *testing.T
	sim    *simHarness
	number string
}

// say sends text and returns the one reply.
func (p phone) say(text string) string {
	p.t.Helper()
	mark := p.sim.mark()
	p.sim.inject(p.t, p.number, text)
	mts := p.sim.collect(mark, 5*time.Second, 300*time.Millisecond)
	if len(mts) != 1 {
		p.t.Fatalf("%s sent %q: %d replies:\n%s", p.number, text, len(mts), mtList(mts))
	}
	return mts[0].Text
}

// accessLogEntries reads a data dir's whole access log.
func accessLogEntries(t *testing.T, dataDir string) []audit.Entry {
	t.Helper()
	var es []audit.Entry
	err := audit.Scan(context.Background(), auditDir(dataDir), audit.Filter{}, func(e audit.Entry) error {
		es = append(es, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// withAction keeps the entries of action.
func withAction(es []audit.Entry, action string) []audit.Entry {
	var out []audit.Entry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

const noRecordZH = "根据您的授权查询，近15天内暂无您到达或途经的地点记录。"

// historyRows is how many rows historyCSV has now (all of 13800138000,
// all within 30 days): fewer before 22:00 in Shanghai, when today's later
// sightings are still to come.
func historyRows() int { return strings.Count(historyCSV(time.Now()), "\n") - 1 }

func TestSelfQueryInAccessLog(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)
	alice := phone{t, sim, "8613800138000"}
	alice.say("CXMYD")
	itin := alice.say("Y")
	if !strings.Contains(itin, "北京市") {
		t.Fatalf("itinerary %q", itin)
	}
	// JL lists it: today, by the subscriber, 15 days.
	if got, want := alice.say("JL"), `^您的行程数据最近1次被查询：\d+月\d+日 \d\d:\d\d 本人查询近15天。$`; !regexp.MustCompile(want).MatchString(got) {
		t.Errorf("JL: %q, want %s", got, want)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	es := withAction(accessLogEntries(t, srv.dataDir), audit.ActSelfQuery)
	if len(es) != 1 {
		t.Fatalf("%d self-query entries, want 1", len(es))
	}
	if e := es[0]; e.Actor != audit.ActorSelf || e.Role != audit.RoleSubscriber || e.Masked != "138****8000" || e.Window != 15 || e.Outcome != "ok" || len(e.Subject) != 32 {
		t.Errorf("entry %+v", e)
	}
	// Nothing in the audit dir holds the number or the itinerary.
	files, _ := filepath.Glob(filepath.Join(auditDir(srv.dataDir), "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{"13800138000", "北京", "石家庄", itin} {
			if strings.Contains(string(b), leak) {
				t.Errorf("%s holds %q", filepath.Base(f), leak)
			}
		}
	}
	// The shutdown wrote a signed checkpoint of it.
	if _, err := os.Stat(filepath.Join(auditDir(srv.dataDir), "checkpoint.latest")); err != nil {
		t.Errorf("no checkpoint after shutdown: %v", err)
	}
}

func TestIngestAfterOptOut(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)
	alice := phone{t, sim, "8613800138000"}
	if got := alice.say("TD"); !strings.HasPrefix(got, "已为您退订") {
		t.Fatalf("TD: %q", got)
	}
	// Erased at once: a request finds recording off.
	if got := alice.say("CXMYD"); !strings.HasPrefix(got, "您的行程记录未开通或已退订") {
		t.Fatalf("CXMYD after TD: %q", got)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	// The same events again: every one of hers is dropped and counted.
	out, stderr, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", srv.dataDir, "-")
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	if want := fmt.Sprintf("0 accepted, 0 rejected, 0 too old, 0 in the future, %d without consent; 0 subscriber-days written", historyRows()); !strings.Contains(out, want) {
		t.Errorf("ingest after TD: %q, want %q", out, want)
	}
	es := accessLogEntries(t, srv.dataDir)
	if got := withAction(es, audit.ActOptOut); len(got) != 1 || got[0].Masked != "138****8000" {
		t.Errorf("opt-out entries %+v", got)
	}
	ingests := withAction(es, audit.ActIngest)
	if len(ingests) != 2 || !strings.Contains(ingests[1].Detail, fmt.Sprintf("no_consent=%d", historyRows())) || ingests[1].Subject != "" {
		t.Errorf("ingest entries %+v", ingests)
	}
	out, _, err = runCmd(t, "", "purge", "--data-dir", srv.dataDir)
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	if got := withAction(accessLogEntries(t, srv.dataDir), audit.ActPurge); len(got) != 2 { // serve's at start, and this one
		t.Errorf("%d purge entries, want 2: %+v", len(got), got)
	}
}

func TestCollectOptedIn(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	collect := []string{"--collect", "opted-in"}
	out, _, err := runCmd(t, historyCSV(time.Now()), append([]string{"ingest", "--data-dir", dataDir}, append(collect, "-")...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("%d without consent", historyRows())) {
		t.Fatalf("nobody opted in, yet: %s", out)
	}
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr(), dataDir: dataDir, args: collect})
	waitBound(t, sim, 1)
	alice := phone{t, sim, "8613800138000"}
	if got := alice.say("CXMYD"); !strings.HasPrefix(got, "您的行程记录未开通或已退订") {
		t.Fatalf("CXMYD before KT: %q", got)
	}
	if got := alice.say("KT"); !strings.HasPrefix(got, "已为您开通") {
		t.Fatalf("KT: %q", got)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	// From the opt-in on, her events are kept; those before it are not.
	now := time.Now()
	csv := "msisdn,time,region\n" +
		"13800138000," + now.Add(-time.Hour).Format(time.RFC3339) + ",440\n" +
		"13800138000," + now.Add(time.Second).Format(time.RFC3339) + ",440\n" +
		"13900139000," + now.Add(time.Second).Format(time.RFC3339) + ",440\n"
	out, _, err = runCmd(t, csv, append([]string{"ingest", "--data-dir", dataDir}, append(collect, "-")...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 accepted") || !strings.Contains(out, "2 without consent") {
		t.Fatalf("ingest after KT: %s", out)
	}
	srv = startServe(t, serveConfig{smsc: sim.Addr(), dataDir: dataDir, args: collect})
	waitBound(t, sim, 1)
	alice.say("CXMYD")
	if got, want := alice.say("Y"), "根据您的授权查询，您于近15天内到达或途经：日本。"; got != want {
		t.Errorf("itinerary %q, want %q", got, want)
	}
}

func TestReassignedHidesHistory(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)
	alice := phone{t, sim, "8613800138000"}
	alice.say("CXMYD")
	if got := alice.say("Y"); !strings.Contains(got, "北京市") {
		t.Fatalf("the old holder's itinerary: %q", got)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	// The number changes hands now (a second on, past the old holder's
	// entries, which the log keeps to the microsecond).
	at := time.Now().Add(time.Second).Format(time.RFC3339)
	if _, _, err := runCmd(t, "", "subscriber", "reassigned", "13800138000", "--data-dir", srv.dataDir); err == nil || !strings.Contains(err.Error(), "--at") {
		t.Errorf("without --at: %v", err)
	}
	if _, _, err := runCmd(t, "", "subscriber", "reassigned", "13800138000", "--at", "yesterday", "--data-dir", srv.dataDir); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("--at yesterday: %v", err)
	}
	out, stderr, err := runCmd(t, "", "subscriber", "reassigned", "13800138000", "--at", at, "--data-dir", srv.dataDir)
	if err != nil {
		t.Fatalf("subscriber reassigned: %v\n%s", err, stderr)
	}
	if strings.Contains(out, "13800138000") || !strings.Contains(out, "138****8000") {
		t.Errorf("output %q", out)
	}
	if got := withAction(accessLogEntries(t, srv.dataDir), audit.ActReassigned); len(got) != 1 || got[0].Masked != "138****8000" || got[0].Outcome != "ok" {
		t.Errorf("reassigned entries %+v", got)
	}
	// Late events of the old holder are dropped at ingest.
	out, _, err = runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", srv.dataDir, "-")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`[1-9]\d* without consent`).MatchString(out) {
		t.Errorf("ingest after the reassignment dropped nothing: %s", out)
	}

	srv = startServe(t, serveConfig{smsc: sim.Addr(), dataDir: srv.dataDir})
	waitBound(t, sim, 1)
	// The new holder sees neither the old holder's places nor their
	// lookups.
	if got := alice.say("JL"); got != "没有查询您行程数据的记录。" {
		t.Errorf("the new holder's JL: %q", got)
	}
	alice.say("CXMYD")
	if got := alice.say("Y"); got != noRecordZH {
		t.Errorf("the new holder's itinerary: %q, want %q", got, noRecordZH)
	}
}

// TestReassignedWhileServing: with serve running, subscriber reassigned is
// done by the service over its admin socket, and takes effect at once.
func TestReassignedWhileServing(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	srv := startServe(t, serveConfig{smsc: sim.Addr()})
	waitBound(t, sim, 1)
	alice := phone{t, sim, "8613800138000"}
	at := time.Now().Add(time.Second).Format(time.RFC3339)
	out, stderr, err := runCmd(t, "", "subscriber", "reassigned", "13800138000", "--at", at, "--data-dir", srv.dataDir)
	if err != nil {
		t.Fatalf("subscriber reassigned: %v\n%s", err, stderr)
	}
	if !strings.HasPrefix(out, "via the running service (pid ") || !strings.Contains(out, "138****8000 reassigned at") {
		t.Fatalf("output %q", out)
	}
	alice.say("CXMYD")
	if got := alice.say("Y"); got != noRecordZH {
		t.Errorf("the new holder's itinerary: %q, want %q", got, noRecordZH)
	}
	if got := withAction(accessLogEntries(t, srv.dataDir), audit.ActReassigned); len(got) != 1 || got[0].Outcome != "ok" {
		t.Errorf("reassigned entries %+v", got)
	}
}

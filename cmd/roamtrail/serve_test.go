package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// gatewayHarness runs `roamtrail serve` in-process against the project's
// SMSC simulator over loopback TCP, on a data dir holding a small hand-made
// history.
type gatewayHarness struct {
	t   *testing.T
	sim *simHarness
	srv *serveProc
}

// historyCSV is a hand-made history relative to now: 13800138000 lived in
// Beijing, went to Shijiazhuang (a full day), passed through Baoding on a
// train (20 minutes), and flew to Japan.
func historyCSV(now time.Time) string {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	day := func(ago int, hh, mm int) string {
		d := now.In(loc).AddDate(0, 0, -ago)
		return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, loc).Format(time.RFC3339)
	}
	var b strings.Builder
	b.WriteString("msisdn,time,region\n")
	// A sighting still to come today (between midnight and 22:00 in
	// Shanghai, 16:00 to 14:00 UTC) is not history: left out, else a
	// test's "now" falls inside a visit that has not happened yet.
	row := func(num string, ago, hh, mm int, region string) {
		if t, _ := time.Parse(time.RFC3339, day(ago, hh, mm)); t.After(now) {
			return
		}
		fmt.Fprintf(&b, "%s,%s,%s\n", num, day(ago, hh, mm), region)
	}
	for ago := 0; ago < 30; ago++ {
		row("13800138000", ago, 7, 0, "110100")
		row("13800138000", ago, 22, 0, "110100")
	}
	row("13800138000", 3, 9, 0, "130100")
	row("13800138000", 3, 18, 0, "130100")
	row("13800138000", 3, 8, 0, "130600")
	row("13800138000", 3, 8, 20, "130600")
	row("13800138000", 20, 12, 0, "440")
	return b.String()
}

func startGateway(t *testing.T, extra ...string) *gatewayHarness {
	t.Helper()
	h := &gatewayHarness{t: t, sim: startSim(t, smsc.Options{})}
	h.srv = startServe(t, serveConfig{smsc: h.sim.Addr(), args: extra})
	waitBound(t, h.sim, 1)
	return h
}

// send injects an MO and returns the replies that arrive within a moment.
func (h *gatewayHarness) send(from, text string) []smsc.MT {
	h.t.Helper()
	mark := h.sim.mark()
	h.sim.inject(h.t, from, text)
	return h.sim.collect(mark, 5*time.Second, 300*time.Millisecond)
}

// TestDialogueTranscripts plays testdata/dialogue/*.txt: lines "> FROM TEXT"
// send an MO, lines "< TO TEXT" expect the replies, in order; "<" alone
// expects no reply.
func TestDialogueTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/dialogue/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			h := startGateway(t)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			var pending []smsc.MT
			lineNo := 0
			for sc.Scan() {
				lineNo++
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "> "):
					from, text, _ := strings.Cut(line[2:], " ")
					pending = h.send(from, text)
				case line == "<":
					if len(pending) != 0 {
						t.Fatalf("%s:%d: want no reply, got %q", file, lineNo, pending[0].Text)
					}
				case strings.HasPrefix(line, "< "):
					to, text, _ := strings.Cut(line[2:], " ")
					if len(pending) == 0 {
						t.Fatalf("%s:%d: want %q, got no reply", file, lineNo, text)
					}
					mt := pending[0]
					pending = pending[1:]
					if mt.To != to || mt.Text != text || mt.From != "10086" {
						t.Fatalf("%s:%d:\n got %s -> %s: %q\nwant 10086 -> %s: %q", file, lineNo, mt.From, mt.To, mt.Text, to, text)
					}
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

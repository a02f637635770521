package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// Fault tests of the disk (issue 5): the data dir on a small tmpfs that
// fills up while serve takes MOs and while ingest runs, and on a file
// system remounted read-only. They mount, so they need root (or
// CAP_SYS_ADMIN); without it they skip and say so.

// mountTmpfs mounts a tmpfs of size (e.g. "24m") and returns its path;
// it is unmounted when the test ends, after everything the test started
// later has stopped.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// remount changes a mount's options ("ro", "rw").
func remount(t *testing.T, dir, opt string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opt, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", opt, dir, err, out)
	}
}

// fillDisk writes a file in dir until the file system has no more than
// leave bytes free and returns its path: removing it gives the space back.
func fillDisk(t *testing.T, dir string, leave uint64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for freeBytes(t, dir) >= leave+uint64(chunk) {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
	return f.Name()
}

// freeBytes is what the file system holding dir has left.
func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// verifyAccessLog runs `roamtrail audit verify` on a data dir no service
// holds, as an auditor it adds (and the first admin, if there is none).
func verifyAccessLog(t *testing.T, dataDir string) {
	t.Helper()
	if _, _, err := runCmd(t, "", "operators", "add", "--data-dir", dataDir, "--role", "admin", "--bootstrap", "root"); err != nil && !strings.Contains(err.Error(), "admin") {
		t.Fatalf("operators add root: %v", err)
	}
	if _, _, err := runCmd(t, "", "operators", "add", "--data-dir", dataDir, "--operator", "root", "--role", "auditor", "aud"); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatalf("operators add aud: %v", err)
	}
	out, stderr, err := runCmd(t, "", "audit", "verify", "--data-dir", dataDir, "--operator", "aud")
	if err != nil || !strings.Contains(out, "access log verified") {
		t.Fatalf("audit verify: %v\n%s%s", err, out, stderr)
	}
}

// The disk fills while serve takes MOs: below the store's reserve an MO
// cannot be queued and is refused with a temporary error (the SMSC keeps
// it and delivers it again), and at no space at all nothing panics either.
// Once space returns the gateway takes and answers them by itself, once
// each; the store reopens and the access log verifies.
func TestChaosDiskFullServe(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	data := filepath.Join(mnt, "data")
	var subs []string
	for i := range chaosSize(12, 40) {
		subs = append(subs, fmt.Sprintf("1380013%04d", i))
	}
	if _, stderr, err := runCmd(t, historyOf(time.Now(), subs...), "ingest", "--data-dir", data, "--min-free", "8", "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	sim := startSim(t, smsc.Options{MaxDeliveryAttempts: 1 << 20, RedeliveryDelay: 100 * time.Millisecond})
	srv := startServe(t, serveConfig{smsc: sim.Addr(), dataDir: data, args: []string{"--min-free", "8"}})
	waitBound(t, sim, 1)
	asked := subs[0] // a request pending when the disk fills
	sim.inject(t, asked, "TRIP")
	sim.waitTo(t, e164(asked), 1)

	// Below the reserve: MOs are refused, nothing is answered.
	fillers := []string{fillDisk(t, mnt, 4<<20)}
	t.Logf("disk filled to %d KiB free, under the 8 MiB reserve", freeBytes(t, mnt)>>10)
	mark, st := sim.mark(), sim.Stats()
	var wg sync.WaitGroup
	wg.Go(func() { sim.inject(t, asked, "Y") })
	for _, s := range subs[1:] {
		wg.Go(func() { sim.inject(t, s, "TRIP") })
	}
	sim.waitStats(t, "MOs refused and delivered again", func(now smsc.Stats) bool {
		return now.MORedelivered >= st.MORedelivered+3*len(subs)
	})
	if got := srv.metric(t, "roamtrail_mo_refused_total", `reason="store"`); got < float64(len(subs)) {
		t.Errorf("roamtrail_mo_refused_total{reason=store} = %v, want %d or more", got, len(subs))
	}
	// And with no space at all.
	fillers = append(fillers, fillDisk(t, mnt, 0))
	t.Logf("disk filled to %d bytes free", freeBytes(t, mnt))
	st = sim.Stats()
	sim.waitStats(t, "MOs refused and delivered again", func(now smsc.Stats) bool {
		return now.MORedelivered >= st.MORedelivered+3*len(subs)
	})
	if got := sim.since(mark); len(got) != 0 {
		t.Fatalf("answered with the disk full:\n%s", mtList(got))
	}

	// Space returns: every MO the SMSC kept is taken and answered, once.
	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	sim.waitTo(t, e164(asked), 2)
	for _, s := range subs[1:] {
		sim.waitTo(t, e164(s), 1)
	}
	settle(sim)
	wantOnly(t, sim, e164(asked), promptEN15, tripEN15)
	for _, s := range subs[1:] {
		wantOnly(t, sim, e164(s), promptEN15)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if strings.Contains(srv.stderr.String(), "panic") {
		t.Errorf("a panic in serve's log:\n%s", srv.stderr.String())
	}

	// The store reopens and answers; the access log verifies.
	srv = startServe(t, serveConfig{smsc: sim.Addr(), dataDir: data, args: []string{"--min-free", "8"}})
	waitBound(t, sim, 1)
	dialogue(t, sim, subs[1], "TRIP", promptEN15, "Y", tripEN15)
	if err := srv.stop(); err != nil {
		t.Fatalf("serve after the disk was full: %v", err)
	}
	verifyAccessLog(t, data)
}

// The disk fills while ingest runs: it stops with an error naming the full
// disk after the last batch it wrote (nothing panics, nothing is torn);
// once space returns, running it again completes the store, a third run
// changes nothing, and the store answers as one ingested on a roomy disk.
func TestChaosDiskFullIngest(t *testing.T) {
	tmp := t.TempDir()
	events := filepath.Join(tmp, "events.csv")
	n := chaosSize(2000, 10000)
	if _, _, err := runCmd(t, "", "gen", "--subscribers", fmt.Sprint(n), "--days", "30", "--seed", "5", "--out", events); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(tmp, "pseudonym.key")
	ingest := func(dir string) (string, error) {
		out, stderr, err := runCmd(t, "", "ingest", "--data-dir", dir, "--key-file", keyFile, "--min-free", "4", "--batch", "4000", events)
		if strings.Contains(out+stderr, "panic") {
			t.Fatalf("ingest panicked:\n%s%s", out, stderr)
		}
		return out, err
	}
	written := func(out string) int {
		var w int
		if i := strings.Index(out, " subscriber-days written"); i >= 0 {
			fmt.Sscan(out[strings.LastIndex(out[:i], " ")+1:i], &w)
		}
		return w
	}
	// The reference: the same events on a roomy disk.
	ref := filepath.Join(tmp, "ref")
	out, err := ingest(ref)
	if err != nil {
		t.Fatalf("ingest on a roomy disk: %v", err)
	}
	want := written(out)
	size := dirSize(t, filepath.Join(ref, "visits"))

	mnt := mountTmpfs(t, "64m")
	data := filepath.Join(mnt, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// Room for about half of it above the 4 MiB reserve.
	filler := fillDisk(t, mnt, 4<<20+uint64(size)/2)
	out, err = ingest(data)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("ingest on a full disk returned %v\n%s", err, out)
	}
	first := written(out)
	t.Logf("on a full disk: %v; %d of %d subscriber-days written", err, first, want)
	if first >= want {
		t.Errorf("the disk filled after the whole file was in: make the disk smaller")
	}

	// With not a byte free, it stops as cleanly.
	full := fillDisk(t, mnt, 0)
	out, err = ingest(data)
	if err == nil {
		t.Fatalf("ingest with no space at all returned nil\n%s", out)
	}
	t.Logf("with no space at all: %v", err)
	if got := written(out); got != 0 {
		t.Errorf("%d subscriber-days written with no space at all", got)
	}

	for _, f := range []string{filler, full} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	out, err = ingest(data)
	if err != nil {
		t.Fatalf("ingest once space returned: %v\n%s", err, out)
	}
	if second := written(out); first+second != want {
		t.Errorf("%d subscriber-days written before the disk filled and %d after, want %d in all", first, second, want)
	}
	if out, err = ingest(data); err != nil || written(out) != 0 {
		t.Errorf("a third run: %v; %s", err, out)
	}

	// Queries: the same itinerary from both stores.
	sim := startSim(t, smsc.Options{})
	number := firstEventNumber(t, events)
	replyTo := number
	if len(number) == 11 {
		replyTo = e164(number)
	}
	var trips []string
	for _, dir := range []string{ref, data} {
		srv := startServe(t, serveConfig{smsc: sim.Addr(), dataDir: dir, keyFile: keyFile, args: []string{"--min-free", "4"}})
		waitBound(t, sim, 1)
		before := len(sim.to(replyTo))
		sim.inject(t, number, "TRIP")
		sim.waitTo(t, replyTo, before+1)
		sim.inject(t, number, "Y")
		trips = append(trips, sim.waitTo(t, replyTo, before+2)[before+1].Text)
		if err := srv.stop(); err != nil {
			t.Fatal(err)
		}
		waitUnbound(t, sim)
	}
	if trips[0] != trips[1] {
		t.Errorf("the store filled and completed answers\n %q\nthe reference\n %q", trips[1], trips[0])
	}
	verifyAccessLog(t, data)
}

// dirSize is the bytes of the files in dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// firstEventNumber is the number of the first event in a generated CSV, as the
// SMSC writes it (international, no plus).
func firstEventNumber(t *testing.T, csv string) string {
	t.Helper()
	b, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 {
		t.Fatal("no events")
	}
	fields := strings.Split(lines[1], ",")
	return strings.TrimPrefix(fields[0], "+")
}

func waitUnbound(t *testing.T, sim *simHarness) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for sim.BoundCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("serve never unbound")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A read-only data dir: serve and ingest refuse at start, naming the
// problem, and start once it is writable again.
func TestChaosDiskReadOnly(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	data := filepath.Join(mnt, "data")
	if _, stderr, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", data, "--min-free", "4", "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	remount(t, mnt, "ro")
	t.Cleanup(func() { exec.Command("mount", "-o", "remount,rw", mnt).Run() })

	_, _, err := runCmd(t, historyCSV(time.Now()), "ingest", "--data-dir", data, "--min-free", "4", "-")
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("ingest on a read-only data dir returned %v", err)
	}
	t.Logf("ingest: %v", err)
	sim := startSim(t, smsc.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var stderr syncBuffer
	err = run(ctx, []string{"roamtrail", "--log-level", "warn", "serve", "--smsc", sim.Addr(), "--data-dir", data, "--http", "127.0.0.1:0", "--min-free", "4"},
		strings.NewReader(""), &stderr, &stderr)
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("serve on a read-only data dir returned %v\n%s", err, stderr.String())
	}
	if ctx.Err() != nil {
		t.Error("serve did not refuse at start")
	}
	t.Logf("serve: %v", err)
	if st := sim.Stats(); st.Binds != 0 {
		t.Errorf("serve bound with a read-only data dir: %+v", st)
	}

	remount(t, mnt, "rw")
	srv := startServe(t, serveConfig{smsc: sim.Addr(), dataDir: data, args: []string{"--min-free", "4"}})
	waitBound(t, sim, 1)
	dialogue(t, sim, historyNumber, "TRIP", promptEN15, "Y", tripEN15)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	verifyAccessLog(t, data)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	gosmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	"github.com/urfave/cli/v2"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// The third column of bench sms: a bare echo ESME as an operator would
// write it on go-smpp's own high-level API, a Transceiver whose Handler
// answers every MO with a fixed text. /work/shared/notes/go-smpp.md says
// why roamtrail does not use that API; this measures it instead of saying
// it.

// gosmppWait bounds each MO's delivery and reply on the go-smpp side: its
// replies time out after 1 s (RespTimeout's default), so a reply not there
// after 5 s is lost, and is counted rather than waited for.
const gosmppWait = 5 * time.Second

// goSMPPEchoStats is what the echo process counts.
type goSMPPEchoStats struct {
	Handled int64 `json:"handled"` // deliver_sm handed to the Handler
	Replied int64 `json:"replied"` // replies whose submit_sm_resp came back OK in time
	Failed  int64 `json:"failed"`  // replies refused, timed out (1 s) or not sent
	// FailedBy counts Failed by go-smpp's error text.
	FailedBy map[string]int64 `json:"failed_by,omitempty"`
}

// goSMPPSide is the go-smpp echo's column: what the load generator saw and
// what the echo process counted.
type goSMPPSide struct {
	smsSide
	WaitSeconds float64 `json:"reply_wait_seconds"`
	goSMPPEchoStats
}

// goSMPPPhase drives the same traffic against the go-smpp echo, run in a
// process of its own. Not in this one: go-smpp numbers its PDUs from a
// process-wide counter that the simulator's PDUs (built with go-smpp's
// codec) would also advance, keeping it away from the simulator's own
// sequence numbers; that would hide the collision that loses MOs (problem
// 1 of the note), which an operator's separate process meets.
func (e *env) goSMPPPhase(ctx context.Context, sim *smsc.Server, router *mtRouter, numbers []string, d time.Duration, res *smsBenchResult) error {
	g, err := startGoSMPPEcho(ctx, sim.Addr())
	if err != nil {
		return err
	}
	defer func() {
		g.kill()
		// What the echo logged, written here rather than by exec's copier,
		// which would write to e.stderr beside this goroutine.
		if b := g.stderr.bytes(); len(b) > 0 {
			fmt.Fprintf(e.stderr, "bench sms: the go-smpp echo said:\n%s", b)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sim.WaitBound(wctx, 1); err != nil {
		return fmt.Errorf("go-smpp echo: not bound: %w", err)
	}
	fmt.Fprintf(e.stderr, "bench sms: driving the go-smpp echo for %s...\n", d)
	side := drive(ctx, sim, router, numbers, []string{"CXMYD", "Y"}, d, gosmppWait, g.cmd.Process.Pid).side()
	st, err := g.stop()
	if err != nil {
		return err
	}
	res.GoSMPP = &goSMPPSide{smsSide: side, WaitSeconds: gosmppWait.Seconds(), goSMPPEchoStats: st}
	if side.QueriesPerSec > 0 {
		res.GoSMPPRatio = res.Gateway.QueriesPerSec / side.QueriesPerSec
	}
	return nil
}

// goSMPPChild is the echo process.
type goSMPPChild struct {
	cmd    *exec.Cmd
	stderr lockedBuffer
	stdin  io.Closer
	lines  chan string
	done   chan error
}

// startGoSMPPEcho starts this binary's `bench sms gosmpp-echo` and waits
// (10 s at most) for it to say it is bound.
func startGoSMPPEcho(ctx context.Context, addr string) (*goSMPPChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("go-smpp echo: %w", err)
	}
	g := &goSMPPChild{lines: make(chan string, 4), done: make(chan error, 1)}
	cmd := exec.Command(exe, "bench", "sms", "gosmpp-echo", "--smsc", addr)
	cmd.Stderr = &g.stderr
	g.cmd = cmd
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("go-smpp echo: %w", err)
	}
	g.stdin = stdin
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			g.lines <- sc.Text()
		}
		close(g.lines)
		g.done <- cmd.Wait()
	}()
	select {
	case line := <-g.lines:
		if line == "bound" {
			return g, nil
		}
		g.kill()
		return nil, fmt.Errorf("go-smpp echo: said %q instead of bound", line)
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	g.kill()
	return nil, errors.New("go-smpp echo: not bound after 10s")
}

// stop closes the echo's stdin, which makes it close its Transceiver and
// print its counts, and waits for them (10 s at most).
func (g *goSMPPChild) stop() (goSMPPEchoStats, error) {
	var st goSMPPEchoStats
	g.stdin.Close()
	select {
	case line, ok := <-g.lines:
		if !ok {
			return st, errors.New("go-smpp echo: exited without its counts")
		}
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			return st, fmt.Errorf("go-smpp echo: counts: %w", err)
		}
	case <-time.After(10 * time.Second):
		return st, errors.New("go-smpp echo: no counts 10s after stop")
	}
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
	}
	return st, nil
}

// kill ends the echo process if it is still there.
func (g *goSMPPChild) kill() {
	if g.cmd.ProcessState == nil {
		g.cmd.Process.Kill()
	}
}

func (e *env) benchGoSMPPEchoCommand() *cli.Command {
	return &cli.Command{
		Name:      "gosmpp-echo",
		Usage:     "a bare echo ESME on go-smpp's Transceiver; bench sms runs it (prints bound, then its counts as JSON when stdin closes)",
		ArgsUsage: " ",
		Hidden:    true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "smsc", Required: true, Usage: "HOST:PORT"},
			&cli.StringFlag{Name: "system-id", Value: "gosmpp"},
			&cli.StringFlag{Name: "reply", Value: "OK"},
		},
		Action: func(c *cli.Context) error {
			return runGoSMPPEcho(c.Context, c.String("smsc"), c.String("system-id"), c.String("reply"), e.stdin, e.stdout)
		},
	}
}

// runGoSMPPEcho is the echo: the Transceiver with go-smpp's defaults and a
// Handler that answers every deliver_sm. The Submit runs on a goroutine of
// its own because inside the Handler it always times out (the Handler
// runs on the only reader); that is the first thing an operator learns.
func runGoSMPPEcho(ctx context.Context, addr, systemID, reply string, stdin io.Reader, stdout io.Writer) error {
	var (
		st       struct{ handled, replied, failed atomic.Int64 }
		inFlight sync.WaitGroup
		errMu    sync.Mutex
		failedBy = map[string]int64{}
	)
	tx := &gosmpp.Transceiver{Addr: addr, User: systemID}
	tx.Handler = func(p pdu.Body) {
		if p.Header().ID != pdu.DeliverSMID {
			return
		}
		f := p.Fields()
		src, dst := f[pdufield.SourceAddr], f[pdufield.DestinationAddr]
		if src == nil || dst == nil {
			return
		}
		st.handled.Add(1)
		to, from := src.String(), dst.String()
		inFlight.Go(func() {
			_, err := tx.Submit(&gosmpp.ShortMessage{Src: from, Dst: to, Text: pdutext.Raw(reply)})
			if err != nil {
				st.failed.Add(1)
				errMu.Lock()
				failedBy[err.Error()]++
				errMu.Unlock()
				return
			}
			st.replied.Add(1)
		})
	}
	status := tx.Bind()
	bound := time.After(10 * time.Second)
wait:
	for {
		select {
		case s := <-status:
			if s.Status() == gosmpp.Connected {
				break wait
			}
		case <-bound:
			tx.Close()
			return errors.New("gosmpp-echo: not bound after 10s")
		case <-ctx.Done():
			tx.Close()
			return ctx.Err()
		}
	}
	fmt.Fprintln(stdout, "bound")
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
	}
	tx.Close()
	// Replies still in flight end within their 1 s timeout; the bound is
	// for a Submit that never returns.
	ended := make(chan struct{})
	go func() { inFlight.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
	}
	errMu.Lock()
	defer errMu.Unlock()
	return json.NewEncoder(stdout).Encode(goSMPPEchoStats{Handled: st.handled.Load(), Replied: st.replied.Load(), Failed: st.failed.Load(), FailedBy: failedBy})
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

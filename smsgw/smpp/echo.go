package smpp

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// EchoOptions configures an Echo.
type EchoOptions struct {
	// Session configures the bind; its Handler is replaced. Required
	// fields as for New.
	Session Options
	// Reply is the text sent back to every MO. Default "OK".
	Reply string
	// Senders is how many replies are submitted at once. Default the
	// session's Window.
	Senders int
	// Queue is how many replies may wait for a sender; when full, an MO
	// is answered ESME_RX_T_APPN and the SMSC redelivers it. Default 1024.
	Queue int
}

// EchoStats counts an Echo's work.
type EchoStats struct {
	Received uint64 // MO handed over (receipts excluded)
	Replied  uint64 // replies accepted by the SMSC
	Failed   uint64 // replies refused or of unknown outcome
	Busy     uint64 // MO refused because the queue was full
}

// Echo is an ESME that answers every MO with a fixed text through the
// same session layer: a load generator's far end (roamtrail bench sms)
// and an example of a handler that stays quick by queueing its work.
type Echo struct {
	s       *Session
	reply   string
	senders int
	queue   chan *Deliver
	wg      sync.WaitGroup
	stats   struct{ received, replied, failed, busy atomic.Uint64 }
}

// NewEcho validates opts and returns an Echo that does nothing until
// Serve.
func NewEcho(opts EchoOptions) (*Echo, error) {
	if opts.Reply == "" {
		opts.Reply = "OK"
	}
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	e := &Echo{reply: opts.Reply, queue: make(chan *Deliver, opts.Queue)}
	opts.Session.Handler = e.handle
	s, err := New(opts.Session)
	if err != nil {
		return nil, err
	}
	e.s = s
	e.senders = opts.Senders
	if e.senders <= 0 {
		e.senders = s.opts.Window
	}
	return e, nil
}

// Session is the underlying session (for WaitBound, Bound).
func (e *Echo) Session() *Session { return e.s }

func (e *Echo) handle(_ context.Context, d *Deliver) Status {
	if d.IsReceipt() {
		return StatusOK
	}
	select {
	case e.queue <- d:
		e.stats.received.Add(1)
		return StatusOK
	default:
		e.stats.busy.Add(1)
		return StatusRxTAppn
	}
}

// Serve runs the session and the senders until Shutdown (ErrClosed) or
// ctx ends.
func (e *Echo) Serve(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range e.senders {
		e.wg.Add(1)
		go e.send(sctx)
	}
	err := e.s.Serve(ctx)
	cancel()
	e.wg.Wait()
	return err
}

func (e *Echo) send(ctx context.Context) {
	defer e.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-e.queue:
			_, err := e.s.SubmitParts(ctx, &Message{Source: d.Dest, Dest: d.Source, Text: e.reply})
			switch {
			case err == nil:
				e.stats.replied.Add(1)
			case errors.Is(err, ErrClosed), ctx.Err() != nil:
				return
			default:
				e.stats.failed.Add(1)
				e.s.log.Warn().Err(err).Msg("echo reply failed")
			}
		}
	}
}

// Shutdown stops the session (see Session.Shutdown). Replies still queued
// are dropped; their MO were acked, so the caller of a benchmark sees
// them as Received without Replied.
func (e *Echo) Shutdown(ctx context.Context) error { return e.s.Shutdown(ctx) }

// Stats returns the counters.
func (e *Echo) Stats() EchoStats {
	return EchoStats{
		Received: e.stats.received.Load(), Replied: e.stats.replied.Load(),
		Failed: e.stats.failed.Load(), Busy: e.stats.busy.Load(),
	}
}

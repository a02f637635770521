package smpp

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
)

// link keeps one bind (trx, rx or tx) up: dial, bind, wait for the
// connection to die, back off, again, until the session stops.
type link struct {
	s      *Session
	name   string
	bindID pdu.ID

	mu    sync.Mutex
	cur   *conn
	ready chan struct{} // closed while cur != nil
}

func (l *link) current() *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// wait returns the bound connection, waiting for one. When the session is
// closing and nothing is bound it returns ErrClosed.
func (l *link) wait(ctx context.Context) (*conn, error) {
	for {
		l.mu.Lock()
		c, ready := l.cur, l.ready
		l.mu.Unlock()
		if c != nil {
			select {
			case <-c.done(): // dead, not yet cleared by run: give it a moment
				select {
				case <-time.After(5 * time.Millisecond):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				continue
			default:
				return c, nil
			}
		}
		select {
		case <-ready:
		case <-l.s.stop:
			if c := l.current(); c != nil {
				return c, nil
			}
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *link) set(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = c
	if c != nil {
		close(l.ready)
	} else {
		l.ready = make(chan struct{})
	}
}

func (l *link) run() {
	defer l.s.wg.Done()
	s := l.s
	log := s.log.With().Str(logLink, l.name).Logger()
	attempt := 0
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		c, st, err := s.dialBind(s.ctx, l)
		if err != nil {
			delay := s.opts.Backoff(attempt)
			attempt++
			ev := log.Warn()
			switch st {
			case StatusBindFail, StatusInvPaswd, StatusInvSysID:
				delay = s.opts.AuthBackoff
				ev = log.Error() // credentials or account: a person must look
			case StatusAlyBnd:
				// The SMSC still holds our previous bind: try again later.
			}
			ev.Err(err).Str(logAddr, s.opts.Addr).Dur(logDelay, delay).Msg("bind failed")
			if !l.sleep(delay) {
				return
			}
			continue
		}
		start := time.Now()
		l.set(c)
		s.m.bound.WithLabelValues(l.name).Set(1)
		log.Info().Str(logAddr, s.opts.Addr).Msg("bound")
		select {
		case <-c.done():
		case <-s.ctx.Done():
			c.close(ErrClosed)
		}
		l.set(nil)
		s.m.bound.WithLabelValues(l.name).Set(0)
		c.wg.Wait()
		if errors.Is(c.err, ErrClosed) {
			return
		}
		select {
		case <-s.stop:
			// Shutting down: the SMSC closing the socket after our
			// unbind is the end we asked for, not a lost link.
			return
		default:
		}
		s.m.reconnects.WithLabelValues(l.name).Inc()
		if time.Since(start) > time.Minute {
			attempt = 0 // a bind that held for a while resets the backoff
		}
		delay := s.opts.Backoff(attempt)
		attempt++
		log.Warn().AnErr("cause", c.err).Dur(logDelay, delay).Msg("connection lost; rebinding")
		if !l.sleep(delay) {
			return
		}
	}
}

// sleep waits d unless the session stops; false when it stopped.
func (l *link) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.s.stop:
		return false
	}
}

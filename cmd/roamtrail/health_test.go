package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// health reads /healthz: its status code and text.
func (p *serveProc) health(t testing.TB) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitHealth waits until /healthz answers code with text containing want.
func (p *serveProc) waitHealth(t testing.TB, code int, want string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		got, text := p.health(t)
		if got == code && strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz answered %d %q; want %d %q", got, text, code, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// /healthz is 200 only while an MO sent now would be answered.
func TestHealthz(t *testing.T) {
	sim := startSim(t, smsc.Options{})
	link := startProxy(t, sim.Addr(), false)
	srv := startServe(t, serveConfig{smsc: link.Addr(), args: []string{"--enquire-link", "200ms", "--enquire-link-timeout", "1s"}})
	srv.waitHealth(t, http.StatusOK, "ok")
	link.Down()
	srv.waitHealth(t, http.StatusServiceUnavailable, "not bound to the SMSC")
	link.Up()
	srv.waitHealth(t, http.StatusOK, "ok")
}

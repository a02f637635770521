package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTurns(t *testing.T) {
	for _, c := range []struct {
		rounds int
		want   []turn
	}{
		{1, []turn{{true, 1}, {false, 1}}},
		{2, []turn{{true, 1}, {false, 2}, {true, 1}}},
		{3, []turn{{true, 1}, {false, 2}, {true, 2}, {false, 1}}},
		{4, []turn{{true, 1}, {false, 2}, {true, 2}, {false, 2}, {true, 1}}},
	} {
		got := turns(c.rounds)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("turns(%d) = %v, want %v", c.rounds, got, c.want)
		}
		var g, e int
		for _, tn := range got {
			if tn.gateway {
				g += tn.rounds
			} else {
				e += tn.rounds
			}
		}
		if g != c.rounds || e != c.rounds {
			t.Errorf("turns(%d): %d rounds of the gateway, %d of the echo", c.rounds, g, e)
		}
	}
}

// TestBenchSMSShort runs bench sms end to end at a tiny size: both sides
// answer in every turn, then each at a fixed rate.
func TestBenchSMSShort(t *testing.T) {
	t.Setenv(testMainEnv, "1") // the go-smpp echo is a process of this binary
	stdout, stderr, err := runCmd(t, "", "bench", "sms", "--data-dir", filepath.Join(t.TempDir(), "data"), "--subscribers", "100", "--concurrency", "10",
		"--duration", "1200ms", "--rounds", "3", "--rate", "50", "--json")
	if err != nil {
		t.Fatalf("bench sms: %v\n%s\n%s", err, stdout, stderr)
	}
	var res smsBenchResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if res.Rounds != 3 || len(res.GatewayTurns) != 2 || len(res.EchoTurns) != 2 {
		t.Fatalf("turns: %d rounds, gateway %v, echo %v; want G E E G G E", res.Rounds, res.GatewayTurns, res.EchoTurns)
	}
	for i, q := range append(append([]float64{}, res.GatewayTurns...), res.EchoTurns...) {
		if q <= 0 {
			t.Errorf("turn %d: %v queries/s", i, q)
		}
	}
	if res.Gateway.Errors != 0 || res.Echo.Errors != 0 || res.Gateway.Queries == 0 || res.Echo.Queries == 0 || res.Ratio <= 0 {
		t.Errorf("saturation: gateway %+v, echo %+v, ratio %v", res.Gateway, res.Echo, res.Ratio)
	}
	if res.GatewayRate == nil || res.EchoRate == nil || res.GatewayRate.Queries == 0 || res.EchoRate.Queries == 0 {
		t.Errorf("open loop: gateway %+v, echo %+v", res.GatewayRate, res.EchoRate)
	}
	for _, want := range []string{"driving the echo ESME", "offering the gateway", "offering the echo ESME"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

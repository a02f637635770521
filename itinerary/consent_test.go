package itinerary

import (
	"testing"
	"time"
)

func TestConsentTransitions(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name string
		from Consent
		step func(Consent) Consent
		want Consent
	}{
		{"opt out", Consent{}, func(c Consent) Consent { return c.WithOptOut(h(1)) }, Consent{OptedOut: h(1)}},
		{"opt out again keeps the first", Consent{OptedOut: h(1)}, func(c Consent) Consent { return c.WithOptOut(h(2)) }, Consent{OptedOut: h(1)}},
		{"opt out keeps the opt-in it ends", Consent{OptedIn: h(1)}, func(c Consent) Consent { return c.WithOptOut(h(2)) }, Consent{OptedOut: h(2), OptedIn: h(1)}},
		{"opt in", Consent{}, func(c Consent) Consent { return c.WithOptIn(h(1)) }, Consent{OptedIn: h(1)}},
		{"opt in after out", Consent{OptedOut: h(1), OptedIn: h(0)}, func(c Consent) Consent { return c.WithOptIn(h(2)) }, Consent{OptedIn: h(2)}},
		{"opt in again keeps the first", Consent{OptedIn: h(1)}, func(c Consent) Consent { return c.WithOptIn(h(2)) }, Consent{OptedIn: h(1)}},
		{"reassigned drops earlier choices", Consent{OptedOut: h(1), OptedIn: h(0)}, func(c Consent) Consent { return c.WithReassigned(h(2)) }, Consent{Reassigned: h(2)}},
		{"reassigned keeps the new holder's choice", Consent{OptedIn: h(3)}, func(c Consent) Consent { return c.WithReassigned(h(2)) }, Consent{OptedIn: h(3), Reassigned: h(2)}},
		{"the latest reassignment wins", Consent{Reassigned: h(2)}, func(c Consent) Consent { return c.WithReassigned(h(1)) }, Consent{Reassigned: h(2)}},
		{"to the second, in UTC", Consent{}, func(c Consent) Consent {
			return c.WithOptOut(h(1).Add(700 * time.Millisecond).In(time.FixedZone("CST", 8*3600)))
		}, Consent{OptedOut: h(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.step(tt.from)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConsentState(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		c       Consent
		out, in bool
		since   time.Time
	}{
		{Consent{}, false, false, time.Time{}},
		{Consent{OptedOut: t0}, true, false, time.Time{}},
		{Consent{OptedIn: t0}, false, true, t0},
		{Consent{OptedIn: t0, Reassigned: t0.Add(time.Hour)}, false, true, t0.Add(time.Hour)},
		{Consent{OptedIn: t0.Add(time.Hour), Reassigned: t0}, false, true, t0.Add(time.Hour)},
	} {
		if tt.c.Out() != tt.out || tt.c.In() != tt.in || !tt.c.Since().Equal(tt.since) {
			t.Errorf("%+v: Out %v In %v Since %v, want %v %v %v", tt.c, tt.c.Out(), tt.c.In(), tt.c.Since(), tt.out, tt.in, tt.since)
		}
	}
}

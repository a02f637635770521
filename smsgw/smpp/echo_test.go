package smpp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

func TestEcho(t *testing.T) {
	checkGoroutines(t)
	sim := startSim(t, smsc.Options{})
	e, err := smpp.NewEcho(smpp.EchoOptions{Session: smpp.Options{Addr: sim.Addr(), SystemID: "echo"}, Reply: "收到"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(context.Background()) }()
	t.Cleanup(func() { e.Session().Close() })
	ctx := testCtx(t)
	for range 5 {
		if err := sim.InjectMO(ctx, "13800138000", "10086", "ping"); err != nil {
			t.Fatal(err)
		}
	}
	mts, err := sim.WaitMT(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mts {
		if mt.Text != "收到" || mt.To != "13800138000" || mt.From != "10086" {
			t.Fatalf("reply %+v", mt)
		}
	}
	eventually(t, "replies counted", func() bool { st := e.Stats(); return st.Received == 5 && st.Replied == 5 })
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, smpp.ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

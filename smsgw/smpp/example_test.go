package smpp_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smpp"
	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

func Example() {
	sim, _ := smsc.Listen("127.0.0.1:0", smsc.Options{})
	go sim.Serve(context.Background())
	defer sim.Close()

	var s *smpp.Session
	handler := func(ctx context.Context, d *smpp.Deliver) smpp.Status {
		// Persist or enqueue d here, then answer OK; reply elsewhere.
		fmt.Printf("MO %q from %s\n", d.Text, smpp.Mask(d.Source.Addr))
		return smpp.StatusOK
	}
	s, err := smpp.New(smpp.Options{Addr: sim.Addr(), SystemID: "roamtrail", Handler: handler})
	if err != nil {
		panic(err)
	}
	go s.Serve(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.WaitBound(ctx)

	sim.InjectMO(ctx, "13800138000", "10086", "TQ 拉萨")
	ids, err := s.SubmitParts(ctx, &smpp.Message{
		Source: smpp.Address{Addr: "10086", TON: 3},
		Dest:   smpp.Address{Addr: "13800138000", TON: 1, NPI: 1},
		Text:   "拉萨明天晴",
	})
	switch {
	case errors.Is(err, smpp.ErrUnknownOutcome):
		// Written but unanswered: record it, do not resend.
	case err != nil:
		fmt.Println("refused:", err)
	}
	fmt.Println(len(ids), "part(s) accepted")
	s.Shutdown(ctx)
	// Output:
	// MO "TQ 拉萨" from 138****8000
	// 1 part(s) accepted
}

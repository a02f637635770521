package smsc_test

import (
	"context"
	"fmt"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// A simulator for a demo: listen, serve, inject an MO once an ESME binds.
func Example() {
	sim, err := smsc.Listen("127.0.0.1:0", smsc.Options{Receipts: true})
	if err != nil {
		panic(err)
	}
	go sim.Serve(context.Background())
	defer sim.Close()
	// An ESME binds to sim.Addr(); then:
	//   sim.InjectMO(ctx, "13800138000", "10086", "TQ")
	//   mts, _ := sim.WaitMT(ctx, 1)
	fmt.Println(sim.Stats().Binds)
	// Output: 0
}

package state_test

import (
	"context"
	"fmt"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// The dialogue of one subscriber: a request, its confirmation, and the
// daily limit. A *state.Redis is used the same way.
func Example() {
	ctx := context.Background()
	s, err := state.NewMemory(state.MemoryOptions{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	var sub itinerary.Pseudonym // from privacy.Pseudonymizer, never a number

	// "CXMYD" arrives; the SMSC may deliver it twice.
	first, _ := s.FirstDelivery(ctx, "smsc-msg-1", 24*time.Hour)
	again, _ := s.FirstDelivery(ctx, "smsc-msg-1", 24*time.Hour)
	fmt.Println("first:", first, "redelivery first:", again)

	allowed, notify, _ := s.CountRequest(ctx, sub, "2026-11-27", 3)
	fmt.Println("allowed:", allowed, "notify:", notify)

	_ = s.SetPending(ctx, sub, state.Pending{Days: 15, Lang: itinerary.Chinese, Created: time.Now()}, 10*time.Minute)

	// "Y" arrives, at two instances at once: one of them sends.
	p, ok, _ := s.TakePending(ctx, sub)
	_, ok2, _ := s.TakePending(ctx, sub)
	fmt.Println("confirmed:", ok, p.Days, "days; second taker:", ok2)
	// Output:
	// first: true redelivery first: false
	// allowed: true notify: false
	// confirmed: true 15 days; second taker: false
}

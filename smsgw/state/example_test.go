package state_test

import (
	"context"
	"fmt"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

// The dialogue of one subscriber as the gateway holds it: a request, its
// confirmation, and the claims that tell an SMSC's redelivery from a new
// message. A *state.Redis is used the same way.
func Example() {
	ctx := context.Background()
	s, err := state.NewMemory(state.MemoryOptions{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	var sub itinerary.Pseudonym // from privacy.Pseudonymizer, never a number

	// "CXMYD" arrives as job-1; the SMSC delivers it again as job-2. The
	// claim's key names the subscriber, the command and the dialogue's
	// token, so the redelivery finds it taken.
	d, _ := s.Dialog(ctx, sub)
	key := fmt.Sprintf("%x/CXMYD/%s", sub, d.Token)
	first, _ := s.Claim(ctx, key, "job-1", 10*time.Minute)
	again, _ := s.Claim(ctx, key, "job-2", 10*time.Minute)
	fmt.Println("job-1 claims:", first, "job-2 claims:", again)

	allowed, notify, _ := s.CountRequest(ctx, sub, "2026-11-27", 3)
	fmt.Println("allowed:", allowed, "notify:", notify)

	_ = s.Ask(ctx, sub, state.Request{Nonce: "job-1", Days: 15, Lang: itinerary.Chinese}, 10*time.Minute)
	d, _ = s.Dialog(ctx, sub)
	fmt.Println("token:", d.Token, "pending:", d.Pending.Days, "days")

	// "Y" arrives at two instances at once, as job-3 and job-4: one of
	// them sends. job-3, repeated after a crash, gets the same request.
	req, ok3, _ := s.Resolve(ctx, sub, "job-3", 10*time.Minute)
	_, ok4, _ := s.Resolve(ctx, sub, "job-4", 10*time.Minute)
	_, ok3again, _ := s.Resolve(ctx, sub, "job-3", 10*time.Minute)
	fmt.Println("job-3:", ok3, req.Days, "days; job-4:", ok4, "; job-3 again:", ok3again)
	d, _ = s.Dialog(ctx, sub)
	fmt.Println("token:", d.Token, "pending:", d.Pending != nil)
	// Output:
	// job-1 claims: true job-2 claims: false
	// allowed: true notify: false
	// token: job-1 pending: 15 days
	// job-3: true 15 days; job-4: false ; job-3 again: true
	// token: done:job-1 pending: false
}

package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

func Example() {
	data, _ := os.MkdirTemp("", "roamtrail")
	defer os.RemoveAll(data)
	ctx := context.Background()

	// In production the key lives outside the data dir; the verifier key
	// goes to the auditors.
	signer, vkey, err := audit.LoadOrCreateSigner(filepath.Join(data, "audit.key"), nil)
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)
	log, err := audit.Open(filepath.Join(data, "audit"), audit.Options{
		Signer: signer,
		Now:    func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}

	// Before an agent sees a subscriber's itinerary:
	e, err := log.Append(ctx, audit.Entry{
		Actor:   "op-17",
		Role:    audit.RoleAgent,
		Action:  audit.ActStaffLookup,
		Subject: audit.SubjectOf(itinerary.Pseudonym{0xa1}),
		Masked:  "138****8000",
		Window:  15,
		Ticket:  "T-42",
		Outcome: "ok",
	})
	if err != nil {
		return // refuse the lookup
	}
	fmt.Println("logged seq", e.Seq, "at", e.Time.Format(time.RFC3339))

	// A number where it must not be is refused.
	_, err = log.Append(ctx, audit.Entry{Actor: "op-17", Role: audit.RoleAgent,
		Action: audit.ActDenied, Detail: "caller 13800138000", Outcome: "denied"})
	fmt.Println(err)

	held, _ := log.Checkpoint(ctx) // what an auditor keeps
	log.Close()
	fmt.Println(string(held[:bytes.Index(held, []byte("\n"))]))

	r, err := audit.Verify(ctx, filepath.Join(data, "audit"), audit.VerifyOptions{VerifierKey: vkey, Checkpoint: held})
	fmt.Println("verified", r.Entries, "entries and", r.Checkpoints, "checkpoint:", err)

	last, _ := audit.Last(ctx, filepath.Join(data, "audit"), audit.SubjectOf(itinerary.Pseudonym{0xa1}), 5)
	fmt.Println("last access by", last[0].Actor, "under", last[0].Ticket)
	// Output:
	// logged seq 1 at 2026-11-27T08:15:00Z
	// audit: field looks like a phone number: Detail
	// roamtrail-audit
	// verified 1 entries and 1 checkpoint: <nil>
	// last access by op-17 under T-42
}

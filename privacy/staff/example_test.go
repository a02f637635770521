package staff_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy"
	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/privacy/staff"
)

// phone is a Notifier that keeps the last SMS.
type phone struct{ last string }

func (p *phone) Notify(ctx context.Context, to msisdn.Number, text string) error {
	p.last = text
	return nil
}

// codes is a CodeStore in memory (store.DB in the service).
type codes map[string][]byte

func (c codes) PutCode(ctx context.Context, k, v []byte) error { c[string(k)] = v; return nil }
func (c codes) GetCode(ctx context.Context, k []byte) ([]byte, bool, error) {
	v, ok := c[string(k)]
	return v, ok, nil
}
func (c codes) DeleteCode(ctx context.Context, k []byte) error { delete(c, string(k)); return nil }

// beijing has been in Beijing all along (itinerary.Engine in the service).
type beijing struct{}

func (beijing) Lookup(ctx context.Context, sub itinerary.Pseudonym, days int) (itinerary.Itinerary, error) {
	w := itinerary.Window{First: 20770, Last: 20784}
	return itinerary.Itinerary{Window: w, Places: []itinerary.Place{{Region: 110100, FirstDay: w.First, LastDay: w.Last}}}, nil
}

func Example() {
	data, _ := os.MkdirTemp("", "roamtrail")
	defer os.RemoveAll(data)
	ctx := context.Background()

	key := bytes.Repeat([]byte{7}, privacy.KeySize) // the pseudonym key
	ps, _ := privacy.NewPseudonymizer(key)
	signer, _, _ := audit.LoadOrCreateSigner(filepath.Join(data, "audit.key"), nil)
	log, _ := audit.Open(filepath.Join(data, "audit"), audit.Options{Signer: signer})
	defer log.Close()
	cat, _ := itinerary.NewCatalog()
	sms := &phone{}

	svc, err := staff.New(staff.Options{}, staff.Deps{
		Operators: staff.NewRegistry(filepath.Join(data, "operators.json")),
		Audit:     log, Pseudonyms: ps, Codes: codes{}, Secret: key, Notifier: sms,
		Itineraries: beijing{}, Catalog: cat,
	})
	if err != nil {
		panic(err)
	}
	// The first admin, then an agent.
	svc.Do(ctx, staff.Request{Op: staff.OpOperatorsAdd, ID: "root", Role: staff.RoleAdmin, Bootstrap: true})
	svc.Do(ctx, staff.Request{Op: staff.OpOperatorsAdd, Operator: "root", ID: "ann", Role: staff.RoleAgent})

	// Someone not in the registry is refused, and the refusal logged.
	resp := svc.Do(ctx, staff.Request{Op: staff.OpLookup, Operator: "eve", Number: "13800138000", Ticket: "T-42", Days: 15})
	fmt.Println(resp.Err())

	// Step 1: the subscriber gets a code.
	resp = svc.Do(ctx, staff.Request{Op: staff.OpLookup, Operator: "ann", Number: "13800138000", Ticket: "T-42", Days: 15})
	fmt.Println("code sent to", resp.CodeSent.Masked)
	code := regexp.MustCompile(`\d{6}`).FindString(sms.last)

	// Step 2: with the code they read out, the itinerary.
	resp = svc.Do(ctx, staff.Request{Op: staff.OpConfirm, Operator: "ann", Number: "13800138000", Ticket: "T-42", Days: 15, Code: code})
	for _, p := range resp.Itinerary.Places {
		fmt.Println(p.NameEN, p.FirstDay, p.LastDay)
	}
	fmt.Println(sms.last)

	// The code was single-use.
	resp = svc.Do(ctx, staff.Request{Op: staff.OpConfirm, Operator: "ann", Number: "13800138000", Ticket: "T-42", Days: 15, Code: code})
	fmt.Println(resp.Err())

	audit.Scan(ctx, filepath.Join(data, "audit"), audit.Filter{Since: time.Now().Add(-time.Hour)}, func(e audit.Entry) error {
		fmt.Println(strings.TrimSpace(strings.Join([]string{e.Actor, e.Action, e.Outcome, e.Masked, e.Ticket}, " ")))
		return nil
	})
	// Output:
	// staff: not allowed: eve is not an operator
	// code sent to 138****8000
	// Beijing 2026-11-13 2026-11-27
	// 客服已凭您提供的验证码查询了您近15天的行程（工单T-42）。
	// staff: code not accepted: no code is pending for you and this number; send one with lookup
	// root operator-add ok
	// root operator-add ok
	// eve denied denied 138****8000 T-42
	// ann code-sent ok 138****8000 T-42
	// ann staff-lookup granted 138****8000 T-42
	// ann staff-lookup denied 138****8000 T-42
}

package staff

import (
	"time"

	"github.com/roamtrail/roamtrail/privacy/audit"
)

// Request is one staff command. On the admin socket it is one JSON line.
// Fields an Op does not use are ignored.
type Request struct {
	Op Op `json:"op"`
	// Operator is who asks: an operator ID from the registry.
	Operator string `json:"operator,omitempty"`

	// Number is the subscriber's number, in any form msisdn.Parse takes
	// (lookup, lookup-confirm, erase; audit-show's filter).
	Number string `json:"number,omitempty"`
	// Ticket is the case the request is made under (lookup,
	// lookup-confirm, erase): what the subscriber is told and the log
	// records.
	Ticket string `json:"ticket,omitempty"`
	// Days is the window of a lookup: 15 or 30.
	Days int `json:"days,omitempty"`
	// Code is the subscriber's one-time code (lookup-confirm).
	Code string `json:"code,omitempty"`
	// Lang is the language of the code SMS, "zh" (default) or "en"; the
	// notification after lookup-confirm goes in the same one.
	Lang string `json:"lang,omitempty"`

	// At is when the number went to its new holder
	// (subscriber-reassigned).
	At time.Time `json:"at,omitzero"`

	// ID and Role are the operator to add or remove (operators-add,
	// operators-remove).
	ID   string `json:"id,omitempty"`
	Role Role   `json:"role,omitempty"`
	// Bootstrap adds the first admin, which needs no operator: allowed
	// only while the registry holds no admin.
	Bootstrap bool `json:"bootstrap,omitempty"`

	// Actor, Action and Since filter audit-show (with Number); Limit is
	// the most entries returned, the newest; default 1000.
	Actor  string    `json:"actor,omitempty"`
	Action string    `json:"action,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Limit  int       `json:"limit,omitempty"`

	// Checkpoint is the auditor's copy of a checkpoint note and
	// VerifierKey the key to check signatures with (audit-verify). Without
	// VerifierKey, the service's own is used.
	Checkpoint  []byte `json:"checkpoint,omitempty"`
	VerifierKey string `json:"verifier_key,omitempty"`
}

// Response is a request's result. On the admin socket it is one JSON
// line. Exactly one result field is set, or Error.
type Response struct {
	// PID is the process that executed the request (over the socket).
	PID int `json:"pid,omitempty"`
	// Error and Kind are the request's failure: Err rebuilds it.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Warnings are what went wrong after the request succeeded (the
	// subscriber's notification failed).
	Warnings []string `json:"warnings,omitempty"`

	CodeSent   *CodeSent     `json:"code_sent,omitempty"`
	Itinerary  *Itinerary    `json:"itinerary,omitempty"`
	Erased     *Erased       `json:"erased,omitempty"`
	Reassigned *Reassigned   `json:"reassigned,omitempty"`
	Operators  []Operator    `json:"operators,omitempty"`
	Entries    *Entries      `json:"entries,omitempty"`
	Verify     *VerifyResult `json:"verify,omitempty"`
}

// Err is the request's error, nil if it succeeded. errors.Is matches the
// package's sentinels whichever side of the socket it came from.
func (r *Response) Err() error {
	if r.Error == "" && r.Kind == "" {
		return nil
	}
	return &remoteError{msg: r.Error, sentinel: errOfKind(r.Kind)}
}

// CodeSent is the result of OpLookup.
type CodeSent struct {
	Masked  string    `json:"masked"` // the number, masked: 138****8000
	Ticket  string    `json:"ticket"`
	Days    int       `json:"days"`
	Expires time.Time `json:"expires"`
}

// Itinerary is the result of OpConfirm: what the operator is shown.
type Itinerary struct {
	Masked   string     `json:"masked"`
	Ticket   string     `json:"ticket"`
	Days     int        `json:"days"`
	First    string     `json:"first"` // the window's first day, YYYY-MM-DD
	Last     string     `json:"last"`  // its last day, today
	Places   []PlaceRow `json:"places"`
	Notified bool       `json:"notified"` // the subscriber was told by SMS
}

// PlaceRow is one place of an itinerary, most recent first.
type PlaceRow struct {
	Region   int    `json:"region"`  // GB/T 2260 code or MCC
	NameZH   string `json:"name_zh"` // 河北省石家庄市
	NameEN   string `json:"name_en"` // Shijiazhuang, Hebei
	FirstDay string `json:"first_day"`
	LastDay  string `json:"last_day"`
}

// Erased is the result of OpErase.
type Erased struct {
	Masked string `json:"masked"`
	Ticket string `json:"ticket"`
}

// Entries is the result of OpAuditShow: the newest Limit matching
// entries, oldest first, and how many older ones matched too.
type Entries struct {
	Entries []audit.Entry `json:"entries"`
	Omitted int           `json:"omitted"`
}

// VerifyResult is the result of OpAuditVerify. A log found bad is a
// result, not an error: Problem says what, Report.Bad where.
type VerifyResult struct {
	Report audit.Report `json:"report"`
	// Problem is Verify's error, empty when the log verified.
	Problem string `json:"problem,omitempty"`
	// DefaultKey is set when the service's own verifier key was used
	// because the request named none.
	DefaultKey bool `json:"default_key,omitempty"`
}

package staff

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/rs/zerolog"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
	"github.com/roamtrail/roamtrail/privacy/audit"
)

// What a Service uses, declared here and kept small. cmd wires the
// concrete types.

// Itineraries answers lookups (itinerary.Engine over the store).
type Itineraries interface {
	Lookup(ctx context.Context, sub itinerary.Pseudonym, days int) (itinerary.Itinerary, error)
}

// Eraser erases a subscriber's visits (store.DB).
type Eraser interface {
	Erase(ctx context.Context, sub itinerary.Pseudonym) error
}

// Reassigner records that a number went to a new holder (store.DB).
type Reassigner interface {
	Reassigned(ctx context.Context, sub itinerary.Pseudonym, at time.Time) error
}

// Forgetter drops what the running gateway holds about a subscriber: a
// pending request, counters (smsgw/state).
type Forgetter interface {
	Forget(ctx context.Context, sub itinerary.Pseudonym) error
}

// Notifier sends a subscriber an SMS from the short code (the running
// service's SMPP session, or a short-lived bind of the CLI's own).
type Notifier interface {
	Notify(ctx context.Context, to msisdn.Number, text string) error
}

// AuditLog is the access log (*audit.Log).
type AuditLog interface {
	Append(ctx context.Context, e audit.Entry) (audit.Entry, error)
}

// Pseudonymizer turns a number into a pseudonym (privacy.Pseudonymizer).
type Pseudonymizer interface {
	Pseudonym(n msisdn.Number) itinerary.Pseudonym
}

// Options configure a Service. Every field's zero value selects its
// default.
type Options struct {
	// CodeTTL is how long a code is valid. Default 10 minutes.
	CodeTTL time.Duration
	// CodeTries is how many wrong tries kill a code. Default 5.
	CodeTries int
	// CodeLimit codes may go to one number per CodePer. Default 3 per
	// hour.
	CodeLimit int
	CodePer   time.Duration
	// NotifyTimeout bounds sending one SMS to the subscriber, bind
	// included. Default 30 seconds.
	NotifyTimeout time.Duration
	// ShowLimit is the most entries OpAuditShow returns when the request
	// sets none. Default 1000.
	ShowLimit int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Random is where codes come from. Default crypto/rand.Reader.
	Random io.Reader
	// Logger gets one line per request; numbers appear masked. Default
	// zerolog.Nop().
	Logger *zerolog.Logger
}

// Deps are what a Service works with. Operators and Audit are required;
// the rest only by the requests that use them (a request whose dependency
// is missing is ErrUnavailable), so that a CLI run opens only what its
// command needs.
type Deps struct {
	Operators *Registry
	Audit     AuditLog

	// Pseudonyms: lookup, lookup-confirm, erase, audit-show by number.
	Pseudonyms Pseudonymizer
	// Codes and Secret (the 32-byte pseudonym key, from which the codes'
	// MAC key is derived): lookup, lookup-confirm. Erase deletes the
	// subscriber's codes when Codes is set.
	Codes  CodeStore
	Secret []byte
	// Notifier: lookup, lookup-confirm.
	Notifier Notifier
	// Itineraries and Catalog: lookup-confirm.
	Itineraries Itineraries
	Catalog     *itinerary.Catalog
	// Eraser: erase. Forgetter, when set, is told too.
	Eraser    Eraser
	Forgetter Forgetter
	// Reassigner: subscriber-reassigned.
	Reassigner Reassigner
	// AuditDir is the access log's dir: audit-show, audit-verify.
	// VerifierKey is the key audit-verify uses when the request gives none.
	AuditDir    string
	VerifierKey string
}

// Service executes staff requests: role checks, codes, the access log,
// lookups, erasure, the registry. It is safe for concurrent use.
type Service struct {
	opts  Options
	deps  Deps
	log   zerolog.Logger
	codes *codeBook // nil without Codes
}

// Log field names.
const (
	logOp       = "op"
	logOperator = "operator"
	logNumber   = "number" // masked
	logKind     = "kind"
	logError    = "error"
	logWarning  = "warning"
)

// Limits of a request's fields.
const (
	maxTicketLen = 32
	maxShowLimit = 100_000
)

// New returns a Service.
func New(opts Options, deps Deps) (*Service, error) {
	setDefault(&opts.CodeTTL, 10*time.Minute)
	setDefault(&opts.CodeTries, 5)
	setDefault(&opts.CodeLimit, 3)
	setDefault(&opts.CodePer, time.Hour)
	setDefault(&opts.NotifyTimeout, 30*time.Second)
	setDefault(&opts.ShowLimit, 1000)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Random == nil {
		opts.Random = rand.Reader
	}
	if opts.Logger == nil {
		l := zerolog.Nop()
		opts.Logger = &l
	}
	switch {
	case opts.CodeTTL < 0, opts.CodeTries < 0, opts.CodeLimit < 0, opts.CodePer < 0, opts.NotifyTimeout < 0, opts.ShowLimit < 0:
		return nil, errors.New("staff: Options: limits must not be negative")
	case deps.Operators == nil:
		return nil, errors.New("staff: Deps.Operators is required")
	case deps.Audit == nil:
		return nil, errors.New("staff: Deps.Audit is required")
	case deps.Codes != nil && len(deps.Secret) < 16:
		return nil, errors.New("staff: Deps.Secret is required with Codes")
	}
	s := &Service{opts: opts, deps: deps, log: opts.Logger.With().Str("component", "staff").Logger()}
	if deps.Codes != nil {
		s.codes = &codeBook{
			store: deps.Codes, key: codeKey(deps.Secret), now: opts.Now, random: opts.Random,
			ttl: opts.CodeTTL, tries: opts.CodeTries, limit: opts.CodeLimit, per: opts.CodePer,
		}
	}
	return s, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Do executes req. Its failure is in the Response (Err), never a panic.
func (s *Service) Do(ctx context.Context, req Request) (resp Response) {
	var err error
	switch req.Op {
	case OpLookup:
		resp.CodeSent, err = s.lookup(ctx, req)
	case OpConfirm:
		resp.Itinerary, resp.Warnings, err = s.confirm(ctx, req)
	case OpErase:
		resp.Erased, resp.Warnings, err = s.erase(ctx, req)
	case OpOperatorsAdd:
		resp.Operators, err = s.addOperator(ctx, req)
	case OpOperatorsRemove:
		resp.Operators, err = s.removeOperator(ctx, req)
	case OpOperatorsList:
		resp.Operators, err = s.listOperators(ctx, req)
	case OpAuditShow:
		resp.Entries, err = s.auditShow(ctx, req)
	case OpAuditVerify:
		resp.Verify, err = s.auditVerify(ctx, req)
	case OpReassign:
		resp.Reassigned, resp.Warnings, err = s.reassign(ctx, req)
	default:
		err = fmt.Errorf("%w: unknown op", ErrInvalid)
	}
	ev := s.log.Info()
	if err != nil {
		resp = Response{Error: err.Error(), Kind: kindOf(err), Warnings: resp.Warnings}
		ev = s.log.Warn().Str(logKind, resp.Kind).Str(logError, resp.Error)
	}
	if n, perr := msisdn.Parse(req.Number); perr == nil {
		ev = ev.Str(logNumber, n.Masked())
	}
	if len(resp.Warnings) > 0 {
		ev = ev.Strs(logWarning, resp.Warnings)
	}
	ev.Str(logOp, string(req.Op)).Str(logOperator, req.Operator).Msg("staff request")
	return resp
}

// Sweep deletes the code records that hold nothing live any more (run
// it now and then: a record nobody asks about again is otherwise kept).
// It needs a Codes store that can list (store.DB does).
func (s *Service) Sweep(ctx context.Context) (int, error) {
	l, ok := s.deps.Codes.(CodeLister)
	if s.codes == nil || !ok {
		return 0, nil
	}
	return s.codes.sweep(ctx, l)
}

// subject is a subscriber as a request names them.
type subject struct {
	n      msisdn.Number
	sub    itinerary.Pseudonym
	masked string
}

func (s *Service) subjectOf(number string) (subject, error) {
	if s.deps.Pseudonyms == nil {
		return subject{}, fmt.Errorf("%w: no pseudonym key", ErrUnavailable)
	}
	n, err := msisdn.Parse(number)
	if err != nil {
		return subject{}, fmt.Errorf("%w: number: %w", ErrInvalid, err)
	}
	return subject{n: n, sub: s.deps.Pseudonyms.Pseudonym(n), masked: n.Masked()}, nil
}

// entry starts an access log entry about subj.
func (subj subject) entry(days int, ticket string) audit.Entry {
	return audit.Entry{Subject: audit.SubjectOf(subj.sub), Masked: subj.masked, Window: days, Ticket: ticket}
}

// validTicket checks a ticket: it goes into an SMS and the access log, so
// 1 to 32 ASCII letters, digits and - _ . / # :, and nothing the log would
// take for a phone number.
func validTicket(t string) error {
	if t == "" || len(t) > maxTicketLen {
		return fmt.Errorf("%w: ticket must be 1 to %d characters", ErrInvalid, maxTicketLen)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != '/' && c != '#' && c != ':' {
			return fmt.Errorf("%w: ticket may hold letters, digits and - _ . / # :", ErrInvalid)
		}
	}
	if looksLikeNumber(t) {
		return fmt.Errorf("%w: ticket must not hold 7 digits in a row (the access log would take it for a phone number)", ErrInvalid)
	}
	return nil
}

func validDays(d int) error {
	if d != 15 && d != 30 {
		return fmt.Errorf("%w: days must be 15 or 30", ErrInvalid)
	}
	return nil
}

// authorize returns the operator id if their role allows op. Otherwise the
// refusal is appended to the access log (e: what was asked, about whom)
// and the error is ErrDenied.
func (s *Service) authorize(ctx context.Context, op Op, id string, e audit.Entry) (Operator, error) {
	if err := ValidID(id); err != nil {
		return Operator{}, err
	}
	o, ok, err := s.deps.Operators.Get(id)
	if err != nil {
		return Operator{}, err
	}
	if !ok {
		// Not an operator has no role; the entry says agent, the least
		// that could have been meant, and the detail says why.
		e.Actor, e.Role, e.Detail = id, audit.RoleAgent, fmt.Sprintf("not an operator; asked to %s", op)
		hint := ""
		if ops, err := s.deps.Operators.List(); err == nil && countRole(ops, RoleAdmin) == 0 {
			hint = "; there are no operators yet: add the first admin with --bootstrap"
		}
		return Operator{}, s.deny(ctx, e, fmt.Errorf("%w: %s is not an operator%s", ErrDenied, id, hint))
	}
	if !o.Role.May(op) {
		e.Actor, e.Role, e.Detail = o.ID, string(o.Role), fmt.Sprintf("role %s may not %s", o.Role, op)
		return Operator{}, s.deny(ctx, e, fmt.Errorf("%w: %s is an %s, who may not %s", ErrDenied, o.ID, o.Role, op))
	}
	return o, nil
}

// deny appends a refusal and returns err, noting a failed append.
func (s *Service) deny(ctx context.Context, e audit.Entry, err error) error {
	e.Action, e.Outcome = audit.ActDenied, "denied"
	if _, aerr := s.deps.Audit.Append(ctx, e); aerr != nil {
		return fmt.Errorf("%w (and the access log refused the refusal: %v)", err, aerr)
	}
	return err
}

// record appends e; an error means nothing may be released.
func (s *Service) record(ctx context.Context, e audit.Entry) error {
	if _, err := s.deps.Audit.Append(ctx, e); err != nil {
		return fmt.Errorf("staff: access log: %w", err)
	}
	return nil
}

// lookup is step 1: a code to the subscriber, for consent.
func (s *Service) lookup(ctx context.Context, req Request) (*CodeSent, error) {
	if s.codes == nil || s.deps.Notifier == nil {
		return nil, fmt.Errorf("%w: lookup needs the code store and a way to send SMS", ErrUnavailable)
	}
	subj, err := s.subjectOf(req.Number)
	if err != nil {
		return nil, err
	}
	lang, err := langOf(req.Lang)
	if err = errors.Join(err, validTicket(req.Ticket), validDays(req.Days)); err != nil {
		return nil, err
	}
	e := subj.entry(req.Days, req.Ticket)
	op, err := s.authorize(ctx, OpLookup, req.Operator, e)
	if err != nil {
		return nil, err
	}
	e.Actor, e.Role = op.ID, string(op.Role)
	claim := codeClaim{sub: subj.sub, operator: op.ID, ticket: req.Ticket, days: req.Days}
	code, expires, err := s.codes.issue(ctx, claim, lang)
	if errors.Is(err, ErrRateLimited) {
		e.Detail = fmt.Sprintf("code rate limit: %d per %s", s.opts.CodeLimit, s.opts.CodePer)
		return nil, s.deny(ctx, e, err)
	}
	if err != nil {
		return nil, err
	}
	e.Action, e.Outcome = audit.ActCodeSent, "ok"
	if err := s.record(ctx, e); err != nil {
		return nil, errors.Join(err, s.codes.revoke(ctx, subj.sub, op.ID))
	}
	if err := s.notify(ctx, subj.n, codeText(lang, req.Days, req.Ticket, code, s.opts.CodeTTL)); err != nil {
		e.Action, e.Outcome, e.Detail = audit.ActCodeFailed, "failed", "the code SMS was not sent; code revoked"
		return nil, errors.Join(fmt.Errorf("%w: %w", ErrNotify, err), s.codes.revoke(ctx, subj.sub, op.ID), s.record(ctx, e))
	}
	return &CodeSent{Masked: subj.masked, Ticket: req.Ticket, Days: req.Days, Expires: expires}, nil
}

// notify sends the subscriber text, within NotifyTimeout.
func (s *Service) notify(ctx context.Context, to msisdn.Number, text string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.NotifyTimeout)
	defer cancel()
	return s.deps.Notifier.Notify(ctx, to, text)
}

// confirm is step 2: the code, then the itinerary, then the subscriber is
// told.
func (s *Service) confirm(ctx context.Context, req Request) (*Itinerary, []string, error) {
	if s.codes == nil || s.deps.Notifier == nil || s.deps.Itineraries == nil || s.deps.Catalog == nil {
		return nil, nil, fmt.Errorf("%w: lookup needs the store, the code store and a way to send SMS", ErrUnavailable)
	}
	subj, err := s.subjectOf(req.Number)
	if err != nil {
		return nil, nil, err
	}
	if err := errors.Join(validTicket(req.Ticket), validDays(req.Days)); err != nil {
		return nil, nil, err
	}
	if !validCode(req.Code) {
		return nil, nil, fmt.Errorf("%w: code must be %d digits", ErrInvalid, codeDigits)
	}
	e := subj.entry(req.Days, req.Ticket)
	op, err := s.authorize(ctx, OpConfirm, req.Operator, e)
	if err != nil {
		return nil, nil, err
	}
	e.Actor, e.Role = op.ID, string(op.Role)
	res, err := s.codes.check(ctx, codeClaim{sub: subj.sub, operator: op.ID, ticket: req.Ticket, days: req.Days}, req.Code)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	notify := func(text string) bool {
		if err := s.notify(ctx, subj.n, text); err != nil {
			warnings = append(warnings, fmt.Sprintf("the subscriber was not told by SMS: %v", err))
			return false
		}
		return true
	}
	switch res.outcome {
	case checkGranted:
		// Looked up before the entry is written, so that a failed lookup
		// leaves no "granted" behind; released only after it is.
		it, err := s.deps.Itineraries.Lookup(ctx, subj.sub, req.Days)
		if err != nil {
			return nil, nil, fmt.Errorf("staff: lookup: %w", err)
		}
		e.Action, e.Outcome = audit.ActStaffLookup, "granted"
		if err := s.record(ctx, e); err != nil {
			return nil, nil, err
		}
		out := s.table(it, subj, req)
		out.Notified = notify(viewedText(res.lang, req.Days, req.Ticket))
		return out, warnings, nil
	case checkWrong:
		// Every try is an attempt at the subscriber's data: they are told
		// of each (at most four a code, and codes a number are limited).
		e.Action, e.Outcome, e.Detail = audit.ActCodeFailed, "failed", fmt.Sprintf("wrong code, %d tries left", res.left)
		if err := s.record(ctx, e); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("%w: wrong code", ErrCode), err)
		}
		notify(wrongText(res.lang, req.Days, req.Ticket, res.left))
		return nil, warnings, fmt.Errorf("%w: wrong code, or not the ticket and days it was sent for; %d tries left; the subscriber was told", ErrCode, res.left)
	case checkExhausted, checkExpired:
		why := "wrong code, no tries left: code revoked"
		if res.outcome == checkExpired {
			why = "code expired"
		}
		e.Action, e.Outcome, e.Detail = audit.ActCodeFailed, "failed", why
		if err := s.record(ctx, e); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("%w: %s", ErrCode, why), err)
		}
		notify(deniedText(res.lang, req.Days, req.Ticket, res.outcome == checkExpired))
		return nil, warnings, fmt.Errorf("%w: %s; the subscriber was told; send a new code with lookup", ErrCode, why)
	default: // checkNone
		// No SMS: nothing was asked of the subscriber and nothing shown,
		// and with no code there is no bound on tries, so messaging them
		// would let anyone with the CLI flood a number. The entry is what
		// auditors see.
		e.Action, e.Outcome, e.Detail = audit.ActStaffLookup, "denied", "no code pending"
		return nil, nil, errors.Join(fmt.Errorf("%w: no code is pending for you and this number; send one with lookup", ErrCode), s.record(ctx, e))
	}
}

// table is what the operator sees of it: each place with its names and
// its first and last day.
func (s *Service) table(it itinerary.Itinerary, subj subject, req Request) *Itinerary {
	out := &Itinerary{
		Masked: subj.masked, Ticket: req.Ticket, Days: req.Days,
		First: it.Window.First.String(), Last: it.Window.Last.String(), Places: []PlaceRow{},
	}
	for _, p := range it.Places {
		zh, en := placeNames(s.deps.Catalog, p.Region)
		out.Places = append(out.Places, PlaceRow{
			Region: int(p.Region), NameZH: zh, NameEN: en, FirstDay: p.FirstDay.String(), LastDay: p.LastDay.String(),
		})
	}
	return out
}

// placeNames names a region as a reply does: a city with its province.
func placeNames(cat *itinerary.Catalog, r itinerary.Region) (zh, en string) {
	info, ok := cat.Lookup(r)
	if !ok {
		return r.String(), r.String()
	}
	zh, en = info.NameZH, info.NameEN
	if info.Kind != itinerary.KindCity {
		return zh, en
	}
	if prov, ok := cat.Lookup(info.Province); ok && prov.NameZH != info.NameZH {
		zh, en = prov.NameZH+info.NameZH, info.NameEN+", "+prov.NameEN
	}
	return zh, en
}

// erase erases a subscriber's visits, after the access log says so.
func (s *Service) erase(ctx context.Context, req Request) (*Erased, []string, error) {
	if s.deps.Eraser == nil {
		return nil, nil, fmt.Errorf("%w: erase needs the store", ErrUnavailable)
	}
	subj, err := s.subjectOf(req.Number)
	if err != nil {
		return nil, nil, err
	}
	if err := validTicket(req.Ticket); err != nil {
		return nil, nil, err
	}
	e := subj.entry(0, req.Ticket)
	op, err := s.authorize(ctx, OpErase, req.Operator, e)
	if err != nil {
		return nil, nil, err
	}
	e.Actor, e.Role, e.Action, e.Outcome = op.ID, string(op.Role), audit.ActErase, "ok"
	if err := s.record(ctx, e); err != nil {
		return nil, nil, err
	}
	if err := s.deps.Eraser.Erase(ctx, subj.sub); err != nil {
		e.Outcome, e.Detail = "failed", "the erase did not happen"
		return nil, nil, errors.Join(fmt.Errorf("staff: erase: %w", err), s.record(ctx, e))
	}
	var warnings []string
	if s.codes != nil {
		if err := s.codes.forget(ctx, subj.sub); err != nil {
			warnings = append(warnings, fmt.Sprintf("pending codes not deleted: %v", err))
		}
	}
	if s.deps.Forgetter != nil {
		if err := s.deps.Forgetter.Forget(ctx, subj.sub); err != nil {
			warnings = append(warnings, fmt.Sprintf("the gateway's state not cleared: %v", err))
		}
	}
	return &Erased{Masked: subj.masked, Ticket: req.Ticket}, warnings, nil
}

func (s *Service) addOperator(ctx context.Context, req Request) ([]Operator, error) {
	role, err := ParseRole(string(req.Role))
	if err = errors.Join(ValidID(req.ID), err); err != nil {
		return nil, err
	}
	add := Operator{ID: req.ID, Role: role, Added: s.opts.Now()}
	if req.Bootstrap {
		ops, err := s.deps.Operators.List()
		if err != nil {
			return nil, err
		}
		if countRole(ops, RoleAdmin) > 0 {
			actor := req.Operator
			if ValidID(actor) != nil {
				actor = req.ID
			}
			e := audit.Entry{Actor: actor, Role: audit.RoleAgent, Detail: "bootstrap while an admin exists"}
			if o, ok, _ := s.deps.Operators.Get(actor); ok {
				e.Role = string(o.Role)
			}
			return nil, s.deny(ctx, e, fmt.Errorf("%w: an admin exists; --bootstrap only makes the first one: ask an admin", ErrDenied))
		}
		if role != RoleAdmin {
			return nil, fmt.Errorf("%w: --bootstrap makes the first admin: use --role admin", ErrInvalid)
		}
	}
	actor := audit.Entry{Actor: req.ID, Role: audit.RoleAdmin} // the first admin makes itself
	if !req.Bootstrap {
		op, err := s.authorize(ctx, OpOperatorsAdd, req.Operator, audit.Entry{})
		if err != nil {
			return nil, err
		}
		actor = audit.Entry{Actor: op.ID, Role: string(op.Role)}
	}
	// Who may see itineraries is itself a record of processing: logged
	// before it takes effect.
	actor.Action, actor.Outcome, actor.Detail = audit.ActOperatorAdd, "ok", "operator "+add.ID+" role "+string(role)
	if err := s.record(ctx, actor); err != nil {
		return nil, err
	}
	if err := s.deps.Operators.Add(add); err != nil {
		return nil, err
	}
	o, _, err := s.deps.Operators.Get(add.ID)
	return []Operator{o}, err
}

func (s *Service) removeOperator(ctx context.Context, req Request) ([]Operator, error) {
	if err := ValidID(req.ID); err != nil {
		return nil, err
	}
	by, err := s.authorize(ctx, OpOperatorsRemove, req.Operator, audit.Entry{})
	if err != nil {
		return nil, err
	}
	o, ok, err := s.deps.Operators.Get(req.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no operator %s", ErrInvalid, req.ID)
	}
	if err := s.record(ctx, audit.Entry{Actor: by.ID, Role: string(by.Role), Action: audit.ActOperatorDel, Outcome: "ok",
		Detail: "operator " + o.ID + " role " + string(o.Role)}); err != nil {
		return nil, err
	}
	if err := s.deps.Operators.Remove(req.ID); err != nil {
		return nil, err
	}
	return []Operator{o}, nil
}

// listOperators is open to anyone until an admin exists, so that whoever
// sets the service up can see that there is none.
func (s *Service) listOperators(ctx context.Context, req Request) ([]Operator, error) {
	ops, err := s.deps.Operators.List()
	if err != nil {
		return nil, err
	}
	if countRole(ops, RoleAdmin) > 0 {
		if _, err := s.authorize(ctx, OpOperatorsList, req.Operator, audit.Entry{}); err != nil {
			return nil, err
		}
	}
	if ops == nil {
		ops = []Operator{}
	}
	return ops, nil
}

func (s *Service) auditShow(ctx context.Context, req Request) (*Entries, error) {
	if s.deps.AuditDir == "" {
		return nil, fmt.Errorf("%w: no access log dir", ErrUnavailable)
	}
	f := audit.Filter{Actor: req.Actor, Action: req.Action, Since: req.Since}
	if f.Action != "" && !audit.IsAction(f.Action) {
		return nil, fmt.Errorf("%w: action must be one of %v", ErrInvalid, audit.Actions())
	}
	limit := req.Limit
	if limit == 0 {
		limit = s.opts.ShowLimit
	}
	if limit < 1 || limit > maxShowLimit {
		return nil, fmt.Errorf("%w: limit must be 1 to %d", ErrInvalid, maxShowLimit)
	}
	var e audit.Entry
	if req.Number != "" {
		subj, err := s.subjectOf(req.Number)
		if err != nil {
			return nil, err
		}
		f.Subject = audit.SubjectOf(subj.sub)
		e.Subject, e.Masked = f.Subject, subj.masked
	}
	if _, err := s.authorize(ctx, OpAuditShow, req.Operator, e); err != nil {
		return nil, err
	}
	// The newest limit entries: a ring over the scan.
	out := &Entries{Entries: []audit.Entry{}}
	ring := make([]audit.Entry, 0, min(limit, 1024))
	n := 0
	err := audit.Scan(ctx, s.deps.AuditDir, f, func(e audit.Entry) error {
		if len(ring) < limit {
			ring = append(ring, e)
		} else {
			ring[n%limit] = e
		}
		n++
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil // no log yet
	}
	if err != nil {
		return nil, err
	}
	if n > limit {
		out.Omitted = n - limit
		ring = append(ring[n%limit:], ring[:n%limit]...)
	}
	out.Entries = ring
	return out, nil
}

func (s *Service) auditVerify(ctx context.Context, req Request) (*VerifyResult, error) {
	if s.deps.AuditDir == "" {
		return nil, fmt.Errorf("%w: no access log dir", ErrUnavailable)
	}
	if _, err := s.authorize(ctx, OpAuditVerify, req.Operator, audit.Entry{}); err != nil {
		return nil, err
	}
	out := &VerifyResult{}
	key := req.VerifierKey
	if key == "" {
		key, out.DefaultKey = s.deps.VerifierKey, true
	}
	if key == "" {
		return nil, fmt.Errorf("%w: a verifier key is required", ErrInvalid)
	}
	rep, err := audit.Verify(ctx, s.deps.AuditDir, audit.VerifyOptions{VerifierKey: key, Checkpoint: req.Checkpoint})
	out.Report = rep
	switch {
	case err == nil:
	case errors.Is(err, audit.ErrTampered), errors.Is(err, audit.ErrTruncated), errors.Is(err, audit.ErrPruned),
		errors.Is(err, audit.ErrBadSignature), errors.Is(err, audit.ErrBadCheckpoint):
		out.Problem = err.Error()
	case errors.Is(err, fs.ErrNotExist):
		out.Problem = "no access log: " + err.Error()
	default:
		return nil, err // a malformed key, an unreadable dir: not a verdict
	}
	return out, nil
}

// Reassigned is what subscriber-reassigned did.
type Reassigned struct {
	Masked string    `json:"masked"`
	At     time.Time `json:"at"`
}

// reassign records that a number went to a new holder: logged first, then
// the previous holder's history before At erased and hidden for good, and
// what the gateway still holds for them (a pending request) forgotten.
func (s *Service) reassign(ctx context.Context, req Request) (*Reassigned, []string, error) {
	if s.deps.Reassigner == nil {
		return nil, nil, fmt.Errorf("%w: this service cannot record reassignments", ErrInvalid)
	}
	if req.At.IsZero() {
		return nil, nil, fmt.Errorf("%w: the reassignment time is required", ErrInvalid)
	}
	subj, err := s.subjectOf(req.Number)
	if err != nil {
		return nil, nil, err
	}
	e := audit.Entry{Actor: audit.ActorSystem, Role: audit.RoleSystem, Action: audit.ActReassigned, Outcome: "ok",
		Subject: audit.SubjectOf(subj.sub), Masked: subj.masked,
		Detail: "history before the reassignment erased and hidden from the new holder"}
	if err := s.record(ctx, e); err != nil {
		return nil, nil, err
	}
	if err := s.deps.Reassigner.Reassigned(ctx, subj.sub, req.At); err != nil {
		e.Outcome, e.Detail = "failed", "the reassignment was not recorded"
		if _, lerr := s.deps.Audit.Append(ctx, e); lerr != nil {
			s.log.Error().Err(lerr).Msg("cannot log that a reassignment failed")
		}
		return nil, nil, err
	}
	var warnings []string
	if s.deps.Forgetter != nil {
		if err := s.deps.Forgetter.Forget(ctx, subj.sub); err != nil {
			warnings = append(warnings, fmt.Sprintf("the gateway's state for the number was not cleared: %v", err))
		}
	}
	return &Reassigned{Masked: subj.masked, At: req.At}, warnings, nil
}

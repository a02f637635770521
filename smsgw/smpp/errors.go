package smpp

import (
	"errors"
	"fmt"

	"github.com/fiorix/go-smpp/smpp/pdu"
)

// Status is an SMPP command_status. It is go-smpp's pdu.Status, so
// errors.Is(err, pdu.Status(0x58)) works on the errors of this package.
type Status = pdu.Status

// Command statuses this package uses by name.
const (
	StatusOK          Status = 0x00
	StatusInvMsgLen   Status = 0x01 // ESME_RINVMSGLEN
	StatusInvCmdLen   Status = 0x02 // ESME_RINVCMDLEN
	StatusInvCmdID    Status = 0x03 // ESME_RINVCMDID
	StatusInvBndSts   Status = 0x04 // ESME_RINVBNDSTS
	StatusAlyBnd      Status = 0x05 // ESME_RALYBND
	StatusSysErr      Status = 0x08 // ESME_RSYSERR
	StatusBindFail    Status = 0x0D // ESME_RBINDFAIL
	StatusInvPaswd    Status = 0x0E // ESME_RINVPASWD
	StatusInvSysID    Status = 0x0F // ESME_RINVSYSID
	StatusMsgQFul     Status = 0x14 // ESME_RMSGQFUL
	StatusThrottled   Status = 0x58 // ESME_RTHROTTLED
	StatusRxTAppn     Status = 0x64 // ESME_RX_T_APPN: temporary, redeliver later
	StatusRxPAppn     Status = 0x65 // ESME_RX_P_APPN: permanent, do not redeliver
	StatusRxRAppn     Status = 0x66 // ESME_RX_R_APPN: rejected
	StatusUnknownErr  Status = 0xFF // ESME_RUNKNOWNERR
	StatusInvDstAdr   Status = 0x0B // ESME_RINVDSTADR
	StatusInvSrcAdr   Status = 0x0A // ESME_RINVSRCADR
	StatusSubmitFail  Status = 0x45 // ESME_RSUBMITFAIL
	StatusInvOptParam Status = 0xC4 // ESME_RINVOPTPARAMVAL
)

var (
	// ErrClosed is returned once Shutdown or Close has begun.
	ErrClosed = errors.New("smpp: session closed")
	// ErrUnknownOutcome means the submit_sm was written but no response
	// came (timeout, connection lost, context ended): the SMSC may or may
	// not have taken it. Never resend blindly: that is how duplicates
	// happen.
	ErrUnknownOutcome = errors.New("smpp: submit outcome unknown")
	// ErrResponseTimeout is the cause under ErrUnknownOutcome when the
	// response did not come within Options.ResponseTimeout.
	ErrResponseTimeout = errors.New("smpp: response timeout")
	// ErrConnLost is the cause under ErrUnknownOutcome when the
	// connection died after the PDU was written.
	ErrConnLost = errors.New("smpp: connection lost")
	// ErrBind reports a bind attempt the SMSC refused or that failed.
	ErrBind = errors.New("smpp: bind failed")
	// ErrInvalid reports a Submit or Options value that cannot be sent or
	// used; the message names the field.
	ErrInvalid = errors.New("smpp: invalid")
	// ErrDeadLink reports an enquire_link that got no answer in time.
	ErrDeadLink = errors.New("smpp: link dead (no enquire_link_resp)")
	// ErrUnbound reports the SMSC unbinding us.
	ErrUnbound = errors.New("smpp: unbound by SMSC")
)

// StatusError is a non-zero command_status in a response. It unwraps to
// the pdu.Status, so both errors.As(err, &smpp.StatusError{}) and
// errors.Is(err, pdu.Status(0x45)) work.
type StatusError struct {
	Command pdu.ID // the response's command id (or generic_nack)
	Status  Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("smpp: %s status 0x%02X (%s)", commandName(e.Command), uint32(e.Status), e.Status.Error())
}

// Unwrap returns the status.
func (e *StatusError) Unwrap() error { return e.Status }

// Temporary reports whether retrying later may succeed (system error,
// throttling, queue full): the SMSC said it did not take the message.
func (e *StatusError) Temporary() bool { return IsTemporary(e.Status) }

// IsTemporary reports whether a submit status is worth a retry later.
func IsTemporary(s Status) bool {
	return s == StatusSysErr || s == StatusThrottled || s == StatusMsgQFul
}

// PartsError reports a segmented message of which only some parts were
// accepted. Accepted[i] is the message id of part i+1 for the parts that
// were; Failed is the 1-based part that failed; Err is its error
// (possibly ErrUnknownOutcome). Later parts were not sent.
type PartsError struct {
	Accepted []string
	Failed   int
	Total    int
	Err      error
}

func (e *PartsError) Error() string {
	return fmt.Sprintf("smpp: part %d of %d failed after %d accepted: %v", e.Failed, e.Total, len(e.Accepted), e.Err)
}

func (e *PartsError) Unwrap() error { return e.Err }

func commandName(id pdu.ID) string {
	if s := id.String(); s != "" {
		return s
	}
	return fmt.Sprintf("command 0x%08X", uint32(id))
}

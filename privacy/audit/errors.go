package audit

import "errors"

// Errors. Each is wrapped with %w and a reason that names a file, line,
// sequence number or field, never a field's value.
var (
	// ErrInvalid: an entry given to Append breaks a rule of Entry.
	ErrInvalid = errors.New("audit: invalid entry")
	// ErrNumber: an entry's text field holds what looks like a phone number.
	ErrNumber = errors.New("audit: field looks like a phone number")
	// ErrClosed: the log has been closed.
	ErrClosed = errors.New("audit: log closed")
	// ErrLocked: another process has the log open.
	ErrLocked = errors.New("audit: log is open in another process")
	// ErrFailed: a write or sync failed earlier; the log refuses appends
	// until it is reopened, which repairs the tail and records the repair.
	ErrFailed = errors.New("audit: log failed, reopen it")
	// ErrTampered: a line does not parse, hash, link or count as it must, or
	// disagrees with a signed checkpoint.
	ErrTampered = errors.New("audit: log tampered with or corrupt")
	// ErrTruncated: entries a checkpoint or a prune anchor vouches for are
	// missing from the end or the start of the log.
	ErrTruncated = errors.New("audit: log truncated")
	// ErrPruned: an auditor's checkpoint is older than the retained log, so
	// it can no longer be matched.
	ErrPruned = errors.New("audit: checkpoint predates the retained log")
	// ErrBadSignature: a checkpoint's signature does not verify with the
	// verifier key, or is by another key.
	ErrBadSignature = errors.New("audit: bad checkpoint signature")
	// ErrBadCheckpoint: a checkpoint note is malformed or names another log.
	ErrBadCheckpoint = errors.New("audit: malformed checkpoint")
	// ErrPerms: the audit dir is open to group or others.
	ErrPerms = errors.New("audit: audit dir is accessible to group or others")
	// ErrKeyPerms: the signing key file is readable by group or others.
	ErrKeyPerms = errors.New("audit: signing key file is readable by others")
)

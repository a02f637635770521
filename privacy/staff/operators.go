package staff

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Role is what an operator may do.
type Role string

// Roles.
const (
	RoleAgent   Role = "agent"   // lookup, erase
	RoleAuditor Role = "auditor" // audit show and verify, never an itinerary
	RoleAdmin   Role = "admin"   // operators, and everything an agent or auditor may
)

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAgent, RoleAuditor, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("%w: role must be agent, auditor or admin", ErrInvalid)
}

// Op is a request's operation.
type Op string

// Operations.
const (
	OpLookup          Op = "lookup"           // send the subscriber a code
	OpConfirm         Op = "lookup-confirm"   // show the itinerary, given the code
	OpErase           Op = "erase"            // erase a subscriber's data
	OpOperatorsAdd    Op = "operators-add"    // add an operator
	OpOperatorsRemove Op = "operators-remove" // remove an operator
	OpOperatorsList   Op = "operators-list"   // list operators
	OpAuditShow       Op = "audit-show"       // read the access log
	OpAuditVerify     Op = "audit-verify"     // verify the access log
	// OpReassign records that a number went to a new holder. It is the
	// number's owner's (the operator running the service), not a staff
	// role's: like ingest and purge, only who can open the data dir, or
	// reach the admin socket (the data dir's owner), may ask.
	OpReassign Op = "subscriber-reassigned"
	opPing     Op = "ping" // the socket's liveness check, for Listen
)

// permitted lists the roles each operation is open to.
var permitted = map[Op][]Role{
	OpLookup:          {RoleAgent, RoleAdmin},
	OpConfirm:         {RoleAgent, RoleAdmin},
	OpErase:           {RoleAgent, RoleAdmin},
	OpOperatorsAdd:    {RoleAdmin},
	OpOperatorsRemove: {RoleAdmin},
	OpOperatorsList:   {RoleAdmin},
	OpAuditShow:       {RoleAuditor, RoleAdmin},
	OpAuditVerify:     {RoleAuditor, RoleAdmin},
}

// May reports whether r allows op.
func (r Role) May(op Op) bool { return slices.Contains(permitted[op], r) }

// Operator is one entry of the registry.
type Operator struct {
	ID    string    `json:"id"`
	Role  Role      `json:"role"`
	Added time.Time `json:"added"`
}

// maxIDLen bounds an operator ID; the access log takes an Actor of up to
// 64 bytes.
const maxIDLen = 64

// ValidID checks an operator ID: 1 to 64 of ASCII letters, digits and
// . _ @ -, starting with a letter or digit, and nothing the access log
// would take for a phone number (seven digits in a row).
func ValidID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: operator ID must be 1 to %d characters", ErrInvalid, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isAlnum(c) && (i == 0 || c != '.' && c != '_' && c != '@' && c != '-') {
			return fmt.Errorf("%w: operator ID may hold letters, digits and . _ @ - and start with a letter or digit", ErrInvalid)
		}
	}
	if looksLikeNumber(id) {
		return fmt.Errorf("%w: operator ID must not hold 7 digits in a row", ErrInvalid)
	}
	return nil
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// looksLikeNumber is the access log's test for a phone number in a text
// field, which refuses the entry: seven or more digits in a row, a single
// space, hyphen or dot between two digits continuing the run
// ("138-0013-8000"). Checking it here turns a refused entry into a clear
// error before anything happens.
func looksLikeNumber(s string) bool {
	run, sep := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			if run++; run >= 7 {
				return true
			}
			sep = false
		case run > 0 && !sep && (c == ' ' || c == '-' || c == '.'):
			sep = true
		default:
			run, sep = 0, false
		}
	}
	return false
}

// registryFile is operators.json.
type registryFile struct {
	Version   int        `json:"version"`
	Operators []Operator `json:"operators"`
}

const registryVersion = 1

// Registry is the list of operators, a JSON file (operators.json in the
// data dir) of mode 0600, rewritten atomically (a temporary file synced and
// renamed over it, the dir synced). Every call reads the file, so a change
// made by another process is seen at once. It is safe for concurrent use
// within a process; across processes the caller serialises writers (cmd
// does so by holding the access log, which one process at a time may open).
type Registry struct {
	path string
	mu   sync.Mutex
}

// NewRegistry returns the registry in the file at path. The file need not
// exist: a missing file is an empty registry.
func NewRegistry(path string) *Registry { return &Registry{path: path} }

// Path is the registry's file.
func (r *Registry) Path() string { return r.path }

// List returns every operator, sorted by ID.
func (r *Registry) List() ([]Operator, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.read()
}

// Get returns the operator id; ok is false when there is none.
func (r *Registry) Get(id string) (op Operator, ok bool, err error) {
	ops, err := r.List()
	if err != nil {
		return Operator{}, false, err
	}
	i := slices.IndexFunc(ops, func(o Operator) bool { return o.ID == id })
	if i < 0 {
		return Operator{}, false, nil
	}
	return ops[i], true, nil
}

// Add adds op; an ID already listed is ErrInvalid.
func (r *Registry) Add(op Operator) error {
	if err := ValidID(op.ID); err != nil {
		return err
	}
	if _, err := ParseRole(string(op.Role)); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ops, err := r.read()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(ops, func(o Operator) bool { return o.ID == op.ID }) {
		return fmt.Errorf("%w: operator %s exists", ErrInvalid, op.ID)
	}
	op.Added = op.Added.UTC().Truncate(time.Second)
	ops = append(ops, op)
	slices.SortFunc(ops, func(a, b Operator) int { return strings.Compare(a.ID, b.ID) })
	return r.write(ops)
}

// Remove removes the operator id; an unknown ID is ErrInvalid, and so is
// removing the last admin, which would leave nobody to manage operators.
func (r *Registry) Remove(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops, err := r.read()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ops, func(o Operator) bool { return o.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: no operator %s", ErrInvalid, id)
	}
	if ops[i].Role == RoleAdmin && countRole(ops, RoleAdmin) == 1 {
		return fmt.Errorf("%w: %s is the last admin; add another admin first", ErrInvalid, id)
	}
	return r.write(slices.Delete(ops, i, i+1))
}

func countRole(ops []Operator, role Role) int {
	n := 0
	for _, o := range ops {
		if o.Role == role {
			n++
		}
	}
	return n
}

func (r *Registry) read() ([]Operator, error) {
	st, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRegistry, err)
	}
	// Whoever can write it can make themselves an admin; whoever can read
	// it learns who may see location data.
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is accessible to group or others (want mode 0600)", ErrRegistry, filepath.Base(r.path))
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRegistry, err)
	}
	var f registryFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRegistry, filepath.Base(r.path), err)
	}
	if f.Version != registryVersion {
		return nil, fmt.Errorf("%w: %s: version %d, want %d", ErrRegistry, filepath.Base(r.path), f.Version, registryVersion)
	}
	for _, o := range f.Operators {
		if ValidID(o.ID) != nil {
			return nil, fmt.Errorf("%w: %s: a malformed operator ID", ErrRegistry, filepath.Base(r.path))
		}
		if _, err := ParseRole(string(o.Role)); err != nil {
			return nil, fmt.Errorf("%w: %s: operator %s has an unknown role", ErrRegistry, filepath.Base(r.path), o.ID)
		}
	}
	return f.Operators, nil
}

// write replaces the file: a temporary file in the same dir, synced, then
// renamed over it and the dir synced, so that a crash leaves the old list
// or the new one, never a torn one.
func (r *Registry) write(ops []Operator) error {
	if ops == nil {
		ops = []Operator{}
	}
	b, err := json.MarshalIndent(registryFile{Version: registryVersion, Operators: ops}, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRegistry, err)
	}
	dir := filepath.Dir(r.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrRegistry, err)
	}
	tmp, err := os.CreateTemp(dir, ".operators-*") // mode 0600
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRegistry, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), r.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrRegistry, filepath.Base(r.path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

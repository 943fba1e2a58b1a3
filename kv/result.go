package kv

import (
	"bytes"
	"errors"
	"fmt"
)

var (
	// ErrStaleSequence answers a command whose sequence number is below its
	// session's last: the client has already moved past it, so it is an old
	// duplicate and must not run. Nothing was applied.
	ErrStaleSequence = errors.New("kv: stale sequence number")
	// ErrSessionExpired answers a command from a client the store has no
	// session for (evicted, or never opened). Nothing was applied by this
	// command, but an earlier attempt of it may have been applied before
	// the session was evicted: its outcome is unknown. The client must open
	// a new session under a new client ID.
	ErrSessionExpired = errors.New("kv: session expired")
	// ErrBadCommand answers bytes that are not a valid command or query.
	// Nothing was applied.
	ErrBadCommand = errors.New("kv: bad command")
)

// Status says how a command or query was answered. The values are part of
// the result encoding: never renumber them. Zero is not a status, so a
// zero Result is recognisably not an answer.
type Status uint8

const (
	// StatusOK: the command ran (or a duplicate got the reply of the run).
	// For a CAS it means the swap happened.
	StatusOK Status = 1
	// StatusCASMismatch: the CAS ran but the key did not hold the expected
	// value; Found and Value give what it held. Nothing changed.
	StatusCASMismatch Status = 2
	// StatusStaleSequence: see ErrStaleSequence.
	StatusStaleSequence Status = 3
	// StatusSessionExpired: see ErrSessionExpired.
	StatusSessionExpired Status = 4
	// StatusBadCommand: see ErrBadCommand; Detail says what was wrong.
	StatusBadCommand Status = 5
)

func (s Status) valid() bool { return s >= StatusOK && s <= StatusBadCommand }

// String names the status for errors and logs.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusCASMismatch:
		return "cas-mismatch"
	case StatusStaleSequence:
		return "stale-sequence"
	case StatusSessionExpired:
		return "session-expired"
	case StatusBadCommand:
		return "bad-command"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Result is what Store.Apply returns for each command and Store.Read for a
// query, as the `any` that node.Propose and node.Read hand back:
//
//	v, err := n.Propose(ctx, cmd)
//	res := v.(kv.Result)
//	if err := res.Err(); err != nil { ... }   // stale, expired, bad
//	swapped := res.Status == kv.StatusOK      // for a CAS
//
// A Get answer has StatusOK with Found and Value.
type Result struct {
	Status Status
	// Found says whether the key existed: for a Get, whether it has a
	// value; for a Delete, whether there was something to delete; for a
	// CAS mismatch, whether the key held any value.
	Found bool
	// Value is a Get's value, or a mismatched CAS's current value.
	// Invariant: it is shared with the store and with every later retry's
	// reply and must never be modified; the store never writes into a
	// value slice it has handed out (it writes in place only into values it
	// never handed out, see slot).
	Value []byte
	// Detail explains a StatusBadCommand, StatusStaleSequence or
	// StatusSessionExpired answer. It is deterministic, so replicas agree
	// on it byte for byte.
	Detail string
}

// Err returns nil when the command ran (StatusOK or StatusCASMismatch) and
// otherwise an error wrapping ErrStaleSequence, ErrSessionExpired or
// ErrBadCommand, so callers can use errors.Is.
func (r Result) Err() error {
	switch r.Status {
	case StatusOK, StatusCASMismatch:
		return nil
	case StatusStaleSequence:
		return fmt.Errorf("%w: %s", ErrStaleSequence, r.Detail)
	case StatusSessionExpired:
		return fmt.Errorf("%w: %s", ErrSessionExpired, r.Detail)
	case StatusBadCommand:
		return fmt.Errorf("%w: %s", ErrBadCommand, r.Detail)
	}
	return fmt.Errorf("%w: result with %v", ErrBadCommand, r.Status)
}

// AppendBinary appends r's encoding (AppendResult's) to b; with
// MarshalBinary and UnmarshalBinary it lets results cross a process
// boundary, as the client API does.
func (r Result) AppendBinary(b []byte) ([]byte, error) { return AppendResult(b, r), nil }

// MarshalBinary encodes r as AppendResult does.
func (r Result) MarshalBinary() ([]byte, error) { return AppendResult(nil, r), nil }

// UnmarshalBinary decodes exactly one encoded result into r; r.Value is a
// copy, so b may be reused. Errors wrap ErrBadEncoding.
func (r *Result) UnmarshalBinary(b []byte) error {
	v, err := DecodeResult(b)
	if err != nil {
		return err
	}
	v.Value = bytes.Clone(v.Value)
	*r = v
	return nil
}

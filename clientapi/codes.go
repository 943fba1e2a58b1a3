package clientapi

import "github.com/raftbench/raftbench/clientapi/wire"

// Code says why a request failed (see package wire for the values).
type Code = wire.Code

// Error codes of an error answer.
const (
	CodeNotLeader      = wire.CodeNotLeader
	CodeStopped        = wire.CodeStopped
	CodeTimeout        = wire.CodeTimeout
	CodeLeadershipLost = wire.CodeLeadershipLost
	CodeTooLarge       = wire.CodeTooLarge
	CodeBadEncoding    = wire.CodeBadEncoding
	CodeStateMachine   = wire.CodeStateMachine
	CodeInternal       = wire.CodeInternal
)

// Protocol errors, from package wire.
var (
	// ErrFrameTooLarge: a frame larger than the maximum frame size, sent
	// or about to be.
	ErrFrameTooLarge = wire.ErrFrameTooLarge
	// ErrBadFrame: a frame or handshake that does not decode.
	ErrBadFrame = wire.ErrBadFrame
	// ErrVersion: the other side speaks another protocol version.
	ErrVersion = wire.ErrVersion
)

package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Handshake constants.
const (
	// Magic opens every connection, so a stray client (an HTTP probe, a
	// port scanner) is recognised after four bytes.
	Magic = "RBT1"
	// ProtocolVersion is the wire version this code speaks. A peer with
	// another version is refused: the codec has no negotiation, so mixing
	// versions in one cluster would misread frames. Version 2 added the
	// follower's timing report (flag bit 2, core.AppTiming), which a
	// version 1 decoder rejects as an unknown flag.
	ProtocolVersion uint16 = 2
	// HelloSize is the fixed size of a handshake message.
	HelloSize = len(Magic) + 2 + 8 + 8 + 8
)

// Handshake errors; each wraps ErrBadHandshake so a caller can test for
// "any handshake problem" or a particular one.
var (
	ErrBadHandshake    = errors.New("transport: bad handshake")
	ErrBadMagic        = fmt.Errorf("%w: bad magic", ErrBadHandshake)
	ErrVersionMismatch = fmt.Errorf("%w: protocol version mismatch", ErrBadHandshake)
	ErrClusterMismatch = fmt.Errorf("%w: cluster ID mismatch", ErrBadHandshake)
	ErrWrongNode       = fmt.Errorf("%w: wrong node", ErrBadHandshake)
)

// Hello is the handshake each side of a connection sends once, before any
// frame. The dialler sends its Hello first; the acceptor checks it and
// answers with its own (From and To swapped), which the dialler checks in
// turn. Either side closes the connection on a mismatch, so a node
// configured with the wrong address, cluster or version never exchanges a
// single message.
//
// Wire layout (HelloSize bytes, integers big-endian):
//
//	magic      [4]byte  "RBT1"
//	version    uint16
//	cluster ID uint64
//	from       uint64   sender's node ID (never 0)
//	to         uint64   the node ID the sender believes it talks to
type Hello struct {
	Version   uint16
	ClusterID uint64
	From      uint64
	To        uint64
}

// AppendHello appends h's wire form to dst.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, Magic...)
	dst = binary.BigEndian.AppendUint16(dst, h.Version)
	dst = binary.BigEndian.AppendUint64(dst, h.ClusterID)
	dst = binary.BigEndian.AppendUint64(dst, h.From)
	dst = binary.BigEndian.AppendUint64(dst, h.To)
	return dst
}

// ParseHello decodes a handshake. It checks only the form (size, magic);
// Check compares the content with what the reader expects.
func ParseHello(b []byte) (Hello, error) {
	if len(b) != HelloSize {
		return Hello{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadHandshake, len(b), HelloSize)
	}
	if !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return Hello{}, fmt.Errorf("%w: got %q", ErrBadMagic, b[:len(Magic)])
	}
	b = b[len(Magic):]
	return Hello{
		Version:   binary.BigEndian.Uint16(b),
		ClusterID: binary.BigEndian.Uint64(b[2:]),
		From:      binary.BigEndian.Uint64(b[10:]),
		To:        binary.BigEndian.Uint64(b[18:]),
	}, nil
}

// Check verifies a received Hello: same version and cluster, addressed to
// self, and, when from is not 0, sent by from (the dialler knows whom it
// dialled; the acceptor accepts any non-zero sender).
func (h Hello) Check(clusterID, self, from uint64) error {
	switch {
	case h.Version != ProtocolVersion:
		return fmt.Errorf("%w: peer speaks %d, we speak %d", ErrVersionMismatch, h.Version, ProtocolVersion)
	case h.ClusterID != clusterID:
		return fmt.Errorf("%w: peer is in cluster %d, we are in %d", ErrClusterMismatch, h.ClusterID, clusterID)
	case h.To != self:
		return fmt.Errorf("%w: peer %d wants node %d, we are %d", ErrWrongNode, h.From, h.To, self)
	case h.From == 0:
		return fmt.Errorf("%w: peer claims node ID 0", ErrWrongNode)
	case from != 0 && h.From != from:
		return fmt.Errorf("%w: dialled node %d but node %d answered", ErrWrongNode, from, h.From)
	}
	return nil
}

// rejectReason maps a handshake or frame error to its counter.
func rejectReason(err error) RejectReason {
	switch {
	case errors.Is(err, ErrVersionMismatch):
		return RejectVersion
	case errors.Is(err, ErrClusterMismatch):
		return RejectCluster
	case errors.Is(err, ErrWrongNode):
		return RejectWrongNode
	case errors.Is(err, ErrFrameTooLarge):
		return RejectFrameTooLarge
	case errors.Is(err, ErrBadFrame):
		return RejectBadFrame
	}
	return RejectHandshake
}

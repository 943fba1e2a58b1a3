package transport

import (
	"errors"
	"fmt"

	"github.com/raftbench/raftbench/core"
)

// Transport moves core.Messages between the nodes of one cluster.
//
// Ordering: messages from one sender to one peer arrive in the order Send
// was called for them, within one traffic class. A transport with separate
// streams per class (QUIC keeps control traffic apart from appends, see
// core.MessageType.IsControl) may deliver a heartbeat before an append that
// was sent earlier; Raft does not need any order across classes. Messages are
// never delivered twice by a transport itself, but any message may be lost:
// Raft retries, so every failure mode here is "drop and count".
//
// Concurrency: every method is safe for concurrent use, and Send must be:
// the node runtime calls it from two goroutines — its Raft loop (the
// messages that may leave at once) and its WAL writer (the votes and
// append acknowledgements that may leave only once their save is
// durable). Calls that overlap have no order between them, and Raft needs
// none between the loop's messages and the writer's. The Handler is called
// from the transport's reader goroutines.
type Transport interface {
	// Start begins accepting inbound connections and delivering their
	// messages to h. The listener is bound by the constructor (so Addr works
	// before Start); connections that arrive earlier wait in the backlog.
	// Start may be called once.
	Start(h Handler) error

	// Send queues msgs for their destinations (Message.To) and returns at
	// once: it never blocks on the network, on a slow peer or on a peer
	// being dialled. A message to an unknown peer, to a peer whose queue is
	// full, or larger than the maximum frame size is dropped and counted in
	// Stats.
	//
	// A MsgSnap is not queued as a frame: it is streamed in chunks on a
	// stream of its own, whatever its size, replacing any earlier snapshot
	// to the same peer still pending, and its outcome is reported through
	// SnapshotReporter (see the package documentation, "Snapshots").
	//
	// Ownership: the transport keeps references to msgs' Entries, their Data
	// and Snapshot until they are written, so the caller must not modify them
	// after Send (Raft messages are immutable once produced). The msgs slice
	// itself is not retained.
	Send(msgs []core.Message)

	// AddPeer makes id reachable at addr (host:port). Adding a known peer
	// with a new address replaces the old one (its queue is dropped and its
	// connection closed).
	AddPeer(id uint64, addr string) error

	// RemovePeer forgets id: its queue is dropped, its connection closed,
	// later sends to it are dropped as DropUnknownPeer. Removing an unknown
	// peer does nothing.
	RemovePeer(id uint64)

	// Addr is the address the transport actually listens on, so a
	// transport configured with port 0 can tell others where to find it.
	Addr() string

	// Stats returns a snapshot of the counters.
	Stats() Stats

	// MaxFrameSize is the largest frame body, in bytes, this transport
	// sends or accepts (Options.MaxFrameSize, defaults applied): Send drops
	// a larger message as DropTooLarge. The node runtime compares it with
	// MaxMessageSize of its largest AppendEntries at start-up and refuses a
	// configuration whose appends could not travel, instead of losing them
	// one by one at run time. A wrapper reports its inner transport's.
	MaxFrameSize() int

	// Close stops everything: the listener, every connection, every
	// goroutine the transport started. Queued messages are dropped
	// (counted as DropClosed). Close returns once no goroutine of the
	// transport is left; calling it again returns nil.
	Close() error
}

// Handler receives what the transport has to tell the Raft runtime. Its
// methods are called from the transport's goroutines and must be cheap
// (enqueue and return): a slow handler stalls the reader that called it and,
// through flow control, the sending peer.
type Handler interface {
	// Deliver hands over messages received from one connection, in the order
	// they arrived. Ownership passes to the handler: msgs, their Entries,
	// Data and Snapshots alias no transport buffer and may be kept.
	Deliver(msgs []core.Message)

	// Unreachable reports that messages to peer could not be delivered
	// (repeated dial failures, or a broken connection lost queued
	// messages). The runtime passes it to core so the leader stops
	// pipelining to that follower and probes instead.
	Unreachable(peer uint64)
}

// HandlerFuncs adapts two functions to a Handler. A nil field ignores that
// event.
type HandlerFuncs struct {
	OnDeliver     func(msgs []core.Message)
	OnUnreachable func(peer uint64)
}

// Deliver calls OnDeliver if set.
func (h HandlerFuncs) Deliver(msgs []core.Message) {
	if h.OnDeliver != nil {
		h.OnDeliver(msgs)
	}
}

// Unreachable calls OnUnreachable if set.
func (h HandlerFuncs) Unreachable(peer uint64) {
	if h.OnUnreachable != nil {
		h.OnUnreachable(peer)
	}
}

// Sentinel errors. Callers test them with errors.Is; the wrapped messages
// carry the details.
var (
	// ErrClosed is returned by operations on a closed transport.
	ErrClosed = errors.New("transport: closed")
	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("transport: already started")
	// ErrInvalidConfig wraps every configuration problem Validate finds.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrInvalidPeer is returned by AddPeer for a zero ID, the local ID, or
	// an empty address.
	ErrInvalidPeer = errors.New("transport: invalid peer")
)

// DropReason says why a message was not sent.
type DropReason uint8

const (
	// DropUnknownPeer: Message.To is not a peer (never added, or removed).
	DropUnknownPeer DropReason = iota
	// DropQueueFull: the peer's queue was full, because the peer reads
	// slower than we send or cannot be reached.
	DropQueueFull
	// DropTooLarge: the encoded message exceeds the maximum frame size; the
	// receiver would refuse it, so it never leaves.
	DropTooLarge
	// DropUnreachable: dialling the peer (or its handshake) failed.
	DropUnreachable
	// DropWriteError: the connection broke while the message was being
	// written; it may or may not have arrived.
	DropWriteError
	// DropClosed: the transport or the peer was closed with the message
	// still queued.
	DropClosed
	// DropFault: the fault-injection wrapper dropped it on purpose.
	DropFault
	// DropPartition: the fault-injection wrapper's partition cut this link.
	DropPartition

	// NumDropReasons is the number of DropReason values; DropCounts is
	// indexed by DropReason.
	NumDropReasons
)

// String names the reason for logs and reports.
func (r DropReason) String() string {
	switch r {
	case DropUnknownPeer:
		return "unknown-peer"
	case DropQueueFull:
		return "queue-full"
	case DropTooLarge:
		return "too-large"
	case DropUnreachable:
		return "unreachable"
	case DropWriteError:
		return "write-error"
	case DropClosed:
		return "closed"
	case DropFault:
		return "fault"
	case DropPartition:
		return "partition"
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// DropCounts counts dropped messages by reason.
type DropCounts [NumDropReasons]uint64

// Total is the sum over all reasons.
func (d DropCounts) Total() uint64 { return sum(d[:]) }

// sum adds up a counter array; every per-reason Counts type totals with it.
func sum(counts []uint64) uint64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n
}

// RejectReason says why an inbound connection was closed by us.
type RejectReason uint8

const (
	// RejectHandshake: bad magic, or the handshake could not be read.
	RejectHandshake RejectReason = iota
	// RejectVersion: the peer speaks another protocol version.
	RejectVersion
	// RejectCluster: the peer belongs to another cluster.
	RejectCluster
	// RejectWrongNode: the peer meant to reach another node ID (or claims
	// ID 0).
	RejectWrongNode
	// RejectFrameTooLarge: a frame header announced more than the maximum
	// frame size.
	RejectFrameTooLarge
	// RejectBadFrame: a frame could not be decoded (truncated, garbled).
	RejectBadFrame

	// NumRejectReasons is the number of RejectReason values.
	NumRejectReasons
)

// String names the reason for logs and reports.
func (r RejectReason) String() string {
	switch r {
	case RejectHandshake:
		return "handshake"
	case RejectVersion:
		return "version"
	case RejectCluster:
		return "cluster"
	case RejectWrongNode:
		return "wrong-node"
	case RejectFrameTooLarge:
		return "frame-too-large"
	case RejectBadFrame:
		return "bad-frame"
	}
	return fmt.Sprintf("RejectReason(%d)", uint8(r))
}

// RejectCounts counts closed connections by reason.
type RejectCounts [NumRejectReasons]uint64

// Total is the sum over all reasons.
func (r RejectCounts) Total() uint64 { return sum(r[:]) }

// SnapshotStats count snapshot transfers with one peer. They are kept apart
// from the message counters: a snapshot travels on its own stream, and one
// 100 MiB snapshot would drown every message statistic.
type SnapshotStats struct {
	// Sent counts transfers the peer acknowledged (reported ok).
	Sent uint64
	// SendFailures counts transfers that failed (reported not ok, or not
	// reported because the transport was closing).
	SendFailures uint64
	// Superseded counts snapshots replaced by a newer one to the same peer
	// before they finished; they are not reported.
	Superseded uint64
	// Recv counts transfers received complete, verified and delivered.
	Recv uint64
	// RecvFailures counts inbound transfers discarded, by reason.
	RecvFailures SnapshotFailCounts
	// BytesSent and BytesRecv count snapshot data (chunk payloads) written
	// and accepted, including transfers that later failed.
	BytesSent uint64
	BytesRecv uint64
}

// PeerStats are the counters for one remote node. Sent counters cover
// messages and bytes written to the connection (frame headers included);
// received counters cover what was decoded and delivered. Snapshot
// transfers are counted only in Snap.
type PeerStats struct {
	MsgsSent  uint64
	BytesSent uint64
	MsgsRecv  uint64
	BytesRecv uint64
	Drops     DropCounts
	// Dials counts successful outbound connections (including handshake);
	// Reconnects counts those after the first.
	Dials      uint64
	Reconnects uint64
	// DialFailures counts failed dial or handshake attempts.
	DialFailures uint64
	// Snap counts snapshot transfers to and from this peer.
	Snap SnapshotStats
}

// Stats is a snapshot of a transport's counters.
type Stats struct {
	// Peers holds one entry per node we sent to or received from, kept
	// after RemovePeer so totals never go backwards.
	Peers map[uint64]PeerStats
	// Rejects counts inbound connections closed because of bad input. The
	// sender of such a connection is not trusted, so these are not per peer.
	Rejects RejectCounts
}

// Drops sums the drop counters over all peers.
func (s Stats) Drops() DropCounts {
	var d DropCounts
	for _, p := range s.Peers {
		for i, c := range p.Drops {
			d[i] += c
		}
	}
	return d
}

// Totals sums the per-peer counters.
func (s Stats) Totals() PeerStats {
	var t PeerStats
	for _, p := range s.Peers {
		t.MsgsSent += p.MsgsSent
		t.BytesSent += p.BytesSent
		t.MsgsRecv += p.MsgsRecv
		t.BytesRecv += p.BytesRecv
		t.Dials += p.Dials
		t.Reconnects += p.Reconnects
		t.DialFailures += p.DialFailures
		for i, c := range p.Drops {
			t.Drops[i] += c
		}
		t.Snap.Sent += p.Snap.Sent
		t.Snap.SendFailures += p.Snap.SendFailures
		t.Snap.Superseded += p.Snap.Superseded
		t.Snap.Recv += p.Snap.Recv
		t.Snap.BytesSent += p.Snap.BytesSent
		t.Snap.BytesRecv += p.Snap.BytesRecv
		for i, c := range p.Snap.RecvFailures {
			t.Snap.RecvFailures[i] += c
		}
	}
	return t
}

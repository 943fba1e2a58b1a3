package core

import "fmt"

// None is the zero node ID. It means "no node": no vote cast, no leader
// known. Real node IDs are therefore never 0, which Config.Validate enforces.
const None uint64 = 0

// EntryType says how the state machine above core must read an entry's Data.
type EntryType uint8

const (
	// EntryNormal carries an application command (or, with empty Data, the
	// no-op a new leader appends to commit entries of earlier terms).
	EntryNormal EntryType = iota
	// EntryConfChange carries an encoded ConfChange. core interprets it when
	// it is applied; the runtime only passes it through.
	EntryConfChange
)

// String names the entry type for logs and test failures.
func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "Normal"
	case EntryConfChange:
		return "ConfChange"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
//
// Invariant: within a log, Index values are consecutive and Term values never
// decrease. Everything core does (the consistency check, the commit rule,
// conflict truncation) leans on this, so every place that accepts entries
// from outside (Step, Storage) checks it once at the boundary.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// entryOverhead approximates the fixed bytes an entry costs on the wire and
// on disk beyond its Data (index, term, type and framing). Counting it keeps
// a byte limit meaningful for logs of empty entries.
const entryOverhead = 24

// Size is the number of bytes the entry is charged against byte limits
// (MaxSizePerMsg, Storage.Entries' maxBytes). It is an estimate shared by
// core, wal and the runtime so all three cut batches at the same places.
func (e *Entry) Size() uint64 { return uint64(len(e.Data)) + entryOverhead }

// EntriesSize is the sum of Size over ents.
func EntriesSize(ents []Entry) uint64 {
	var n uint64
	for i := range ents {
		n += ents[i].Size()
	}
	return n
}

// LimitSize returns the longest prefix of ents whose total Size is at most
// maxBytes, but never fewer than one entry when ents is not empty: a single
// entry larger than the limit must still be able to travel, or replication
// would stall forever on it.
func LimitSize(ents []Entry, maxBytes uint64) []Entry {
	if len(ents) == 0 {
		return ents
	}
	size := ents[0].Size()
	for i := 1; i < len(ents); i++ {
		size += ents[i].Size()
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}

// HardState is the state that must be durable before core's decisions that
// depend on it become visible to other nodes: the current term, the vote cast
// in it, and the commit index (persisting Commit is an optimisation that lets
// a restarted node re-apply without waiting for a leader).
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
}

// IsEmpty reports whether hs is the zero hard state of a node that has never
// run.
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// ConfState is a cluster membership: who votes and who only listens.
//
// When VotersOutgoing is not empty the cluster is in a joint configuration
// (C_old,new): a decision needs a majority of Voters and, separately, a
// majority of VotersOutgoing.
type ConfState struct {
	Voters         []uint64
	VotersOutgoing []uint64
	Learners       []uint64
}

// IsEmpty reports whether cs names no member at all.
func (cs ConfState) IsEmpty() bool {
	return len(cs.Voters) == 0 && len(cs.VotersOutgoing) == 0 && len(cs.Learners) == 0
}

// SnapshotMeta identifies a snapshot: the last log entry it covers and the
// membership in force at that entry.
type SnapshotMeta struct {
	Index uint64
	Term  uint64
	Conf  ConfState
}

// Snapshot is a state-machine image plus its metadata. core itself only ever
// looks at Meta; Data is filled in and consumed by the runtime, which streams
// it between nodes.
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// IsEmpty reports whether the snapshot covers no entry.
func (s *Snapshot) IsEmpty() bool { return s == nil || s.Meta.Index == 0 }

// MessageType is the kind of a Message.
type MessageType uint8

const (
	// MsgApp is AppendEntries: the leader's entries following
	// (Index, LogTerm), plus its commit index.
	MsgApp MessageType = iota + 1
	// MsgAppResp answers MsgApp. On success Index is the highest index the
	// follower now holds that matches the leader. On rejection Index is the
	// rejected MsgApp's Index, and (LogTerm, RejectHint) is the conflict hint:
	// the follower's term at the conflict point and the first index it holds
	// of that term, so the leader can skip the whole term at once.
	MsgAppResp
	// MsgVote is RequestVote; (Index, LogTerm) is the candidate's last entry.
	MsgVote
	// MsgVoteResp answers MsgVote; Reject says whether the vote was refused.
	MsgVoteResp
	// MsgPreVote asks whether a vote would be granted at Term, without
	// anybody changing their term (thesis §9.6).
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgHeartbeat asserts leadership and carries the commit index (capped at
	// what the follower is known to hold) and a ReadIndex context.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat, echoing its Context.
	MsgHeartbeatResp
	// MsgSnap is InstallSnapshot; Snapshot holds the metadata (and, once the
	// runtime has attached it, the data).
	MsgSnap
	// MsgTimeoutNow tells the leadership-transfer target to campaign at once.
	MsgTimeoutNow
)

// String names the message type for logs and test failures.
func (t MessageType) String() string {
	switch t {
	case MsgApp:
		return "MsgApp"
	case MsgAppResp:
		return "MsgAppResp"
	case MsgVote:
		return "MsgVote"
	case MsgVoteResp:
		return "MsgVoteResp"
	case MsgPreVote:
		return "MsgPreVote"
	case MsgPreVoteResp:
		return "MsgPreVoteResp"
	case MsgHeartbeat:
		return "MsgHeartbeat"
	case MsgHeartbeatResp:
		return "MsgHeartbeatResp"
	case MsgSnap:
		return "MsgSnap"
	case MsgTimeoutNow:
		return "MsgTimeoutNow"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// IsControl reports whether messages of this type are latency-critical
// control traffic (elections, heartbeats, transfer) as opposed to bulk data
// (appends, snapshots). Transports with separate streams use it so a large
// append never delays a heartbeat.
func (t MessageType) IsControl() bool {
	switch t {
	case MsgApp, MsgAppResp, MsgSnap:
		return false
	}
	return true
}

// MaxMessageType is the highest defined MessageType; decoders reject larger
// values.
const MaxMessageType = MsgTimeoutNow

// Message is what Raft nodes exchange. Fields a type does not use are zero.
type Message struct {
	Type MessageType
	From uint64
	To   uint64
	// Term is the sender's term. Every message carries it; that is how stale
	// leaders and candidates learn they are stale.
	Term uint64
	// LogTerm and Index: for MsgApp the entry preceding Entries; for
	// MsgVote/MsgPreVote the candidate's last entry; for MsgAppResp see its
	// type's comment.
	LogTerm uint64
	Index   uint64
	Entries []Entry
	Commit  uint64
	// Reject marks a refused vote or append.
	Reject bool
	// RejectHint is the first index the follower holds of term LogTerm, on a
	// rejected MsgAppResp.
	RejectHint uint64
	// Context ties a heartbeat round to the ReadIndex requests it confirms.
	Context uint64
	// Snapshot is set on MsgSnap only.
	Snapshot *Snapshot
	// Timing is a follower's account of its side of an append, which the
	// runtime sets on a successful MsgAppResp and the leader's runtime
	// reads to split its replication latency into network and follower
	// time. core never sets or reads it, so it cannot affect safety.
	Timing AppTiming
}

// AppTiming is a follower's report, on the MsgAppResp it sends, of how long
// it held the append it answers. Both are durations of the follower's own
// monotonic clock, in nanoseconds: the leader subtracts them from its own
// round-trip time, so the two clocks are never compared.
type AppTiming struct {
	// HoldNanos runs from the start of the follower's Raft loop round that
	// took the append in to the response being handed to its transport,
	// after the save that made the entries durable.
	HoldNanos uint64
	// PersistNanos is how long that save took (the WAL write and its
	// fsync); 0 when the append needed no write.
	PersistNanos uint64
}

// IsZero reports whether t carries no report.
func (t AppTiming) IsZero() bool { return t == AppTiming{} }

// ReadState is a linearizable read point: once the local state machine has
// applied Index, a read issued with Context may be served from it.
type ReadState struct {
	Index   uint64
	Context uint64
}

// Role is a node's role in its current term.
type Role uint8

const (
	// Follower accepts the log from a leader and votes.
	Follower Role = iota
	// PreCandidate is polling for support without raising its term.
	PreCandidate
	// Candidate has raised its term and is asking for votes.
	Candidate
	// Leader replicates its log and decides what commits.
	Leader
)

// String names the role.
func (r Role) String() string {
	switch r {
	case Follower:
		return "Follower"
	case PreCandidate:
		return "PreCandidate"
	case Candidate:
		return "Candidate"
	case Leader:
		return "Leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

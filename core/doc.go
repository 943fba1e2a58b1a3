// Package core is the Raft consensus algorithm as a pure, deterministic
// state machine: no goroutines, no clocks, no network, no files, no global
// randomness. Time advances only by Tick; everything that happens enters
// through a method call (Step, Propose, ReadIndex, TransferLeader,
// Persisted, ReportUnreachable, ReportSnapshot) and everything core wants
// done leaves through Ready. That is what lets the simulator in this
// package's tests replay any execution from a seed and check Raft's safety
// properties after every step.
//
// # The Ready loop
//
// One goroutine owns a Raft. It ticks it on a timer, steps received
// messages, proposes commands, and whenever HasReady reports work:
//
//	rd := r.Ready()
//	send(rd.Messages)                       // now: e.g. the leader's appends
//	save(rd.HardState, rd.Snapshot, rd.Entries) // may complete later...
//	r.Advance(rd)                           // ...but acknowledge the hand-off now
//	apply(rd.Snapshot, rd.CommittedEntries)
//	// once the save is durable:
//	send(rd.MessagesAfterPersist)           // votes and append acknowledgements
//	r.Persisted(lastIndex, lastTerm)
//
// Splitting messages in two is what lets the leader's fsync overlap
// replication (thesis §10.2.1): its appends leave before its own write, and
// its own log counts toward the commit quorum only once Persisted says it is
// durable. Votes and acknowledgements wait for the write, because they
// promise durable state. Persisted must come after the Advance of the Ready
// that carried the entries.
//
// # Replication
//
// The leader tracks each follower in one of three states: probe (find where
// the logs match, one append at a time), replicate (stream appends, up to
// Config.MaxInflight outstanding, each up to Config.MaxSizePerMsg bytes —
// pipelining and batching), and snapshot (the follower needs entries the
// leader has compacted). A rejected append carries a conflict hint — the
// follower's term at the conflict and the first index it holds of that
// term — so the leader skips a whole term per round trip.
//
// # Safety rules and where they live
//
//   - One vote per term, durable before it is sent: handleVote, and
//     MsgVote/MsgVoteResp travel in MessagesAfterPersist.
//   - The election restriction (§5.4.1): raftLog.isUpToDate.
//   - Commit only by counting replicas of an entry of the leader's own term
//     (Figure 8): raftLog.maybeCommit.
//   - A follower never truncates a committed entry: raftLog.maybeAppend.
//   - Commit never goes backwards: raftLog.commitTo.
//   - A stale term is answered or ignored, never obeyed: Raft.Step.
//
// Pre-vote (§9.6) and check-quorum are on unless disabled in Config. A leader
// whose writes make no progress for an election timeout steps down too, so a
// stuck disk does not keep the cluster quiet with heartbeats it cannot back.
//
// # Errors
//
// New and Config.Validate return errors for every bad input; nothing in core
// panics on input. A malformed message is refused by Step with
// ErrInvalidMessage and changes nothing. A storage failure is sticky: once
// Storage returns an unexpected error, every method returns it (see Err) and
// the runtime must stop the node.
//
// Membership changes (ProposeConfChange, learners, joint consensus) are not
// in this package yet; the types (ConfState, EntryConfChange, learner
// progress) are shaped for them.
package core

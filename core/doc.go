// Package core is the Raft consensus algorithm as a pure, deterministic
// state machine: no goroutines, no clocks, no network, no files, no global
// randomness. Time advances only by Tick; everything that happens enters
// through a method call (Step, Propose, ProposeConfChange, ReadIndex,
// TransferLeader, Persisted, ReportUnreachable, ReportSnapshot) and
// everything core wants done leaves through Ready. That is what lets the
// simulator in this package's tests replay any execution from a seed and
// check Raft's safety properties after every step.
//
// Two pure sub-packages hold the parts that are arithmetic rather than
// protocol: core/tracker, the leader's view of each member (replication
// state, the in-flight window, when it was last heard from, which
// heartbeat round it answered), with every change to it a method named for
// its cause; and core/quorum, majority indexes and vote tallies for plain
// and joint configurations.
//
// # The Ready loop
//
// One goroutine owns a Raft. It ticks it on a timer, steps received
// messages, proposes commands, and whenever HasReady reports work:
//
//	rd := r.Ready()
//	send(rd.Messages)                         // now: e.g. the leader's appends
//	save(rd.Snapshot, rd.HardState, rd.Entries) // may complete later...
//	r.Advance(rd)                             // ...but acknowledge the hand-off now
//	apply(rd.Snapshot, rd.CommittedEntries)
//	// once the save is durable:
//	send(rd.MessagesAfterPersist)             // votes and append acknowledgements
//	r.Persisted(lastIndex, lastTerm)
//
// Splitting messages in two is what lets the leader's fsync overlap
// replication (thesis §10.2.1): its appends leave before its own write, and
// its own log counts toward the commit quorum only once Persisted says it is
// durable. Votes and acknowledgements wait for the write, because they
// promise durable state. Persisted must come after the Advance of the Ready
// that carried the entries. Ready's doc gives the contract step by step,
// including the order of the save.
//
// # Replication and flow control
//
// The leader tracks each follower in one of three states: probe (find where
// the logs match, one append at a time), replicate (stream appends —
// pipelining — each up to Config.MaxSizePerMsg bytes — batching) and
// snapshot (the follower needs entries the leader has compacted). The
// in-flight window is bounded by count (MaxInflight) and by bytes
// (MaxInflightBytes). A rejected append carries a conflict hint — the
// follower's term at the conflict and the first index it holds of that
// term — so the leader skips a whole term per round trip. MaxUncommittedBytes
// bounds what a leader whose quorum stalls accepts (ErrUncommittedLimit).
//
// # Leadership: elections, check-quorum, leases, transfer
//
// Pre-vote (§9.6) and check-quorum are on unless disabled in Config. With
// check-quorum the leader asks on every tick whether it has heard from a
// quorum (of both halves, when joint) within an election timeout, and
// steps down as soon as it has not; a leader whose writes make no progress
// for an election timeout steps down too, so a stuck disk does not keep the
// cluster quiet with heartbeats it cannot back. A follower that heard from
// a leader within the election timeout ignores candidates (unless the
// leader asked for the election with TransferLeader). That promise is what
// ReadOnlyLeaseBased builds on to answer ReadIndex without a round trip
// while the leader's lease holds; see its doc for the clock assumption.
//
// # Membership changes
//
// ProposeConfChange changes the membership one change at a time: adding or
// removing a voter or a learner, promoting a learner, or several changes at
// once through a joint configuration (C_old,new), which the leader of the
// moment leaves by itself by proposing C_new. A change takes effect on
// every replica when its entry is handed out to apply, at the same point of
// the log; ApplyConfChange is the same rule for the runtime's own
// bookkeeping. A leader that removes itself steps down after telling the
// most caught-up voter to campaign.
//
// # Safety rules and where they live
//
//   - One vote per term, durable before it is sent: handleVote, and
//     MsgVote/MsgVoteResp travel in MessagesAfterPersist.
//   - The election restriction (§5.4.1): raftLog.isUpToDate.
//   - Commit only by counting replicas of an entry of the leader's own term
//     (Figure 8): raftLog.maybeCommit, with the count in quorum.JointIndex.
//   - A follower never truncates a committed entry: raftLog.maybeAppend.
//   - Commit never goes backwards: raftLog.commitTo.
//   - A stale term is answered or ignored, never obeyed: Raft.Step.
//   - A read point is handed out only by a leader that is sure no newer
//     leader can exist: confirmReads (a heartbeat round sent after the read
//     was answered by a quorum) or leaseHolds (the followers' promise,
//     inLeaderLease, has not run out).
//
// # Errors
//
// New and Config.Validate return errors for every bad input; nothing in core
// panics on input. A malformed message is refused by Step with
// ErrInvalidMessage and changes nothing. A storage failure is sticky: once
// Storage returns an unexpected error, every method returns it (see Err) and
// the runtime must stop the node.
package core

package core

import (
	"errors"
)

// pendingRead is a ReadIndex request waiting for its heartbeat round: the
// commit index when it was asked, and the round (heartbeat sequence) a
// quorum must answer to confirm it, which was sent after it was asked.
type pendingRead struct {
	index uint64
	ctx   uint64
	seq   uint64
}

// ReadIndex asks for a linearizable read point (thesis §6.4). ctx must be
// non-zero and identifies the request in the ReadState that Ready returns
// once this node is sure it was still leader when the read was asked: at
// once while its lease holds (ReadOnlyLeaseBased), otherwise once a quorum
// has answered a heartbeat round sent after it. Many reads can share one
// request.
func (r *Raft) ReadIndex(ctx uint64) error {
	if r.err != nil {
		return r.err
	}
	if ctx == 0 {
		return errors.New("core: ReadIndex context must be non-zero")
	}
	if r.role != Leader {
		return ErrNotLeader
	}
	if !r.log.matchTerm(r.log.committed, r.term) {
		return ErrReadNotReady
	}
	if r.isSoleVoter() {
		r.readStates = append(r.readStates, ReadState{Index: r.log.committed, Context: ctx})
		return nil
	}
	if r.leaseHolds() {
		r.leaseReads++
		r.readStates = append(r.readStates, ReadState{Index: r.log.committed, Context: ctx})
		return nil
	}
	r.bcastHeartbeat()
	r.reads = append(r.reads, pendingRead{index: r.log.committed, ctx: ctx, seq: r.hbSeq})
	return nil
}

// LeaseReads counts the read points answered by the lease since New,
// without a heartbeat round: how often ReadOnlyLeaseBased saved one.
func (r *Raft) LeaseReads() uint64 { return r.leaseReads }

// isSoleVoter reports whether this node alone is a quorum.
func (r *Raft) isSoleVoter() bool {
	return r.prs.QuorumAcked(r.id, r.conf.Voters, r.conf.VotersOutgoing) == ^uint64(0)
}

// confirmReads hands out every pending read whose heartbeat round a quorum
// has answered. Rounds are numbered in sending order and reads wait in
// asking order, so they are confirmed oldest first.
func (r *Raft) confirmReads() {
	acked := r.prs.QuorumAcked(r.id, r.conf.Voters, r.conf.VotersOutgoing)
	k := 0
	for k < len(r.reads) && r.reads[k].seq <= acked {
		r.readStates = append(r.readStates, ReadState{Index: r.reads[k].index, Context: r.reads[k].ctx})
		k++
	}
	if k > 0 {
		r.reads = dropFirst(r.reads, k)
	}
}

// leaseHolds reports whether the leader lease of ReadOnlyLeaseBased holds
// now: a quorum has answered a heartbeat round sent within the last
// leaseTicks ticks, and no leadership transfer was started this term (the
// transferee's election is granted even inside the followers' leases).
func (r *Raft) leaseHolds() bool {
	if r.readOnly != ReadOnlyLeaseBased || r.leaseRevoked {
		return false
	}
	return r.prs.QuorumAcked(r.id, r.conf.Voters, r.conf.VotersOutgoing) >= r.leaseFloor()
}

// leaseFloor is the first heartbeat round sent at a tick still inside the
// lease (after now - leaseTicks): rounds from it on were sent recently
// enough.
func (r *Raft) leaseFloor() uint64 {
	if r.ticks+1 < r.leaseTicks {
		return 1 // the lease reaches back before the first tick: any round
	}
	return r.roundAtTick[(r.ticks+1-r.leaseTicks)%r.leaseTicks]
}

// noteTickRound records, for the lease, the first heartbeat round that can
// be sent at the tick just begun.
func (r *Raft) noteTickRound() {
	if r.roundAtTick != nil {
		r.roundAtTick[r.ticks%r.leaseTicks] = r.hbSeq + 1
	}
}

// inLeaderLease reports whether this node must ignore a vote request that
// would start a new term: it leads, or it heard from a leader fewer than
// ElectionTicks ago and so promised (by answering) not to help elect
// another before then. The leader lease of ReadOnlyLeaseBased rests on that
// promise; with check-quorum off there is none.
func (r *Raft) inLeaderLease() bool {
	if !r.checkQuorum {
		return false
	}
	return r.role == Leader || (r.leadHeard && r.ticks-r.leadHeardAt < uint64(r.electionTicks))
}

// heardLeader records that a message from the current leader arrived now.
func (r *Raft) heardLeader() {
	r.leadHeard, r.leadHeardAt = true, r.ticks
}

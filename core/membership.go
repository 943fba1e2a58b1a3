package core

import (
	"fmt"
)

// ProposeConfChange proposes a membership change (see ConfChange). It is
// refused while another change is in flight, before the leader has committed
// an entry of its own term (the safety rule for single-server changes: a
// change from a previous term might still be unknown to this leader), and
// when the change is invalid against the current membership. Like Propose it
// returns the entry's index and term; the change takes effect on each
// replica when the entry is handed out to apply.
func (r *Raft) ProposeConfChange(cc ConfChange) (index, term uint64, err error) {
	if r.err != nil {
		return 0, 0, r.err
	}
	if r.role != Leader {
		return 0, 0, ErrNotLeader
	}
	if r.leadTransferee != None {
		return 0, 0, ErrProposalDropped
	}
	if r.pendingConfIndex > r.log.applying {
		return 0, 0, fmt.Errorf("%w: the change at index %d is not applied yet", ErrConfChangePending, r.pendingConfIndex)
	}
	if len(r.conf.VotersOutgoing) > 0 {
		return 0, 0, fmt.Errorf("%w: leaving the joint configuration comes first", ErrConfChangePending)
	}
	if !r.log.matchTerm(r.log.committed, r.term) {
		return 0, 0, fmt.Errorf("%w: the leader has not committed an entry of its term yet", ErrConfChangePending)
	}
	if _, err := ApplyConfChange(r.conf, cc); err != nil {
		return 0, 0, err
	}
	index = r.appendEntries([]Entry{{Type: EntryConfChange, Data: cc.Marshal()}})
	r.pendingConfIndex = index
	r.bcastAppend(false)
	return index, r.term, r.checkLog()
}

// applyConfChangeEntry makes a committed membership change effective. It is
// called for every replica as the entry is handed out to apply, so all
// replicas switch at the same point of the log. An invalid change (which a
// leader never proposes) is ignored by every replica alike.
func (r *Raft) applyConfChangeEntry(e *Entry) {
	cc, err := UnmarshalConfChange(e.Data)
	if err != nil {
		return
	}
	cs, err := ApplyConfChange(r.conf, cc)
	if err != nil {
		return
	}
	r.applyConfState(cs)
	if (r.role == Candidate || r.role == PreCandidate) && !r.isVoter(r.id) {
		// Removed mid-campaign: votes from the new configuration must not
		// make a non-member its leader.
		r.becomeFollower(r.term, None)
		return
	}
	if r.role != Leader {
		return
	}
	if !r.isVoter(r.id) {
		// The leader removed itself; the configuration without it is in
		// force, so it steps down. It first tells the most caught-up
		// remaining voter to campaign at once, so the cluster need not sit
		// out an election timeout (the vote still requires an up-to-date
		// log, so this only speeds things up).
		if to := r.mostCaughtUpVoter(); to != None {
			r.send(Message{Type: MsgTimeoutNow, To: to})
		}
		r.becomeFollower(r.term, None)
		return
	}
	if r.leadTransferee != None && !r.isVoter(r.leadTransferee) {
		r.leadTransferee = None
	}
	// A smaller quorum may commit more, and new members must start
	// probing now rather than at the next heartbeat: send to everyone.
	r.maybeCommit()
	r.bcastAppend(true)
}

// mostCaughtUpVoter is the voter other than this node with the highest
// Match (lowest ID on ties), or None.
func (r *Raft) mostCaughtUpVoter() uint64 {
	best, match := None, uint64(0)
	for _, id := range r.votersSorted() {
		if pr := r.prs.Progress(id); id != r.id && pr != nil && (best == None || pr.Match() > match) {
			best, match = id, pr.Match()
		}
	}
	return best
}

// maybeLeaveJoint has a leader in a joint configuration propose C_new once
// nothing else is pending. Whoever leads when C_old,new is applied does it —
// the leader that entered the joint configuration may be gone by then.
func (r *Raft) maybeLeaveJoint() {
	if r.role == Leader && len(r.conf.VotersOutgoing) > 0 && r.pendingConfIndex <= r.log.applying && r.leadTransferee == None {
		r.pendingConfIndex = r.appendEntries([]Entry{{Type: EntryConfChange, Data: ConfChange{}.Marshal()}})
		r.bcastAppend(false)
	}
}

// replayConfChanges applies the membership changes in (after, upto] of the
// durable log: on a restart with Config.Applied beyond the snapshot, those
// entries are not handed out again, but their changes must be in force.
func (r *Raft) replayConfChanges(first, upto uint64) error {
	for lo := first; lo <= upto; {
		ents, err := r.log.slice(lo, upto+1, maxApplyBytes)
		if err != nil {
			return fmt.Errorf("core: replaying membership changes in [%d, %d]: %w", lo, upto, err)
		}
		for i := range ents {
			if ents[i].Type == EntryConfChange {
				r.applyConfChangeEntry(&ents[i])
			}
		}
		lo = ents[len(ents)-1].Index + 1
	}
	return nil
}

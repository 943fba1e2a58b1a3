package tracker

import (
	"slices"

	"github.com/raftbench/raftbench/core/quorum"
)

// Tracker holds a Progress for every member of the configuration, the
// leader included, and answers the questions the leader asks of all of
// them at once through package quorum.
type Tracker struct {
	maxInflight      int
	maxInflightBytes uint64
	progress         map[uint64]*Progress
	// ids lists every member in ID order, so broadcasts are deterministic
	// without sorting on every send.
	ids []uint64
}

// New returns an empty tracker whose members each get a pipeline window of
// maxInflight appends (at least 1) and maxInflightBytes entry bytes (0: no
// byte limit).
func New(maxInflight int, maxInflightBytes uint64) *Tracker {
	return &Tracker{maxInflight: max(1, maxInflight), maxInflightBytes: maxInflightBytes, progress: map[uint64]*Progress{}}
}

// Progress is the progress of member id, or nil for a non-member.
func (t *Tracker) Progress(id uint64) *Progress { return t.progress[id] }

// IDs lists every member in ID order. The caller must not modify it; it
// changes only with SetMembers.
func (t *Tracker) IDs() []uint64 { return t.ids }

// Len is the number of members.
func (t *Tracker) Len() int { return len(t.progress) }

// SetMembers makes the tracked members voters, outgoing (the old half of a
// joint configuration) and learners: members that stay keep their
// progress (a learner promoted to voter keeps its place in the log),
// newcomers start probing at next, heard from at tick now, and members that
// left are forgotten. A node listed both as a voter and a learner is a
// voter.
func (t *Tracker) SetMembers(voters, outgoing, learners []uint64, next, now uint64) {
	keep := make(map[uint64]bool, len(voters)+len(outgoing)+len(learners))
	add := func(id uint64, learner bool) {
		if keep[id] {
			return
		}
		keep[id] = true
		pr, ok := t.progress[id]
		if !ok {
			pr = &Progress{next: next, lastHeard: now, inflights: newInflights(t.maxInflight, t.maxInflightBytes)}
			t.progress[id] = pr
		}
		pr.learner = learner
	}
	for _, id := range voters {
		add(id, false)
	}
	for _, id := range outgoing {
		add(id, false)
	}
	for _, id := range learners {
		add(id, true)
	}
	t.ids = t.ids[:0]
	for id := range t.progress {
		if !keep[id] {
			delete(t.progress, id)
			continue
		}
		t.ids = append(t.ids, id)
	}
	slices.Sort(t.ids)
}

// Reset starts a new term at tick now: every member probes from next, with
// nothing known to match, nothing in flight, and heard from now; self (the
// local node) matches its durable log up to selfMatch.
func (t *Tracker) Reset(next, self, selfMatch, now uint64) {
	for _, pr := range t.progress {
		pr.reset(next, now)
	}
	if pr := t.progress[self]; pr != nil {
		pr.MaybeUpdate(selfMatch)
	}
}

// Match is the match index of member id, 0 for a non-member; it is the
// quorum.IndexFunc of the commit rule.
func (t *Tracker) Match(id uint64) uint64 {
	if pr := t.progress[id]; pr != nil {
		return pr.match
	}
	return 0
}

// Committed is the highest index a quorum of the configuration holds (a
// majority of each half when joint). The caller still applies Figure 8:
// only an entry of the current term may be committed by counting.
func (t *Tracker) Committed(incoming, outgoing []uint64) uint64 {
	return quorum.JointIndex(incoming, outgoing, t.Match)
}

// QuorumHeard is the latest tick by which a quorum of the configuration
// (a majority of each half when joint) had been heard from, counting self
// as heard at now: the leader has heard from a quorum within d ticks iff
// now - QuorumHeard < d. It is continuous check-quorum's clock.
func (t *Tracker) QuorumHeard(self uint64, incoming, outgoing []uint64, now uint64) uint64 {
	return quorum.JointIndex(incoming, outgoing, func(id uint64) uint64 {
		if id == self {
			return now
		}
		if pr := t.progress[id]; pr != nil {
			return pr.lastHeard
		}
		return 0
	})
}

// QuorumAcked is the newest heartbeat round that a quorum of the
// configuration (a majority of each half when joint) has answered, self
// counting as having answered every round. Heartbeat rounds are numbered in
// the order they are sent, so every round up to it was confirmed by a
// quorum that was still following this leader when it received the round.
func (t *Tracker) QuorumAcked(self uint64, incoming, outgoing []uint64) uint64 {
	return quorum.JointIndex(incoming, outgoing, func(id uint64) uint64 {
		if id == self {
			return ^uint64(0)
		}
		if pr := t.progress[id]; pr != nil {
			return pr.ackedHeartbeat
		}
		return 0
	})
}

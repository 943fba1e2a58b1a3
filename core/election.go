package core

import (
	"slices"

	"github.com/raftbench/raftbench/core/quorum"
)

// campaignType is how an election starts.
type campaignType uint8

const (
	// campaignPreVote: an election timeout; poll first when pre-vote is on.
	campaignPreVote campaignType = iota
	// campaignElection: the real election, once the poll is won.
	campaignElection
	// campaignTransfer: the real election at the leader's request
	// (TimeoutNow); voters grant it even inside their lease.
	campaignTransfer
)

// campaign starts an election of the given type.
func (r *Raft) campaign(kind campaignType) {
	if !r.promotable() {
		return
	}
	var typ MessageType
	var term uint64
	if r.preVote && kind == campaignPreVote {
		r.becomePreCandidate()
		typ, term = MsgPreVote, r.term+1
	} else {
		r.becomeCandidate()
		typ, term = MsgVote, r.term
	}
	r.votes[r.id] = true
	if quorum.JointTally(r.conf.Voters, r.conf.VotersOutgoing, quorum.MapVotes(r.votes)) == quorum.Won {
		// A single-voter cluster wins at once.
		if typ == MsgPreVote {
			r.campaign(campaignElection)
		} else {
			r.becomeLeader()
		}
		return
	}
	lastTerm, err := r.log.lastTerm()
	if err != nil {
		r.fail(err)
		return
	}
	// Only a transfer bypasses the voters' leases. A won poll does not: a
	// voter that granted it may have heard from the leader since, and the
	// leader's lease counts on that voter refusing.
	var ctx uint64
	if kind == campaignTransfer {
		ctx = contextTransfer
	}
	for _, id := range r.votersSorted() {
		if id == r.id {
			continue
		}
		r.send(Message{Type: typ, To: id, Term: term, Index: r.log.lastIndex(), LogTerm: lastTerm, Context: ctx})
	}
}

// votersSorted lists every voter (both halves of a joint configuration)
// once, in ID order, so message order is deterministic.
func (r *Raft) votersSorted() []uint64 {
	ids := append(slices.Clone(r.conf.Voters), r.conf.VotersOutgoing...)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// handleVote answers a (pre-)vote request: one vote per term, and only for a
// candidate whose log is at least as up-to-date as ours (§5.4.1).
func (r *Raft) handleVote(m Message) {
	canVote := r.vote == m.From ||
		(r.vote == None && r.lead == None) ||
		(m.Type == MsgPreVote && m.Term > r.term)
	ok, err := r.log.isUpToDate(m.Index, m.LogTerm)
	if err != nil {
		r.fail(err)
		return
	}
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	if canVote && ok {
		if m.Type == MsgVote {
			r.electionElapsed = 0
			r.vote = m.From
		}
		// A granted pre-vote answers in the term asked about, so the
		// pre-candidate can tell it from a rejection in its current term.
		r.send(Message{Type: resp, To: m.From, Term: m.Term})
		return
	}
	// A rejection carries our commit point: a candidate holding that same
	// entry learns its prefix is committed. Without it a candidate still in
	// a joint configuration it has not seen committed can need the vote of
	// a removed node whose log is ahead of its own, and nobody can win.
	ct, err := r.log.term(r.log.committed)
	if err != nil {
		ct = 0
	}
	r.send(Message{Type: resp, To: m.From, Term: r.term, Reject: true, Index: r.log.committed, LogTerm: ct})
}

func (r *Raft) stepCandidate(m Message) {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.heardLeader()
		r.handleLeaderMessage(m)
	case MsgPreVoteResp, MsgVoteResp:
		if (m.Type == MsgPreVoteResp) != (r.role == PreCandidate) {
			return // an answer to an earlier phase
		}
		if _, seen := r.votes[m.From]; !seen {
			r.votes[m.From] = !m.Reject
		}
		if m.Reject && m.Index > r.log.committed && m.LogTerm > 0 && r.log.matchTerm(m.Index, m.LogTerm) {
			// Log matching: our prefix up to m.Index is the rejecter's, and
			// the rejecter knows it committed.
			r.log.commitTo(m.Index)
		}
		switch quorum.JointTally(r.conf.Voters, r.conf.VotersOutgoing, quorum.MapVotes(r.votes)) {
		case quorum.Won:
			if !r.promotable() {
				r.becomeFollower(r.term, None)
				return
			}
			if r.role == PreCandidate {
				r.campaign(campaignElection)
			} else {
				r.becomeLeader()
			}
		case quorum.Lost:
			r.becomeFollower(r.term, None)
		}
	}
}

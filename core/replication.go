package core

import (
	"errors"
	"fmt"

	"github.com/raftbench/raftbench/core/tracker"
)

func (r *Raft) stepFollower(m Message) {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.heardLeader()
		r.handleLeaderMessage(m)
	case MsgTimeoutNow:
		r.campaign(campaignTransfer)
	}
}

// handleLeaderMessage is the follower's side of the three messages only a
// leader sends.
func (r *Raft) handleLeaderMessage(m Message) {
	switch m.Type {
	case MsgApp:
		r.handleAppend(m)
	case MsgHeartbeat:
		r.handleHeartbeat(m)
	case MsgSnap:
		r.handleSnapshot(m)
	}
}

// handleAppend is the follower's side of AppendEntries.
func (r *Raft) handleAppend(m Message) {
	if m.Index < r.log.committed {
		// Everything up to our commit index matches any current leader.
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
		return
	}
	lastNew, ok, err := r.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries)
	if err != nil {
		r.fail(err)
		return
	}
	if ok {
		r.send(Message{Type: MsgAppResp, To: m.From, Index: lastNew})
		return
	}
	// Rejection with a conflict hint: our term at m.Index and the first
	// index we hold of it, or, if our log is shorter, where it ends.
	resp := Message{Type: MsgAppResp, To: m.From, Index: m.Index, Reject: true}
	if last := r.log.lastIndex(); m.Index > last {
		resp.RejectHint = last + 1
	} else {
		t, err := r.log.term(m.Index)
		if err != nil {
			r.fail(err)
			return
		}
		first, err := r.log.firstIndexOfTerm(m.Index, t, r.log.committed+1)
		if err != nil {
			r.fail(err)
			return
		}
		resp.LogTerm, resp.RejectHint = t, first
	}
	r.send(resp)
}

func (r *Raft) handleHeartbeat(m Message) {
	// The leader caps Commit at what it knows we hold, so this never
	// commits an entry we have that the leader does not.
	r.log.commitTo(m.Commit)
	r.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context})
}

func (r *Raft) handleSnapshot(m Message) {
	s := m.Snapshot
	if s.Meta.Index <= r.log.committed {
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
		return
	}
	if r.log.matchTerm(s.Meta.Index, s.Meta.Term) {
		// We already hold the snapshot's last entry: commit up to it and
		// keep our log.
		r.log.commitTo(s.Meta.Index)
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
		return
	}
	r.log.restore(s)
	r.log.applying = s.Meta.Index
	if !s.Meta.Conf.IsEmpty() {
		r.applyConfState(s.Meta.Conf)
	}
	r.send(Message{Type: MsgAppResp, To: m.From, Index: s.Meta.Index})
}

func (r *Raft) stepLeader(m Message) {
	pr := r.prs.Progress(m.From)
	if pr == nil {
		return // not a member (any more)
	}
	pr.Heard(r.ticks)
	switch m.Type {
	case MsgAppResp:
		r.handleAppendResponse(m, pr)
	case MsgHeartbeatResp:
		r.handleHeartbeatResponse(m, pr)
	}
}

func (r *Raft) handleAppendResponse(m Message, pr *tracker.Progress) {
	if m.Reject {
		r.handleRejection(m, pr)
		return
	}
	if !pr.Acknowledged(m.Index) {
		return // out of date: changes nothing
	}
	if r.maybeCommit() {
		r.bcastAppend(true)
	} else {
		r.sendAppends(m.From, false)
	}
	if m.From == r.leadTransferee && pr.Match() == r.log.lastIndex() {
		r.send(Message{Type: MsgTimeoutNow, To: m.From})
	}
}

// handleRejection moves a follower's Next back, using the conflict hint to
// skip a whole term per round trip rather than one entry.
func (r *Raft) handleRejection(m Message, pr *tracker.Progress) {
	if !pr.AcceptsRejection(m.Index) {
		return // stale, or a snapshot is in flight and its answer decides
	}
	next := m.RejectHint
	if m.LogTerm > 0 {
		// If we hold entries of the follower's conflicting term, the logs
		// may agree up to our last entry of that term.
		if l, ok, err := r.log.lastIndexOfTerm(min(m.Index, r.log.lastIndex()), m.LogTerm, pr.Match()); err != nil {
			r.fail(err)
			return
		} else if ok {
			next = l + 1
		}
	}
	pr.Rejected(m.Index, next)
	r.sendAppends(m.From, true)
}

func (r *Raft) handleHeartbeatResponse(m Message, pr *tracker.Progress) {
	if pr.Match() < r.log.lastIndex() {
		// A member that lacks entries gets an append at Next-1 (entry-less
		// if nothing is new). Probing, it retries a probe that may have
		// been lost. Replicating, on an ordered link it arrives after the
		// appends in flight and succeeds; if one of them was lost it is
		// rejected, and the rejection moves the follower to probe within
		// one heartbeat — a lost last append would otherwise produce no
		// rejection at all.
		pr.HeartbeatAnswered()
		r.sendAppends(m.From, true)
	}
	if m.Context <= r.hbSeq {
		// Only a round this leader sent counts: a context from anywhere
		// else must not confirm reads or renew the lease.
		pr.HeartbeatAcked(m.Context)
		r.confirmReads()
	}
}

// maybeCommit advances the commit index to the highest index a quorum holds,
// if that entry is of the current term.
func (r *Raft) maybeCommit() bool {
	from := r.log.committed
	if !r.log.maybeCommit(r.prs.Committed(r.conf.Voters, r.conf.VotersOutgoing), r.term) {
		return false
	}
	r.releaseUncommitted(from, r.log.committed)
	return true
}

// releaseUncommitted takes the entries in (from, to], just committed, off
// the leader's uncommitted size. Only entries of this term were counted;
// committed entries above the apply cursor are all still in the unstable
// tail (it is shrunk only up to what was handed out to apply), so this
// reads nothing from storage.
func (r *Raft) releaseUncommitted(from, to uint64) {
	u := &r.log.unstable
	for i := max(from+1, u.offset); i <= to && i < u.offset+uint64(len(u.entries)); i++ {
		if e := &u.entries[i-u.offset]; e.Term == r.term {
			r.uncommittedSize -= min(r.uncommittedSize, e.Size())
		}
	}
}

// bcastAppend sends appends to every follower that is not paused;
// sendIfEmpty also sends an entry-less append carrying the new commit index.
func (r *Raft) bcastAppend(sendIfEmpty bool) {
	for _, id := range r.prs.IDs() {
		if id != r.id {
			r.sendAppends(id, sendIfEmpty)
		}
	}
}

// sendAppends fills a follower's window: in replicate state, appends of up
// to MaxSizePerMsg until MaxInflight are outstanding or the log is sent; in
// probe state, one append.
func (r *Raft) sendAppends(to uint64, sendIfEmpty bool) {
	pr := r.prs.Progress(to)
	if pr == nil {
		return
	}
	sent := r.sendAppend(to, pr, sendIfEmpty)
	for sent && pr.State() == tracker.StateReplicate && pr.Next() <= r.log.lastIndex() {
		sent = r.sendAppend(to, pr, false)
	}
}

// sendAppend sends one append (or, if the entries are compacted, a
// snapshot). It reports whether a message went out.
func (r *Raft) sendAppend(to uint64, pr *tracker.Progress, sendIfEmpty bool) bool {
	if pr.IsPaused() {
		return false
	}
	prevIndex := pr.Next() - 1
	prevTerm, errT := r.log.term(prevIndex)
	ents, errE := r.log.slice(pr.Next(), r.log.lastIndex()+1, r.maxSizePerMsg)
	if errors.Is(errT, ErrCompacted) || errors.Is(errE, ErrCompacted) {
		return r.sendSnapshot(to, pr)
	}
	if err := errors.Join(errT, errE); err != nil {
		r.fail(err)
		return false
	}
	if len(ents) == 0 && !sendIfEmpty {
		return false
	}
	var last uint64
	if n := len(ents); n > 0 {
		last = ents[n-1].Index
	}
	pr.SentAppend(last, len(ents), EntriesSize(ents))
	r.send(Message{Type: MsgApp, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	return true
}

func (r *Raft) sendSnapshot(to uint64, pr *tracker.Progress) bool {
	var meta SnapshotMeta
	if s := r.log.unstable.snapshot; s != nil {
		meta = s.Meta
	} else {
		var err error
		if meta, err = r.log.storage.SnapshotMeta(); err != nil {
			r.fail(fmt.Errorf("core: storage snapshot: %w", err))
			return false
		}
	}
	if meta.Index == 0 {
		r.fail(errors.New("core: storage reports compacted entries but holds no snapshot"))
		return false
	}
	pr.BecomeSnapshot(meta.Index)
	r.send(Message{Type: MsgSnap, To: to, Snapshot: &Snapshot{Meta: meta}})
	return true
}

// bcastHeartbeat sends a heartbeat round to every member, numbered with the
// next heartbeat sequence (hbSeq) in its Context. Each carries the commit
// index capped at the member's Match, so it never commits entries the member
// holds but the leader has not confirmed match.
func (r *Raft) bcastHeartbeat() {
	r.hbSeq++
	for _, id := range r.prs.IDs() {
		if id != r.id {
			r.send(Message{Type: MsgHeartbeat, To: id, Commit: min(r.prs.Match(id), r.log.committed), Context: r.hbSeq})
		}
	}
}

// appendEntries adds ents to the unstable tail with this term and the next
// indexes, copying them (the caller's slice is not retained). It returns the
// first index given. The leader's own Match moves only in Persisted.
func (r *Raft) appendEntries(ents []Entry) uint64 {
	u := &r.log.unstable
	// Invariant: the tail ends at lastIndex (it starts right after storage
	// or the pending snapshot even when empty), so appending there extends
	// the log.
	first := r.log.lastIndex() + 1
	n := len(u.entries)
	u.entries = append(u.entries, ents...)
	for i := range u.entries[n:] {
		e := &u.entries[n+i]
		e.Term, e.Index = r.term, first+uint64(i)
		r.uncommittedSize += e.Size()
	}
	return first
}

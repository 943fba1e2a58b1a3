package core

import (
	"errors"
	"fmt"
	"slices"
)

var (
	// ErrNotLeader is returned for requests only a leader can serve. Lead()
	// tells the caller where to go instead, when known.
	ErrNotLeader = errors.New("core: not the leader")
	// ErrProposalDropped is returned while a leadership transfer is in
	// progress: entries proposed now would only delay the target catching
	// up. The caller retries against the new leader.
	ErrProposalDropped = errors.New("core: proposal dropped during leadership transfer")
	// ErrReadNotReady is returned by ReadIndex until the leader has
	// committed an entry of its own term: before that its commit index may
	// lag entries earlier leaders committed, so it is no read point.
	ErrReadNotReady = errors.New("core: leader has not committed an entry of its term yet")
	// ErrInvalidMessage is wrapped by Step's error for a message that breaks
	// the protocol's shape (wrong recipient, unknown type, entries out of
	// order). The message is ignored; the node is unaffected.
	ErrInvalidMessage = errors.New("core: invalid message")
)

// contextTransfer in a MsgVote's Context marks an election started by
// leadership transfer: voters grant it even inside a leader lease, because
// the current leader asked for it.
const contextTransfer uint64 = 1

// maxApplyBytes bounds the committed entries handed out in one Ready, so a
// restarted node replaying a long log does not materialise it all at once.
const maxApplyBytes = 32 << 20

// Raft is one node's Raft state machine. It is not safe for concurrent use:
// one goroutine owns it and feeds it Tick, Step and Propose, and drains
// Ready. It never blocks, sleeps, or performs I/O other than reads through
// Storage.
type Raft struct {
	id   uint64
	term uint64
	vote uint64
	lead uint64
	role Role
	log  *raftLog

	conf ConfState
	// prs holds a progress for every member, this node included.
	prs   map[uint64]*progress
	votes map[uint64]bool

	electionTicks             int
	heartbeatTicks            int
	randomizedElectionTimeout int
	electionElapsed           int
	heartbeatElapsed          int
	maxInflight               int
	maxSizePerMsg             uint64
	preVote                   bool
	checkQuorum               bool
	rand                      Rand

	// leadTransferee is the target of a leadership transfer in progress.
	leadTransferee uint64
	// pendingConfIndex is the index of the last membership change the
	// leader may have in its log. No new change is proposed until it is
	// applied: one change in flight at a time.
	pendingConfIndex uint64

	// reads are ReadIndex requests waiting for a heartbeat quorum, oldest
	// first; readStates are confirmed ones waiting for Ready.
	reads      []pendingRead
	readStates []ReadState

	// msgs may leave at once; msgsAfter only once the entries and hard state
	// of the Ready that carries them are durable.
	msgs      []Message
	msgsAfter []Message

	prevHard HardState
	prevSoft SoftState

	// Disk-stall detection (leader only, with check-quorum): a leader whose
	// writes make no progress for a whole election timeout steps down, so
	// followers elect a leader that can commit instead of being kept quiet
	// by the heartbeats of one that cannot.
	persistedSinceCheck bool
	diskBusyAtCheck     bool

	// err is a sticky storage failure. Once set, every method returns it and
	// the node must be stopped: core cannot reason about a log it cannot
	// read.
	err error
}

// pendingRead is a ReadIndex request: the commit index at the time it was
// made, and which voters have since confirmed the leader is still leader.
type pendingRead struct {
	index uint64
	ctx   uint64
	acks  map[uint64]bool
}

// SoftState is volatile state worth reporting: who leads and our role.
type SoftState struct {
	Lead uint64
	Role Role
}

// New returns a Raft in the follower role, restored from cfg.Storage. Every
// problem, in cfg or in what storage holds, is returned as an error.
func New(cfg Config) (*Raft, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log, err := newRaftLog(cfg.Storage, cfg.Applied)
	if err != nil {
		return nil, err
	}
	hs, cs, err := cfg.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("core: storage initial state: %w", err)
	}
	if cs.IsEmpty() {
		cs = ConfState{Voters: slices.Clone(cfg.Voters), Learners: slices.Clone(cfg.Learners)}
	}
	if hs.Commit > log.lastIndex() {
		return nil, fmt.Errorf("core: stored commit index %d is beyond the last stored entry %d: the log lost committed entries", hs.Commit, log.lastIndex())
	}
	log.committed = max(log.committed, hs.Commit)
	if cfg.Applied > log.committed {
		return nil, fmt.Errorf("core: Config.Applied %d is beyond the commit index %d", cfg.Applied, log.committed)
	}
	r := &Raft{
		id:             cfg.ID,
		log:            log,
		prs:            make(map[uint64]*progress),
		votes:          make(map[uint64]bool),
		electionTicks:  cfg.ElectionTicks,
		heartbeatTicks: cfg.HeartbeatTicks,
		maxInflight:    cfg.MaxInflight,
		maxSizePerMsg:  cfg.MaxSizePerMsg,
		preVote:        !cfg.DisablePreVote,
		checkQuorum:    !cfg.DisableCheckQuorum,
		rand:           cfg.Rand,
	}
	r.applyConfState(cs)
	first, err := cfg.Storage.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("core: storage first index: %w", err)
	}
	if err := r.replayConfChanges(first, cfg.Applied); err != nil {
		return nil, err
	}
	r.becomeFollower(hs.Term, None)
	r.vote = hs.Vote
	r.prevHard = r.hardState()
	r.prevSoft = r.softState()
	return r, nil
}

// ID is this node's ID.
func (r *Raft) ID() uint64 { return r.id }

// Term is the current term.
func (r *Raft) Term() uint64 { return r.term }

// Lead is the leader of the current term, or None when unknown.
func (r *Raft) Lead() uint64 { return r.lead }

// Role is this node's role.
func (r *Raft) Role() Role { return r.role }

// Committed is the commit index.
func (r *Raft) Committed() uint64 { return r.log.committed }

// LastIndex is the index of the last entry in the log (durable or not).
func (r *Raft) LastIndex() uint64 { return r.log.lastIndex() }

// Conf returns the current membership. The caller must not modify it.
func (r *Raft) Conf() ConfState { return r.conf }

// Err returns the sticky storage failure, if any.
func (r *Raft) Err() error { return r.err }

func (r *Raft) hardState() HardState {
	return HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

func (r *Raft) softState() SoftState { return SoftState{Lead: r.lead, Role: r.role} }

// fail records a storage failure; the first one wins.
func (r *Raft) fail(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

// checkLog promotes a storage error the log swallowed (term lookups answer
// "no match" on failure) into the sticky error.
func (r *Raft) checkLog() error {
	if r.log.err != nil {
		r.fail(r.log.err)
	}
	return r.err
}

func (r *Raft) isVoter(id uint64) bool {
	return slices.Contains(r.conf.Voters, id) || slices.Contains(r.conf.VotersOutgoing, id)
}

// promotable reports whether this node may campaign: only voters can lead.
func (r *Raft) promotable() bool { return r.isVoter(r.id) }

// applyConfState makes cs the membership, keeping the progress of members
// that stay and creating fresh progress for new ones.
func (r *Raft) applyConfState(cs ConfState) {
	r.conf = ConfState{
		Voters:         slices.Clone(cs.Voters),
		VotersOutgoing: slices.Clone(cs.VotersOutgoing),
		Learners:       slices.Clone(cs.Learners),
	}
	keep := make(map[uint64]bool)
	add := func(id uint64, learner bool) {
		keep[id] = true
		pr, ok := r.prs[id]
		if !ok {
			pr = &progress{Next: r.log.lastIndex() + 1, inflights: newInflights(r.maxInflight)}
			r.prs[id] = pr
		}
		pr.isLearner = learner
	}
	for _, id := range r.conf.Voters {
		add(id, false)
	}
	for _, id := range r.conf.VotersOutgoing {
		add(id, false)
	}
	for _, id := range r.conf.Learners {
		if !keep[id] {
			add(id, true)
		}
	}
	for id := range r.prs {
		if !keep[id] {
			delete(r.prs, id)
		}
	}
}

func (r *Raft) resetRandomizedElectionTimeout() {
	r.randomizedElectionTimeout = r.electionTicks + r.rand.IntN(r.electionTicks)
}

// reset moves to term (forgetting the vote if the term changes) and clears
// everything that belongs to one term.
func (r *Raft) reset(term uint64) {
	if r.term != term {
		r.term = term
		r.vote = None
	}
	r.lead = None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.resetRandomizedElectionTimeout()
	r.leadTransferee = None
	clear(r.votes)
	r.reads = nil
	last := r.log.lastIndex()
	for id, pr := range r.prs {
		*pr = progress{Next: last + 1, inflights: pr.inflights, isLearner: pr.isLearner}
		pr.inflights.reset()
		if id == r.id {
			pr.Match = r.log.stableIndex()
		}
	}
	r.persistedSinceCheck = false
	r.diskBusyAtCheck = false
}

func (r *Raft) becomeFollower(term, lead uint64) {
	r.reset(term)
	r.lead = lead
	r.role = Follower
}

func (r *Raft) becomePreCandidate() {
	// Pre-vote changes neither term nor vote: losing it must leave no trace.
	r.role = PreCandidate
	r.lead = None
	clear(r.votes)
	r.resetRandomizedElectionTimeout()
}

func (r *Raft) becomeCandidate() {
	r.reset(r.term + 1)
	r.vote = r.id
	r.role = Candidate
}

func (r *Raft) becomeLeader() {
	r.reset(r.term)
	r.lead = r.id
	r.role = Leader
	// reset left every follower probing from our last index + 1.
	// Any membership change still unapplied in our log counts as pending:
	// we cannot tell cheaply whether one is there, and being conservative
	// only delays the next change until our first entry is applied.
	r.pendingConfIndex = r.log.lastIndex()
	// A new leader commits nothing of earlier terms by counting (Figure 8);
	// an entry of its own term, once committed, commits all before it.
	r.appendEntries([]Entry{{Type: EntryNormal}})
	r.bcastAppend(false)
}

// send queues m, filling in From and (unless the type carries its own term)
// Term. Messages that acknowledge durable state wait for the Ready's save.
func (r *Raft) send(m Message) {
	m.From = r.id
	if m.Type != MsgPreVote && m.Type != MsgPreVoteResp {
		m.Term = r.term
	}
	switch m.Type {
	case MsgVote, MsgVoteResp, MsgAppResp:
		// A vote (our own as candidate, or one granted) and an append
		// acknowledgement promise durable state: they must not leave before
		// that state is on disk, or a crash could make us vote twice or
		// "forget" an entry a leader counted.
		r.msgsAfter = append(r.msgsAfter, m)
	default:
		r.msgs = append(r.msgs, m)
	}
}

// Tick advances time by one tick.
func (r *Raft) Tick() {
	if r.err != nil {
		return
	}
	if r.role == Leader {
		r.tickLeader()
	} else {
		r.tickElection()
	}
	r.checkLog()
}

func (r *Raft) tickElection() {
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.campaign(false)
	}
}

func (r *Raft) tickLeader() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTicks {
		r.electionElapsed = 0
		if r.checkQuorum {
			if !r.quorumActive() {
				r.becomeFollower(r.term, None)
				return
			}
			// Entries handed out to be written but not yet durable.
			busy := r.log.unstable.offsetInProgress-1 > r.log.unstable.persisted
			if busy && r.diskBusyAtCheck && !r.persistedSinceCheck {
				r.becomeFollower(r.term, None)
				return
			}
			r.diskBusyAtCheck = busy
			r.persistedSinceCheck = false
		}
		// A transfer that has not finished in an election timeout is
		// abandoned so proposals can flow again.
		r.leadTransferee = None
	}
	if r.heartbeatElapsed >= r.heartbeatTicks {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat(0)
	}
}

// quorumActive reports whether a quorum was heard from during the last
// election timeout, and starts the next window.
func (r *Raft) quorumActive() bool {
	active := make(map[uint64]bool, len(r.prs))
	for id, pr := range r.prs {
		if id == r.id {
			active[id] = true
			continue
		}
		active[id] = pr.recentActive
		pr.recentActive = false
	}
	return jointTally(r.conf.Voters, r.conf.VotersOutgoing, active) == voteWon
}

// campaign starts an election: a pre-vote poll first unless pre-vote is off
// or the campaign comes from a leadership transfer.
func (r *Raft) campaign(transfer bool) {
	if !r.promotable() {
		return
	}
	var typ MessageType
	var term uint64
	if r.preVote && !transfer {
		r.becomePreCandidate()
		typ, term = MsgPreVote, r.term+1
	} else {
		r.becomeCandidate()
		typ, term = MsgVote, r.term
	}
	r.votes[r.id] = true
	if jointTally(r.conf.Voters, r.conf.VotersOutgoing, r.votes) == voteWon {
		// A single-voter cluster wins at once.
		if typ == MsgPreVote {
			r.campaign(true)
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
	var ctx uint64
	if transfer {
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

// peersSorted lists every member but this node in ID order.
func (r *Raft) peersSorted() []uint64 {
	ids := make([]uint64, 0, len(r.prs))
	for id := range r.prs {
		if id != r.id {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Step feeds a message received from another node into the state machine.
// A malformed message is refused with an error wrapping ErrInvalidMessage
// and changes nothing.
func (r *Raft) Step(m Message) error {
	if r.err != nil {
		return r.err
	}
	if err := r.checkMessage(m); err != nil {
		return err
	}
	switch {
	case m.Term > r.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			inLease := r.checkQuorum && r.lead != None && r.electionElapsed < r.electionTicks
			if inLease && m.Context != contextTransfer {
				// We heard from a leader within the election timeout: the
				// candidate is disruptive (say, back from a partition), so
				// it gets no answer and no term bump.
				return nil
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// A pre-vote never changes our term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote carries the term we would campaign in.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			r.becomeFollower(m.Term, m.From)
		default:
			r.becomeFollower(m.Term, None)
		}
	case m.Term < r.term:
		switch {
		case (r.checkQuorum || r.preVote) && (m.Type == MsgHeartbeat || m.Type == MsgApp):
			// A stale leader (say, back from a partition) would otherwise
			// never learn our term: with check-quorum or pre-vote our side
			// does not bump terms by campaigning at it. Tell it.
			r.send(Message{Type: MsgAppResp, To: m.From})
		case m.Type == MsgPreVote:
			r.send(Message{Type: MsgPreVoteResp, To: m.From, Term: r.term, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		r.handleVote(m)
		return r.checkLog()
	}
	switch r.role {
	case Leader:
		r.stepLeader(m)
	case Candidate, PreCandidate:
		r.stepCandidate(m)
	default:
		r.stepFollower(m)
	}
	return r.checkLog()
}

// checkMessage validates a message's shape once, at the boundary, so the
// handlers can trust it.
func (r *Raft) checkMessage(m Message) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s from %d: "+format, append([]any{ErrInvalidMessage, m.Type, m.From}, args...)...)
	}
	if m.Type == 0 || m.Type > MaxMessageType {
		return bad("unknown type %d", uint8(m.Type))
	}
	if m.To != r.id {
		return bad("addressed to %d, this is %d", m.To, r.id)
	}
	if m.From == None || m.From == r.id {
		return bad("sender ID %d is invalid here", m.From)
	}
	if m.Type == MsgSnap && (m.Snapshot == nil || m.Snapshot.Meta.Index == 0) {
		return bad("carries no snapshot")
	}
	if len(m.Entries) > 0 && m.Type != MsgApp {
		return bad("carries %d entries", len(m.Entries))
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.Index+1+uint64(i) {
			return bad("entry %d has index %d, want %d", i, e.Index, m.Index+1+uint64(i))
		}
		if e.Term < prevTerm || e.Term > m.Term {
			return bad("entry %d has term %d, outside [%d, %d]", e.Index, e.Term, prevTerm, m.Term)
		}
		prevTerm = e.Term
	}
	return nil
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

func (r *Raft) stepFollower(m Message) {
	switch m.Type {
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleAppend(m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTimeoutNow:
		r.campaign(true)
	}
}

func (r *Raft) stepCandidate(m Message) {
	switch m.Type {
	case MsgApp:
		r.becomeFollower(m.Term, m.From)
		r.handleAppend(m)
	case MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
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
		switch jointTally(r.conf.Voters, r.conf.VotersOutgoing, r.votes) {
		case voteWon:
			if !r.promotable() {
				r.becomeFollower(r.term, None)
				return
			}
			if r.role == PreCandidate {
				r.campaign(true)
			} else {
				r.becomeLeader()
			}
		case voteLost:
			r.becomeFollower(r.term, None)
		}
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
	pr := r.prs[m.From]
	if pr == nil {
		return // not a member (any more)
	}
	pr.recentActive = true
	switch m.Type {
	case MsgAppResp:
		r.handleAppendResponse(m, pr)
	case MsgHeartbeatResp:
		r.handleHeartbeatResponse(m, pr)
	}
}

func (r *Raft) handleAppendResponse(m Message, pr *progress) {
	if m.Reject {
		r.handleRejection(m, pr)
		return
	}
	if !pr.maybeUpdate(m.Index) {
		return // out of date: changes nothing
	}
	switch pr.State {
	case stateProbe:
		pr.becomeReplicate()
	case stateSnapshot:
		if pr.Match >= pr.pendingSnapshot {
			pr.becomeProbe()
			pr.becomeReplicate()
		}
	case stateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if r.maybeCommit() {
		r.bcastAppend(true)
	} else {
		r.sendAppends(m.From, false)
	}
	if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
		r.send(Message{Type: MsgTimeoutNow, To: m.From})
	}
}

// handleRejection moves a follower's Next back, using the conflict hint to
// skip a whole term per round trip rather than one entry.
func (r *Raft) handleRejection(m Message, pr *progress) {
	switch pr.State {
	case stateReplicate:
		if m.Index <= pr.Match {
			return // a stale rejection of an append already superseded
		}
	case stateProbe:
		if m.Index != pr.Next-1 {
			return // not the answer to the probe outstanding
		}
	default:
		return // a snapshot is in flight; its answer decides
	}
	next := m.RejectHint
	if m.LogTerm > 0 {
		// If we hold entries of the follower's conflicting term, the logs
		// may agree up to our last entry of that term.
		if l, ok, err := r.log.lastIndexOfTerm(min(m.Index, r.log.lastIndex()), m.LogTerm, pr.Match); err != nil {
			r.fail(err)
			return
		} else if ok {
			next = l + 1
		}
	}
	// Clamp: strictly below the rejected probe point (so backtracking always
	// progresses) and above what is known to match.
	next = max(min(next, m.Index), pr.Match+1)
	pr.becomeProbe()
	pr.Next = next
	r.sendAppends(m.From, true)
}

func (r *Raft) handleHeartbeatResponse(m Message, pr *progress) {
	if pr.Match < r.log.lastIndex() {
		switch pr.State {
		case stateProbe:
			pr.probeSent = false // the probe may have been lost: send again
		case stateReplicate:
			// Send an append at Next-1 (entry-less if nothing is new). On
			// an ordered link it arrives after the appends in flight and
			// succeeds; if one of them was lost it is rejected, and the
			// rejection moves the follower to probe within one heartbeat —
			// a lost last append would otherwise produce no rejection at
			// all. A full window that will never be acknowledged gives up
			// its oldest slot for it.
			if pr.inflights.full() {
				pr.inflights.freeFirst()
			}
		}
		r.sendAppends(m.From, true)
	}
	if m.Context != 0 {
		r.ackRead(m.Context, m.From)
	}
}

// maybeCommit advances the commit index to the highest index a quorum holds,
// if that entry is of the current term.
func (r *Raft) maybeCommit() bool {
	match := func(id uint64) uint64 {
		if pr := r.prs[id]; pr != nil {
			return pr.Match
		}
		return 0
	}
	idx := majorityIndex(r.conf.Voters, match)
	if len(r.conf.VotersOutgoing) > 0 {
		idx = min(idx, majorityIndex(r.conf.VotersOutgoing, match))
	}
	return r.log.maybeCommit(idx, r.term)
}

// bcastAppend sends appends to every follower that is not paused;
// sendIfEmpty also sends an entry-less append carrying the new commit index.
func (r *Raft) bcastAppend(sendIfEmpty bool) {
	for _, id := range r.peersSorted() {
		r.sendAppends(id, sendIfEmpty)
	}
}

// sendAppends fills a follower's window: in replicate state, appends of up
// to MaxSizePerMsg until MaxInflight are outstanding or the log is sent; in
// probe state, one append.
func (r *Raft) sendAppends(to uint64, sendIfEmpty bool) {
	pr := r.prs[to]
	if pr == nil {
		return
	}
	sent := r.sendAppend(to, pr, sendIfEmpty)
	for sent && pr.State == stateReplicate && pr.Next <= r.log.lastIndex() {
		sent = r.sendAppend(to, pr, false)
	}
}

// sendAppend sends one append (or, if the entries are compacted, a
// snapshot). It reports whether a message went out.
func (r *Raft) sendAppend(to uint64, pr *progress, sendIfEmpty bool) bool {
	if pr.paused() {
		return false
	}
	prevIndex := pr.Next - 1
	prevTerm, errT := r.log.term(prevIndex)
	ents, errE := r.log.slice(pr.Next, r.log.lastIndex()+1, r.maxSizePerMsg)
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
	if n := len(ents); n > 0 {
		last := ents[n-1].Index
		switch pr.State {
		case stateReplicate:
			pr.Next = last + 1
			pr.inflights.add(last)
		case stateProbe:
			pr.probeSent = true
		}
	} else if pr.State == stateProbe {
		pr.probeSent = true
	}
	r.send(Message{Type: MsgApp, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	return true
}

func (r *Raft) sendSnapshot(to uint64, pr *progress) bool {
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
	pr.becomeSnapshot(meta.Index)
	r.send(Message{Type: MsgSnap, To: to, Snapshot: &Snapshot{Meta: meta}})
	return true
}

// bcastHeartbeat sends a heartbeat to every member. Each carries the commit
// index capped at the member's Match, so it never commits entries the member
// holds but the leader has not confirmed match.
func (r *Raft) bcastHeartbeat(ctx uint64) {
	for _, id := range r.peersSorted() {
		pr := r.prs[id]
		r.send(Message{Type: MsgHeartbeat, To: id, Commit: min(pr.Match, r.log.committed), Context: ctx})
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
	}
	return first
}

// Propose appends a batch of commands to the leader's log and starts
// replicating them. It returns the index given to the first entry and the
// term, by which the caller recognises its entries when they are applied
// (an entry applied at that index with another term means the proposal was
// lost). core keeps ents' Data; the caller must not modify it afterwards.
func (r *Raft) Propose(ents ...Entry) (first, term uint64, err error) {
	if r.err != nil {
		return 0, 0, r.err
	}
	if r.role != Leader {
		return 0, 0, ErrNotLeader
	}
	if r.leadTransferee != None {
		return 0, 0, ErrProposalDropped
	}
	if len(ents) == 0 {
		return r.log.lastIndex() + 1, r.term, nil
	}
	for i := range ents {
		if ents[i].Type != EntryNormal {
			return 0, 0, fmt.Errorf("core: Propose: entry %d has type %s; only Normal entries may be proposed this way", i, ents[i].Type)
		}
	}
	first = r.appendEntries(ents)
	r.bcastAppend(false)
	return first, r.term, r.checkLog()
}

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
		if pr := r.prs[id]; id != r.id && pr != nil && (best == None || pr.Match > match) {
			best, match = id, pr.Match
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

// ReadIndex asks for a linearizable read point (thesis §6.4). ctx must be
// non-zero and identifies the request in the ReadState that Ready returns
// once a quorum has confirmed this node is still leader. Many reads can
// share one request.
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
	acks := map[uint64]bool{r.id: true}
	if jointTally(r.conf.Voters, r.conf.VotersOutgoing, acks) == voteWon {
		r.readStates = append(r.readStates, ReadState{Index: r.log.committed, Context: ctx})
		return nil
	}
	r.reads = append(r.reads, pendingRead{index: r.log.committed, ctx: ctx, acks: acks})
	r.bcastHeartbeat(ctx)
	return nil
}

// ackRead records that from answered the heartbeat round of read ctx. When a
// quorum has, that read and every older one are confirmed: the leader was
// still leader after they were all made.
func (r *Raft) ackRead(ctx, from uint64) {
	for i := range r.reads {
		if r.reads[i].ctx != ctx {
			continue
		}
		r.reads[i].acks[from] = true
		if jointTally(r.conf.Voters, r.conf.VotersOutgoing, r.reads[i].acks) != voteWon {
			return
		}
		for _, rd := range r.reads[:i+1] {
			r.readStates = append(r.readStates, ReadState{Index: rd.index, Context: rd.ctx})
		}
		r.reads = r.reads[i+1:]
		return
	}
}

// TransferLeader hands leadership to the voter to: it is caught up first,
// then told to campaign at once. Proposals are refused meanwhile, and the
// transfer is abandoned after an election timeout.
func (r *Raft) TransferLeader(to uint64) error {
	if r.err != nil {
		return r.err
	}
	if r.role != Leader {
		return ErrNotLeader
	}
	if to == r.id {
		return nil
	}
	if !r.isVoter(to) {
		return fmt.Errorf("core: transfer target %d is not a voter", to)
	}
	if r.leadTransferee == to {
		return nil
	}

	r.leadTransferee = to
	r.electionElapsed = 0
	pr := r.prs[to]
	if pr.Match == r.log.lastIndex() {
		r.send(Message{Type: MsgTimeoutNow, To: to})
	} else {
		r.sendAppends(to, false)
	}
	return r.checkLog()
}

// Transferee is the target of the leadership transfer in progress, or None.
func (r *Raft) Transferee() uint64 { return r.leadTransferee }

// ReportUnreachable tells the leader that messages to id are failing (the
// transport could not deliver them), so it stops pipelining into the void
// and probes instead.
func (r *Raft) ReportUnreachable(id uint64) {
	if r.role != Leader {
		return
	}
	if pr := r.prs[id]; pr != nil && pr.State == stateReplicate {
		pr.becomeProbe()
	}
}

// ReportSnapshot tells the leader whether the snapshot sent to id was
// installed. Either way the follower goes back to probing: from after the
// snapshot on success, from Match on failure (which sends it again if still
// needed).
func (r *Raft) ReportSnapshot(id uint64, ok bool) {
	if r.role != Leader {
		return
	}
	pr := r.prs[id]
	if pr == nil || pr.State != stateSnapshot {
		return
	}
	if !ok {
		pr.pendingSnapshot = 0
	}
	pr.becomeProbe()
	// Wait for the follower's answer (or the next heartbeat) before probing.
	pr.probeSent = true
}

// Persisted tells core that the runtime has durably written everything up to
// entry (index, term) — and the snapshot at index, if one was pending. It is
// how the leader's own log counts toward the quorum: only once durable.
func (r *Raft) Persisted(index, term uint64) {
	if r.err != nil {
		return
	}
	if r.log.unstable.stableSnapTo(index) {
		r.persistedSinceCheck = true
	}
	if r.log.unstable.stableTo(index, term) {
		r.persistedSinceCheck = true
	}
	r.log.shrinkUnstable()
	if r.role == Leader {
		if pr := r.prs[r.id]; pr != nil && pr.maybeUpdate(r.log.stableIndex()) && r.maybeCommit() {
			r.bcastAppend(true)
		}
	}
	r.checkLog()
}

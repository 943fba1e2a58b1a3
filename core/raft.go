package core

import (
	"errors"
	"fmt"
	"slices"

	"github.com/raftbench/raftbench/core/tracker"
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
	// ErrUncommittedLimit is wrapped by Propose's error when the leader's
	// log already holds Config.MaxUncommittedBytes of entries of its term
	// that are not committed: a quorum is not keeping up, and taking more
	// would only grow the leader's memory. Nothing was appended; retry
	// after a pause (or elsewhere, if leadership moves).
	ErrUncommittedLimit = errors.New("core: uncommitted log size limit reached")
	// ErrInvalidMessage is wrapped by Step's error for a message that breaks
	// the protocol's shape (wrong recipient, unknown type, entries out of
	// order). The message is ignored; the node is unaffected.
	ErrInvalidMessage = errors.New("core: invalid message")
)

// contextTransfer in a MsgVote's Context marks an election started by
// leadership transfer: voters grant it even inside a leader lease, because
// the current leader asked for it (and gave up its own lease to do so).
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
	prs   *tracker.Tracker
	votes map[uint64]bool

	// ticks counts every Tick since New. It never goes back (not even
	// across roles or terms), so ticks recorded at different times compare
	// directly: it is the clock of check-quorum and of the leader lease.
	ticks uint64

	electionTicks             int
	heartbeatTicks            int
	randomizedElectionTimeout int
	electionElapsed           int
	heartbeatElapsed          int
	maxSizePerMsg             uint64
	preVote                   bool
	checkQuorum               bool
	readOnly                  ReadOnlyOption
	rand                      Rand

	// hbSeq numbers heartbeat rounds in the order they are sent (the
	// heartbeats' Context); it never goes back. Followers echo it, so the
	// leader knows which rounds each has answered (tracker), which is what
	// confirms reads and renews the lease.
	hbSeq uint64
	// leaseTicks is how long a heartbeat round answered by a quorum keeps
	// the lease (ReadOnlyLeaseBased): ElectionTicks - 1 - LeaseDriftTicks.
	// roundAtTick[t % leaseTicks] is the first round that could be sent at
	// tick t, for the last leaseTicks ticks; nil in ReadOnlySafe.
	leaseTicks  uint64
	roundAtTick []uint64
	// leaseRevoked is set once this leader sent TimeoutNow in its term: the
	// transferee's election bypasses the followers' leases, so the leader's
	// own lease no longer holds, however recent its heartbeats.
	leaseRevoked bool
	leaseReads   uint64

	// uncommittedSize is the Entry.Size of the entries this leader appended
	// in its term and has not seen committed; maxUncommittedBytes caps it
	// for Propose (0: no cap). Reset with every term.
	uncommittedSize     uint64
	maxUncommittedBytes uint64
	// leadHeardAt is the tick at which a message from a leader last arrived
	// (when leadHeard): the followers' side of the lease (inLeaderLease),
	// and whether Lead is fresh enough to give as a hint.
	leadHeard   bool
	leadHeardAt uint64

	// leadTransferee is the target of a leadership transfer in progress.
	leadTransferee uint64
	// pendingConfIndex is the index of the last membership change the
	// leader may have in its log. No new change is proposed until it is
	// applied: one change in flight at a time.
	pendingConfIndex uint64

	// reads are ReadIndex requests waiting for their heartbeat round to be
	// answered by a quorum, oldest first; readStates are confirmed ones
	// waiting for Ready.
	reads      []pendingRead
	readStates []ReadState

	// msgs may leave at once; msgsAfter only once the entries and hard state
	// of the Ready that carries them are durable.
	msgs      []Message
	msgsAfter []Message

	prevHard HardState
	prevSoft SoftState

	// diskProgressAt is the last tick at which the leader's log writes were
	// idle (nothing handed out and not yet durable) or completed one. A
	// leader whose writes make no progress for a whole election timeout
	// steps down (with check-quorum), so followers elect a leader that can
	// commit instead of being kept quiet by the heartbeats of one that
	// cannot.
	diskProgressAt uint64

	// err is a sticky storage failure. Once set, every method returns it and
	// the node must be stopped: core cannot reason about a log it cannot
	// read.
	err error
}

// SoftState is volatile state worth reporting: who leads and our role.
type SoftState struct {
	Lead uint64
	Role Role
}

// New returns a Raft in the follower role, restored from cfg.Storage. It
// fills cfg's defaults (EnsureDefaults) first. Every problem, in cfg or in
// what storage holds, is returned as an error.
func New(cfg Config) (*Raft, error) {
	cfg.EnsureDefaults()
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
		id:                  cfg.ID,
		log:                 log,
		prs:                 tracker.New(cfg.MaxInflight, cfg.MaxInflightBytes),
		votes:               make(map[uint64]bool),
		electionTicks:       cfg.ElectionTicks,
		heartbeatTicks:      cfg.HeartbeatTicks,
		maxSizePerMsg:       cfg.MaxSizePerMsg,
		preVote:             !cfg.DisablePreVote,
		checkQuorum:         !cfg.DisableCheckQuorum,
		readOnly:            cfg.ReadOnlyOption,
		maxUncommittedBytes: cfg.MaxUncommittedBytes,
		rand:                cfg.Rand,
	}
	if r.readOnly == ReadOnlyLeaseBased {
		r.leaseTicks = uint64(cfg.ElectionTicks - 1 - cfg.LeaseDriftTicks)
		r.roundAtTick = make([]uint64, r.leaseTicks)
		for i := range r.roundAtTick {
			r.roundAtTick[i] = 1
		}
		// A node that starts cannot know whether it answered a leader's
		// heartbeat just before it stopped: it keeps the followers' promise
		// for an election timeout as if it had, at tick 0.
		r.leadHeard = true
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

// LeaderHint is where to send a client that asked this node for what only
// a leader does: this node when it leads; the current term's leader when a
// message from it arrived within the last election timeout; otherwise
// None. A follower that has heard nothing from its leader for that long is
// likely following one that is gone, and a hint to it would cost the
// client a whole attempt on a dead end. Lead, by contrast, is the leader
// of the term as far as this node knows, however stale.
func (r *Raft) LeaderHint() uint64 {
	switch {
	case r.role == Leader:
		return r.id
	case r.lead != None && r.leadHeard && r.ticks-r.leadHeardAt < uint64(r.electionTicks):
		return r.lead
	}
	return None
}

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
	r.prs.SetMembers(r.conf.Voters, r.conf.VotersOutgoing, r.conf.Learners, r.log.lastIndex()+1, r.ticks)
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
	r.leaseRevoked = false
	r.uncommittedSize = 0
	clear(r.votes)
	r.reads = nil
	r.prs.Reset(r.log.lastIndex()+1, r.id, r.log.stableIndex(), r.ticks)
	r.diskProgressAt = r.ticks
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
	if m.Type == MsgTimeoutNow {
		r.leaseRevoked = true
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
	r.ticks++
	r.noteTickRound()
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
		r.campaign(campaignPreVote)
	}
}

func (r *Raft) tickLeader() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.checkQuorum && r.leaderShouldStepDown() {
		r.becomeFollower(r.term, None)
		return
	}
	if r.electionElapsed >= r.electionTicks {
		r.electionElapsed = 0
		// A transfer that has not finished in an election timeout is
		// abandoned so proposals can flow again.
		r.leadTransferee = None
	}
	if r.heartbeatElapsed >= r.heartbeatTicks {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
	}
}

// leaderShouldStepDown is continuous check-quorum, asked on every tick: the
// leader gives up as soon as it has heard from no quorum (of both halves,
// when joint) within an election timeout, or its disk has made no progress
// for one. Followers that stopped hearing from it campaign after at least
// an election timeout, so by then it has stopped taking proposals and
// clients go elsewhere instead of waiting on a leader that cannot commit.
func (r *Raft) leaderShouldStepDown() bool {
	et := uint64(r.electionTicks)
	if r.ticks-r.prs.QuorumHeard(r.id, r.conf.Voters, r.conf.VotersOutgoing, r.ticks) >= et {
		return true
	}
	// Entries handed out to be written but not yet durable.
	if busy := r.log.unstable.offsetInProgress-1 > r.log.unstable.persisted; !busy {
		r.diskProgressAt = r.ticks
	}
	return r.ticks-r.diskProgressAt >= et
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
			if r.inLeaderLease() && m.Context != contextTransfer {
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
		case m.Type == MsgVote && r.role != Leader:
			// Only a current leader or a granted vote restarts the election
			// timer (§5.2); handleVote restarts it if it grants. A vote
			// request it rejects must not: a candidate whose log is behind
			// (and whose clock runs fast, without pre-vote) would otherwise
			// keep every up-to-date node from ever timing out, and no one
			// could be elected (simulator seed 11824).
			elapsed := r.electionElapsed
			r.becomeFollower(m.Term, None)
			r.electionElapsed = elapsed
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
	// With nothing uncommitted any batch is taken, however large: the cap
	// must never make a proposal impossible, only make it wait.
	if size := EntriesSize(ents); r.maxUncommittedBytes > 0 && r.uncommittedSize > 0 && r.uncommittedSize+size > r.maxUncommittedBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes uncommitted, %d more would pass MaxUncommittedBytes %d", ErrUncommittedLimit, r.uncommittedSize, size, r.maxUncommittedBytes)
	}
	first = r.appendEntries(ents)
	r.bcastAppend(false)
	return first, r.term, r.checkLog()
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
	if r.prs.Match(to) == r.log.lastIndex() {
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
	if pr := r.prs.Progress(id); pr != nil {
		pr.Unreachable()
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
	if pr := r.prs.Progress(id); pr != nil {
		pr.SnapshotReported(ok)
	}
}

// Persisted tells core that the runtime has durably written everything up to
// entry (index, term) — and the snapshot at index, if one was pending. It is
// how the leader's own log counts toward the quorum: only once durable.
func (r *Raft) Persisted(index, term uint64) {
	if r.err != nil {
		return
	}
	if r.log.unstable.stableSnapTo(index) {
		r.diskProgressAt = r.ticks
	}
	if r.log.unstable.stableTo(index, term) {
		r.diskProgressAt = r.ticks
	}
	r.log.shrinkUnstable()
	if r.role == Leader {
		if pr := r.prs.Progress(r.id); pr != nil && pr.MaybeUpdate(r.log.stableIndex()) && r.maybeCommit() {
			r.bcastAppend(true)
		}
	}
	r.checkLog()
}

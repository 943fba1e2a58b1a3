package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// Node runs one Raft replica: a Raft loop, a WAL writer, an applier and a
// snapshot goroutine, each owning its part of the state (the package
// documentation says which, and how they hand work to each other).
type Node struct {
	cfg    Config
	id     uint64
	raft   *core.Raft // owned by the loop goroutine
	log    Logger
	tr     transport.Transport
	writer *walWriter
	app    *applier

	// mu guards the loop's inbound queues; wake has room for one pending
	// wake-up so producers never block.
	mu          sync.Mutex
	props       []*proposal
	propBytes   int
	inbox       []core.Message
	unreachable []uint64
	snapStatus  []snapStatus
	acks        []persistAck
	reads       []*readReq
	ctrl        []func()
	stopped     bool
	wake        chan struct{}

	// Loop-owned state.
	readCtx       uint64
	pendingReads  map[uint64][]*readReq // ReadIndex context → reads waiting for it
	readBacklog   []*readReq            // reads waiting for the leader's first commit
	batchEnds     []uint64              // last index of each uncommitted proposal batch
	lastSoft      core.SoftState
	leaderChanged chan struct{} // closed and replaced on every leader change
	// With ReadModeLease core's clock is the monotonic clock: ticked is
	// how many ticks core has had since tickStart (see catchUpTicks).
	tickStart time.Time
	ticked    int64

	// Latency attribution (nil stages: off, Config.NoStageTiming). The
	// loop owns the rest: the proposal batches not yet wholly committed,
	// when the leader sent its appends to each follower, and when the
	// current round started (stage clock).
	stages     *stageRecorder
	timed      []*batchTimes
	sends      map[uint64]*sendLog
	roundStart int64

	// peers is the address book: every member's transport address (guarded
	// by mu).
	peers map[uint64]string
	// snaps stores state-machine images (nil without SnapshotDir);
	// latestSnap is the newest, attached to snapshots sent to followers.
	snaps      *snapStore
	latestSnap atomic.Pointer[core.Snapshot]
	snapJobs   chan snapJob
	snapDone   chan struct{}

	// leadership is published by the loop whenever it changes (rarely), and
	// commit after every round; final is the full status the loop ended
	// with, for Status calls after it is gone. Nothing else of the loop's
	// state is published: Status asks the loop instead, so a node nobody
	// observes allocates nothing for it.
	leadership atomic.Pointer[Leadership]
	commit     atomic.Uint64
	final      atomic.Pointer[Status]
	metrics    metrics
	stopc      chan struct{}
	loopDone   chan struct{}
	stopOnce   sync.Once
	stopErr    error
	fatal      atomic.Pointer[error]
	// pendingFatal is a fatal error found off the loop's main path (by the
	// applier, or while handling a Ready); the loop stops the node with it
	// at the end of the round, since only the loop may (die touches
	// loop-owned state).
	pendingFatal atomic.Pointer[error]
}

// proposal is one Propose call waiting for its command to apply.
type proposal struct {
	data  []byte
	index uint64
	term  uint64
	done  chan result
	// Stage timestamps (see StageTimings): start is t0, set by the caller;
	// batch by the loop when it proposes; committed (t3) and applied (t4)
	// by the applier before it completes the proposal. Zero start: not
	// timed.
	start, committed, applied int64
	batch                     *batchTimes
}

type result struct {
	val any
	err error
}

// complete delivers the outcome; done has room for exactly one.
//
// Invariant: a proposal is completed exactly once, and completing it is
// the node's last use of it. Every holder takes it out of its queue under
// that queue's lock before completing it — n.props (takeBatchLocked,
// failQueued), applier.pending (apply, install, failAll) — and touches it
// no more afterwards. That is what lets Propose recycle a proposal once it
// has received the outcome (release).
func (p *proposal) complete(val any, err error) { p.done <- result{val, err} }

// proposals recycles the proposal (and its done channel) of every Propose
// whose caller received the outcome. Allocating them per call cost 3
// allocations per write: with the pool a 256-client raftbench run
// (--wal memory) made 8.9 allocations per write instead of 11.9.
var proposals = sync.Pool{New: func() any { return &proposal{done: make(chan result, 1)} }}

// newProposal is a proposal of cmd, from the pool, its done channel empty.
func newProposal(cmd []byte) *proposal {
	p := proposals.Get().(*proposal)
	p.data = cmd
	return p
}

// release returns p to the pool. Only its caller may release it, and only
// once the node is done with it: it never reached the node, or its outcome
// was received from done (complete's invariant: nothing else then holds
// it). A caller that gave up waiting must not release it. It drops what p
// refers to, so the pool keeps no command or result alive.
func (p *proposal) release() {
	*p = proposal{done: p.done}
	proposals.Put(p)
}

type readReq struct {
	query []byte
	done  chan result
}

// persistAck says entries up to index (of term) are durable; at is when
// the save finished, on the stage clock (0 when not timed).
type persistAck struct {
	index, term uint64
	at          int64
}

type snapStatus struct {
	peer uint64
	ok   bool
}

// Start fills cfg's defaults and validates it, restores the Raft state
// from cfg.Log, starts the transport and the node's goroutines, and returns
// the running node.
func Start(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	peers := maps.Clone(cfg.Peers)
	var snaps *snapStore
	var image *core.Snapshot
	if cfg.SnapshotDir != "" {
		var err error
		if snaps, err = newSnapStore(cfg.SnapshotDir); err != nil {
			return nil, err
		}
		if image, err = snaps.loadLatest(); err != nil {
			return nil, err
		}
		saved, err := snaps.loadPeers()
		if err != nil {
			return nil, err
		}
		for id, addr := range saved {
			if _, ok := peers[id]; !ok {
				peers[id] = addr
			}
		}
	}
	walSnap, err := cfg.Log.SnapshotMeta()
	if err != nil {
		return nil, fmt.Errorf("node %d: wal snapshot metadata: %w", cfg.ID, err)
	}
	if walSnap.Index > 0 && (image == nil || image.Meta.Index < walSnap.Index) {
		have := uint64(0)
		if image != nil {
			have = image.Meta.Index
		}
		return nil, fmt.Errorf("node %d: %w: the log is compacted up to %d but the newest snapshot image in %q is at %d", cfg.ID, ErrCorruptSnapshot, walSnap.Index, cfg.SnapshotDir, have)
	}
	voters := peerIDs(cfg.Peers)
	var learners []uint64
	if cfg.JoinAsLearner {
		voters = slices.DeleteFunc(voters, func(id uint64) bool { return id == cfg.ID })
		learners = []uint64{cfg.ID}
	}
	raft, err := core.New(core.Config{
		ID: cfg.ID, Voters: voters, Learners: learners,
		ElectionTicks: cfg.ElectionTicks, HeartbeatTicks: cfg.HeartbeatTicks,
		MaxInflight: cfg.MaxInflight, MaxSizePerMsg: cfg.MaxSizePerMsg,
		MaxInflightBytes: cfg.MaxInflightBytes, MaxUncommittedBytes: cfg.MaxUncommittedBytes,
		DisablePreVote: cfg.DisablePreVote, DisableCheckQuorum: cfg.DisableCheckQuorum,
		ReadOnlyOption: readOnlyOption(cfg.ReadMode), LeaseDriftTicks: cfg.LeaseDriftTicks,
		Storage: cfg.Log,
		Rand:    rand.New(rand.NewPCG(cfg.Seed, cfg.ID)),
		// Everything after the log's snapshot is handed out again, so
		// membership changes are replayed; the applier skips what the
		// restored image already holds.
		Applied: walSnap.Index,
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", cfg.ID, err)
	}
	n := &Node{
		cfg: cfg, id: cfg.ID, raft: raft, log: cfg.Logger, tr: cfg.Transport,
		wake:          make(chan struct{}, 1),
		pendingReads:  map[uint64][]*readReq{},
		leaderChanged: make(chan struct{}),
		stopc:         make(chan struct{}),
		loopDone:      make(chan struct{}),
		peers:         peers,
		snaps:         snaps,
		snapJobs:      make(chan snapJob, 1),
		snapDone:      make(chan struct{}),
	}
	if !cfg.NoStageTiming {
		n.stages = newStageRecorder()
		n.sends = map[uint64]*sendLog{}
	}
	n.app = newApplier(n)
	n.app.conf = raft.Conf()
	n.app.confHist = []confAt{{walSnap.Index, raft.Conf()}}
	if image != nil {
		ss, ok := cfg.StateMachine.(Snapshotter)
		if !ok {
			return nil, errNoSnapshotter(cfg.ID)
		}
		if err := ss.Restore(image.Data); err != nil {
			return nil, errRestore(cfg.ID, image.Meta.Index, err)
		}
		n.app.applied.Store(image.Meta.Index)
		n.app.skipUpTo = image.Meta.Index
		n.app.lastTerm = image.Meta.Term
		n.app.conf = image.Meta.Conf
		n.app.confHist = []confAt{{image.Meta.Index, image.Meta.Conf}}
		n.latestSnap.Store(image)
	}
	n.writer = newWALWriter(n)
	for id, addr := range peers {
		if id == cfg.ID {
			continue
		}
		if err := cfg.Transport.AddPeer(id, addr); err != nil {
			return nil, fmt.Errorf("node %d: add peer %d at %s: %w", cfg.ID, id, addr, err)
		}
	}
	if err := cfg.Transport.Start(handler{n}); err != nil {
		return nil, fmt.Errorf("node %d: start transport: %w", cfg.ID, err)
	}
	n.publishStatus()
	go n.runSnapshots()
	go n.app.run()
	go n.writer.run()
	go n.run()
	return n, nil
}

// ID is this node's ID.
func (n *Node) ID() uint64 { return n.id }

// LogFirstIndex is the first entry the node's log still holds: everything
// before it has been compacted into a snapshot.
func (n *Node) LogFirstIndex() (uint64, error) { return n.cfg.Log.FirstIndex() }

// handler feeds the transport's deliveries into the loop's inbox.
type handler struct{ n *Node }

// Deliver queues received messages for the loop; it never blocks the
// transport's reader.
func (h handler) Deliver(msgs []core.Message) {
	h.n.mu.Lock()
	h.n.inbox = append(h.n.inbox, msgs...)
	h.n.mu.Unlock()
	h.n.metrics.received.Add(uint64(len(msgs)))
	h.n.signal()
}

// SnapshotStatus is the transport's word on a snapshot sent to peer: core
// resumes replication after a success and sends another after a failure.
func (h handler) SnapshotStatus(peer uint64, ok bool) {
	h.n.mu.Lock()
	h.n.snapStatus = append(h.n.snapStatus, snapStatus{peer, ok})
	h.n.mu.Unlock()
	h.n.signal()
}

// Unreachable queues the transport's report for core, which then probes
// the follower instead of pipelining into the void.
func (h handler) Unreachable(peer uint64) {
	h.n.mu.Lock()
	h.n.unreachable = append(h.n.unreachable, peer)
	h.n.mu.Unlock()
	h.n.signal()
}

// signal wakes the loop without ever blocking.
func (n *Node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Propose replicates cmd and returns the state machine's result for it once
// it is applied. Errors: *NotLeaderError (try the leader), ErrTimeout (ctx
// ended; outcome unknown), ErrLeadershipLost (outcome unknown),
// ErrOverloaded (not taken; retry later), ErrProposalTooLarge, ErrStopped.
func (n *Node) Propose(ctx context.Context, cmd []byte) (any, error) {
	if len(cmd) > n.cfg.MaxBatchBytes || uint64(len(cmd)) > n.cfg.MaxSizePerMsg {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrProposalTooLarge, len(cmd), min(n.cfg.MaxBatchBytes, int(n.cfg.MaxSizePerMsg)))
	}
	p := newProposal(cmd)
	if n.stages != nil {
		p.start = monoNow()
	}
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		p.release()
		return nil, ErrStopped
	}
	// Proposals queue here while the leader's pipeline is full; a quorum
	// that stalls must not let the queue grow without bound either.
	if queued := uint64(n.propBytes); queued > 0 && queued+uint64(len(cmd)) > n.cfg.MaxUncommittedBytes {
		n.mu.Unlock()
		p.release()
		return nil, fmt.Errorf("%w: %d bytes of proposals queued, %d more would pass MaxUncommittedBytes %d", ErrOverloaded, queued, len(cmd), n.cfg.MaxUncommittedBytes)
	}
	n.props = append(n.props, p)
	n.propBytes += len(cmd)
	n.mu.Unlock()
	n.signal()
	select {
	case r := <-p.done:
		if r.err == nil && p.applied != 0 {
			// The applier filled in p's timestamps before completing it.
			n.stages.write(p, monoNow())
		}
		p.release()
		return r.val, r.err
	case <-ctx.Done():
		// p stays with the node, which completes it later: it is not
		// released, and the collector takes it once the node lets go.
		return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

// Read answers query linearizably: it obtains a read point from the leader
// (ReadIndex: confirmed by a heartbeat quorum, or at once from the leader's
// lease with ReadModeLease), waits until this node has applied it, and then
// asks the state machine. Only the leader serves reads;
// others return *NotLeaderError.
func (n *Node) Read(ctx context.Context, query []byte) (any, error) {
	r := &readReq{query: query, done: make(chan result, 1)}
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil, ErrStopped
	}
	n.reads = append(n.reads, r)
	n.mu.Unlock()
	n.signal()
	return await(ctx, r.done)
}

// await waits for a call's outcome or for the caller to give up. A call
// given up on may still complete later: its done channel has room for the
// outcome, so nothing blocks on a caller that left.
func await(ctx context.Context, done <-chan result) (any, error) {
	select {
	case r := <-done:
		return r.val, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

// Status returns the node's state, read on the Raft loop between two rounds
// (it waits for the loop's next round, which it triggers). Once the loop has
// ended (Stop, or a fatal error) it returns the state the loop ended with.
// It allocates the Progress map and membership copies: poll Leadership
// instead where those are not needed.
func (n *Node) Status() Status {
	ch := make(chan Status, 1)
	if n.do(func() { ch <- n.fullStatus() }) {
		select {
		case s := <-ch:
			return s
		case <-n.loopDone:
		}
	}
	<-n.loopDone
	select {
	case s := <-ch: // the loop answered just before it ended
		return s
	default:
	}
	s := *n.final.Load()
	s.Applied = n.app.applied.Load()
	return s
}

// Leadership returns the node's role, term and leader as of the Raft loop's
// last round. It never waits and never allocates.
func (n *Node) Leadership() Leadership { return *n.leadership.Load() }

// TransferLeadership hands leadership to the voter to and returns once to
// leads, or with an error when this node is not the leader, to is not a
// voter, or ctx ends first.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	errc := make(chan error, 1)
	if !n.do(func() { errc <- n.raft.TransferLeader(to) }) {
		return ErrStopped
	}
	select {
	case err := <-errc:
		if errors.Is(err, core.ErrNotLeader) {
			return &NotLeaderError{Leader: n.Leadership().Leader}
		}
		if err != nil {
			return fmt.Errorf("node %d: transfer to %d: %w", n.id, to, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
	for {
		n.mu.Lock()
		changed := n.leaderChanged
		n.mu.Unlock()
		if n.Leadership().Leader == to {
			return nil
		}
		select {
		case <-changed:
		case <-n.loopDone:
			return ErrStopped
		case <-ctx.Done():
			return fmt.Errorf("%w: transfer to %d: %w", ErrTimeout, to, ctx.Err())
		}
	}
}

// do runs f on the loop goroutine. It reports false if the node stopped.
func (n *Node) do(f func()) bool {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return false
	}
	n.ctrl = append(n.ctrl, f)
	n.mu.Unlock()
	n.signal()
	return true
}

// Err returns the fatal error that stopped the node on its own (a storage
// failure), if any.
func (n *Node) Err() error {
	if p := n.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed once the node's loop has exited: after Stop, or after a
// fatal error (see Err).
func (n *Node) Done() <-chan struct{} { return n.loopDone }

// Stop shuts the node down: the loop ends, saves already queued complete,
// and the transport and the log are closed. Calls in flight fail with
// ErrStopped. Stop is idempotent and returns the first close error.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		n.mu.Lock()
		n.stopped = true
		n.mu.Unlock()
		close(n.stopc)
		<-n.loopDone
		n.writer.stop()
		n.app.stop()
		close(n.snapJobs)
		<-n.snapDone
		errs := []error{n.tr.Close(), n.cfg.Log.Close()}
		n.failQueued(ErrStopped)
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// failQueued fails everything still waiting on the node.
func (n *Node) failQueued(err error) {
	n.mu.Lock()
	props, reads := n.props, n.reads
	n.props, n.reads, n.propBytes = nil, nil, 0
	n.mu.Unlock()
	for _, p := range props {
		p.complete(nil, err)
	}
	for _, r := range reads {
		r.done <- result{nil, err}
	}
	for _, rs := range n.pendingReads {
		for _, r := range rs {
			r.done <- result{nil, err}
		}
	}
	n.pendingReads = map[uint64][]*readReq{}
	for _, r := range n.readBacklog {
		r.done <- result{nil, err}
	}
	n.readBacklog = nil
}

// run is the Raft loop.
func (n *Node) run() {
	defer close(n.loopDone)
	n.tickStart = time.Now()
	defer func() { s := n.fullStatus(); n.final.Store(&s) }()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	// idleSince is when the loop last went idle: the previous round's end,
	// read once and used for both the busy and the idle accounting (the
	// clock is read twice per round, not five times). Both reads are of
	// the monotonic stage clock alone: a time.Now also reads the wall clock,
	// twice the cost (52 against 27 ns here), and the two were 2.5% of a
	// 256-client memory-WAL run's CPU.
	idleSince := monoOf(n.tickStart)
	for {
		select {
		case <-n.stopc:
			return
		case <-ticker.C:
			if n.cfg.ReadMode != ReadModeLease {
				n.raft.Tick()
			} // with leases the round catches up by the clock
			n.refreshInflight()
		case <-n.wake:
		}
		busy := monoNow()
		n.roundStart = busy
		n.round()
		end := monoNow()
		n.metrics.addRound(busy-idleSince, end-busy, end)
		idleSince = end
		if err := n.raft.Err(); err != nil {
			n.die(fmt.Errorf("node %d: raft: %w", n.id, err))
			return
		}
		if err := n.writer.err(); err != nil {
			n.die(err)
			return
		}
		if p := n.pendingFatal.Load(); p != nil {
			n.die(*p)
			return
		}
	}
}

// die records a fatal error and stops the node's intake. The caller still
// has to call Stop to release the transport and the log.
func (n *Node) die(err error) {
	n.fatal.CompareAndSwap(nil, &err)
	n.log.Error("node stopping on a fatal error", "node", n.id, "err", err)
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.failQueued(fmt.Errorf("%w: %w", ErrStopped, err))
	n.app.failAll(fmt.Errorf("%w: %w", ErrStopped, err))
}

// round is one iteration of the loop: take everything queued, feed it to
// core, and handle the resulting Ready.
func (n *Node) round() {
	r := n.raft
	n.mu.Lock()
	acks, inbox, unreachable, reads, ctrl, snapSt := n.acks, n.inbox, n.unreachable, n.reads, n.ctrl, n.snapStatus
	n.acks, n.inbox, n.unreachable, n.reads, n.ctrl, n.snapStatus = nil, nil, nil, nil, nil, nil
	n.mu.Unlock()

	for _, a := range acks {
		r.Persisted(a.index, a.term)
		if a.at != 0 {
			n.noteDurable(a)
		}
	}
	for i := range inbox {
		m := &inbox[i]
		if m.Type == core.MsgAppResp && !m.Reject && !m.Timing.IsZero() && n.stages != nil {
			n.noteAck(m)
		}
	}
	for _, m := range inbox {
		if err := r.Step(m); err != nil && r.Err() == nil {
			n.log.Warn("dropped an invalid message", "node", n.id, "from", m.From, "type", m.Type.String(), "err", err)
		}
	}
	for _, id := range unreachable {
		r.ReportUnreachable(id)
	}
	for _, st := range snapSt {
		r.ReportSnapshot(st.peer, st.ok)
	}
	if n.cfg.ReadMode == ReadModeLease {
		n.catchUpTicks()
	}
	if n.proposalRoom() {
		n.mu.Lock()
		props := n.takeBatchLocked()
		more := len(n.props) > 0
		n.mu.Unlock()
		if len(props) > 0 {
			n.propose(props)
		}
		if more && n.proposalRoom() {
			n.signal() // more than one batch waits: come back at once
		}
	}
	if len(reads) > 0 || len(n.readBacklog) > 0 {
		n.startReads(append(n.readBacklog, reads...))
	}
	for _, f := range ctrl {
		f()
	}
	for r.HasReady() && r.Err() == nil && n.pendingFatal.Load() == nil {
		n.handleReady()
	}
	n.publishStatus()
}

// catchUpTicks gives core one tick per TickInterval elapsed since the loop
// started, by the monotonic clock, however many the ticker dropped while
// the loop was busy. It runs every round (so before every read) after the
// round's messages were stepped, so a follower whose loop stalled sees the
// heartbeats that queued meanwhile before its election timer catches up.
func (n *Node) catchUpTicks() {
	due := int64(time.Since(n.tickStart) / n.cfg.TickInterval)
	for ; n.ticked < due; n.ticked++ {
		n.raft.Tick()
	}
}

func readOnlyOption(m ReadMode) core.ReadOnlyOption {
	if m == ReadModeLease {
		return core.ReadOnlyLeaseBased
	}
	return core.ReadOnlySafe
}

// proposalRoom reports whether the leader may start another proposal
// batch: fewer than MaxProposalPipeline of its batches are uncommitted.
// When the pipeline is full, proposals wait and join the next batch, so
// batches grow with load (fewer messages and fsyncs per command) while an
// idle cluster still proposes at once. Off the leader there is always room,
// so proposals are refused without delay.
func (n *Node) proposalRoom() bool {
	if n.raft.Role() != core.Leader {
		n.batchEnds = n.batchEnds[:0]
		return true
	}
	commit := n.raft.Committed()
	k := 0
	for k < len(n.batchEnds) && n.batchEnds[k] <= commit {
		k++
	}
	n.batchEnds = append(n.batchEnds[:0], n.batchEnds[k:]...)
	return len(n.batchEnds) < n.cfg.MaxProposalPipeline
}

// takeBatchLocked takes up to one batch of proposals off the queue.
func (n *Node) takeBatchLocked() []*proposal {
	k, bytes := 0, 0
	for k < len(n.props) && k < n.cfg.MaxBatchEntries {
		b := len(n.props[k].data)
		if k > 0 && bytes+b > n.cfg.MaxBatchBytes {
			break
		}
		bytes += b
		k++
	}
	batch := n.props[:k:k]
	n.props = n.props[k:]
	n.propBytes -= bytes
	if len(n.props) == 0 {
		n.props = nil
	}
	return batch
}

// propose folds a batch of proposals into one core Propose.
func (n *Node) propose(props []*proposal) {
	r := n.raft
	if r.Role() != core.Leader {
		err := &NotLeaderError{Leader: r.LeaderHint()}
		for _, p := range props {
			p.complete(nil, err)
		}
		return
	}
	ents := make([]core.Entry, len(props))
	for i, p := range props {
		ents[i] = core.Entry{Type: core.EntryNormal, Data: p.data}
	}
	var now int64
	if n.stages != nil {
		now = monoNow() // t1: the batch is taken and handed to core
	}
	first, term, err := r.Propose(ents...)
	if err != nil {
		var e error = &NotLeaderError{Leader: r.Transferee()}
		switch {
		case errors.Is(err, core.ErrUncommittedLimit):
			e = fmt.Errorf("node %d: %w: %w", n.id, ErrOverloaded, err)
		case !errors.Is(err, core.ErrProposalDropped) && !errors.Is(err, core.ErrNotLeader):
			e = fmt.Errorf("node %d: propose: %w", n.id, err)
		}
		for _, p := range props {
			p.complete(nil, e)
		}
		return
	}
	var bt *batchTimes
	if n.stages != nil {
		bt = &batchTimes{first: first, end: first + uint64(len(props)) - 1, term: term, propose: now}
		n.timed = append(n.timed, bt)
	}
	for i, p := range props {
		p.index, p.term, p.batch = first+uint64(i), term, bt
	}
	n.batchEnds = append(n.batchEnds, first+uint64(len(props))-1)
	n.app.register(props)
	n.metrics.proposals.Add(uint64(len(props)))
	n.metrics.batches.Add(1)
}

// startReads asks core for one read point shared by every read queued this
// round.
func (n *Node) startReads(reads []*readReq) {
	n.readBacklog = nil
	n.readCtx++
	switch err := n.raft.ReadIndex(n.readCtx); {
	case err == nil:
		n.pendingReads[n.readCtx] = reads
		n.metrics.leaseReads.Store(n.raft.LeaseReads())
	case errors.Is(err, core.ErrReadNotReady):
		// A new leader has not committed its first entry: retry next round.
		n.readBacklog = reads
	default:
		e := error(&NotLeaderError{Leader: n.raft.LeaderHint()})
		if !errors.Is(err, core.ErrNotLeader) {
			e = fmt.Errorf("node %d: read index: %w", n.id, err)
		}
		for _, r := range reads {
			r.done <- result{nil, e}
		}
	}
}

// handleReady carries out one Ready (see core.Ready for the contract).
func (n *Node) handleReady() {
	r := n.raft
	rd := r.Ready()
	if rd.SoftState != nil {
		n.softStateChanged(*rd.SoftState)
	}
	for i := range rd.Messages {
		if m := &rd.Messages[i]; m.Type == core.MsgSnap {
			n.attachSnapshot(m)
		}
	}
	rd.Messages = slices.DeleteFunc(rd.Messages, func(m core.Message) bool { return m.To == core.None })
	var now int64 // the stage clock, read once for this Ready when needed
	if n.stages != nil && r.Role() == core.Leader && (len(rd.CommittedEntries) > 0 || hasEntryAppends(rd.Messages)) {
		now = monoNow()
		n.noteSends(rd.Messages, now)
	}
	if len(rd.Messages) > 0 {
		n.tr.Send(rd.Messages)
		n.metrics.sent.Add(uint64(len(rd.Messages)))
	}
	if rd.Snapshot != nil && n.snaps == nil {
		r.Advance(rd)
		err := fmt.Errorf("node %d: %w: received a snapshot at index %d but no SnapshotDir is configured to keep it", n.id, ErrNoSnapshots, rd.Snapshot.Meta.Index)
		n.pendingFatal.CompareAndSwap(nil, &err)
		return
	}
	if !rd.HardState.IsEmpty() || len(rd.Entries) > 0 || len(rd.MessagesAfterPersist) > 0 || rd.Snapshot != nil {
		req := saveReq{hs: rd.HardState, ents: rd.Entries, snap: rd.Snapshot, after: rd.MessagesAfterPersist, sync: rd.MustSync && !n.cfg.NoSync, roundStart: n.roundStart}
		n.writer.enqueue(req)
	}
	for i := range rd.CommittedEntries {
		if e := &rd.CommittedEntries[i]; e.Type == core.EntryConfChange {
			n.notePeers(e)
		}
	}
	r.Advance(rd)
	if rd.Snapshot != nil {
		n.app.enqueue(applyItem{snap: rd.Snapshot})
	}
	if len(rd.CommittedEntries) > 0 {
		if now != 0 {
			n.noteCommit(rd.CommittedEntries[len(rd.CommittedEntries)-1].Index)
		}
		n.app.enqueue(applyItem{ents: rd.CommittedEntries, committedAt: now})
	}
	for _, rs := range rd.ReadStates {
		if reads, ok := n.pendingReads[rs.Context]; ok {
			delete(n.pendingReads, rs.Context)
			n.app.enqueue(applyItem{readIndex: rs.Index, reads: reads})
		}
	}
}

// attachSnapshot gives a snapshot message core produced (which names only
// the log's compaction point) the newest state-machine image, which covers
// at least as much. Without one the follower cannot be helped yet: core is
// told the snapshot failed and tries again later, and the message is
// dropped (its To is cleared for the caller to filter).
func (n *Node) attachSnapshot(m *core.Message) {
	img := n.latestSnap.Load()
	if img == nil || img.Meta.Index < m.Snapshot.Meta.Index {
		n.log.Warn("no snapshot image to send", "node", n.id, "to", m.To, "needed", m.Snapshot.Meta.Index)
		n.raft.ReportSnapshot(m.To, false)
		m.To = core.None
		return
	}
	m.Snapshot = img
}

func (n *Node) softStateChanged(ss core.SoftState) {
	prev := n.lastSoft
	n.lastSoft = ss
	if ss.Role == core.Candidate && prev.Role != core.Candidate {
		n.metrics.elections.Add(1)
	}
	if prev.Role == core.Leader && ss.Role != core.Leader {
		// Commands in flight may or may not survive under the new leader;
		// their proposers must retry (with the same session) to find out.
		n.app.failAll(ErrLeadershipLost)
		n.resetTiming()
		for ctx, rs := range n.pendingReads {
			for _, r := range rs {
				r.done <- result{nil, ErrLeadershipLost}
			}
			delete(n.pendingReads, ctx)
		}
		for _, r := range n.readBacklog {
			r.done <- result{nil, &NotLeaderError{Leader: ss.Lead}}
		}
		n.readBacklog = nil
	}
	if ss.Lead != prev.Lead {
		if ss.Lead != core.None {
			n.metrics.leaderChanges.Add(1)
		}
		// Publish before waking the waiters, so that one woken by the
		// change reads the new leader, not the last round's.
		n.publishStatus()
		n.mu.Lock()
		close(n.leaderChanged)
		n.leaderChanged = make(chan struct{})
		n.mu.Unlock()
	}
}

// publishStatus makes the loop's cheap view readable by other goroutines:
// the commit index every round, the leadership only when it changed, so a
// busy loop allocates nothing for its observers.
func (n *Node) publishStatus() {
	r := n.raft
	n.commit.Store(r.Committed())
	role, term, lead := r.Role(), r.Term(), r.Lead()
	if cur := n.leadership.Load(); cur == nil || cur.Role != role || cur.Term != term || cur.Leader != lead {
		n.leadership.Store(&Leadership{Role: role, Term: term, Leader: lead})
	}
}

// fullStatus reads the whole status; only the loop may call it.
func (n *Node) fullStatus() Status {
	st := n.raft.Status()
	n.mu.Lock()
	queued := len(n.props)
	n.mu.Unlock()
	return Status{ID: n.id, Role: st.Role, Term: st.Term, Leader: st.Lead, Commit: st.Commit,
		Applied: n.app.applied.Load(), LastIndex: st.LastIndex, QueuedProposals: queued,
		Conf: st.Conf, Progress: st.Progress}
}

// refreshInflight updates the AppendsInflight gauge, once a tick: the
// leader's progress is only readable through an allocating core.Status, too
// dear for every round.
func (n *Node) refreshInflight() {
	if n.raft.Role() != core.Leader {
		n.metrics.inflight.Store(0)
		return
	}
	inflight := 0
	for id, p := range n.raft.Status().Progress {
		if id != n.id {
			inflight += p.Inflight
		}
	}
	n.metrics.inflight.Store(int64(inflight))
}

func peerIDs(peers map[uint64]string) []uint64 {
	return slices.Sorted(maps.Keys(peers))
}

// StageTimings returns a copy of the node's latency attribution since it
// started: where the time of each write it answered as leader went (see
// StageTimings), with the follower-side and WAL details. It returns nil
// when Config.NoStageTiming turned the accounting off. A harness takes one
// copy when its measured window opens and one when it closes and keeps
// their difference (StageTimings.Sub); another process can read the same
// through the admin endpoint (JSON, exact) or the Prometheus collector.
func (n *Node) StageTimings() *StageTimings {
	if n.stages == nil {
		return nil
	}
	return n.stages.snapshot()
}

// noteDurable marks the pending batches the leader's save a covers as
// durable at a.at. Batches already final (some entry committed) keep what
// they have.
func (n *Node) noteDurable(a persistAck) {
	for _, b := range n.timed {
		if b.durable == 0 && b.end <= a.index && b.term == a.term {
			b.durable = a.at
		}
	}
}

// noteCommit makes final the timestamps of every batch with an entry at or
// below commit, before those entries go to the applier: a batch whose
// leader save is not durable yet had a quorum of followers durable first,
// so its leader_append is 0 (durable = propose). Wholly committed batches
// are forgotten.
func (n *Node) noteCommit(commit uint64) {
	k := 0
	for _, b := range n.timed {
		if b.first > commit {
			break
		}
		if b.durable == 0 {
			b.durable = b.propose
		}
		if b.end <= commit {
			k++
		}
	}
	n.timed = append(n.timed[:0], n.timed[k:]...)
}

// hasEntryAppends reports whether msgs include an append with entries.
func hasEntryAppends(msgs []core.Message) bool {
	for i := range msgs {
		if msgs[i].Type == core.MsgApp && len(msgs[i].Entries) > 0 {
			return true
		}
	}
	return false
}

// noteSends remembers when each append with entries left for its
// follower.
func (n *Node) noteSends(msgs []core.Message, now int64) {
	for i := range msgs {
		m := &msgs[i]
		if m.Type != core.MsgApp || len(m.Entries) == 0 {
			continue
		}
		l := n.sends[m.To]
		if l == nil {
			l = &sendLog{}
			n.sends[m.To] = l
		}
		l.add(m.Entries[len(m.Entries)-1].Index, now)
	}
}

// noteAck records a follower's acknowledgement taken in this round: the
// round trip from the append's send to this round's start, and the
// follower's report.
func (n *Node) noteAck(m *core.Message) {
	l := n.sends[m.From]
	if l == nil {
		return
	}
	if at, ok := l.match(m.Index); ok {
		n.stages.ack(n.roundStart-at, m.Timing.HoldNanos, m.Timing.PersistNanos)
	}
}

// resetTiming forgets what the loop tracked for attribution as leader.
func (n *Node) resetTiming() {
	n.timed = n.timed[:0]
	clear(n.sends)
}

package node

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/raftbench/raftbench/core"
)

// applier applies committed entries to the state machine on its own
// goroutine, so a slow state machine never stalls the Raft loop, completes
// the futures of the proposals it applies, serves linearizable reads, and
// takes snapshots by policy.
type applier struct {
	n  *Node
	sm StateMachine

	mu sync.Mutex
	// queue holds, in log order, committed entries, snapshots to install,
	// and read batches tagged with the read point they wait for.
	queue []applyItem
	// pending are registered proposals in index order.
	pending []*proposal
	// demand asks for a snapshot now (Node.Snapshot).
	demand []chan error
	wake   chan struct{}
	stopc  chan struct{}
	done   chan struct{}

	// applied is the index of the last entry applied (read by Status).
	applied atomic.Uint64

	// Owned by the apply goroutine.
	waiting  []waitingReads
	conf     core.ConfState // membership as of applied
	confHist []confAt       // membership changes since the last compaction
	lastTerm uint64
	// skipUpTo: entries at or below it are already in the state machine,
	// restored from an image at start.
	skipUpTo  uint64
	sinceSnap uint64 // entries applied since the last snapshot
	sinceSize uint64 // their bytes
	snapping  atomic.Bool
	// cmds is apply's command slice, kept between runs: a fresh one per
	// run, grown by append, was 275 MB of a 1.9 GB 10 s run's allocations
	// at 256 clients (14%, three replicas). Its Data are cleared after
	// each run so it does not hold entries the log has let go.
	cmds []Command
}

type confAt struct {
	index uint64
	conf  core.ConfState
}

type applyItem struct {
	ents      []core.Entry
	snap      *core.Snapshot
	readIndex uint64
	reads     []*readReq
	// committedAt is when the loop handed ents over, committed (stage
	// clock; 0 when not timed).
	committedAt int64
}

type waitingReads struct {
	index uint64
	reads []*readReq
}

func newApplier(n *Node) *applier {
	return &applier{
		n: n, sm: n.cfg.StateMachine,
		wake:  make(chan struct{}, 1),
		stopc: make(chan struct{}),
		done:  make(chan struct{}),
	}
}

func (a *applier) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// register records proposals just appended by the leader, in index order.
func (a *applier) register(props []*proposal) {
	a.mu.Lock()
	a.pending = append(a.pending, props...)
	a.mu.Unlock()
}

// failAll fails every registered proposal (on loss of leadership or stop).
func (a *applier) failAll(err error) {
	a.mu.Lock()
	pending := a.pending
	a.pending = nil
	a.mu.Unlock()
	for _, p := range pending {
		p.complete(nil, err)
	}
}

func (a *applier) enqueue(it applyItem) {
	a.mu.Lock()
	a.queue = append(a.queue, it)
	a.mu.Unlock()
	a.signal()
}

// lag is how many committed entries wait to be applied.
func (a *applier) lag(commit uint64) uint64 {
	if ap := a.applied.Load(); commit > ap {
		return commit - ap
	}
	return 0
}

func (a *applier) stop() {
	close(a.stopc)
	<-a.done
	a.failAll(ErrStopped)
	for _, w := range a.waiting {
		for _, r := range w.reads {
			r.done <- result{nil, ErrStopped}
		}
	}
	a.waiting = nil
	a.mu.Lock()
	queue, demand := a.queue, a.demand
	a.queue, a.demand = nil, nil
	a.mu.Unlock()
	for _, it := range queue {
		for _, r := range it.reads {
			r.done <- result{nil, ErrStopped}
		}
	}
	for _, d := range demand {
		d <- ErrStopped
	}
}

func (a *applier) run() {
	defer close(a.done)
	for {
		select {
		case <-a.stopc:
			return
		case <-a.wake:
		}
		a.mu.Lock()
		queue, demand := a.queue, a.demand
		a.queue, a.demand = nil, nil
		a.mu.Unlock()
		for _, it := range queue {
			switch {
			case it.snap != nil:
				if err := a.install(it.snap); err != nil {
					a.n.pendingFatal.CompareAndSwap(nil, &err)
					a.n.signal()
					return
				}
			case it.reads != nil:
				a.waiting = append(a.waiting, waitingReads{it.readIndex, it.reads})
			default:
				a.apply(it.ents, it.committedAt)
			}
		}
		a.serveReads()
		a.maybeSnapshot(demand)
	}
}

// apply applies one run of committed entries, committed at committedAt
// (stage clock), and completes the proposals among them.
func (a *applier) apply(ents []core.Entry, committedAt int64) {
	cmds := a.cmds[:0]
	defer func() {
		clear(cmds)
		a.cmds = cmds[:0]
	}()
	var peersChanged bool
	for i := range ents {
		e := &ents[i]
		if e.Index <= a.skipUpTo {
			continue
		}
		a.sinceSnap++
		a.sinceSize += e.Size()
		switch {
		case e.Type == core.EntryNormal && len(e.Data) > 0:
			cmds = append(cmds, Command{Index: e.Index, Term: e.Term, Data: e.Data})
		case e.Type == core.EntryConfChange:
			// Track membership exactly as core does, for snapshot metadata.
			if cc, err := core.UnmarshalConfChange(e.Data); err == nil {
				if cs, err := core.ApplyConfChange(a.conf, cc); err == nil {
					a.conf = cs
					a.confHist = append(a.confHist, confAt{e.Index, cs})
					peersChanged = true
				}
			}
		}
	}
	var results []any
	if len(cmds) > 0 {
		results = a.sm.Apply(cmds)
	}
	var appliedAt int64 // t4 for every write of this run, read at the first
	last := ents[len(ents)-1]
	a.applied.Store(last.Index)
	a.lastTerm = last.Term
	if peersChanged {
		a.n.persistPeers()
	}

	// Complete the proposals these entries decide: a proposal whose index
	// holds its own term has its result; one whose index holds another term
	// (or that a snapshot skipped) was lost.
	a.mu.Lock()
	k := 0
	for k < len(a.pending) && a.pending[k].index <= last.Index {
		k++
	}
	decided := a.pending[:k:k]
	a.pending = a.pending[k:]
	a.mu.Unlock()
	first := ents[0].Index
	for _, p := range decided {
		if p.index < first || ents[p.index-first].Term != p.term {
			p.complete(nil, ErrLeadershipLost)
			continue
		}
		var res any
		if i, ok := slices.BinarySearchFunc(cmds, p.index, func(c Command, idx uint64) int {
			return compareU64(c.Index, idx)
		}); ok && i < len(results) {
			res = results[i]
		}
		if committedAt != 0 && p.start != 0 {
			if appliedAt == 0 {
				appliedAt = monoNow()
			}
			p.committed, p.applied = committedAt, appliedAt
		}
		p.complete(res, nil)
	}
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// install replaces the state machine with a snapshot received from the
// leader.
func (a *applier) install(s *core.Snapshot) error {
	ss, ok := a.sm.(Snapshotter)
	if !ok {
		return errNoSnapshotter(a.n.id)
	}
	if err := ss.Restore(s.Data); err != nil {
		return errRestore(a.n.id, s.Meta.Index, err)
	}
	a.applied.Store(s.Meta.Index)
	a.lastTerm = s.Meta.Term
	a.conf = s.Meta.Conf
	a.confHist = []confAt{{s.Meta.Index, s.Meta.Conf}}
	a.skipUpTo = max(a.skipUpTo, s.Meta.Index)
	a.sinceSnap, a.sinceSize = 0, 0
	a.n.persistPeers()
	// Proposals inside the snapshot: their outcome is unknown here.
	a.mu.Lock()
	k := 0
	for k < len(a.pending) && a.pending[k].index <= s.Meta.Index {
		k++
	}
	lost := a.pending[:k:k]
	a.pending = a.pending[k:]
	a.mu.Unlock()
	for _, p := range lost {
		p.complete(nil, ErrLeadershipLost)
	}
	return nil
}

// confAtIndex is the membership in force at index (at or above the last
// compaction).
func (a *applier) confAtIndex(index uint64) core.ConfState {
	cs := a.confHist[0].conf
	for _, c := range a.confHist {
		if c.index > index {
			break
		}
		cs = c.conf
	}
	return cs
}

// maybeSnapshot takes a snapshot when the policy says so or a caller asked,
// and hands it to the snapshot goroutine to persist and compact the log.
func (a *applier) maybeSnapshot(demand []chan error) {
	cfg := &a.n.cfg
	due := len(demand) > 0 ||
		(cfg.SnapshotEntries > 0 && a.sinceSnap >= cfg.SnapshotEntries) ||
		(cfg.SnapshotBytes > 0 && a.sinceSize >= cfg.SnapshotBytes)
	applied := a.applied.Load()
	if !due || a.n.snaps == nil || applied == 0 || a.snapping.Load() {
		for _, d := range demand {
			d <- errSnapshotBusy(a.n, applied)
		}
		return
	}
	ss, ok := a.sm.(Snapshotter)
	if !ok {
		for _, d := range demand {
			d <- errNoSnapshotter(a.n.id)
		}
		return
	}
	data, err := ss.Snapshot()
	if err != nil {
		a.n.log.Error("snapshot failed", "node", a.n.id, "index", applied, "err", err)
		for _, d := range demand {
			d <- err
		}
		return
	}
	snap := &core.Snapshot{Meta: core.SnapshotMeta{Index: applied, Term: a.lastTerm, Conf: a.conf}, Data: data}
	compact := applied - min(applied, cfg.SnapshotTrailing)
	job := snapJob{snap: snap, compactIndex: compact, compactConf: a.confAtIndex(compact), done: demand}
	// Keep only the history a later compaction can need.
	keep := 0
	for i, c := range a.confHist {
		if c.index <= compact {
			keep = i
		}
	}
	a.confHist = a.confHist[keep:]
	a.sinceSnap, a.sinceSize = 0, 0
	a.snapping.Store(true)
	a.n.snapJobs <- job
}

// serveReads answers every waiting read whose read point is applied.
func (a *applier) serveReads() {
	applied := a.applied.Load()
	keep := a.waiting[:0]
	for _, w := range a.waiting {
		if w.index > applied {
			keep = append(keep, w)
			continue
		}
		for _, r := range w.reads {
			v, err := a.sm.Read(r.query)
			r.done <- result{v, err}
		}
	}
	clear(a.waiting[len(keep):])
	a.waiting = keep
}

package node

import (
	"sync"
	"sync/atomic"

	"github.com/raftbench/raftbench/core"
)

// applier applies committed entries to the state machine on its own
// goroutine, so a slow state machine never stalls the Raft loop, and
// completes the futures of the proposals it applies.
type applier struct {
	n  *Node
	sm StateMachine

	mu sync.Mutex
	// queue holds committed entries in log order, and read batches tagged
	// with the read point they wait for.
	queue []applyItem
	// pending are registered proposals in index order.
	pending []*proposal
	wake    chan struct{}
	stopc   chan struct{}
	done    chan struct{}

	// applied is the index of the last entry applied (read by Status).
	applied atomic.Uint64

	// Owned by the apply goroutine: reads whose read point is not applied
	// yet.
	waiting []waitingReads
}

type applyItem struct {
	ents      []core.Entry
	readIndex uint64
	reads     []*readReq
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

func (a *applier) enqueueEntries(ents []core.Entry) {
	a.mu.Lock()
	a.queue = append(a.queue, applyItem{ents: ents})
	a.mu.Unlock()
	a.signal()
}

func (a *applier) enqueueReads(index uint64, reads []*readReq) {
	a.mu.Lock()
	a.queue = append(a.queue, applyItem{readIndex: index, reads: reads})
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
	queue := a.queue
	a.queue = nil
	a.mu.Unlock()
	for _, it := range queue {
		for _, r := range it.reads {
			r.done <- result{nil, ErrStopped}
		}
	}
}

func (a *applier) run() {
	defer close(a.done)
	var cmds []Command
	for {
		select {
		case <-a.stopc:
			return
		case <-a.wake:
		}
		a.mu.Lock()
		queue := a.queue
		a.queue = nil
		a.mu.Unlock()
		for _, it := range queue {
			if it.reads != nil {
				a.waiting = append(a.waiting, waitingReads{it.readIndex, it.reads})
				continue
			}
			cmds = a.apply(it.ents, cmds[:0])
		}
		a.serveReads()
	}
}

// apply applies one run of committed entries and completes the proposals
// among them.
func (a *applier) apply(ents []core.Entry, cmds []Command) []Command {
	for i := range ents {
		e := &ents[i]
		// Empty entries are the no-ops new leaders append; conf changes
		// are core's business.
		if e.Type == core.EntryNormal && len(e.Data) > 0 {
			cmds = append(cmds, Command{Index: e.Index, Term: e.Term, Data: e.Data})
		}
	}
	var results []any
	if len(cmds) > 0 {
		results = a.sm.Apply(cmds)
	}
	last := ents[len(ents)-1].Index
	a.applied.Store(last)

	// Complete the proposals these entries decide: a proposal whose index
	// now holds its own term has its result; one whose index holds another
	// term (or that a snapshot skipped) was lost.
	a.mu.Lock()
	k := 0
	for k < len(a.pending) && a.pending[k].index <= last {
		k++
	}
	decided := a.pending[:k:k]
	a.pending = a.pending[k:]
	a.mu.Unlock()
	ci := 0
	for _, p := range decided {
		for ci < len(cmds) && cmds[ci].Index < p.index {
			ci++
		}
		if ci < len(cmds) && cmds[ci].Index == p.index && cmds[ci].Term == p.term {
			var res any
			if ci < len(results) {
				res = results[ci]
			}
			p.complete(res, nil)
			continue
		}
		p.complete(nil, ErrLeadershipLost)
	}
	return cmds
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

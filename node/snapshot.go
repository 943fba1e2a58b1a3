package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raftbench/raftbench/core"
)

// ErrNoSnapshots is returned by Snapshot when the node cannot take one: no
// SnapshotDir, or a state machine that is not a Snapshotter.
var ErrNoSnapshots = errors.New("node: snapshots are not configured")

// ErrSnapshotInProgress is returned by Snapshot while another one is being
// written.
var ErrSnapshotInProgress = errors.New("node: a snapshot is already being written")

func errNoSnapshotter(id uint64) error {
	return fmt.Errorf("node %d: %w: the state machine does not implement Snapshotter", id, ErrNoSnapshots)
}

func errRestore(id, index uint64, err error) error {
	return fmt.Errorf("node %d: restore snapshot at %d: %w", id, index, err)
}

func errSnapshotBusy(n *Node, applied uint64) error {
	switch {
	case n.snaps == nil:
		return fmt.Errorf("node %d: %w: no SnapshotDir", n.id, ErrNoSnapshots)
	case applied == 0:
		return fmt.Errorf("node %d: nothing applied yet to snapshot", n.id)
	}
	return ErrSnapshotInProgress
}

// snapJob is a snapshot the applier took, for the snapshot goroutine to
// persist; then the log is compacted up to compactIndex.
type snapJob struct {
	snap         *core.Snapshot
	compactIndex uint64
	compactConf  core.ConfState
	done         []chan error
}

// runSnapshots persists snapshots and compacts the log, off both the Raft
// loop and the applier.
func (n *Node) runSnapshots() {
	defer close(n.snapDone)
	for job := range n.snapJobs {
		err := n.persistSnapshot(job)
		if err != nil {
			n.log.Error("snapshot not persisted", "node", n.id, "index", job.snap.Meta.Index, "err", err)
		}
		n.app.snapping.Store(false)
		for _, d := range job.done {
			d <- err
		}
	}
}

func (n *Node) persistSnapshot(job snapJob) error {
	start := time.Now()
	if err := n.snaps.save(job.snap); err != nil {
		return err
	}
	n.setLatestSnap(job.snap)
	n.metrics.snapshots.Add(1)
	// Compaction is ordered through the WAL writer, behind every save
	// queued before it. It keeps the trailing tail, and skips an index the
	// log does not hold durably yet (the membership recorded with it must
	// be the one in force at exactly that index).
	n.writer.enqueue(saveReq{compact: &compactReq{index: job.compactIndex, conf: job.compactConf}})
	n.log.Info("snapshot taken", "node", n.id, "index", job.snap.Meta.Index, "bytes", len(job.snap.Data), "compact_to", job.compactIndex, "took", time.Since(start))
	return nil
}

// setLatestSnap records s as the image to send followers, unless a newer
// one is already there (the snapshot goroutine and the WAL writer both
// record images, in either order).
func (n *Node) setLatestSnap(s *core.Snapshot) {
	for {
		cur := n.latestSnap.Load()
		if cur != nil && cur.Meta.Index >= s.Meta.Index {
			return
		}
		if n.latestSnap.CompareAndSwap(cur, s) {
			return
		}
	}
}

// Snapshot takes a snapshot now (in addition to the policy's), persists it
// and compacts the log, and returns once it is done.
func (n *Node) Snapshot(ctx context.Context) error {
	done := make(chan error, 1)
	n.app.mu.Lock()
	n.app.demand = append(n.app.demand, done)
	n.app.mu.Unlock()
	n.app.signal()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

// persistPeers saves the address book when it changed (applier goroutine).
func (n *Node) persistPeers() {
	if n.snaps == nil {
		return
	}
	n.mu.Lock()
	peers := make(map[uint64]string, len(n.peers))
	for id, a := range n.peers {
		peers[id] = a
	}
	n.mu.Unlock()
	if err := n.snaps.savePeers(peers); err != nil {
		n.log.Error("saving member addresses failed", "node", n.id, "err", err)
	}
}

// notePeers updates the transport and the address book for a committed
// membership change, before core applies it (loop goroutine), so messages to
// a new member have somewhere to go.
func (n *Node) notePeers(e *core.Entry) {
	cc, err := core.UnmarshalConfChange(e.Data)
	if err != nil {
		return
	}
	for _, c := range cc.Changes {
		if c.NodeID == n.id {
			continue
		}
		switch c.Type {
		case core.AddVoter, core.AddLearner:
			addr := string(c.Context)
			if addr == "" {
				n.mu.Lock()
				addr = n.peers[c.NodeID]
				n.mu.Unlock()
			}
			if addr == "" {
				n.log.Warn("membership change without an address", "node", n.id, "member", c.NodeID)
				continue
			}
			if err := n.tr.AddPeer(c.NodeID, addr); err != nil {
				n.log.Warn("adding a member to the transport failed", "node", n.id, "member", c.NodeID, "err", err)
			}
			n.mu.Lock()
			n.peers[c.NodeID] = addr
			n.mu.Unlock()
		case core.RemoveNode:
			n.tr.RemovePeer(c.NodeID)
			n.mu.Lock()
			delete(n.peers, c.NodeID)
			n.mu.Unlock()
		}
	}
}

// ChangeMembership proposes a membership change (one change, or several at
// once through joint consensus) and returns once it is applied here. For
// several changes that is when the joint configuration C_old,new is in
// force; the leader then proposes C_new by itself, and Status().Conf shows
// when it is (VotersOutgoing empty again). Errors
// wrap core.ErrInvalidConfChange (the change makes no sense against the
// current membership: removing the last voter, adding a member twice, ...)
// or core.ErrConfChangePending (another change is in flight, or this leader
// has not committed an entry of its term yet; retry shortly), or are the
// node's usual *NotLeaderError, ErrTimeout, ErrStopped, ErrLeadershipLost.
func (n *Node) ChangeMembership(ctx context.Context, cc core.ConfChange) error {
	p := &proposal{done: make(chan result, 1)}
	ok := n.do(func() {
		index, term, err := n.raft.ProposeConfChange(cc)
		if err != nil {
			if errors.Is(err, core.ErrNotLeader) || errors.Is(err, core.ErrProposalDropped) {
				err = &NotLeaderError{Leader: n.raft.LeaderHint()}
			} else {
				err = fmt.Errorf("node %d: membership change: %w", n.id, err)
			}
			p.complete(nil, err)
			return
		}
		p.index, p.term = index, term
		n.app.register([]*proposal{p})
	})
	if !ok {
		return ErrStopped
	}
	_, err := await(ctx, p.done)
	return err
}

// AddVoter adds the node id, reachable at addr, as a voter. Prefer
// AddLearner then PromoteLearner: a voter that must first catch up weakens
// the quorum until it has.
func (n *Node) AddVoter(ctx context.Context, id uint64, addr string) error {
	return n.ChangeMembership(ctx, core.ConfChange{Changes: []core.ConfChangeSingle{{Type: core.AddVoter, NodeID: id, Context: []byte(addr)}}})
}

// AddLearner adds the node id, reachable at addr, as a learner: it receives
// the log (and snapshots) but does not vote or count toward commit.
func (n *Node) AddLearner(ctx context.Context, id uint64, addr string) error {
	return n.ChangeMembership(ctx, core.ConfChange{Changes: []core.ConfChangeSingle{{Type: core.AddLearner, NodeID: id, Context: []byte(addr)}}})
}

// PromoteLearner waits until the learner id has caught up with the leader's
// log (within MaxBatchEntries entries), then makes it a voter.
func (n *Node) PromoteLearner(ctx context.Context, id uint64) error {
	for {
		s := n.Status()
		if s.Role != core.Leader {
			return &NotLeaderError{Leader: s.Leader}
		}
		pr, ok := s.Progress[id]
		if !ok || !pr.Learner {
			return fmt.Errorf("node %d: %w: node %d is not a learner", n.id, core.ErrInvalidConfChange, id)
		}
		if pr.Match+uint64(n.cfg.MaxBatchEntries) >= s.Commit {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: learner %d at %d, commit at %d: %w", ErrTimeout, id, pr.Match, s.Commit, ctx.Err())
		case <-time.After(n.cfg.TickInterval):
		}
	}
	return n.ChangeMembership(ctx, core.ConfChange{Changes: []core.ConfChangeSingle{{Type: core.AddVoter, NodeID: id}}})
}

// RemoveNode removes the member id. Removing the leader itself works: it
// steps down once the change applies (transfer leadership first to avoid
// the election that follows).
func (n *Node) RemoveNode(ctx context.Context, id uint64) error {
	return n.ChangeMembership(ctx, core.ConfChange{Changes: []core.ConfChangeSingle{{Type: core.RemoveNode, NodeID: id}}})
}

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
)

// Settling at the end of a run: once the load has stopped, every fault is
// lifted and every stopped member restarted; then the harness waits for the
// cluster to quiesce, reads every member's (applied index, state) pair, and
// compares them at that one index. The order matters: the clients' last
// proposals — calls whose contexts ended, which node keeps queued — may
// still be committing when the load stops, and a replica read while they
// apply would differ from one read after, with no disagreement at all.

// Settling bounds.
const (
	// quiesceTimeout bounds the wait for the cluster to quiesce.
	quiesceTimeout = 30 * time.Second
	// quiescePoll is the interval between quiescence polls; the condition
	// must hold on two consecutive ones.
	quiescePoll = 10 * time.Millisecond
	// settleAttempts is how many times the harness quiesces and reads the
	// replicas before it reports that their applied index keeps moving.
	settleAttempts = 3
)

// Replica check outcomes (Summary.ReplicaCheck).
const (
	ReplicaAgree      = "agree"
	ReplicaDisagree   = "disagree"
	ReplicaIncomplete = "incomplete"
)

// quiescence is a quiescent cluster: the leader in its term, the index
// every member applied, and the members as the leader sees them.
type quiescence struct {
	leader, term, index uint64
	members             []uint64
}

func (q quiescence) equal(o quiescence) bool {
	return q.leader == o.leader && q.term == o.term && q.index == o.index && slices.Equal(q.members, o.members)
}

// quiescentNow checks the quiescence condition once: a leader that holds
// no queued proposals and whose last index is its commit index (nothing
// more is on its way), no running node with queued proposals (a follower
// refuses its own at its next round, unless it has become leader first),
// and every member running and applied up to that commit index. It returns
// why not when it does not hold.
func (c *cluster) quiescentNow() (quiescence, string) {
	lead, term := c.leader()
	ln := c.node(lead)
	if ln == nil {
		return quiescence{}, "no leader"
	}
	st := ln.Status()
	if st.Role != core.Leader || st.Term != term {
		return quiescence{}, fmt.Sprintf("node %d stopped leading", lead)
	}
	q := quiescence{leader: lead, term: term, index: st.Commit}
	for id := range st.Progress {
		if c.dur.isRefused(id) {
			continue // down for good: its WAL was refused (see RefusedNodes)
		}
		q.members = append(q.members, id)
	}
	slices.Sort(q.members)
	switch {
	case st.QueuedProposals > 0:
		return q, fmt.Sprintf("leader %d holds %d queued proposals", lead, st.QueuedProposals)
	case st.LastIndex != st.Commit:
		return q, fmt.Sprintf("leader %d's last index %d is past its commit index %d", lead, st.LastIndex, st.Commit)
	}
	for _, n := range c.running() {
		if ns := n.Status(); ns.QueuedProposals > 0 {
			return q, fmt.Sprintf("node %d holds %d queued proposals", n.ID(), ns.QueuedProposals)
		}
	}
	for _, m := range q.members {
		n := c.node(m)
		if n == nil {
			return q, fmt.Sprintf("member %d is not running", m)
		}
		if a := n.Status().Applied; a != q.index {
			return q, fmt.Sprintf("member %d applied %d of %d", m, a, q.index)
		}
	}
	return q, ""
}

// quiesce waits until the quiescence condition holds on two consecutive
// polls, with the same leader, term, index and members.
func (c *cluster) quiesce(ctx context.Context, timeout time.Duration) (quiescence, error) {
	deadline := time.Now().Add(timeout)
	var prev quiescence
	held := false
	for {
		q, why := c.quiescentNow()
		if why == "" && held && q.equal(prev) {
			return q, nil
		}
		held, prev = why == "", q
		if time.Now().After(deadline) {
			if why == "" {
				why = "it kept changing"
			}
			return q, fmt.Errorf("the cluster did not quiesce within %v: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return q, fmt.Errorf("settling: %w", ctx.Err())
		case <-time.After(quiescePoll):
		}
	}
}

// replicaState is one member's state as read after quiescence: the node's
// applied index before and after the read, and the state machine's image
// (which a hash and the acknowledged-write check are taken from).
type replicaState struct {
	id            uint64
	before, after uint64
	image         []byte
	hash          [32]byte
}

// readReplicas reads every member's state. The image is taken under the
// store's lock, between two apply batches; the applied index read on both
// sides of it says which index it is the state of, when the two agree.
func (c *cluster) readReplicas(members []uint64) ([]replicaState, error) {
	var out []replicaState
	for _, id := range members {
		n := c.node(id)
		c.mu.Lock()
		st := c.stores[id]
		c.mu.Unlock()
		if n == nil || st == nil {
			return nil, fmt.Errorf("member %d stopped while its state was read", id)
		}
		r := replicaState{id: id, before: n.Status().Applied}
		img, err := st.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("read the state of member %d: %w", id, err)
		}
		r.image, r.hash, r.after = img, sha256.Sum256(img), n.Status().Applied
		out = append(out, r)
	}
	return out, nil
}

// settle ends the faults, restarts the stopped members, quiesces the
// cluster, compares the members' states at the one index they all applied,
// checks every acknowledged write against every member's state, and then
// stops the nodes (after reading their metrics). Removed nodes, and new
// nodes that never became members, are left out. Problems of the harness
// itself (a cluster that never quiesces, an index that keeps moving after
// quiescence) are returned, never reported as a disagreement.
func settle(ctx context.Context, c *cluster, tracker *ackTracker, s *results.Summary, beforeCompare func(*cluster)) error {
	c.healAll()
	var problems []error
	if c.cfg.WAL != "memory" {
		for _, id := range c.stopped() {
			if err := c.restart(id); err != nil {
				problems = append(problems, err)
			}
		}
	}
	s.ReplicaCheck = ReplicaIncomplete
	s.ReplicaHashes, s.ReplicaApplied = map[string]string{}, map[string]uint64{}
	var moved []string
	for attempt := 0; attempt < settleAttempts; attempt++ {
		q, err := c.quiesce(ctx, quiesceTimeout)
		if err != nil {
			problems = append(problems, err)
			break
		}
		if attempt == 0 && beforeCompare != nil {
			beforeCompare(c)
		}
		reps, err := c.readReplicas(q.members)
		if err != nil {
			problems = append(problems, err)
			break
		}
		var moves []string
		for _, r := range reps {
			if r.before != q.index || r.after != q.index {
				moves = append(moves, fmt.Sprintf("member %d at %d then %d", r.id, r.before, r.after))
			}
		}
		if again, why := c.quiescentNow(); why != "" || !again.equal(q) {
			moves = append(moves, fmt.Sprintf("the cluster left index %d (%s)", q.index, orText(why, fmt.Sprintf("now at %d", again.index))))
		}
		if len(moves) > 0 {
			moved = append(moved, fmt.Sprintf("converged at %d, then %s", q.index, strings.Join(moves, ", ")))
			continue
		}
		s.AppliedIndex = q.index
		compareReplicas(reps, tracker, s)
		moved = nil
		break
	}
	if len(moved) > 0 {
		problems = append(problems, fmt.Errorf("applied index moved after convergence (a harness problem, not a disagreement): %s", strings.Join(moved, "; ")))
	}
	s.ReplicasAgree = s.ReplicaCheck == ReplicaAgree
	if s.ReplicaCheck == ReplicaIncomplete {
		s.AckedWrites = tracker.acked.Load()
	}
	// Metrics, then stop.
	peaks := c.diskPeaks()
	for _, n := range c.running() {
		m := n.Metrics()
		s.Elections += m.Elections
		s.Nodes = append(s.Nodes, results.NodeStats{ID: n.ID(), Proposals: m.Proposals, Batches: m.Batches,
			Fsyncs: m.Fsyncs, FsyncMeanUS: float64(m.FsyncMean.Microseconds()), FsyncMaxUS: float64(m.FsyncMax.Microseconds()),
			Elections: m.Elections, LoopSaturation: m.LoopSaturation, Restarts: c.restarts[n.ID()],
			Snapshots: m.Snapshots, Compactions: m.Compactions, WALPeakBytes: peaks[n.ID()]})
	}
	for _, n := range c.running() {
		_ = c.stop(n.ID())
	}
	return errors.Join(problems...)
}

// compareReplicas compares the states of replicas that all applied the
// same index, and checks every acknowledged write against each of them.
func compareReplicas(reps []replicaState, tracker *ackTracker, s *results.Summary) {
	agree := len(reps) > 0
	for _, r := range reps {
		id := fmt.Sprint(r.id)
		s.ReplicaHashes[id] = hex.EncodeToString(r.hash[:8])
		s.ReplicaApplied[id] = r.after
		if r.hash != reps[0].hash {
			agree = false
		}
	}
	s.ReplicaCheck = ReplicaDisagree
	if agree {
		s.ReplicaCheck = ReplicaAgree
	}
	lostKeys := map[string]bool{}
	s.AckedOpsFound = len(reps) > 0
	for _, r := range reps {
		st, err := kv.NewStore(kv.StoreOptions{})
		if err == nil {
			err = st.Restore(r.image)
		}
		if err != nil {
			s.AckedOpsFound = false
			s.Problems = append(s.Problems, fmt.Sprintf("cannot read member %d's state back: %v", r.id, err))
			continue
		}
		acked, lost := tracker.verify(func(k string) ([]byte, bool) { return st.Get([]byte(k)) })
		s.AckedWrites = acked
		if len(lost) > 0 {
			s.AckedOpsFound = false
			if s.LostWritesByNode == nil {
				s.LostWritesByNode = map[string]int64{}
			}
			s.LostWritesByNode[fmt.Sprint(r.id)] = int64(len(lost))
			for _, k := range lost {
				lostKeys[k] = true
			}
		}
	}
	keys := make([]string, 0, len(lostKeys))
	for k := range lostKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s.LostWrites = int64(len(keys))
	s.LostKeys = keys[:min(len(keys), 10)]
}

func orText(s, alt string) string {
	if s != "" {
		return s
	}
	return alt
}

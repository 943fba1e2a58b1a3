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

func equalQ(a, b Quiescence) bool {
	return a.Leader == b.Leader && a.Term == b.Term && a.Index == b.Index && slices.Equal(a.Members, b.Members)
}

// quiesce waits until g's quiescence condition holds on two consecutive
// polls, with the same leader, term, index and members.
func quiesce(ctx context.Context, g Group, timeout time.Duration) (Quiescence, error) {
	deadline := time.Now().Add(timeout)
	var prev Quiescence
	held := false
	for {
		q, why := g.Quiescent(ctx)
		if why == "" && held && equalQ(q, prev) {
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

// replicaState is one member's state as read after quiescence, with the
// hash the comparison is of.
type replicaState struct {
	ReplicaState
	hash [32]byte
}

// readReplicas reads every member's state at index. A state that moved
// past index, or had not reached it, is a move (the harness retries), not
// an error.
func readReplicas(ctx context.Context, g Group, members []uint64, index uint64) (reps []replicaState, moves []string, err error) {
	for _, id := range members {
		r, err := g.ReplicaState(ctx, id, index)
		switch {
		case errors.Is(err, ErrStateMoved) || errors.Is(err, ErrStateBehind):
			moves = append(moves, err.Error())
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("read the state of member %d: %w", id, err)
		}
		if r.Applied != index {
			moves = append(moves, fmt.Sprintf("member %d at %d", id, r.Applied))
		}
		reps = append(reps, replicaState{ReplicaState: r, hash: sha256.Sum256(r.Image)})
	}
	return reps, moves, nil
}

// settle ends the faults, restarts the stopped members, quiesces the
// cluster, compares the members' states at the one index they all applied,
// checks every acknowledged write against every member's state, and reads
// the nodes' counters. Removed nodes, and new nodes that never became
// members, are left out. Problems of the harness itself (a cluster that
// never quiesces, an index that keeps moving after quiescence) are
// returned, never reported as a disagreement. The caller closes t.
func settle(ctx context.Context, t Target, tracker *ackTracker, s *results.Summary, beforeCompare func(Target)) error {
	var problems []error
	if err := t.Heal(ctx); err != nil {
		problems = append(problems, fmt.Errorf("lift the faults: %w", err))
	}
	for _, id := range t.Stopped() {
		if err := t.Restart(ctx, id); err != nil {
			problems = append(problems, err)
		}
	}
	s.ReplicaHashes, s.ReplicaApplied = map[string]string{}, map[string]uint64{}
	groups := max(t.Info().Groups, 1)
	check := ReplicaAgree
	for gi := range groups {
		c, err := settleGroup(ctx, t, gi, groups, tracker, s, beforeCompare)
		if err != nil {
			if groups > 1 {
				err = fmt.Errorf("group %d: %w", gi, err)
			}
			problems = append(problems, err)
		}
		// A group that disagrees is a disagreement whatever another group
		// could not compare: a divergence is never hidden behind a harness
		// problem.
		switch {
		case c == ReplicaDisagree || check == ReplicaDisagree:
			check = ReplicaDisagree
		case c == ReplicaIncomplete:
			check = ReplicaIncomplete
		}
	}
	s.ReplicaCheck = check
	s.ReplicasAgree = s.ReplicaCheck == ReplicaAgree
	if s.ReplicaCheck == ReplicaIncomplete {
		s.AckedWrites = tracker.acked.Load()
	}
	s.Nodes = t.NodeStats(ctx)
	for _, n := range s.Nodes {
		s.Elections += n.Elections
	}
	return errors.Join(problems...)
}

// settleGroup quiesces group gi of groups, reads its members' states at
// one index and compares them (compareReplicas), retrying while the index
// moves; it returns the group's replica check (ReplicaAgree,
// ReplicaDisagree or ReplicaIncomplete) and the harness's problem, if any.
// s.AppliedIndex is group 0's index.
func settleGroup(ctx context.Context, t Target, gi, groups int, tracker *ackTracker, s *results.Summary, beforeCompare func(Target)) (string, error) {
	g := t.Group(gi)
	var moved []string
	for attempt := 0; attempt < settleAttempts; attempt++ {
		q, err := quiesce(ctx, g, quiesceTimeout)
		if err != nil {
			return ReplicaIncomplete, err
		}
		if attempt == 0 && gi == 0 && beforeCompare != nil {
			beforeCompare(t)
		}
		reps, moves, err := readReplicas(ctx, g, q.Members, q.Index)
		if err != nil {
			return ReplicaIncomplete, err
		}
		if again, why := g.Quiescent(ctx); why != "" || !equalQ(again, q) {
			moves = append(moves, fmt.Sprintf("the cluster left index %d (%s)", q.Index, orText(why, fmt.Sprintf("now at %d", again.Index))))
		}
		if len(moves) > 0 {
			moved = append(moved, fmt.Sprintf("converged at %d, then %s", q.Index, strings.Join(moves, ", ")))
			continue
		}
		if gi == 0 {
			s.AppliedIndex = q.Index
		}
		return compareReplicas(reps, gi, groups, tracker, s), nil
	}
	return ReplicaIncomplete, fmt.Errorf("applied index moved after convergence (a harness problem, not a disagreement): %s", strings.Join(moved, "; "))
}

// replicaKey names member id of group g in summary.json's per-replica maps:
// its ID, with "/g<g>" after it when there are several groups.
func replicaKey(id uint64, g, groups int) string {
	if groups > 1 {
		return fmt.Sprintf("%d/g%d", id, g)
	}
	return fmt.Sprint(id)
}

// compareReplicas compares the states of group g's replicas, which all
// applied the same index, checks every acknowledged write of the group's
// keys against each of them, and returns ReplicaAgree or ReplicaDisagree.
func compareReplicas(reps []replicaState, g, groups int, tracker *ackTracker, s *results.Summary) string {
	agree := len(reps) > 0
	for _, r := range reps {
		id := replicaKey(r.ID, g, groups)
		s.ReplicaHashes[id] = hex.EncodeToString(r.hash[:8])
		s.ReplicaApplied[id] = r.Applied
		if r.hash != reps[0].hash {
			agree = false
		}
	}
	check := ReplicaDisagree
	if agree {
		check = ReplicaAgree
	}
	lostKeys := map[string]bool{}
	if g == 0 {
		s.AckedOpsFound = true
	}
	if len(reps) == 0 {
		s.AckedOpsFound = false
	}
	for _, r := range reps {
		st, err := kv.NewStore(kv.StoreOptions{})
		if err == nil {
			err = st.Restore(r.Image)
		}
		if err != nil {
			s.AckedOpsFound = false
			s.Problems = append(s.Problems, fmt.Sprintf("cannot read member %d's state back: %v", r.ID, err))
			continue
		}
		acked, lost := tracker.verifyGroup(g, groups, func(k string) ([]byte, bool) { return st.Get([]byte(k)) })
		s.AckedWrites = acked
		if len(lost) > 0 {
			s.AckedOpsFound = false
			if s.LostWritesByNode == nil {
				s.LostWritesByNode = map[string]int64{}
			}
			s.LostWritesByNode[replicaKey(r.ID, g, groups)] = int64(len(lost))
			for _, k := range lost {
				lostKeys[k] = true
			}
		}
	}
	keys := slices.Clone(s.LostKeys)
	for k := range lostKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s.LostWrites += int64(len(lostKeys))
	s.LostKeys = keys[:min(len(keys), 10)]
	return check
}

func orText(s, alt string) string {
	if s != "" {
		return s
	}
	return alt
}

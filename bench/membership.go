package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
)

// startMembership runs the membership event f, which the schedule reached
// at at, in a goroutine of its own after any earlier membership event has
// finished. It records the event in the summary's membership list and, once
// done, in its faults.
func (in *injector) startMembership(ctx context.Context, f faultspec.Fault, at time.Duration) {
	mc := &results.MembershipChange{AtMS: ms(at), Spec: f.Spec, DoneMS: -1}
	in.mu.Lock()
	in.membership = append(in.membership, mc)
	in.mu.Unlock()
	// Taken here, in schedule order, so events run in that order.
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.memMu.Lock()
		defer in.memMu.Unlock()
		start := in.t0.Add(at)
		var what string
		var err error
		if ctx.Err() != nil {
			err = fmt.Errorf("the run ended first: %w", ctx.Err())
		} else {
			switch f.Kind {
			case faultspec.AddNode:
				what, err = in.addNode(ctx, mc, start)
			case faultspec.Remove:
				what, err = in.remove(ctx, f, mc, start, f.Node)
			case faultspec.RemoveLeader:
				what, err = in.remove(ctx, f, mc, start, 0)
			case faultspec.Replace:
				what, err = in.replace(ctx, f, mc, start)
			default:
				err = fmt.Errorf("unknown membership event %q", f.Kind)
			}
		}
		in.mu.Lock()
		if err != nil {
			mc.Error = err.Error()
		}
		in.mu.Unlock()
		in.record(at, f.Spec, what, err)
	}()
}

// done marks mc in force now, with the leader's voters.
func (in *injector) done(ctx context.Context, mc *results.MembershipChange, start time.Time) {
	voters, _, _ := in.c.members(ctx)
	in.mu.Lock()
	mc.DoneMS, mc.Voters = ms(time.Since(start)), voters
	in.mu.Unlock()
}

// addNode starts the next new node as a learner, adds it, and promotes it
// once it has caught up.
func (in *injector) addNode(ctx context.Context, mc *results.MembershipChange, start time.Time) (string, error) {
	id, addr, err := in.c.startNew(ctx)
	if err != nil {
		return "", fmt.Errorf("start a new node: %w", err)
	}
	in.mu.Lock()
	mc.Added = id
	in.mu.Unlock()
	if err := in.c.change(ctx, membershipTimeout, func() bool { return in.c.isMember(id, true) },
		func(ctx context.Context, l *node.Node) error { return l.AddLearner(ctx, id, addr) }); err != nil {
		return fmt.Sprintf("started node %d", id), fmt.Errorf("add node %d as a learner: %w", id, err)
	}
	if err := in.c.change(ctx, membershipTimeout, func() bool { return in.c.isMember(id, false) },
		func(ctx context.Context, l *node.Node) error { return l.PromoteLearner(ctx, id) }); err != nil {
		return fmt.Sprintf("added node %d as a learner", id), fmt.Errorf("promote node %d: %w", id, err)
	}
	in.done(ctx, mc, start)
	in.catchUp(ctx, mc, start, id)
	return fmt.Sprintf("added node %d (voter after %s)", id, msText(mc.DoneMS)), nil
}

// remove removes node id from the membership and stops it; id 0 means the
// leader. The leader is first asked to hand over to its most caught-up
// follower, and the time to the new leader is measured as a failover.
func (in *injector) remove(ctx context.Context, f faultspec.Fault, mc *results.MembershipChange, start time.Time, id uint64) (string, error) {
	lead, err := in.c.waitAnyLeader(ctx, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("no leader: %w", err)
	}
	if id == 0 {
		id = lead
	}
	if !in.c.isMember(id, true) {
		return "", fmt.Errorf("node %d is not a member", id)
	}
	in.mu.Lock()
	mc.Removed = id
	in.mu.Unlock()
	var notes []string
	if id == lead {
		term := in.c.maxTerm()
		in.measureFailover(ctx, f.Spec, lead, term)
		if to, err := in.transferAway(ctx, lead); err != nil {
			notes = append(notes, fmt.Sprintf("leadership transfer failed: %v", err))
		} else {
			notes = append(notes, fmt.Sprintf("leadership handed to node %d", to))
		}
	}
	if err := in.c.change(ctx, membershipTimeout, func() bool { return in.c.leaderOtherThan(id) && !in.c.isMember(id, true) },
		func(ctx context.Context, l *node.Node) error { return l.RemoveNode(ctx, id) }); err != nil {
		return "", fmt.Errorf("remove node %d: %w", id, err)
	}
	in.c.markRemoved(id)
	in.done(ctx, mc, start)
	if in.c.node(id) != nil {
		if err := in.c.stop(id); err != nil {
			notes = append(notes, err.Error())
		}
	}
	what := fmt.Sprintf("removed and stopped node %d", id)
	if len(notes) > 0 {
		what += " (" + strings.Join(notes, "; ") + ")"
	}
	return what, nil
}

// transferAway hands leadership from lead to the running voter whose log
// matches the most of the leader's, and returns it.
func (in *injector) transferAway(ctx context.Context, lead uint64) (uint64, error) {
	l := in.c.node(lead)
	if l == nil {
		return 0, errors.New("the leader stopped")
	}
	var to, match uint64
	for id, p := range l.Status().Progress {
		if id != lead && !p.Learner && in.c.node(id) != nil && (to == 0 || p.Match > match) {
			to, match = id, p.Match
		}
	}
	if to == 0 {
		return 0, errors.New("no running follower to hand over to")
	}
	tctx, cancel := context.WithTimeout(ctx, 2*in.c.cfg.ElectionTimeout.D()+time.Second)
	defer cancel()
	if err := l.TransferLeadership(tctx, to); err != nil {
		return 0, fmt.Errorf("to node %d: %w", to, err)
	}
	return to, nil
}

// replace stops node N (a kill, measured as a failover if it led), starts
// a new node and swaps them in one joint change; the new node catches up
// from the leader, by snapshot when the log has been compacted past it.
func (in *injector) replace(ctx context.Context, f faultspec.Fault, mc *results.MembershipChange, start time.Time) (string, error) {
	old := f.Node
	if !in.c.isMember(old, true) {
		if _, err := in.c.waitAnyLeader(ctx, 5*time.Second); err != nil || !in.c.isMember(old, true) {
			return "", fmt.Errorf("node %d is not a member", old)
		}
	}
	in.mu.Lock()
	mc.Removed = old
	in.mu.Unlock()
	if in.c.node(old) != nil {
		lead, _ := in.c.leader()
		term := in.c.maxTerm()
		if err := in.c.stop(old); err != nil {
			return "", err
		}
		if old == lead {
			in.measureFailover(ctx, f.Spec, old, term)
		}
	}
	id, addr, err := in.c.startNew(ctx)
	if err != nil {
		return fmt.Sprintf("stopped node %d", old), fmt.Errorf("start a new node: %w", err)
	}
	in.mu.Lock()
	mc.Added = id
	in.mu.Unlock()
	cc := core.ConfChange{Changes: []core.ConfChangeSingle{
		{Type: core.AddVoter, NodeID: id, Context: []byte(addr)},
		{Type: core.RemoveNode, NodeID: old},
	}}
	if err := in.c.change(ctx, membershipTimeout, func() bool { return in.c.isMember(id, false) && !in.c.isMember(old, true) },
		func(ctx context.Context, l *node.Node) error { return l.ChangeMembership(ctx, cc) }); err != nil {
		return fmt.Sprintf("stopped node %d, started node %d", old, id), fmt.Errorf("replace node %d by node %d: %w", old, id, err)
	}
	in.c.markRemoved(old)
	in.done(ctx, mc, start)
	in.catchUp(ctx, mc, start, id)
	what := fmt.Sprintf("replaced node %d by node %d (in force after %s", old, id, msText(mc.DoneMS))
	if mc.CaughtUpMS > 0 {
		what += ", caught up after " + msText(mc.CaughtUpMS)
	}
	if mc.SnapshotIndex > 0 {
		what += fmt.Sprintf(" from a snapshot at index %d", mc.SnapshotIndex)
	}
	return what + ")", nil
}

// catchUp waits until the new node id has applied what the leader had
// committed when the change came into force, and notes where its log
// starts: past 1 means it was brought up by a snapshot.
func (in *injector) catchUp(ctx context.Context, mc *results.MembershipChange, start time.Time, id uint64) {
	lead, _ := in.c.leader()
	l := in.c.node(lead)
	if l == nil {
		return
	}
	target := l.Status().Commit
	deadline := time.Now().Add(membershipTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		n := in.c.node(id)
		if n != nil && n.Status().Applied >= target {
			first, err := n.LogFirstIndex()
			in.mu.Lock()
			mc.CaughtUpMS = ms(time.Since(start))
			if err == nil && first > 1 {
				mc.SnapshotIndex = first - 1
			}
			in.mu.Unlock()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	in.mu.Lock()
	mc.CaughtUpMS = -1
	in.mu.Unlock()
}

func msText(v float64) string {
	if v < 0 {
		return "(never)"
	}
	return fmt.Sprintf("%.0f ms", v)
}

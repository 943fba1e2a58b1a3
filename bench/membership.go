package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// members is the membership interface of the target (CheckFaults made
// sure it has one before any membership event was scheduled).
func (in *injector) members() Membership { return in.t.(Membership) }

// isMember reports whether the current leader counts id as a voter, or
// with orLearner as any member.
func (in *injector) isMember(ctx context.Context, id uint64, orLearner bool) bool {
	voters, learners, err := in.members().Members(ctx, 0)
	if err != nil {
		return false
	}
	return slices.Contains(voters, id) || (orLearner && slices.Contains(learners, id))
}

// leaderOtherThan reports whether a running node other than id leads.
func (in *injector) leaderOtherThan(id uint64) bool {
	l, _ := in.g.Leader()
	return l != 0 && l != id
}

// change runs c against the current leader until done holds, retrying the
// errors a membership change meets while the cluster moves (another change
// settling, a leader change, an attempt whose outcome was unknown), for at
// most timeout. Once it succeeds it only waits for done: a joint change
// returns when it is entered, and done holds once it has been left.
func (in *injector) change(ctx context.Context, timeout time.Duration, done func() bool, c MemberChange) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	succeeded := false
	for {
		if done() {
			return nil
		}
		if id, _ := in.g.Leader(); id != 0 && !succeeded {
			actx, acancel := context.WithTimeout(ctx, 3*time.Second)
			err := in.members().ChangeMembers(actx, c)
			acancel()
			if err == nil {
				succeeded = true
				continue
			}
			if !errors.Is(err, core.ErrConfChangePending) && !errors.Is(err, node.ErrNotLeader) &&
				!errors.Is(err, node.ErrLeadershipLost) && !errors.Is(err, node.ErrTimeout) && !errors.Is(err, node.ErrStopped) {
				return err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("not done within %v: %w", timeout, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// done marks mc in force now, with the leader's voters.
func (in *injector) done(ctx context.Context, mc *results.MembershipChange, start time.Time) {
	voters, _, _ := in.members().Members(ctx, 5*time.Second)
	in.mu.Lock()
	mc.DoneMS, mc.Voters = ms(time.Since(start)), voters
	in.mu.Unlock()
}

// addNode starts the next new node as a learner, adds it, and promotes it
// once it has caught up.
func (in *injector) addNode(ctx context.Context, mc *results.MembershipChange, start time.Time) (string, error) {
	id, addr, err := in.members().StartNode(ctx)
	if err != nil {
		return "", fmt.Errorf("start a new node: %w", err)
	}
	in.mu.Lock()
	mc.Added = id
	in.mu.Unlock()
	if err := in.change(ctx, membershipTimeout, func() bool { return in.isMember(ctx, id, true) },
		MemberChange{Op: AddLearner, ID: id, Addr: addr}); err != nil {
		return fmt.Sprintf("started node %d", id), fmt.Errorf("add node %d as a learner: %w", id, err)
	}
	if err := in.change(ctx, membershipTimeout, func() bool { return in.isMember(ctx, id, false) },
		MemberChange{Op: Promote, ID: id}); err != nil {
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
	voters, learners, err := in.members().Members(ctx, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("no leader: %w", err)
	}
	lead, _ := in.g.Leader()
	if id == 0 {
		id = lead
	}
	if !slices.Contains(voters, id) && !slices.Contains(learners, id) {
		return "", fmt.Errorf("node %d is not a member", id)
	}
	in.mu.Lock()
	mc.Removed = id
	in.mu.Unlock()
	var notes []string
	if id == lead {
		term := in.g.MaxTerm()
		in.measureFailover(ctx, f.Spec, lead, term)
		if to, err := in.members().HandOff(ctx, lead); err != nil {
			notes = append(notes, fmt.Sprintf("leadership transfer failed: %v", err))
		} else {
			notes = append(notes, fmt.Sprintf("leadership handed to node %d", to))
		}
	}
	if err := in.change(ctx, membershipTimeout, func() bool { return in.leaderOtherThan(id) && !in.isMember(ctx, id, true) },
		MemberChange{Op: RemoveMember, ID: id}); err != nil {
		return "", fmt.Errorf("remove node %d: %w", id, err)
	}
	in.members().MarkRemoved(id)
	in.done(ctx, mc, start)
	if in.t.Running(id) {
		if err := in.t.(Stopper).Stop(ctx, id); err != nil {
			notes = append(notes, err.Error())
		}
	}
	what := fmt.Sprintf("removed and stopped node %d", id)
	if len(notes) > 0 {
		what += " (" + strings.Join(notes, "; ") + ")"
	}
	return what, nil
}

// replace stops node N (a kill, measured as a failover if it led), starts
// a new node and swaps them in one joint change; the new node catches up
// from the leader, by snapshot when the log has been compacted past it.
func (in *injector) replace(ctx context.Context, f faultspec.Fault, mc *results.MembershipChange, start time.Time) (string, error) {
	old := f.Node
	if !in.isMember(ctx, old, true) {
		voters, learners, err := in.members().Members(ctx, 5*time.Second)
		if err != nil || (!slices.Contains(voters, old) && !slices.Contains(learners, old)) {
			return "", fmt.Errorf("node %d is not a member", old)
		}
	}
	in.mu.Lock()
	mc.Removed = old
	in.mu.Unlock()
	if in.t.Running(old) {
		lead, _ := in.g.Leader()
		term := in.g.MaxTerm()
		if err := in.t.(Stopper).Stop(ctx, old); err != nil {
			return "", err
		}
		if old == lead {
			in.measureFailover(ctx, f.Spec, old, term)
		}
	}
	id, addr, err := in.members().StartNode(ctx)
	if err != nil {
		return fmt.Sprintf("stopped node %d", old), fmt.Errorf("start a new node: %w", err)
	}
	in.mu.Lock()
	mc.Added = id
	in.mu.Unlock()
	if err := in.change(ctx, membershipTimeout, func() bool { return in.isMember(ctx, id, false) && !in.isMember(ctx, old, true) },
		MemberChange{Op: Replace, ID: id, Addr: addr, Old: old}); err != nil {
		return fmt.Sprintf("stopped node %d, started node %d", old, id), fmt.Errorf("replace node %d by node %d: %w", old, id, err)
	}
	in.members().MarkRemoved(old)
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
	target, err := in.members().LeaderCommit(ctx)
	if err != nil {
		return
	}
	deadline := time.Now().Add(membershipTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if applied, first, ok := in.members().NodeLog(ctx, id); ok && applied >= target {
			in.mu.Lock()
			mc.CaughtUpMS = ms(time.Since(start))
			if first > 1 {
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

package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/transport/fault"
)

// injector applies a fault schedule to a cluster, measuring the failovers
// the leader faults cause.
//
// Membership events run in goroutines of their own, one at a time in
// schedule order (memMu), so a slow catch-up does not hold back the kills
// and partitions scheduled meanwhile.
type injector struct {
	c        *cluster
	rec      *latencyRecorder
	t0       time.Time
	active   []faultspec.Fault // rules in force
	killed   map[faultspec.Fault]uint64
	isolated map[faultspec.Fault]uint64

	memMu sync.Mutex // serialises membership events

	mu         sync.Mutex
	applied    []results.AppliedFault
	failovers  []*results.Failover
	membership []*results.MembershipChange
	wg         sync.WaitGroup
}

// membershipTimeout bounds each step of a membership event.
const membershipTimeout = 30 * time.Second

func newInjector(c *cluster, rec *latencyRecorder, t0 time.Time) *injector {
	return &injector{c: c, rec: rec, t0: t0, killed: map[faultspec.Fault]uint64{}, isolated: map[faultspec.Fault]uint64{}}
}

// run applies evs at their times until they are done or ctx ends, then
// waits for the failover measurements it started (they end with ctx).
func (in *injector) run(ctx context.Context, evs []faultspec.Event) {
	for _, ev := range evs {
		if err := (realClock{}).SleepUntil(ctx, in.t0.Add(ev.At)); err != nil {
			break
		}
		at := time.Since(in.t0)
		if ev.Fault.IsMembership() {
			in.startMembership(ctx, ev.Fault, at)
			continue
		}
		what, err := in.apply(ctx, ev)
		in.record(at, ev.Fault.Spec, what, err)
	}
	in.wg.Wait()
}

// record adds what one fault event did, started at at.
func (in *injector) record(at time.Duration, spec, what string, err error) {
	af := results.AppliedFault{AtMS: ms(at), Spec: spec, What: what}
	if err != nil {
		af.Error = err.Error()
	}
	in.mu.Lock()
	in.applied = append(in.applied, af)
	sort.SliceStable(in.applied, func(i, j int) bool { return in.applied[i].AtMS < in.applied[j].AtMS })
	in.mu.Unlock()
}

// appliedSoFar returns the faults applied so far.
func (in *injector) appliedSoFar() []results.AppliedFault {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]results.AppliedFault(nil), in.applied...)
}

func (in *injector) results() ([]results.AppliedFault, []results.Failover, []results.MembershipChange) {
	in.mu.Lock()
	defer in.mu.Unlock()
	fos := make([]results.Failover, len(in.failovers))
	for i, f := range in.failovers {
		fos[i] = *f
	}
	var mcs []results.MembershipChange
	for _, m := range in.membership {
		mcs = append(mcs, *m)
	}
	return append([]results.AppliedFault(nil), in.applied...), fos, mcs
}

func (in *injector) apply(ctx context.Context, ev faultspec.Event) (string, error) {
	f := ev.Fault
	if f.IsRule() {
		if ev.Undo {
			for i, a := range in.active {
				if a == f {
					in.active = append(in.active[:i], in.active[i+1:]...)
					break
				}
			}
		} else {
			in.active = append(in.active, f)
		}
		if err := in.applyRules(); err != nil {
			return "", err
		}
		if ev.Undo {
			return "lifted " + f.Spec, nil
		}
		return "applied " + f.Spec, nil
	}
	switch f.Kind {
	case faultspec.KillLeader, faultspec.Kill:
		if ev.Undo {
			id := in.killed[f]
			if id == 0 {
				return "", fmt.Errorf("nothing was killed to restart")
			}
			if err := in.c.restart(id); err != nil {
				return "", err
			}
			return fmt.Sprintf("restarted node %d", id), nil
		}
		id := f.Node
		if f.Kind == faultspec.KillLeader {
			var err error
			if id, err = in.c.waitLeader(ctx, 5*time.Second); err != nil {
				return "", fmt.Errorf("no leader to kill: %w", err)
			}
		}
		lead, _ := in.c.leader()
		term := in.c.maxTerm()
		if err := in.c.stop(id); err != nil {
			return "", err
		}
		in.killed[f] = id
		if id == lead {
			in.measureFailover(ctx, f.Spec, id, term)
		}
		return fmt.Sprintf("killed node %d", id), nil
	case faultspec.Restart:
		ids := []uint64{f.Node}
		if f.Node == 0 {
			ids = in.c.stopped()
		}
		var done []string
		for _, id := range ids {
			if err := in.c.restart(id); err != nil {
				return strings.Join(done, ", "), err
			}
			done = append(done, fmt.Sprint(id))
		}
		if len(done) == 0 {
			return "nothing to restart", nil
		}
		return "restarted node " + strings.Join(done, ", "), nil
	case faultspec.PartitionLeader, faultspec.Isolate:
		if ev.Undo {
			id := in.isolated[f]
			if id == 0 {
				return "", fmt.Errorf("nothing was isolated to reconnect")
			}
			delete(in.isolated, f)
			in.c.net.Unisolate(id)
			return fmt.Sprintf("reconnected node %d", id), nil
		}
		id := f.Node
		if f.Kind == faultspec.PartitionLeader {
			var err error
			if id, err = in.c.waitLeader(ctx, 5*time.Second); err != nil {
				return "", fmt.Errorf("no leader to partition: %w", err)
			}
		}
		lead, _ := in.c.leader()
		term := in.c.maxTerm()
		in.c.net.Isolate(id)
		in.isolated[f] = id
		if id == lead {
			in.measureFailover(ctx, f.Spec, id, term)
		}
		return fmt.Sprintf("isolated node %d", id), nil
	case faultspec.Heal:
		in.c.net.Heal()
		return "healed", nil
	case faultspec.CrashLeader, faultspec.Crash, faultspec.BitflipWAL, faultspec.TruncateWAL:
		return in.applyDurability(ctx, ev)
	}
	return "", fmt.Errorf("unknown fault kind %q", f.Kind)
}

// applyDurability applies a crash or a WAL damage, the same shape as a
// kill: the node goes down at AT and comes back at once, or after FOR (the
// undo event). A node that refuses a damaged WAL stays down; that is one of
// the two outcomes a damage may have, and What says so. After a crash it
// is a failure, returned as an error.
func (in *injector) applyDurability(ctx context.Context, ev faultspec.Event) (string, error) {
	f := ev.Fault
	if ev.Undo {
		id := in.killed[f]
		if id == 0 {
			return "", fmt.Errorf("nothing was stopped to restart")
		}
		delete(in.killed, f)
		return in.restartChecked(id, f.IsCrash())
	}
	id := f.Node
	if f.Kind == faultspec.CrashLeader {
		var err error
		if id, err = in.c.waitLeader(ctx, 5*time.Second); err != nil {
			return "", fmt.Errorf("no leader to crash: %w", err)
		}
	}
	lead, _ := in.c.leader()
	term := in.c.maxTerm()
	var what string
	if f.IsCrash() {
		last, err := in.c.crash(id, f.Spec)
		if err != nil {
			return "", err
		}
		what = fmt.Sprintf("crashed node %d (lost what it had not synced; it had reported its log durable to index %d)", id, last)
	} else {
		running := in.c.node(id) != nil
		if running {
			if err := in.c.stop(id); err != nil {
				return "", err
			}
		}
		rng := rand.New(rand.NewPCG(in.c.cfg.Seed, uint64(ev.At)+id))
		var err error
		if what, err = in.c.damageWAL(id, f.Kind, f.Spec, rng); err != nil {
			return "stopped node " + fmt.Sprint(id), err
		}
		if !running {
			return what + " (it was not running, and stays stopped)", nil
		}
		what = fmt.Sprintf("stopped node %d, %s", id, what)
	}
	if id == lead {
		in.measureFailover(ctx, f.Spec, id, term)
	}
	if f.For > 0 {
		in.killed[f] = id
		return what, nil
	}
	again, err := in.restartChecked(id, f.IsCrash())
	return what + "; " + again, err
}

// restartChecked restarts node id after a crash or a damage. A refusal of
// a damaged WAL is reported, not an error; anything else that stops the
// restart is.
func (in *injector) restartChecked(id uint64, crash bool) (string, error) {
	err := in.c.restart(id)
	switch {
	case err == nil:
		return fmt.Sprintf("restarted node %d", id), nil
	case !crash && in.c.dur.isRefused(id):
		return fmt.Sprintf("node %d refused to start, and stays down: %v", id, err), nil
	}
	return "", err
}

// applyRules sets every node's message rules and disk delay from the rules
// in force; a later rule of the same kind overrides an earlier one.
func (in *injector) applyRules() error {
	for id := uint64(1); id <= in.c.maxID; id++ {
		var r fault.Rules
		var disk time.Duration
		for _, f := range in.active {
			if f.Node != 0 && f.Node != id {
				continue
			}
			switch f.Kind {
			case faultspec.Loss:
				r.DropRate = f.Prob
			case faultspec.Dup:
				r.DuplicateRate = f.Prob
			case faultspec.Reorder:
				r.ReorderRate = f.Prob
			case faultspec.Delay:
				r.Delay, r.Jitter = f.Delay, f.Jitter
			case faultspec.SlowDisk:
				disk = f.Delay
			}
		}
		if err := in.c.setRules(id, r); err != nil {
			return fmt.Errorf("rules of node %d: %w", id, err)
		}
		in.c.setDiskDelay(id, disk)
	}
	return nil
}

// measureFailover times, from now, a new leader (other than old, in a
// term after term) and the first write acknowledged after now.
func (in *injector) measureFailover(ctx context.Context, spec string, old, term uint64) {
	now := time.Now()
	fo := &results.Failover{Fault: spec, OldLeader: old, AtMS: ms(now.Sub(in.t0)), ToLeaderMS: -1, ToCommitMS: -1}
	in.mu.Lock()
	in.failovers = append(in.failovers, fo)
	in.mu.Unlock()
	watch := in.rec.watchAck(now)
	in.wg.Add(2)
	go func() {
		defer in.wg.Done()
		for ctx.Err() == nil {
			if id, t := in.c.leader(); id != 0 && id != old && t > term {
				in.mu.Lock()
				fo.NewLeader, fo.ToLeaderMS = id, ms(time.Since(now))
				in.mu.Unlock()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer in.wg.Done()
		select {
		case <-watch.done:
			in.mu.Lock()
			fo.ToCommitMS = ms(watch.at.Sub(now))
			in.mu.Unlock()
		case <-ctx.Done():
		}
	}()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

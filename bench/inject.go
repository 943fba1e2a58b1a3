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
	t        Target
	g        Group // group 0, whose leader the leader faults pick
	cfg      *Config
	rec      *latencyRecorder
	t0       time.Time
	active   []faultspec.Fault // rules in force
	killed   map[faultspec.Fault]uint64
	isolated map[faultspec.Fault]uint64

	memMu sync.Mutex // serialises membership events
	// paused notes the node each pause fault froze, for its undo.
	paused map[faultspec.Fault]uint64
	// ruled and slowed are the nodes whose message rules or disk delay
	// the schedule set and has not lifted: applyRules only calls a
	// target about nodes whose rules change.
	ruled, slowed map[uint64]bool

	mu         sync.Mutex
	applied    []results.AppliedFault
	failovers  []*results.Failover
	membership []*results.MembershipChange
	wg         sync.WaitGroup
}

// membershipTimeout bounds each step of a membership event.
const membershipTimeout = 30 * time.Second

func newInjector(t Target, cfg *Config, rec *latencyRecorder, t0 time.Time) *injector {
	return &injector{t: t, g: t.Group(0), cfg: cfg, rec: rec, t0: t0, killed: map[faultspec.Fault]uint64{},
		isolated: map[faultspec.Fault]uint64{}, paused: map[faultspec.Fault]uint64{}, ruled: map[uint64]bool{}, slowed: map[uint64]bool{}}
}

// checkFaults asks t whether it can inject every fault of faults, and that
// it has the interface each needs, before the load starts.
func checkFaults(t Target, faults []faultspec.Fault) error {
	name := targetName(t)
	var msgs []string
	for _, f := range faults {
		if err := t.CheckFault(f); err != nil {
			msgs = append(msgs, err.Error())
			continue
		}
		if missing := capabilityOf(t, f); missing != "" {
			msgs = append(msgs, UnsupportedFault(name, f.Spec, "it has no "+missing).Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w: --fault: %s", ErrBadConfig, ErrUnsupportedFault, strings.Join(msgs, "; "))
}

// targetName names t in messages: "raftbench --procs", "etcd".
func targetName(t Target) string {
	info := t.Info()
	switch info.Mode {
	case ModeProcs:
		return info.System + " --procs"
	case ModeCluster:
		return info.System + " --cluster"
	}
	return info.System
}

// capabilityOf names the capability interface f needs that t lacks ("" when
// it has it).
func capabilityOf(t Target, f faultspec.Fault) string {
	var ok bool
	var name string
	switch {
	case f.IsRule() && f.Kind == faultspec.SlowDisk:
		_, ok = t.(DiskSlower)
		name = "DiskSlower"
	case f.IsRule():
		_, ok = t.(MessageFaulter)
		name = "MessageFaulter"
	case f.IsMembership():
		_, ok = t.(Membership)
		name = "Membership"
	}
	switch f.Kind {
	case faultspec.Kill, faultspec.KillLeader:
		_, ok = t.(Stopper)
		name = "Stopper"
	case faultspec.Kill9, faultspec.Kill9Leader:
		_, ok = t.(Killer)
		name = "Killer"
	case faultspec.Pause, faultspec.PauseLeader:
		_, ok = t.(Pauser)
		name = "Pauser"
	case faultspec.Isolate, faultspec.PartitionLeader, faultspec.Heal:
		_, ok = t.(Partitioner)
		name = "Partitioner"
	case faultspec.Crash, faultspec.CrashLeader, faultspec.BitflipWAL, faultspec.TruncateWAL:
		_, ok = t.(Crasher)
		name = "Crasher"
	case faultspec.Restart:
		ok = true
	}
	if ok || name == "" {
		return ""
	}
	return name
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
		if err := in.applyRules(ctx); err != nil {
			return "", err
		}
		if ev.Undo {
			return "lifted " + f.Spec, nil
		}
		return "applied " + f.Spec, nil
	}
	switch f.Kind {
	case faultspec.KillLeader, faultspec.Kill, faultspec.Kill9, faultspec.Kill9Leader:
		if ev.Undo {
			id := in.killed[f]
			if id == 0 {
				return "", fmt.Errorf("nothing was killed to restart")
			}
			delete(in.killed, f)
			if err := in.t.Restart(ctx, id); err != nil {
				return "", err
			}
			return fmt.Sprintf("restarted node %d", id), nil
		}
		id, err := in.target(ctx, f, "kill")
		if err != nil {
			return "", err
		}
		lead, _ := in.g.Leader()
		term := in.g.MaxTerm()
		how := "killed"
		if f.Kind == faultspec.Kill9 || f.Kind == faultspec.Kill9Leader {
			err, how = in.t.(Killer).Kill9(ctx, id), "SIGKILLed"
		} else {
			err = in.t.(Stopper).Stop(ctx, id)
		}
		if err != nil {
			return "", err
		}
		in.killed[f] = id
		if id == lead {
			in.measureFailover(ctx, f.Spec, id, term)
		}
		return fmt.Sprintf("%s node %d", how, id), nil
	case faultspec.Pause, faultspec.PauseLeader:
		p := in.t.(Pauser)
		if ev.Undo {
			id := in.paused[f]
			if id == 0 {
				return "", fmt.Errorf("nothing was paused to resume")
			}
			delete(in.paused, f)
			if err := p.Resume(ctx, id); err != nil {
				return "", err
			}
			return fmt.Sprintf("resumed node %d", id), nil
		}
		id, err := in.target(ctx, f, "pause")
		if err != nil {
			return "", err
		}
		lead, _ := in.g.Leader()
		term := in.g.MaxTerm()
		if err := p.Pause(ctx, id); err != nil {
			return "", err
		}
		in.paused[f] = id
		if id == lead {
			in.measureFailover(ctx, f.Spec, id, term)
		}
		return fmt.Sprintf("paused node %d", id), nil
	case faultspec.Restart:
		ids := []uint64{f.Node}
		if f.Node == 0 {
			ids = in.t.Stopped()
		}
		var done []string
		for _, id := range ids {
			if err := in.t.Restart(ctx, id); err != nil {
				return strings.Join(done, ", "), err
			}
			done = append(done, fmt.Sprint(id))
		}
		if len(done) == 0 {
			return "nothing to restart", nil
		}
		return "restarted node " + strings.Join(done, ", "), nil
	case faultspec.PartitionLeader, faultspec.Isolate:
		p := in.t.(Partitioner)
		if ev.Undo {
			id := in.isolated[f]
			if id == 0 {
				return "", fmt.Errorf("nothing was isolated to reconnect")
			}
			delete(in.isolated, f)
			if err := p.Unisolate(ctx, id); err != nil {
				return "", err
			}
			return fmt.Sprintf("reconnected node %d", id), nil
		}
		id, err := in.target(ctx, f, "partition")
		if err != nil {
			return "", err
		}
		lead, _ := in.g.Leader()
		term := in.g.MaxTerm()
		if err := p.Isolate(ctx, id); err != nil {
			return "", err
		}
		in.isolated[f] = id
		if id == lead {
			in.measureFailover(ctx, f.Spec, id, term)
		}
		return fmt.Sprintf("isolated node %d", id), nil
	case faultspec.Heal:
		if err := in.t.(Partitioner).HealNetwork(ctx); err != nil {
			return "", err
		}
		return "healed", nil
	case faultspec.CrashLeader, faultspec.Crash, faultspec.BitflipWAL, faultspec.TruncateWAL:
		return in.applyDurability(ctx, ev)
	}
	return "", fmt.Errorf("unknown fault kind %q", f.Kind)
}

// target is the node fault f acts on: its node, or for the *-leader faults
// the current leader (waiting up to 5 s for one every running node
// follows); verb says what for, in the error.
func (in *injector) target(ctx context.Context, f faultspec.Fault, verb string) (uint64, error) {
	if f.Node != 0 {
		return f.Node, nil
	}
	id, err := in.g.WaitLeader(ctx, 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("no leader to %s: %w", verb, err)
	}
	return id, nil
}

// applyDurability applies a crash or a WAL damage, the same shape as a
// kill: the node goes down at AT and comes back at once, or after FOR (the
// undo event). A node that refuses a damaged WAL stays down; that is one of
// the two outcomes a damage may have, and What says so. After a crash it
// is a failure, returned as an error.
func (in *injector) applyDurability(ctx context.Context, ev faultspec.Event) (string, error) {
	f := ev.Fault
	cr := in.t.(Crasher)
	if ev.Undo {
		id := in.killed[f]
		if id == 0 {
			return "", fmt.Errorf("nothing was stopped to restart")
		}
		delete(in.killed, f)
		return in.restartChecked(ctx, id, f.IsCrash())
	}
	id, err := in.target(ctx, f, "crash")
	if err != nil {
		return "", err
	}
	lead, _ := in.g.Leader()
	term := in.g.MaxTerm()
	var what string
	if f.IsCrash() {
		last, err := cr.Crash(ctx, id, f.Spec)
		if err != nil {
			return "", err
		}
		what = fmt.Sprintf("crashed node %d (lost what it had not synced; it had reported its log durable to index %d)", id, last)
	} else {
		running := in.t.Running(id)
		if running {
			st, ok := in.t.(Stopper)
			if !ok {
				return "", fmt.Errorf("%s cannot stop node %d to damage its WAL", targetName(in.t), id)
			}
			if err := st.Stop(ctx, id); err != nil {
				return "", err
			}
		}
		rng := rand.New(rand.NewPCG(in.cfg.Seed, uint64(ev.At)+id))
		var err error
		if what, err = cr.DamageWAL(ctx, id, f.Kind, f.Spec, rng); err != nil {
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
	again, err := in.restartChecked(ctx, id, f.IsCrash())
	return what + "; " + again, err
}

// restartChecked restarts node id after a crash or a damage. A refusal of
// a damaged WAL is reported, not an error; anything else that stops the
// restart is.
func (in *injector) restartChecked(ctx context.Context, id uint64, crash bool) (string, error) {
	err := in.t.Restart(ctx, id)
	switch {
	case err == nil:
		return fmt.Sprintf("restarted node %d", id), nil
	case !crash && in.t.(Crasher).Refused(id):
		return fmt.Sprintf("node %d refused to start, and stays down: %v", id, err), nil
	}
	return "", err
}

// applyRules sets every node's message rules and disk delay from the rules
// in force; a later rule of the same kind overrides an earlier one.
func (in *injector) applyRules(ctx context.Context) error {
	for _, id := range in.ruleNodes() {
		var r fault.Rules
		var disk time.Duration
		var hasRule, hasDisk bool
		for _, f := range in.active {
			if f.Node != 0 && f.Node != id {
				continue
			}
			switch f.Kind {
			case faultspec.Loss:
				r.DropRate, hasRule = f.Prob, true
			case faultspec.Dup:
				r.DuplicateRate, hasRule = f.Prob, true
			case faultspec.Reorder:
				r.ReorderRate, hasRule = f.Prob, true
			case faultspec.Delay:
				r.Delay, r.Jitter, hasRule = f.Delay, f.Jitter, true
			case faultspec.SlowDisk:
				disk, hasDisk = f.Delay, true
			}
		}
		if m, ok := in.t.(MessageFaulter); ok && (hasRule || in.ruled[id]) {
			if err := m.SetRules(ctx, id, r); err != nil {
				return fmt.Errorf("rules of node %d: %w", id, err)
			}
			in.ruled[id] = hasRule
		}
		if d, ok := in.t.(DiskSlower); ok && (hasDisk || in.slowed[id]) {
			if err := d.SetDiskDelay(ctx, id, disk); err != nil {
				return fmt.Errorf("slow disk of node %d: %w", id, err)
			}
			in.slowed[id] = hasDisk
		}
	}
	return nil
}

// ruleNodes are the nodes rules may apply to: every ID the run can have.
func (in *injector) ruleNodes() []uint64 {
	return nodeIDs(int(in.cfg.MaxNodeID()))
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
			if id, t := in.g.Leader(); id != 0 && id != old && t > term {
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

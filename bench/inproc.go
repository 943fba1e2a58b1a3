package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport/fault"
)

// inProcessClusterID is the cluster ID of an in-process run ("raftbenc").
const inProcessClusterID = 0x7261667462656e63

// inProcess is the default target: the run's nodes in this process, each
// on its own transport on loopback and its own data directory, every
// transport wrapped by the fault injector (one shared fault.Network), built
// by cluster.Cluster from cfg.Template. It adds to the cluster the
// durability faults (crash, WAL damage) and their checks, and the
// membership changes.
//
// Node IDs run from 1 to cfg.MaxNodeID(): the initial nodes, then the ones
// the schedule adds, in order.
type inProcess struct {
	cfg    *Config
	logger *slog.Logger
	c      *cluster.Cluster
	dur    *durability

	// incs numbers the node incarnations attribution readings have seen
	// (see incarnation), under incMu.
	incMu   sync.Mutex
	incs    map[*node.Node]uint64
	nextInc uint64
}

var (
	_ Target         = (*inProcess)(nil)
	_ Group          = (*inProcess)(nil)
	_ Stopper        = (*inProcess)(nil)
	_ Partitioner    = (*inProcess)(nil)
	_ MessageFaulter = (*inProcess)(nil)
	_ DiskSlower     = (*inProcess)(nil)
	_ Crasher        = (*inProcess)(nil)
	_ Membership     = (*inProcess)(nil)
	_ FaultCounter   = (*inProcess)(nil)
	_ DiskSampler    = (*inProcess)(nil)
	_ Attributor     = (*inProcess)(nil)
)

// startInProcess starts cfg's nodes and waits for nothing (the run waits
// for a leader).
func startInProcess(cfg *Config, env Env) (*inProcess, error) {
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: --dir: %v", ErrBadConfig, err)
		}
	}
	t := &inProcess{cfg: cfg, logger: logger, dur: newDurability(cfg.WAL)}
	tmpl := cfg.Template(inProcessClusterID, logger)
	if cfg.WAL != WALMemory {
		tmpl.OpenWAL = t.dur.open(tmpl.Pebble)
	}
	c, err := cluster.Start(cluster.Options{
		Template: tmpl, Nodes: cfg.Nodes, MaxID: cfg.MaxNodeID(), Dir: cfg.Dir,
		DiskUsage: t.dur.memSize,
	})
	if err != nil {
		return nil, fmt.Errorf("start the in-process cluster: %w", err)
	}
	t.c = c
	return t, nil
}

// inProcessFault is what CheckFault of the in-process target answers, from
// the fault alone (Config.Validate has checked it against the WAL).
func inProcessFault(f faultspec.Fault) error {
	if f.IsProcess() {
		return UnsupportedFault("raftbench in-process", f.Spec, "it acts on a node's process (SIGKILL, SIGSTOP): run with --procs")
	}
	return nil
}

func (t *inProcess) Info() TargetInfo {
	where := fmt.Sprintf("%d nodes in this process on loopback", t.cfg.Nodes)
	if d := t.c.Dir(); d != "" {
		where += ", data in " + d
	}
	// A module may register raftbench's own start under a name of its own
	// (raftbench-quic); the run's system is the name it was run as.
	system := t.cfg.System
	if system == "" {
		system = DefaultSystem
	}
	return TargetInfo{Mode: ModeInProcess, System: system, Version: results.Commit(),
		Nodes: nodeIDs(t.cfg.Nodes), Groups: 1, Where: where}
}

// nodeIDs is 1..n.
func nodeIDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

func (t *inProcess) Group(int) Group { return t }

func (t *inProcess) CheckFault(f faultspec.Fault) error { return inProcessFault(f) }

func (t *inProcess) Running(id uint64) bool { return t.c.Replica(id) != nil }

func (t *inProcess) Stopped() []uint64 {
	return slices.DeleteFunc(t.c.Stopped(), t.dur.isRefused)
}

func (t *inProcess) Restart(_ context.Context, id uint64) error { return t.c.Restart(id) }

func (t *inProcess) Heal(context.Context) error {
	t.c.HealAll()
	return nil
}

func (t *inProcess) NodeStats(context.Context) []results.NodeStats {
	peaks := t.c.DiskPeaks()
	var out []results.NodeStats
	for _, n := range t.c.Running() {
		ns := nodeStatsOf(n.ID(), n.Metrics())
		ns.Restarts, ns.WALPeakBytes = t.c.Restarts(n.ID()), peaks[n.ID()]
		out = append(out, ns)
	}
	return out
}

// nodeStatsOf maps a node's metrics onto summary.json's per-node entry:
// the one mapping, for nodes in this process and node processes alike
// (whose admin endpoint reports the same node.Metrics).
func nodeStatsOf(id uint64, m node.Metrics) results.NodeStats {
	return results.NodeStats{ID: id, Proposals: m.Proposals, Batches: m.Batches,
		Fsyncs: m.Fsyncs, FsyncMeanUS: float64(m.FsyncMean.Microseconds()), FsyncMaxUS: float64(m.FsyncMax.Microseconds()),
		Elections: m.Elections, LoopSaturation: m.LoopSaturation,
		Snapshots: m.Snapshots, Compactions: m.Compactions}
}

func (t *inProcess) Close() error { return t.c.Close() }

// Group: the cluster is one Raft group.

func (t *inProcess) Endpoints() []kv.Endpoint { return t.c.Endpoints() }

func (t *inProcess) Leader() (id, term uint64) { return t.c.Leader() }

func (t *inProcess) MaxTerm() uint64 { return t.c.MaxTerm() }

func (t *inProcess) WaitLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	return t.c.WaitLeader(ctx, timeout)
}

func (t *inProcess) Quiescent(context.Context) (Quiescence, string) {
	lead, term := t.c.Leader()
	ln := t.c.Node(lead)
	if ln == nil {
		return Quiescence{}, "no leader"
	}
	st := ln.Status()
	if st.Role != core.Leader || st.Term != term {
		return Quiescence{}, fmt.Sprintf("node %d stopped leading", lead)
	}
	q := Quiescence{Leader: lead, Term: term, Index: st.Commit}
	for id := range st.Progress {
		if t.dur.isRefused(id) {
			continue // down for good: its WAL was refused (see RefusedNodes)
		}
		q.Members = append(q.Members, id)
	}
	slices.Sort(q.Members)
	switch {
	case st.QueuedProposals > 0:
		return q, fmt.Sprintf("leader %d holds %d queued proposals", lead, st.QueuedProposals)
	case st.LastIndex != st.Commit:
		return q, fmt.Sprintf("leader %d's last index %d is past its commit index %d", lead, st.LastIndex, st.Commit)
	}
	for _, n := range t.c.Running() {
		if ns := n.Status(); ns.QueuedProposals > 0 {
			return q, fmt.Sprintf("node %d holds %d queued proposals", n.ID(), ns.QueuedProposals)
		}
	}
	for _, m := range q.Members {
		n := t.c.Node(m)
		if n == nil {
			return q, fmt.Sprintf("member %d is not running", m)
		}
		if a := n.Status().Applied; a != q.Index {
			return q, fmt.Sprintf("member %d applied %d of %d", m, a, q.Index)
		}
	}
	return q, ""
}

func (t *inProcess) ReplicaState(_ context.Context, id, index uint64) (ReplicaState, error) {
	rep := t.c.Replica(id)
	if rep == nil {
		return ReplicaState{}, fmt.Errorf("member %d stopped while its state was read", id)
	}
	st, ok := rep.StateMachine.(*kv.Store)
	if !ok {
		return ReplicaState{}, fmt.Errorf("member %d's state machine is a %T, not a kv.Store", id, rep.StateMachine)
	}
	return exactState(id, index, rep.Node.Status().Applied, st.StateImage)
}

// exactState applies the one rule by which a replica's state is the state
// at exactly index: read its applied index first (applied), then its image
// and the index of the last command the image holds, atomically (image).
// Every command up to the applied index is in the image, so applied >=
// index and a last command at or before index mean exactly that.
func exactState(id, index, applied uint64, image func() ([]byte, uint64)) (ReplicaState, error) {
	img, last := image()
	switch {
	case last > index:
		return ReplicaState{}, fmt.Errorf("%w: member %d's state holds a command at index %d, after %d", ErrStateMoved, id, last, index)
	case applied < index:
		return ReplicaState{}, fmt.Errorf("%w: member %d applied %d, not yet %d", ErrStateBehind, id, applied, index)
	}
	return ReplicaState{ID: id, Index: index, Applied: applied, Image: img}, nil
}

// Faults.

func (t *inProcess) Stop(_ context.Context, id uint64) error { return t.c.Stop(id) }

func (t *inProcess) Isolate(_ context.Context, id uint64) error {
	t.c.Network().Isolate(id)
	return nil
}

func (t *inProcess) Unisolate(_ context.Context, id uint64) error {
	t.c.Network().Unisolate(id)
	return nil
}

func (t *inProcess) HealNetwork(context.Context) error {
	t.c.Network().Heal()
	return nil
}

func (t *inProcess) SetRules(_ context.Context, id uint64, r fault.Rules) error {
	return t.c.SetRules(id, r)
}

func (t *inProcess) SetDiskDelay(_ context.Context, id uint64, d time.Duration) error {
	t.c.SetDiskDelay(id, d)
	return nil
}

func (t *inProcess) Crash(_ context.Context, id uint64, spec string) (uint64, error) {
	if t.cfg.WAL != WALCrashable {
		return 0, fmt.Errorf("node %d: a crash needs --wal crashable", id)
	}
	var last uint64
	err := t.c.Crash(id, func(*cluster.Replica) { last = t.dur.crash(id, spec) })
	if errors.Is(err, cluster.ErrNotRunning) {
		return 0, err
	}
	if err != nil {
		// Expected noise of a stop on a dropped network; the image is
		// already taken.
		t.logger.Debug("stop after crash", "node", id, "err", err)
	}
	return last, nil
}

func (t *inProcess) DamageWAL(_ context.Context, id uint64, kind faultspec.Kind, spec string, rng *rand.Rand) (string, error) {
	return t.dur.damage(id, t.c.NodeDir(id), kind, spec, rng)
}

func (t *inProcess) Refused(id uint64) bool { return t.dur.isRefused(id) }

func (t *inProcess) DurabilityReport() (map[string]string, []string) {
	return t.dur.refusals(), t.dur.problemList()
}

// Membership.

func (t *inProcess) Members(ctx context.Context, timeout time.Duration) ([]uint64, []uint64, error) {
	return t.c.Members(ctx, timeout)
}

func (t *inProcess) StartNode(ctx context.Context) (uint64, string, error) {
	return t.c.StartNew(ctx)
}

// leaderNode is the running node that leads, or the error a membership
// change retries on.
func (t *inProcess) leaderNode() (*node.Node, error) {
	id, _ := t.c.Leader()
	if l := t.c.Node(id); l != nil {
		return l, nil
	}
	return nil, &node.NotLeaderError{}
}

func (t *inProcess) ChangeMembers(ctx context.Context, ch MemberChange) error {
	l, err := t.leaderNode()
	if err != nil {
		return err
	}
	switch ch.Op {
	case AddLearner:
		return l.AddLearner(ctx, ch.ID, ch.Addr)
	case Promote:
		return l.PromoteLearner(ctx, ch.ID)
	case RemoveMember:
		return l.RemoveNode(ctx, ch.ID)
	case Replace:
		return l.ChangeMembership(ctx, core.ConfChange{Changes: []core.ConfChangeSingle{
			{Type: core.AddVoter, NodeID: ch.ID, Context: []byte(ch.Addr)},
			{Type: core.RemoveNode, NodeID: ch.Old},
		}})
	}
	return fmt.Errorf("unknown membership change %d", ch.Op)
}

func (t *inProcess) HandOff(ctx context.Context, lead uint64) (uint64, error) {
	l := t.c.Node(lead)
	if l == nil {
		return 0, errors.New("the leader stopped")
	}
	var to, match uint64
	for id, p := range l.Status().Progress {
		if id != lead && !p.Learner && t.c.Node(id) != nil && (to == 0 || p.Match > match) {
			to, match = id, p.Match
		}
	}
	if to == 0 {
		return 0, errors.New("no running follower to hand over to")
	}
	tctx, cancel := context.WithTimeout(ctx, 2*t.cfg.ElectionTimeout.D()+time.Second)
	defer cancel()
	if err := l.TransferLeadership(tctx, to); err != nil {
		return 0, fmt.Errorf("to node %d: %w", to, err)
	}
	return to, nil
}

func (t *inProcess) LeaderCommit(context.Context) (uint64, error) {
	l, err := t.leaderNode()
	if err != nil {
		return 0, err
	}
	return l.Status().Commit, nil
}

func (t *inProcess) NodeLog(_ context.Context, id uint64) (uint64, uint64, bool) {
	n := t.c.Node(id)
	if n == nil {
		return 0, 0, false
	}
	applied := n.Status().Applied
	first, err := n.LogFirstIndex()
	if err != nil {
		return applied, 0, true
	}
	return applied, first, true
}

func (t *inProcess) MarkRemoved(id uint64) { t.c.MarkRemoved(id) }

// Reports.

func (t *inProcess) FaultCounters() fault.Counters { return t.c.FaultCounters() }

func (t *inProcess) SampleDisk() { t.c.SampleDisk() }

func (t *inProcess) DiskPeaks() map[uint64]int64 { return t.c.DiskPeaks() }

// Describe and Collect make the target the Prometheus collector of every
// node running at scrape time (--metrics-addr), each node's metrics with
// its "node" label. Nodes come and go with faults, so it describes nothing
// up front (an unchecked collector).
func (t *inProcess) Describe(chan<- *prometheus.Desc) {}

func (t *inProcess) Collect(ch chan<- prometheus.Metric) {
	for _, n := range t.c.Running() {
		n.Collector().Collect(ch)
	}
}

// Attribution.

func (t *inProcess) ReadAttribution(_ context.Context, edge WindowEdge) (AttributionReading, error) {
	running := t.c.Running()
	r := AttributionReading{Nodes: make(map[uint64]NodeAttribution, len(running))}
	// The stage copies away from the window's edge, the fsync counters
	// nearest it (see Attributor).
	stages := func() {
		for _, n := range running {
			a := r.Nodes[n.ID()]
			a.Stages = n.StageTimings()
			r.Nodes[n.ID()] = a
		}
	}
	if edge == WindowOpens {
		stages()
	}
	for _, n := range running {
		a := r.Nodes[n.ID()]
		a.Incarnation, a.Fsyncs = t.incarnation(n), n.Metrics().Fsyncs
		r.Nodes[n.ID()] = a
	}
	if edge != WindowOpens {
		stages()
	}
	return r, nil
}

// incarnation names the run of node n: a number given the first time a
// reading sees it, so a restarted node (a new *node.Node) is never
// differenced against its previous run. Nodes no longer running are
// forgotten.
func (t *inProcess) incarnation(n *node.Node) string {
	t.incMu.Lock()
	defer t.incMu.Unlock()
	if t.incs == nil {
		t.incs = map[*node.Node]uint64{}
	}
	for old := range t.incs {
		if t.c.Node(old.ID()) != old && old != n {
			delete(t.incs, old)
		}
	}
	k, ok := t.incs[n]
	if !ok {
		t.nextInc++
		k = t.nextInc
		t.incs[n] = k
	}
	return fmt.Sprint(k)
}

// Package target runs the peer libraries' clusters (package peers) as
// bench Targets, so `raftbench-peers run --system etcd|etcd-async|
// hashicorp|dragonboat` drives them with raftbench's own workload, fault
// schedule, result directory and end-of-run verdicts. Register adds them,
// and raftbench-quic (raftbench's own nodes on QUIC, a name of its own so
// a comparison table can have it as a column), to bench's registry of
// systems.
//
// # Flags
//
// A run's configuration is bench.Config, whose every knob has raftbench's
// default. A knob left at that default means "not set": the library runs
// at its own default for it (so a config.json written by a peer run, which
// holds every knob, runs again unchanged). A knob set to anything else is
// mapped onto the library when it has that setting (see the table in
// package peers) and refused otherwise, with an error naming the system
// and the flag (ErrBadConfig: exit code 2). The workload knobs (payload,
// clients, rate, duration, warmup, read-ratio, keys, timeouts, count,
// seed, check) are the harness's and apply to every system, as do nodes
// and dir.
//
// # Faults
//
// Every peer system takes kill:N, kill-leader, restart, isolate:N,
// partition-leader, heal and the message rules its transport seam can
// apply (loss and delay on all; dup and reorder on etcd and dragonboat).
// The durability faults (crash, WAL damage), slow-disk, the membership
// changes and the process faults are refused before the run starts: the
// adapters neither wrap the libraries' storage nor change membership.
package target

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/peers/dragonboat"
	"github.com/raftbench/raftbench/peers/etcd"
	"github.com/raftbench/raftbench/peers/hashicorp"
	"github.com/raftbench/raftbench/transport/fault"
)

// System names --system takes for the peers (besides the libraries'
// own names, etcd.Name, hashicorp.Name and dragonboat.Name).
const (
	// EtcdAsync is etcd raft with Config.AsyncStorageWrites.
	EtcdAsync = "etcd-async"
	// RaftbenchQUIC is raftbench's own nodes on the QUIC transport.
	RaftbenchQUIC = "raftbench-quic"
)

// peer is one peer system: a library, and the knobs its name implies.
type peer struct {
	name  string
	lib   peers.Library
	async bool
	doc   string
}

var peerSystems = []peer{
	{name: etcd.Name, lib: etcd.Library, doc: "go.etcd.io/raft/v3: a Ready loop that persists (fsync) before it sends, on its own log file"},
	{name: EtcdAsync, lib: etcd.Library, async: true, doc: "go.etcd.io/raft/v3 with AsyncStorageWrites: appends and applies run beside the Ready loop"},
	{name: hashicorp.Name, lib: hashicorp.Library, doc: "github.com/hashicorp/raft with raft-boltdb/v2, at library defaults"},
	{name: dragonboat.Name, lib: dragonboat.Library, doc: "github.com/lni/dragonboat/v4 with its default Pebble LogDB"},
}

var registerOnce = sync.OnceValue(func() error {
	var errs []error
	for _, p := range peerSystems {
		errs = append(errs, bench.RegisterSystem(bench.System{Name: p.name, Doc: p.doc, Check: p.check, Start: p.start}))
	}
	errs = append(errs, registerQUIC())
	return errors.Join(errs...)
})

// Register adds the peer systems and raftbench-quic to bench's registry.
// It may be called more than once; the first call registers.
func Register() error { return registerOnce() }

// Names lists the systems Register adds.
func Names() []string {
	var ns []string
	for _, p := range peerSystems {
		ns = append(ns, p.name)
	}
	return append(ns, RaftbenchQUIC)
}

// harnessKnobs are the bench knobs that configure the harness, not the
// Raft library: they mean the same for every system.
var harnessKnobs = map[string]bool{
	"system": true, "nodes": true, "dir": true, "seed": true,
	"payload": true, "clients": true, "rate": true, "duration": true, "warmup": true,
	"read-ratio": true, "keys": true, "op-timeout": true, "attempt-timeout": true, "count": true,
	"fault": true, "check": true, "out": true,
	"cpuprofile": true, "memprofile": true, "mutexprofile": true, "blockprofile": true, "trace": true, "pprof-addr": true,
	// Where the nodes run: validated by bench (only raftbench runs them
	// as processes or remotely).
	"procs": true, "netns": true, "dir-template": true, "cluster": true, "admin": true, "admin-token": true, "admin-token-file": true,
}

// mappedKnobs are the bench knobs knobsOf maps onto peers.Knobs.
var mappedKnobs = map[string]bool{
	"tick": true, "election-timeout": true, "heartbeat": true, "max-inflight": true, "max-msg-bytes": true,
	"batch-entries": true, "batch-bytes": true, "sync": true, "prevote": true, "checkquorum": true,
	"snapshot-every": true, "snapshot-trailing": true, "groups": true,
}

// notMapped says, for bench knobs with no peers.Knobs field, why a peer
// system has no such setting. A knob in none of harnessKnobs, mappedKnobs
// and notMapped (one added to bench later) is refused too when set.
var notMapped = map[string]string{
	"transport":             "it runs its own transport over TCP",
	"wal":                   "it runs the log storage it ships with, on disk",
	"proposal-pipeline":     "it is raftbench's own proposal pipeline",
	"max-inflight-bytes":    "it is raftbench's own byte window",
	"max-uncommitted-bytes": "it is raftbench's own bound",
	"read-mode":             "its reads are linearizable by its own mechanism (ReadIndex, Barrier or SyncRead)",
	"wal-memtable":          "it is raftbench's own Pebble WAL setting",
	"wal-spare":             "it is raftbench's own Pebble WAL setting",
	"wal-marker-lag":        "it is raftbench's own WAL durability check",
	"metrics-addr":          "its metrics are not raftbench node metrics",
}

// changed reports whether bench knob name differs in cfg from raftbench's
// default.
func changed(cfg *bench.Config, def *bench.Config, name string) bool {
	k, ok := bench.KnobByName(name)
	return ok && k.Get(cfg) != k.Get(def)
}

// knobsOf maps cfg onto peers.Knobs, setting only what differs from
// raftbench's default, and returns the bench knobs that have no meaning
// for a peer system and are set.
func knobsOf(cfg *bench.Config, async bool) (peers.Knobs, []string) {
	def := bench.Default()
	var k peers.Knobs
	set := func(name string) bool { return changed(cfg, &def, name) }
	if set("tick") {
		k.Tick = cfg.Tick.D()
	}
	if set("election-timeout") {
		k.ElectionTimeout = cfg.ElectionTimeout.D()
	}
	if set("heartbeat") {
		k.Heartbeat = cfg.Heartbeat.D()
	}
	if set("max-inflight") {
		k.MaxInflight = cfg.MaxInflight
	}
	if set("max-msg-bytes") {
		k.MaxMsgBytes = cfg.MaxMsgBytes
	}
	if set("batch-entries") {
		k.BatchEntries = cfg.BatchEntries
	}
	if set("batch-bytes") {
		k.BatchBytes = cfg.BatchBytes
	}
	k.NoSync = !cfg.Sync
	k.DisablePreVote = !cfg.PreVote
	k.DisableCheckQuorum = !cfg.CheckQuorum
	if set("snapshot-every") {
		k.SnapshotEntries = cfg.SnapshotEvery
		if k.SnapshotEntries == 0 {
			// 0 is "never" in raftbench; the libraries' zero is their
			// default, so it is the one value that cannot be expressed.
			k.SnapshotEntries = -1
		}
	}
	if set("snapshot-trailing") || (k.SnapshotEntries > 0 && cfg.SnapshotTrailing > 0) {
		k.SnapshotTrailing = cfg.SnapshotTrailing
	}
	if set("groups") {
		k.Groups = cfg.Groups
	}
	k.AsyncStorageWrites = async
	var refused []string
	for _, kn := range bench.Knobs {
		if !harnessKnobs[kn.Name] && !mappedKnobs[kn.Name] && kn.Get(cfg) != kn.Get(&def) {
			refused = append(refused, kn.Name)
		}
	}
	return k, refused
}

// check refuses every knob and fault of cfg the peer cannot honour, in one
// line wrapping bench.ErrBadConfig.
func (p peer) check(cfg *bench.Config) error {
	k, refused := knobsOf(cfg, p.async)
	var msgs []string
	for _, name := range refused {
		why := notMapped[name]
		if why == "" {
			why = "it is not mapped onto the peer libraries"
		}
		msgs = append(msgs, fmt.Sprintf("--system %s has no --%s knob (%s)", p.name, name, why))
	}
	if k.SnapshotEntries < 0 {
		msgs = append(msgs, fmt.Sprintf("--system %s: --snapshot-every 0 (never) cannot be expressed: leave it at its default for the library's own snapshot policy", p.name))
		k.SnapshotEntries, k.SnapshotTrailing = 0, 0
	}
	if err := p.lib.Check(peers.Config{Dir: "unused", Nodes: cfg.Nodes, Knobs: k}); err != nil {
		msgs = append(msgs, oneLine(p.name, err)...)
	}
	for _, f := range cfg.ParsedFaults() {
		if err := p.checkFault(f); err != nil {
			msgs = append(msgs, "--fault: "+err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", bench.ErrBadConfig, strings.Join(msgs, "; "))
}

// oneLine flattens a joined error into its messages, each naming the
// system (the peers errors say "peers: " first).
func oneLine(system string, err error) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "peers: "))
		if line == "" {
			continue
		}
		if !strings.Contains(line, system) {
			line = "--system " + system + ": " + line
		}
		out = append(out, line)
	}
	return out
}

// checkFault reports nil when p can inject f.
func (p peer) checkFault(f faultspec.Fault) error {
	hint := ""
	switch {
	case f.IsRule() && f.Kind == faultspec.SlowDisk:
		hint = "the adapters do not wrap the library's storage"
	case f.IsRule():
		if err := p.lib.CheckRules(rulesOf(f)); err != nil {
			return bench.UnsupportedFault(p.name, f.Spec, strings.TrimPrefix(err.Error(), "peers: "))
		}
		return nil
	case f.IsMembership():
		hint = "the adapters run a fixed membership"
	case f.IsCrash() || f.DamagesWAL():
		hint = "the adapters do not wrap the library's storage, so nothing knows what was synced; use kill:N or kill-leader"
	case f.IsProcess():
		hint = "its nodes run in this process; use kill:N or kill-leader"
	}
	switch f.Kind {
	case faultspec.Kill, faultspec.KillLeader, faultspec.Restart, faultspec.Isolate, faultspec.PartitionLeader, faultspec.Heal:
		return nil
	}
	if hint == "" {
		hint = "not offered for peer systems"
	}
	return bench.UnsupportedFault(p.name, f.Spec, hint)
}

// rulesOf is the fault.Rules one rule fault sets.
func rulesOf(f faultspec.Fault) fault.Rules {
	var r fault.Rules
	switch f.Kind {
	case faultspec.Loss:
		r.DropRate = f.Prob
	case faultspec.Dup:
		r.DuplicateRate = f.Prob
	case faultspec.Reorder:
		r.ReorderRate = f.Prob
	case faultspec.Delay:
		r.Delay, r.Jitter = f.Delay, f.Jitter
	}
	return r
}

// start starts the peer's cluster for one repetition.
func (p peer) start(_ context.Context, cfg *bench.Config, env bench.Env) (bench.Target, error) {
	k, _ := knobsOf(cfg, p.async)
	dir, tmp := cfg.Dir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", "raftbench-"+p.name+"-")
		if err != nil {
			return nil, fmt.Errorf("%s: data directory: %w", p.name, err)
		}
		dir, tmp = d, d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: --dir: %v", bench.ErrBadConfig, err)
	}
	sys, err := p.lib.Start(peers.Config{Dir: dir, Nodes: cfg.Nodes, Seed: cfg.Seed, Logger: env.Logger, Knobs: k})
	if err != nil {
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	t := &Target{p: p, sys: sys, dir: dir, tmp: tmp, restarts: map[uint64]int{}}
	for g := range sys.Groups() {
		t.groups = append(t.groups, &group{t: t, g: g})
	}
	return t, nil
}

// Target is a running peer cluster as a bench.Target.
type Target struct {
	p   peer
	sys peers.System
	// dir holds the nodes' data; tmp is dir when the target made it (and
	// so removes it on Close).
	dir, tmp string
	groups   []*group

	mu       sync.Mutex // guards restarts and ruled
	restarts map[uint64]int
	// ruled are the nodes whose rules were set and not lifted.
	ruled []uint64
}

var (
	_ bench.Target         = (*Target)(nil)
	_ bench.Stopper        = (*Target)(nil)
	_ bench.Partitioner    = (*Target)(nil)
	_ bench.MessageFaulter = (*Target)(nil)
	_ bench.FaultCounter   = (*Target)(nil)
)

// System is the running peers.System (for tests).
func (t *Target) System() peers.System { return t.sys }

// Info implements bench.Target.
func (t *Target) Info() bench.TargetInfo {
	where := fmt.Sprintf("%d %s nodes in this process on loopback, data in %s", len(t.sys.Nodes()), t.p.name, t.dir)
	if g := t.sys.Groups(); g > 1 {
		where = fmt.Sprintf("%d %s nodes (%d shards each) in this process on loopback, data in %s", len(t.sys.Nodes()), t.p.name, g, t.dir)
	}
	return bench.TargetInfo{Mode: bench.ModeInProcess, System: t.p.name, Version: t.sys.Version(),
		Nodes: t.sys.Nodes(), Groups: t.sys.Groups(), Where: where}
}

// Group implements bench.Target.
func (t *Target) Group(g int) bench.Group { return t.groups[g] }

// CheckFault implements bench.Target.
func (t *Target) CheckFault(f faultspec.Fault) error { return t.p.checkFault(f) }

// Running implements bench.Target.
func (t *Target) Running(id uint64) bool { return t.sys.Running(id) }

// Stopped implements bench.Target.
func (t *Target) Stopped() []uint64 {
	var ids []uint64
	for _, id := range t.sys.Nodes() {
		if !t.sys.Running(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Restart implements bench.Target.
func (t *Target) Restart(_ context.Context, id uint64) error {
	if err := t.sys.Restart(id); err != nil {
		return fmt.Errorf("restart %s node %d: %w", t.p.name, id, err)
	}
	t.mu.Lock()
	t.restarts[id]++
	t.mu.Unlock()
	return nil
}

// Heal implements bench.Target: partitions and message rules are lifted.
func (t *Target) Heal(ctx context.Context) error {
	t.sys.Network().Heal()
	t.mu.Lock()
	ruled := slices.Clone(t.ruled)
	t.mu.Unlock()
	var errs []error
	for _, id := range ruled {
		errs = append(errs, t.SetRules(ctx, id, fault.Rules{}))
	}
	return errors.Join(errs...)
}

// NodeStats implements bench.Target: the libraries expose none of
// raftbench's node counters, so each running node reports its restarts.
func (t *Target) NodeStats(context.Context) []results.NodeStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []results.NodeStats
	for _, id := range t.sys.Nodes() {
		if t.sys.Running(id) {
			out = append(out, results.NodeStats{ID: id, Restarts: t.restarts[id]})
		}
	}
	return out
}

// Close implements bench.Target.
func (t *Target) Close() error {
	err := t.sys.Close()
	if t.tmp != "" {
		if rerr := os.RemoveAll(t.tmp); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", t.tmp, rerr))
		}
	}
	return err
}

// Stop implements bench.Stopper.
func (t *Target) Stop(_ context.Context, id uint64) error { return t.sys.Stop(id) }

// Isolate implements bench.Partitioner.
func (t *Target) Isolate(_ context.Context, id uint64) error {
	t.sys.Network().Isolate(id)
	return nil
}

// Unisolate implements bench.Partitioner.
func (t *Target) Unisolate(_ context.Context, id uint64) error {
	t.sys.Network().Unisolate(id)
	return nil
}

// HealNetwork implements bench.Partitioner.
func (t *Target) HealNetwork(context.Context) error {
	t.sys.Network().Heal()
	return nil
}

// SetRules implements bench.MessageFaulter.
func (t *Target) SetRules(_ context.Context, id uint64, r fault.Rules) error {
	if err := t.sys.SetRules(id, r); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ruled = slices.DeleteFunc(t.ruled, func(x uint64) bool { return x == id })
	if r != (fault.Rules{}) {
		t.ruled = append(t.ruled, id)
	}
	return nil
}

// FaultCounters implements bench.FaultCounter.
func (t *Target) FaultCounters() fault.Counters { return t.sys.FaultCounters() }

// group is one Raft group of the peer cluster.
type group struct {
	t *Target
	g int
}

func (gr *group) Endpoints() []kv.Endpoint {
	var eps []kv.Endpoint
	for _, id := range gr.t.sys.Nodes() {
		eps = append(eps, gr.t.sys.Endpoint(gr.g, id))
	}
	return eps
}

func (gr *group) Leader() (uint64, uint64) { return gr.t.sys.Leader(gr.g) }

func (gr *group) MaxTerm() uint64 { return gr.t.sys.MaxTerm(gr.g) }

// WaitLeader waits until a node leads and every running node names it.
func (gr *group) WaitLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		lead, _ := gr.Leader()
		if lead != 0 && gr.allFollow(lead) {
			return lead, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s group %d: no leader that every running node follows within %v", gr.t.p.name, gr.g, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: wait for a leader: %w", gr.t.p.name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (gr *group) allFollow(lead uint64) bool {
	for _, id := range gr.t.sys.Nodes() {
		if !gr.t.sys.Running(id) {
			continue
		}
		s, err := gr.t.sys.Status(gr.g, id)
		if err != nil || s.Leader != lead {
			return false
		}
	}
	return true
}

// Quiescent implements bench.Group on what the libraries expose: the
// leader's log ends at its commit index, no call through any endpoint is
// unanswered (none of the libraries shows its proposal queue, and a
// proposal is queued only while its call is), and every member runs and
// has applied exactly that index. The membership is fixed: every node.
func (gr *group) Quiescent(context.Context) (bench.Quiescence, string) {
	sys := gr.t.sys
	lead, term := sys.Leader(gr.g)
	if lead == 0 {
		return bench.Quiescence{}, "no leader"
	}
	ls, err := sys.Status(gr.g, lead)
	if err != nil || ls.Role != core.Leader || ls.Term != term {
		return bench.Quiescence{}, fmt.Sprintf("node %d stopped leading", lead)
	}
	q := bench.Quiescence{Leader: lead, Term: term, Index: ls.Commit, Members: sys.Nodes()}
	if ls.LastIndex != ls.Commit {
		return q, fmt.Sprintf("leader %d's last index %d is past its commit index %d", lead, ls.LastIndex, ls.Commit)
	}
	for _, id := range q.Members {
		s, err := sys.Status(gr.g, id)
		switch {
		case err != nil:
			return q, fmt.Sprintf("member %d is not running", id)
		case s.InFlight > 0:
			return q, fmt.Sprintf("node %d has %d calls in flight", id, s.InFlight)
		case s.Applied != q.Index:
			return q, fmt.Sprintf("member %d applied %d of %d", id, s.Applied, q.Index)
		}
	}
	return q, ""
}

// ReplicaState implements bench.Group by bench's rule: the replica's
// applied index first, then its store's image and the index of the last
// command in it, under the store's lock.
func (gr *group) ReplicaState(_ context.Context, id, index uint64) (bench.ReplicaState, error) {
	s, err := gr.t.sys.Status(gr.g, id)
	if err != nil {
		return bench.ReplicaState{}, fmt.Errorf("member %d: %w", id, err)
	}
	st := gr.t.sys.Store(gr.g, id)
	if st == nil {
		return bench.ReplicaState{}, fmt.Errorf("member %d stopped while its state was read", id)
	}
	img, last := st.StateImage()
	switch {
	case last > index:
		return bench.ReplicaState{}, fmt.Errorf("%w: member %d's state holds a command at index %d, after %d", bench.ErrStateMoved, id, last, index)
	case s.Applied < index:
		return bench.ReplicaState{}, fmt.Errorf("%w: member %d applied %d, not yet %d", bench.ErrStateBehind, id, s.Applied, index)
	}
	return bench.ReplicaState{ID: id, Index: index, Applied: s.Applied, Image: img}, nil
}

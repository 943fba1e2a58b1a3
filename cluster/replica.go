package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/wal"
)

// Faults says how a node's transport is wrapped by the fault injector.
type Faults struct {
	// Network holds the partitions. The nodes of an in-process cluster
	// share one, so cutting a link there affects both ends; a node in a
	// process of its own has a private one, which its admin endpoint
	// drives. nil gives the node a private one.
	Network *fault.Network
	// Rules are the message faults in force from the start (kept across
	// restarts by Cluster).
	Rules fault.Rules
	// Seed seeds the injector's random decisions (mixed with the node ID).
	Seed uint64
}

// Listen opens node id's transport, listening on addr (host:port; port 0
// picks a free one, see Addr), wrapped in a fault injector. It is separate
// from Start so a cluster can bind every node's transport, learn the
// addresses, and only then start nodes that name each other as peers.
func (t *Template) Listen(id uint64, addr string, f Faults) (*fault.Transport, error) {
	k, ok := t.transportKind()
	if !ok {
		return nil, t.Validate()
	}
	opts := t.Wire
	opts.ID, opts.ClusterID = id, t.ClusterID
	opts.MaxFrameSize = t.frameSize()
	if opts.Logger == nil {
		opts.Logger = t.Logger
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	inner, err := k.open(opts, addr, t.TLS)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s transport of node %d on %s: %w", k.name, id, addr, err)
	}
	ft, err := fault.Wrap(inner, fault.Config{ID: id, Network: f.Network, Seed: f.Seed, Rules: f.Rules})
	if err != nil {
		_ = inner.Close()
		return nil, fmt.Errorf("cluster: fault wrapper of node %d: %w", id, err)
	}
	return ft, nil
}

// NodeSpec is what is particular to one node: who it is, whom it starts
// with, where it keeps its data.
type NodeSpec struct {
	// ID is the node's ID (non-zero).
	ID uint64
	// Peers maps the voters it starts with (itself included) to their
	// transport addresses. A restarted node also remembers the members it
	// learnt since (they are kept with its snapshots).
	Peers map[uint64]string
	// Transport is the node's transport, from Template.Listen. Start takes
	// it over: the node closes it when it stops, and Start closes it when
	// it fails.
	Transport *fault.Transport
	// Dir is the node's data directory (see DataDir). It may be "" only
	// when the template keeps nothing on disk (Template.NeedsDir).
	Dir string
	// Join starts the node as a learner joining a running cluster: Peers
	// lists the current members and this node, and the leader must then
	// add it (node.AddLearner).
	Join bool
	// Incarnation counts the node's earlier starts; it varies the node's
	// election seed across restarts (NodeSeed).
	Incarnation int
	// Disk is the node's slow-disk control; nil gives it a fresh one. A
	// Cluster keeps one per node so a slow-disk fault outlives restarts.
	Disk *SlowDisk
	// Configure, when set, adjusts the node's Config last, just before it
	// starts (tests use it for knobs the template does not vary per node).
	Configure func(*node.Config)
}

// Replica is one running node with everything wired to it.
type Replica struct {
	// Node is the running node.
	Node *node.Node
	// StateMachine is this incarnation's state machine.
	StateMachine node.StateMachine
	// Fault is the node's fault wrapper (message rules; its Network holds
	// the partitions it obeys).
	Fault *fault.Transport
	// Disk delays the node's WAL saves while a slow-disk fault holds.
	Disk *SlowDisk
	// Log is the node's WAL as the node sees it (behind the slow-disk
	// wrapper). Its reads are safe while the node runs.
	Log wal.Log
	// Dir is the node's data directory (nil without one).
	Dir *DataDir
}

// Start builds node spec.ID from the template and starts it: it opens the
// data directory (refusing one of another node or cluster, or one in use),
// the WAL, and a fresh state machine, and starts the node on
// spec.Transport. On error everything it opened is closed again, the
// transport included.
func (t *Template) Start(spec NodeSpec) (rep *Replica, err error) {
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	if spec.Transport != nil {
		closers = append(closers, spec.Transport.Close)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := t.checkSpec(spec); err != nil {
		return nil, err
	}
	kind, _ := t.walKind()
	rep = &Replica{Fault: spec.Transport, Disk: spec.Disk}
	if rep.Disk == nil {
		rep.Disk = &SlowDisk{}
	}
	walPath := ""
	if spec.Dir != "" {
		d, err := OpenDataDir(spec.Dir, t.ClusterID, spec.ID)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", spec.ID, err)
		}
		closers = append(closers, d.Close)
		rep.Dir = d
		if kind.usesDir {
			walPath = d.WALDir()
		}
	}
	open := kind.open
	if t.OpenWAL != nil {
		open = func(id uint64, dir string, _ *Template) (wal.Log, error) { return t.OpenWAL(id, dir) }
	}
	lg, err := open(spec.ID, walPath, t)
	if err != nil {
		return nil, fmt.Errorf("node %d: open %s WAL: %w", spec.ID, kind.name, err)
	}
	closers = append(closers, lg.Close)
	rep.Log = rep.Disk.Wrap(lg)
	sm, err := t.newStateMachine(spec.ID)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", spec.ID, err)
	}
	rep.StateMachine = sm
	cfg := t.Node
	cfg.ID, cfg.Peers, cfg.Transport, cfg.Log, cfg.StateMachine = spec.ID, maps.Clone(spec.Peers), spec.Transport, rep.Log, sm
	cfg.JoinAsLearner = spec.Join
	cfg.Seed = NodeSeed(t.Node.Seed, spec.ID, spec.Incarnation)
	if t.snapshots() {
		cfg.SnapshotDir = rep.Dir.SnapDir()
	}
	if spec.Configure != nil {
		spec.Configure(&cfg)
	}
	n, err := node.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("start node %d: %w", spec.ID, err)
	}
	rep.Node = n
	return rep, nil
}

// checkSpec reports every problem with spec against the template.
func (t *Template) checkSpec(spec NodeSpec) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: node %d: "+format, append([]any{ErrInvalidSpec, spec.ID}, args...)...))
	}
	if spec.ID == core.None {
		bad("ID is 0; node IDs must be non-zero")
	}
	if spec.Transport == nil {
		bad("no Transport (open one with Template.Listen)")
	}
	if spec.Dir == "" && t.NeedsDir() {
		bad("no data directory, but the %s WAL or snapshots need one", t.walName())
	}
	if _, ok := spec.Peers[spec.ID]; !ok {
		bad("Peers %v does not include the node itself", slicesSorted(spec.Peers))
	}
	return errors.Join(errs...)
}

func (t *Template) walName() string {
	k, _ := t.walKind()
	return k.name
}

// Stop stops the node as a kill does (saves already queued complete, the
// rest is lost with it), then releases its data directory. The node closes
// its transport and WAL itself.
func (r *Replica) Stop() error {
	err := r.Node.Stop()
	if r.Dir != nil {
		err = errors.Join(err, r.Dir.Close())
	}
	if err != nil {
		return fmt.Errorf("stop node %d: %w", r.Node.ID(), err)
	}
	return nil
}

// Addr is the node's transport address.
func (r *Replica) Addr() string { return r.Fault.Addr() }

// SlowDisk makes a node's WAL saves sleep while a slow-disk fault is in
// force. The zero value is a healthy disk. Safe for concurrent use.
type SlowDisk struct {
	delay atomic.Int64
}

// SetDelay makes every later save sleep d first (0: no delay).
func (s *SlowDisk) SetDelay(d time.Duration) { s.delay.Store(int64(max(d, 0))) }

// Delay is the delay in force.
func (s *SlowDisk) Delay() time.Duration { return time.Duration(s.delay.Load()) }

// Wrap returns lg with its saves delayed by s.
func (s *SlowDisk) Wrap(lg wal.Log) wal.Log { return &slowLog{Log: lg, disk: s} }

// slowLog is a wal.Log whose saves sleep first while its disk is slow.
type slowLog struct {
	wal.Log
	disk *SlowDisk
}

func (l *slowLog) Save(hs core.HardState, ents []core.Entry, sync bool) error {
	if d := l.disk.Delay(); d > 0 {
		time.Sleep(d)
	}
	return l.Log.Save(hs, ents, sync)
}

// Transport is the node's transport without the fault wrapper, for its
// counters.
func (r *Replica) Transport() transport.Transport { return r.Fault.Inner() }

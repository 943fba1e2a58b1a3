// Package hashicorp runs github.com/hashicorp/raft clusters behind
// peers.System, at the library's defaults (raft.DefaultConfig), with
// raft-boltdb/v2 as the log and stable store (a bolt transaction, fsync'd,
// per append) and a raft.FileSnapshotStore keeping 2 snapshots (what
// Consul and Nomad keep), over NetworkTransport with a pool of 3
// connections and a 10 s I/O timeout (Consul's values; the library has no
// defaults for them).
//
// The state machine is kv.Store as a raft.BatchingFSM; snapshots (taken
// at the library's default cadence: every 120 s when 8192 entries have
// been applied since the last) are kv.Store images.
//
// Reads: hashicorp/raft has no ReadIndex. Read issues a Barrier — a log
// entry that commits only through a quorum in the leader's current term,
// whose future resolves only after the FSM applied everything before it —
// and then reads the store. That is linearizable: every write
// acknowledged before the read began was applied before the barrier. It
// costs a log append (batched with the other appends) per read.
// VerifyLeader with the commit index is cheaper but not linearizable in
// this library: the FSM may lag the commit index it would wait for, and a
// new leader's commit index lags the previous leader's until its own first
// entry commits.
//
// Knobs: --election-timeout sets HeartbeatTimeout and ElectionTimeout
// (both 1 s by default) and LeaderLeaseTimeout to half of it (the default
// ratio, 500 ms : 1 s); --batch-entries sets MaxAppendEntries (the most
// logs dispatched to one append and sent in one AppendEntries, default
// 64); --max-inflight sets NetworkTransportConfig.MaxRPCsInFlight (the
// pipeline depth, default 2); --sync=false sets raft-boltdb's NoSync;
// --prevote=false sets PreVoteDisabled; --snapshot-every and
// --snapshot-trailing set SnapshotThreshold and TrailingLogs, and with
// them SnapshotInterval becomes SnapshotCheck. The others are refused: there is no
// tick, the heartbeat interval is fixed at HeartbeatTimeout/10, leaders
// always step down without a quorum, and nothing bounds bytes per batch
// or message.
//
// Faults: loss and partitions per RPC, delay and jitter per stream write
// (see net.go); duplication and reordering are refused.
package hashicorp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/transport/fault"
)

// Name is the system name.
const Name = "hashicorp"

// The transport settings the library leaves to its user, and the
// snapshots a FileSnapshotStore keeps: Consul's.
const (
	MaxPool        = 3
	IOTimeout      = 10 * time.Second
	RetainSnapshot = 2
)

// SnapshotCheck is SnapshotInterval when --snapshot-every is given. The
// library checks SnapshotThreshold only every SnapshotInterval (120 s by
// default, randomised up to twice that), which in a run of seconds would
// make --snapshot-every mean nothing; checked every second (to two), it
// means "about every N entries".
const SnapshotCheck = time.Second

// Library is the hashicorp/raft adapter.
var Library = peers.Library{
	Name:       Name,
	Module:     "github.com/hashicorp/raft",
	Check:      check,
	CheckRules: checkRules,
}

func init() { Library.Start = Start } // Start refers to Library

var supported = []string{"election-timeout", "batch-entries", "max-inflight", "sync", "prevote", "snapshot-every", "snapshot-trailing"}

var unsupportedWhy = map[string]string{
	"tick":               "it runs on timers, not ticks",
	"heartbeat":          "heartbeats go every HeartbeatTimeout/10; --election-timeout sets HeartbeatTimeout",
	"checkquorum":        "a leader always steps down after LeaderLeaseTimeout without a quorum",
	"batch-bytes":        "MaxAppendEntries (--batch-entries) counts entries, not bytes",
	"max-msg-bytes":      "MaxAppendEntries (--batch-entries) counts entries, not bytes",
	"groups":             "one Raft group per node; dragonboat runs several",
	"etcd-async-storage": "that is etcd raft's",
}

func checkRules(r fault.Rules) error {
	why := "its transport is request/response RPCs over ordered streams, so a message can be neither duplicated nor overtaken"
	return peers.RefuseRules(Name, r, map[string]string{"dup": why, "reorder": why})
}

// settings is a checked Config with the library configuration it gives.
type settings struct {
	peers.Config
	raft        raft.Config // LocalID unset
	maxInflight int
}

func check(cfg peers.Config) error { _, err := resolve(cfg); return err }

func resolve(cfg peers.Config) (*settings, error) {
	cfg.EnsureDefaults()
	errs := []error{cfg.Validate(), cfg.Knobs.Unsupported(Name, supported, unsupportedWhy)}
	k := cfg.Knobs
	rc := *raft.DefaultConfig()
	if k.ElectionTimeout > 0 {
		rc.HeartbeatTimeout, rc.ElectionTimeout = k.ElectionTimeout, k.ElectionTimeout
		rc.LeaderLeaseTimeout = k.ElectionTimeout / 2
	}
	if k.BatchEntries > 0 {
		rc.MaxAppendEntries = k.BatchEntries
	}
	if k.SnapshotEntries > 0 {
		rc.SnapshotThreshold = uint64(k.SnapshotEntries)
		rc.SnapshotInterval = SnapshotCheck
	}
	if k.SnapshotTrailing > 0 {
		rc.TrailingLogs = uint64(k.SnapshotTrailing)
	}
	rc.PreVoteDisabled = k.DisablePreVote
	rc.LocalID = "1" // for ValidateConfig
	if err := raft.ValidateConfig(&rc); err != nil {
		errs = append(errs, fmt.Errorf("%w: %s: %w (from --election-timeout %v, --batch-entries %d)",
			peers.ErrInvalidConfig, Name, err, k.ElectionTimeout, k.BatchEntries))
	}
	rc.LocalID = ""
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &settings{Config: cfg, raft: rc, maxInflight: k.MaxInflight}, nil
}

type system struct {
	*peers.Base
	s     *settings
	addrs map[uint64]string
	first map[uint64]net.Listener
}

// Start starts cfg.Nodes hashicorp/raft servers, each in cfg.Dir/node<ID>.
func Start(cfg peers.Config) (peers.System, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	lns, err := peers.FreeAddrs(s.Nodes)
	if err != nil {
		return nil, err
	}
	sys := &system{s: s, addrs: map[uint64]string{}, first: map[uint64]net.Listener{}}
	for i, ln := range lns {
		id := uint64(i + 1)
		sys.addrs[id], sys.first[id] = ln.Addr().String(), ln
	}
	sys.Base = peers.NewBase(peers.BaseConfig{Library: Library, Nodes: s.Nodes, Groups: 1, Seed: s.Seed, Start: sys.start})
	if err := sys.StartAll(); err != nil {
		for _, ln := range sys.first {
			_ = ln.Close()
		}
		return nil, err
	}
	return sys, nil
}

func (sys *system) start(id uint64, link *peers.Link) (peers.Node, error) {
	ln := sys.first[id]
	delete(sys.first, id)
	if ln == nil {
		var err error
		if ln, err = peers.Listen(sys.addrs[id]); err != nil {
			return nil, err
		}
	}
	n, err := sys.startNode(id, ln, link)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return n, nil
}

// hcNode is one incarnation of one server.
type hcNode struct {
	id    uint64
	r     *raft.Raft
	fsm   *fsm
	bolt  *raftboltdb.BoltStore
	trans *faultTransport
	sl    *streamLayer
}

func (sys *system) startNode(id uint64, ln net.Listener, link *peers.Link) (*hcNode, error) {
	s := sys.s
	dir := peers.NodeDir(s.Dir, id)
	logger := hclogTo(s.Logger.With("system", Name, "node", id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hashicorp: node %d: %w", id, err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		NoSync:      s.Knobs.NoSync,
		BoltOptions: &bbolt.Options{Timeout: time.Second}, // a locked file is an error, not a hang
	})
	if err != nil {
		return nil, fmt.Errorf("hashicorp: node %d: open bolt store in %s: %w", id, dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, RetainSnapshot, logger)
	if err != nil {
		_ = bolt.Close()
		return nil, fmt.Errorf("hashicorp: node %d: snapshot store in %s: %w", id, dir, err)
	}
	store, err := kv.NewStore(kv.StoreOptions{})
	if err != nil {
		_ = bolt.Close()
		return nil, err
	}
	sl := &streamLayer{ln: ln, link: link, conns: map[*delayConn]struct{}{}}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          sl,
		MaxPool:         MaxPool,
		Timeout:         IOTimeout,
		MaxRPCsInFlight: s.maxInflight,
		Logger:          logger,
	})
	trans := &faultTransport{NetworkTransport: nt, self: id, link: link, peer: sys.Link}
	rc := s.raft
	rc.LocalID = serverID(id)
	rc.Logger = logger
	fail := func(err error) (*hcNode, error) {
		_ = trans.Close()
		sl.closeAll()
		_ = bolt.Close()
		return nil, err
	}
	existing, err := raft.HasExistingState(bolt, bolt, snaps)
	if err != nil {
		return fail(fmt.Errorf("hashicorp: node %d: %w", id, err))
	}
	if !existing {
		// Every server bootstraps itself with the same configuration,
		// which the library documents as safe.
		var conf raft.Configuration
		for pid := uint64(1); pid <= uint64(s.Nodes); pid++ {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(pid), Address: raft.ServerAddress(sys.addrs[pid])})
		}
		if err := raft.BootstrapCluster(&rc, bolt, bolt, snaps, trans, conf); err != nil {
			return fail(fmt.Errorf("hashicorp: node %d: bootstrap: %w", id, err))
		}
	}
	f := &fsm{store: store}
	r, err := raft.NewRaft(&rc, f, bolt, bolt, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("hashicorp: node %d: %w", id, err))
	}
	return &hcNode{id: id, r: r, fsm: f, bolt: bolt, trans: trans, sl: sl}, nil
}

// wait waits for a future, or for ctx. A future given up on resolves
// later on its own; the goroutine then ends.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return peers.Timeout(ctx)
	}
}

// enqueueTimeout is how long the library may take to accept a call: what
// is left of ctx (0, no bound, without a deadline).
func enqueueTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}

// callErr maps the library's errors onto the node package's.
func (n *hcNode) callErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		_, lead := n.r.LeaderWithID()
		return peers.NotLeader(nodeID(lead))
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("hashicorp node %d: %w: %w", n.id, node.ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("hashicorp node %d: %w", n.id, node.ErrStopped)
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, node.ErrTimeout):
		if ctx.Err() != nil {
			return peers.Timeout(ctx)
		}
		return fmt.Errorf("hashicorp node %d: %w: %w", n.id, node.ErrTimeout, err)
	}
	return fmt.Errorf("hashicorp node %d: %w", n.id, err)
}

// Propose implements peers.Node: Apply, answered once the leader's FSM
// applied it.
func (n *hcNode) Propose(ctx context.Context, _ int, cmd []byte) (any, error) {
	f := n.r.Apply(cmd, enqueueTimeout(ctx))
	if err := wait(ctx, f); err != nil {
		return nil, n.callErr(ctx, err)
	}
	return f.Response(), nil
}

// Read implements peers.Node: a Barrier, then the store (see the package
// documentation for why this and not VerifyLeader).
func (n *hcNode) Read(ctx context.Context, _ int, query []byte) (any, error) {
	if err := wait(ctx, n.r.Barrier(enqueueTimeout(ctx))); err != nil {
		return nil, n.callErr(ctx, err)
	}
	return n.fsm.store.Read(query)
}

// Status implements peers.Node.
func (n *hcNode) Status(int) peers.Status {
	_, lead := n.r.LeaderWithID()
	s := peers.Status{
		Term: n.r.CurrentTerm(), Leader: nodeID(lead), Commit: n.r.CommitIndex(),
		LastIndex: n.r.LastIndex(), Applied: n.applied(),
	}
	switch n.r.State() {
	case raft.Leader:
		s.Role = core.Leader
	case raft.Candidate:
		s.Role = core.Candidate
	default:
		s.Role = core.Follower
	}
	return s
}

// applied is the index through which the FSM reflects the log. The
// library's AppliedIndex counts logs handed towards the FSM, not applied
// by it, and the FSM never sees no-op or barrier logs; so it is the FSM's
// last log, extended over the logs after it that are not commands, up to
// what the library handed on.
func (n *hcNode) applied() uint64 {
	at, handed := n.fsm.applied.Load(), n.r.AppliedIndex()
	const scan = 64 // bounds the work of one Status call under load
	var l raft.Log
	for i := at + 1; i <= handed && i <= at+scan; i++ {
		err := n.bolt.GetLog(i, &l)
		if err == nil && l.Type == raft.LogCommand {
			return i - 1
		}
		if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
			return i - 1
		}
		// Not a command, or compacted into a snapshot the FSM holds.
		at = i
	}
	return at
}

// Leads implements peers.Node.
func (n *hcNode) Leads(int) (bool, uint64) { return n.r.State() == raft.Leader, n.r.CurrentTerm() }

// Store implements peers.Node.
func (n *hcNode) Store(int) *kv.Store { return n.fsm.store }

// Stop implements peers.Node: Shutdown (which syncs nothing), every
// connection closed (the NetworkTransport leaves its pooled ones open),
// and the stores closed.
func (n *hcNode) Stop() error {
	err := n.r.Shutdown().Error()
	err = errors.Join(err, n.trans.Close())
	n.sl.closeAll()
	return errors.Join(err, n.bolt.Close())
}

// hclogTo returns an hclog.Logger that passes warnings and errors to l.
func hclogTo(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: slogWriter{l}, DisableTime: true})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if strings.Contains(line, "[ERROR]") {
		w.l.Error(line)
	} else {
		w.l.Warn(line)
	}
	return len(p), nil
}

var _ io.Writer = slogWriter{}

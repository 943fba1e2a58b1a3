// Package dragonboat runs github.com/lni/dragonboat/v4 clusters behind
// peers.System: one NodeHost per node, with its own directory and the
// library's default LogDB (sharded Pebble, every write synced), running
// Knobs.Groups Raft shards (default 1), replica i of every shard on node
// i. Group g of the System is shard g+1; each has its own kv.Store per
// replica, as an IConcurrentStateMachine (dragonboat hands it whole
// batches, and kv.Store answers lookups while it applies). Proposals use
// the NO-OP client session: kv.Store's own sessions give exactly-once.
//
// How kv.Client endpoints map onto shards: a client belongs to one group
// for its whole life (its session lives in that group's store), so a
// harness gives client c the endpoints System.Endpoint(c mod Groups, id)
// for every node id — shard 1 + c mod N — and checks each group's
// replicas, acknowledged writes and history on their own.
//
// Reads are SyncRead: ReadIndex, then Lookup once this replica applied the
// read index — linearizable. Only a replica that knows itself leader of
// the shard serves Propose and Read; the others answer with the leader
// they know.
//
// Knobs: --tick is RTTMillisecond (whole milliseconds), --election-timeout
// and --heartbeat are ElectionRTT and HeartbeatRTT (dragonboat needs the
// election timeout above twice the heartbeat), --prevote and
// --checkquorum map directly, --snapshot-every and --snapshot-trailing
// are SnapshotEntries and CompactionOverhead (snapshots are off by
// default, as in the library), --groups is the shard count. Refused: the
// LogDB always syncs (no --sync=false), and dragonboat has no per-shard
// knob for the append window, message size or batch size.
//
// Faults: every message fault applies, per Raft message, at the
// adapter's raftio.ITransport (see net.go).
package dragonboat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	dboat "github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	dblog "github.com/lni/dragonboat/v4/logger"
	pb "github.com/lni/dragonboat/v4/raftpb"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/transport/fault"
)

// Name is the system name.
const Name = "dragonboat"

// MaxGroups bounds --groups: every shard costs every NodeHost a replica.
const MaxGroups = 1024

// Library is the dragonboat adapter.
var Library = peers.Library{
	Name:       Name,
	Module:     "github.com/lni/dragonboat/v4",
	Check:      check,
	CheckRules: func(r fault.Rules) error { return r.Validate() },
}

func init() { Library.Start = Start } // Start refers to Library

var supported = []string{"tick", "election-timeout", "heartbeat", "prevote", "checkquorum",
	"snapshot-every", "snapshot-trailing", "groups"}

var unsupportedWhy = map[string]string{
	"sync":               "its LogDB syncs every write",
	"max-inflight":       "its replication window is not configurable",
	"max-msg-bytes":      "message size is a process-wide soft setting, not configurable per shard",
	"batch-entries":      "each step worker batches whatever is queued; there is no bound to set",
	"batch-bytes":        "each step worker batches whatever is queued; there is no bound to set",
	"etcd-async-storage": "that is etcd raft's",
}

// settings is a checked Config with dragonboat's values resolved.
type settings struct {
	peers.Config
	rtt                 uint64 // RTTMillisecond
	election, heartbeat uint64 // in RTTs
	groups              int
}

func check(cfg peers.Config) error { _, err := resolve(cfg); return err }

func resolve(cfg peers.Config) (*settings, error) {
	cfg.EnsureDefaults()
	errs := []error{cfg.Validate(), cfg.Knobs.Unsupported(Name, supported, unsupportedWhy)}
	tick, election, heartbeat, err := cfg.Knobs.Ticks(Name, node.DefaultTickInterval, node.DefaultElectionTicks, node.DefaultHeartbeatTicks)
	errs = append(errs, err)
	if tick%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("%w: %s: --tick %v is not a whole number of milliseconds (RTTMillisecond)", peers.ErrInvalidConfig, Name, tick))
	}
	if err == nil && election <= 2*heartbeat {
		errs = append(errs, fmt.Errorf("%w: %s: the election timeout (%d ticks) must be above twice the heartbeat (%d ticks)", peers.ErrInvalidConfig, Name, election, heartbeat))
	}
	s := &settings{Config: cfg, rtt: uint64(tick / time.Millisecond), election: uint64(election), heartbeat: uint64(heartbeat), groups: max(cfg.Knobs.Groups, 1)}
	if s.groups > MaxGroups {
		errs = append(errs, fmt.Errorf("%w: %s: --groups %d is above the limit %d", peers.ErrInvalidConfig, Name, s.groups, MaxGroups))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

type system struct {
	*peers.Base
	s      *settings
	addrs  map[uint64]string
	nodeOf map[string]uint64
	first  map[uint64]net.Listener
}

// Start starts cfg.Nodes NodeHosts, each in cfg.Dir/node<ID>, each running
// a replica of every shard.
func Start(cfg peers.Config) (peers.System, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	logTo.Store(s.Logger)
	lns, err := peers.FreeAddrs(s.Nodes)
	if err != nil {
		return nil, err
	}
	sys := &system{s: s, addrs: map[uint64]string{}, nodeOf: map[string]uint64{}, first: map[uint64]net.Listener{}}
	for i, ln := range lns {
		id := uint64(i + 1)
		addr := ln.Addr().String()
		sys.addrs[id], sys.nodeOf[addr], sys.first[id] = addr, id, ln
	}
	sys.Base = peers.NewBase(peers.BaseConfig{Library: Library, Nodes: s.Nodes, Groups: s.groups, Seed: s.Seed, Start: sys.start})
	if err := sys.StartAll(); err != nil {
		for _, ln := range sys.first {
			_ = ln.Close()
		}
		return nil, err
	}
	return sys, nil
}

// dbNode is one incarnation of one NodeHost.
type dbNode struct {
	id     uint64
	nh     *dboat.NodeHost
	groups []*group
}

// group is one shard's replica on a node.
type group struct {
	shard  uint64
	sess   *client.Session
	sm     atomic.Pointer[kvSM] // set when dragonboat creates the replica
	reader dboat.ReadonlyLogReader

	// query serialises commit queries (dragonboat takes one at a time per
	// shard); commit is the last answer.
	query  sync.Mutex
	commit atomic.Uint64
}

func (sys *system) start(id uint64, link *peers.Link) (peers.Node, error) {
	s := sys.s
	ln := sys.first[id]
	delete(sys.first, id)
	logger := s.Logger.With("system", Name, "node", id)
	f := &transportFactory{id: id, nodeOf: sys.nodeOf, ln: ln, link: link, logger: logger}
	nh, err := dboat.NewNodeHost(config.NodeHostConfig{
		NodeHostDir:    peers.NodeDir(s.Dir, id),
		RTTMillisecond: s.rtt,
		RaftAddress:    sys.addrs[id],
		Expert:         config.ExpertConfig{TransportFactory: f},
	})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, fmt.Errorf("dragonboat: node %d: NodeHost: %w", id, err)
	}
	members := map[uint64]dboat.Target{}
	for pid, addr := range sys.addrs {
		members[pid] = addr
	}
	n := &dbNode{id: id, nh: nh}
	for g := range s.groups {
		gr := &group{shard: uint64(g + 1)}
		rc := config.Config{
			ReplicaID:          id,
			ShardID:            gr.shard,
			ElectionRTT:        s.election,
			HeartbeatRTT:       s.heartbeat,
			CheckQuorum:        !s.Knobs.DisableCheckQuorum,
			PreVote:            !s.Knobs.DisablePreVote,
			SnapshotEntries:    uint64(s.Knobs.SnapshotEntries),
			CompactionOverhead: uint64(s.Knobs.SnapshotTrailing),
		}
		err := nh.StartConcurrentReplica(members, false, func(uint64, uint64) sm.IConcurrentStateMachine {
			store, err := kv.NewStore(kv.StoreOptions{})
			if err != nil {
				panic(err) // the default options are valid
			}
			m := &kvSM{store: store}
			gr.sm.Store(m)
			return m
		}, rc)
		if err == nil {
			gr.reader, err = nh.GetLogReader(gr.shard)
		}
		if err != nil {
			nh.Close()
			return nil, fmt.Errorf("dragonboat: node %d: start shard %d: %w", id, gr.shard, err)
		}
		gr.sess = nh.GetNoOPSession(gr.shard)
		n.groups = append(n.groups, gr)
	}
	return n, nil
}

// withDeadline gives ctx a deadline if it has none: dragonboat's
// synchronous calls require one.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Minute)
}

// leads refuses a call unless this replica knows itself leader of the
// shard.
func (n *dbNode) leads(gr *group) error {
	lead, _, valid, err := n.nh.GetLeaderID(gr.shard)
	switch {
	case err != nil:
		return n.callErr(context.Background(), err)
	case !valid:
		return peers.NotLeader(0)
	case lead != n.id:
		return peers.NotLeader(lead)
	}
	return nil
}

// callErr maps dragonboat's errors onto the node package's.
func (n *dbNode) callErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, dboat.ErrShardNotReady):
		// Dropped before reaching the log: no leader known.
		return peers.NotLeader(0)
	case errors.Is(err, dboat.ErrClosed), errors.Is(err, dboat.ErrShardClosed), errors.Is(err, dboat.ErrShardNotFound):
		return fmt.Errorf("dragonboat node %d: %w", n.id, node.ErrStopped)
	case errors.Is(err, dboat.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		if ctx.Err() != nil {
			return peers.Timeout(ctx)
		}
		return fmt.Errorf("dragonboat node %d: %w: %w", n.id, node.ErrTimeout, err)
	}
	return fmt.Errorf("dragonboat node %d: %w", n.id, err)
}

func (n *dbNode) group(g int) *group { return n.groups[g] }

// Propose implements peers.Node.
func (n *dbNode) Propose(ctx context.Context, g int, cmd []byte) (any, error) {
	gr := n.group(g)
	if err := n.leads(gr); err != nil {
		return nil, err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	res, err := n.nh.SyncPropose(ctx, gr.sess, cmd)
	if err != nil {
		return nil, n.callErr(ctx, err)
	}
	r, err := kv.DecodeResult(res.Data)
	if err != nil {
		return nil, fmt.Errorf("dragonboat node %d: %w", n.id, err)
	}
	return r, nil
}

// Read implements peers.Node.
func (n *dbNode) Read(ctx context.Context, g int, query []byte) (any, error) {
	gr := n.group(g)
	if err := n.leads(gr); err != nil {
		return nil, err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	v, err := n.nh.SyncRead(ctx, gr.shard, query)
	if err != nil {
		return nil, n.callErr(ctx, err)
	}
	return v, nil
}

// Status implements peers.Node.
func (n *dbNode) Status(g int) peers.Status {
	gr := n.group(g)
	var s peers.Status
	lead, _, valid, err := n.nh.GetLeaderID(gr.shard)
	if err == nil && valid {
		s.Leader = lead
		if lead == n.id {
			s.Role = core.Leader
		}
	}
	_, s.Term, _, _ = n.nh.GetLeaderID(gr.shard)
	_, s.LastIndex = gr.reader.GetRange()
	s.Commit = n.commitIndex(gr, s.LastIndex)
	s.Applied = n.applied(gr, s.Commit)
	return s
}

// Leads implements peers.Node.
func (n *dbNode) Leads(g int) (bool, uint64) {
	lead, term, valid, err := n.nh.GetLeaderID(n.group(g).shard)
	return err == nil && valid && lead == n.id, term
}

// commitQueryTimeout bounds how long Status waits for the shard's commit
// index before it reports the last one it got.
const commitQueryTimeout = 200 * time.Millisecond

// commitIndex asks the shard's Raft state for its commit index.
// dragonboat publishes it nowhere else (ReadonlyLogReader.NodeState is
// the state loaded at start, never updated), but a raft log query
// answers with the committed range: asking for entries past the last one
// costs no log read and comes back "out of range" with the range's end,
// commit+1.
func (n *dbNode) commitIndex(gr *group, last uint64) uint64 {
	gr.query.Lock()
	defer gr.query.Unlock()
	rs, err := n.nh.QueryRaftLog(gr.shard, last+1, last+2, 0)
	if err != nil {
		return gr.commit.Load()
	}
	defer rs.Release()
	select {
	case r := <-rs.AppliedC():
		if r.RequestOutOfRange() || r.Completed() { // else RaftLogs panics
			if _, rg := r.RaftLogs(); rg.LastIndex > 0 {
				gr.commit.Store(rg.LastIndex - 1)
			}
		}
	case <-time.After(commitQueryTimeout):
	}
	return gr.commit.Load()
}

// applied is the index through which the shard's state machine reflects
// the log. dragonboat does not publish its applied index and keeps
// entries without a command (a new leader's empty entry, membership
// entries) from the state machine, so it is the state machine's last
// entry, extended over the entries after it that carry no command, up to
// commit.
func (n *dbNode) applied(gr *group, commit uint64) uint64 {
	m := gr.sm.Load()
	if m == nil {
		return 0
	}
	at := m.applied.Load()
	if at >= commit {
		return at
	}
	const scan = 64 // bounds the work of one Status call under load
	ents, err := gr.reader.Entries(at+1, min(commit, at+scan)+1, 1<<20)
	if err != nil {
		return at // compacted or not yet readable: claim nothing more
	}
	for _, e := range ents {
		if e.Index != at+1 || isCommand(e) {
			break
		}
		at = e.Index
	}
	return at
}

func isCommand(e pb.Entry) bool {
	return !e.IsConfigChange() && e.Type != pb.MetadataEntry && !e.IsEmpty()
}

// Store implements peers.Node.
func (n *dbNode) Store(g int) *kv.Store {
	if m := n.group(g).sm.Load(); m != nil {
		return m.store
	}
	return nil
}

// Stop implements peers.Node: NodeHost.Close, which stops every replica,
// the transport and the LogDB (whose writes were all synced).
func (n *dbNode) Stop() error {
	n.nh.Close()
	return nil
}

// kvSM is kv.Store as a dragonboat IConcurrentStateMachine.
type kvSM struct {
	store *kv.Store
	// applied is the index of the last entry given to Update, or of the
	// snapshot recovered.
	applied atomic.Uint64
	mu      sync.Mutex // serialises Update against itself (dragonboat does, too)
}

var _ sm.IConcurrentStateMachine = (*kvSM)(nil)

// Update applies a batch; each entry's result carries the encoded
// kv.Result.
func (m *kvSM) Update(es []sm.Entry) ([]sm.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cmds := make([]node.Command, len(es))
	for i, e := range es {
		cmds[i] = node.Command{Index: e.Index, Data: e.Cmd}
	}
	for i, r := range m.store.Apply(cmds) {
		es[i].Result = sm.Result{Data: kv.AppendResult(nil, r.(kv.Result))}
	}
	if len(es) > 0 {
		m.applied.Store(es[len(es)-1].Index)
	}
	return es, nil
}

// Lookup answers a kv query.
func (m *kvSM) Lookup(q any) (any, error) {
	b, ok := q.([]byte)
	if !ok {
		return nil, fmt.Errorf("dragonboat: lookup of a %T, want a kv query", q)
	}
	return m.store.Read(b)
}

// PrepareSnapshot takes the image between batches.
func (m *kvSM) PrepareSnapshot() (any, error) { return m.store.Snapshot() }

// SaveSnapshot writes the image PrepareSnapshot took.
func (m *kvSM) SaveSnapshot(ctx any, w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	_, err := w.Write(ctx.([]byte))
	return err
}

// RecoverFromSnapshot replaces the store's state with an image.
func (m *kvSM) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("dragonboat: read snapshot: %w", err)
	}
	if err := m.store.Restore(b); err != nil {
		return err
	}
	m.applied.Store(m.store.AppliedIndex())
	return nil
}

// Close implements sm.IConcurrentStateMachine.
func (m *kvSM) Close() error { return nil }

// logTo is where dragonboat's process-wide loggers write: the Logger of
// the System started last.
var logTo atomic.Pointer[slog.Logger]

func init() {
	logTo.Store(slog.New(slog.DiscardHandler))
	// dragonboat creates its loggers lazily, so a factory set at init
	// time serves all of them.
	dblog.SetLoggerFactory(func(pkg string) dblog.ILogger { return &dbLogger{pkg: pkg, level: dblog.WARNING} })
}

// dbLogger passes dragonboat's warnings and errors to logTo.
type dbLogger struct {
	pkg   string
	mu    sync.Mutex
	level dblog.LogLevel
}

func (l *dbLogger) SetLevel(lv dblog.LogLevel) { l.mu.Lock(); l.level = lv; l.mu.Unlock() }

func (l *dbLogger) enabled(lv dblog.LogLevel) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return lv <= l.level
}

func (l *dbLogger) Debugf(string, ...any) {}
func (l *dbLogger) Infof(string, ...any)  {}

func (l *dbLogger) Warningf(f string, v ...any) {
	if l.enabled(dblog.WARNING) {
		logTo.Load().Warn(fmt.Sprintf(f, v...), "pkg", l.pkg)
	}
}

func (l *dbLogger) Errorf(f string, v ...any) {
	if l.enabled(dblog.ERROR) {
		logTo.Load().Error(fmt.Sprintf(f, v...), "pkg", l.pkg)
	}
}

func (l *dbLogger) Panicf(f string, v ...any) {
	s := fmt.Sprintf(f, v...)
	logTo.Load().Error(s, "pkg", l.pkg)
	panic(s)
}

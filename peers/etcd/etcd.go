// Package etcd runs go.etcd.io/raft/v3 clusters behind peers.System.
//
// Each node is a raft.Node driven the way the library's documentation
// prescribes. By default, one Ready loop: persist the Ready's entries and
// hard state (one write, fsync'd when Ready.MustSync), then send its
// messages, then apply its committed entries, then Advance. With
// Knobs.AsyncStorageWrites, the library's asynchronous storage writes
// (raft.Config.AsyncStorageWrites): the loop sends network messages at
// once and hands MsgStorageAppend to an append goroutine (which writes
// every queued append in one write and one fsync, updates the
// MemoryStorage, then delivers the responses) and MsgStorageApply to an
// apply goroutine. That overlaps the leader's fsync with replication
// (thesis §10.2.1), which the synchronous loop cannot.
//
// Storage is raft.MemoryStorage rebuilt on start from an fsync'd
// append-only log file with crash recovery (see log.go for its format
// and for why not etcd's own WAL). The adapter takes no snapshots: the log
// grows for the whole run and a restarted node replays it all.
//
// Reads use ReadIndex (raft.Config.ReadOnlyOption ReadOnlySafe, the
// default): the leader confirms its leadership with a heartbeat quorum
// and the read waits until this node applied the read index, which makes
// it linearizable. Only the leader serves Propose and Read; proposals are
// not forwarded (DisableProposalForwarding), so a refused one is known not
// to be in any log.
//
// Every knob of peers.Knobs maps except --batch-entries and --batch-bytes
// (etcd raft appends whatever was proposed between two Readys; it has no
// batch bound), --snapshot-every and --snapshot-trailing (no snapshots),
// and --groups. Every message fault applies (loss, dup, reorder, delay
// and jitter, partitions), per message, at the adapter's transport.
package etcd

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/transport/fault"
)

// Name is the system name.
const Name = "etcd"

// The message size and window etcd raft leaves to its user; these are
// etcd server's own (embed.DefaultMaxRequestBytes-sized messages of 1 MiB,
// 512 in flight), the configuration etcd raft runs with in practice.
const (
	DefaultMaxSizePerMsg   = 1 << 20
	DefaultMaxInflightMsgs = 512
)

// Library is the etcd raft adapter.
var Library = peers.Library{
	Name:       Name,
	Module:     "go.etcd.io/raft/v3",
	Check:      check,
	CheckRules: func(r fault.Rules) error { return r.Validate() },
}

func init() { Library.Start = Start } // Start refers to Library

var supported = []string{"tick", "election-timeout", "heartbeat", "max-inflight", "max-msg-bytes",
	"sync", "prevote", "checkquorum", "etcd-async-storage"}

var unsupportedWhy = map[string]string{
	"batch-entries":     "etcd raft appends every proposal stepped between two Readys; there is no batch bound",
	"batch-bytes":       "etcd raft appends every proposal stepped between two Readys; there is no batch bound",
	"snapshot-every":    "this adapter takes no snapshots; the log is kept whole",
	"snapshot-trailing": "this adapter takes no snapshots; the log is kept whole",
	"groups":            "one Raft group per node; dragonboat runs several",
}

// settings is a checked Config with the library's values resolved.
type settings struct {
	peers.Config
	tick                time.Duration
	election, heartbeat int
	maxSize             uint64
	maxInflight         int
}

func check(cfg peers.Config) error { _, err := resolve(cfg); return err }

func resolve(cfg peers.Config) (*settings, error) {
	cfg.EnsureDefaults()
	errs := []error{cfg.Validate(), cfg.Knobs.Unsupported(Name, supported, unsupportedWhy)}
	s := &settings{Config: cfg, maxSize: DefaultMaxSizePerMsg, maxInflight: DefaultMaxInflightMsgs}
	var err error
	s.tick, s.election, s.heartbeat, err = cfg.Knobs.Ticks(Name, node.DefaultTickInterval, node.DefaultElectionTicks, node.DefaultHeartbeatTicks)
	errs = append(errs, err)
	if k := cfg.Knobs.MaxMsgBytes; k > 0 {
		s.maxSize = uint64(k)
	}
	if k := cfg.Knobs.MaxInflight; k > 0 {
		s.maxInflight = k
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// system is a running etcd raft cluster.
type system struct {
	*peers.Base
	s     *settings
	addrs map[uint64]string
	// first holds each node's listener for its first start; later starts
	// listen on the same address again.
	first map[uint64]net.Listener
}

// Start starts cfg.Nodes etcd raft nodes, each in cfg.Dir/node<ID>.
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
	n, err := startNode(sys.s, id, sys.addrs, ln, link)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return n, nil
}

// nextCallID numbers proposals and reads across every node and
// incarnation of the process, from a random start, so an entry proposed
// by an earlier incarnation can never be taken for a live call.
var nextCallID atomic.Uint64

func init() {
	var b [8]byte
	_, _ = crand.Read(b[:])
	nextCallID.Store(binary.LittleEndian.Uint64(b[:]) >> 1)
}

// etcdNode is one incarnation of one node.
type etcdNode struct {
	id      uint64
	s       *settings
	rn      raft.Node
	storage *raft.MemoryStorage
	log     *walLog
	tr      *transport
	store   *kv.Store
	logger  *slog.Logger

	// Published by whoever learns them, read by Status and the callers.
	role    atomic.Uint32 // core.Role
	lead    atomic.Uint64
	term    atomic.Uint64
	commit  atomic.Uint64
	applied atomic.Uint64

	// mu guards the calls in flight.
	mu sync.Mutex
	// props maps a proposal's ID (the first 8 bytes of its entry) to its
	// caller.
	props map[uint64]*call
	// reads maps a ReadIndex request context to its caller until the
	// leader answers with a read index; then it moves to ready.
	reads map[uint64]*call
	// ready holds reads with a read index, waiting for applied to reach
	// it.
	ready []*call
	// failed is the storage error that stopped the node, if any.
	failed  error
	stopped bool

	stopc chan struct{}
	wg    sync.WaitGroup

	// Async storage writes: the loop's queues to the two storage
	// goroutines (nil in the synchronous mode).
	appendq, applyq *msgQueue
}

// call is a Propose or Read waiting for its answer.
type call struct {
	query []byte // a read's query
	index uint64 // a read's read index, once known
	done  chan result
}

type result struct {
	v   any
	err error
}

func (c *call) finish(v any, err error) { c.done <- result{v, err} }

func startNode(s *settings, id uint64, addrs map[uint64]string, ln net.Listener, link *peers.Link) (*etcdNode, error) {
	dir := peers.NodeDir(s.Dir, id)
	lg, rec, err := openLog(dir, s.Knobs.NoSync)
	if err != nil {
		return nil, err
	}
	logger := s.Logger.With("system", Name, "node", id)
	if rec.repaired > 0 {
		logger.Warn("etcd: cut a torn tail off the log", "bytes", rec.repaired)
	}
	store, err := kv.NewStore(kv.StoreOptions{})
	if err != nil {
		_ = lg.close()
		return nil, err
	}
	storage := raft.NewMemoryStorage()
	fresh := rec.hs == nil && len(rec.entries) == 0
	if rec.hs != nil {
		if err := storage.SetHardState(rec.hs); err != nil {
			_ = lg.close()
			return nil, fmt.Errorf("etcd: node %d: restore hard state: %w", id, err)
		}
	}
	if err := storage.Append(rec.entries); err != nil {
		_ = lg.close()
		return nil, fmt.Errorf("etcd: node %d: restore %d entries: %w", id, len(rec.entries), err)
	}
	n := &etcdNode{
		id: id, s: s, storage: storage, log: lg, store: store, logger: logger,
		props: map[uint64]*call{}, reads: map[uint64]*call{}, stopc: make(chan struct{}),
	}
	n.term.Store(rec.hs.GetTerm())
	n.commit.Store(rec.hs.GetCommit())
	rc := &raft.Config{
		ID:                        id,
		ElectionTick:              s.election,
		HeartbeatTick:             s.heartbeat,
		Storage:                   storage,
		MaxSizePerMsg:             s.maxSize,
		MaxInflightMsgs:           s.maxInflight,
		CheckQuorum:               !s.Knobs.DisableCheckQuorum,
		PreVote:                   !s.Knobs.DisablePreVote,
		DisableProposalForwarding: true,
		AsyncStorageWrites:        s.Knobs.AsyncStorageWrites,
		Logger:                    raftLogger{logger},
	}
	if fresh {
		var ps []raft.Peer
		for pid := uint64(1); pid <= uint64(s.Nodes); pid++ {
			ps = append(ps, raft.Peer{ID: pid})
		}
		n.rn = raft.StartNode(rc, ps)
	} else {
		n.rn = raft.RestartNode(rc)
	}
	n.tr = newTransport(netConfig{
		id: id, addrs: addrs, ln: ln, link: link, logger: logger,
		deliver: func(m *pb.Message) error {
			if err := n.rn.Step(context.Background(), m); errors.Is(err, raft.ErrStopped) {
				return errStopped
			}
			return nil
		},
		unreachable: n.rn.ReportUnreachable,
	})
	if s.Knobs.AsyncStorageWrites {
		n.appendq, n.applyq = newMsgQueue(), newMsgQueue()
		n.wg.Add(3)
		go n.asyncLoop()
		go n.appendLoop()
		go n.applyLoop()
	} else {
		n.wg.Add(1)
		go n.syncLoop()
	}
	return n, nil
}

// fail stops the node after a storage error: every call gets the error.
func (n *etcdNode) fail(err error) {
	n.logger.Error("etcd: node stopped by a storage error", "err", err)
	n.mu.Lock()
	if n.failed == nil {
		n.failed = err
	}
	n.mu.Unlock()
	n.failAll(err)
	go n.rn.Stop()
}

func (n *etcdNode) failAll(err error) {
	n.mu.Lock()
	var cs []*call
	for _, c := range n.props {
		cs = append(cs, c)
	}
	for _, c := range n.reads {
		cs = append(cs, c)
	}
	cs = append(cs, n.ready...)
	n.props, n.reads, n.ready = map[uint64]*call{}, map[uint64]*call{}, nil
	n.mu.Unlock()
	for _, c := range cs {
		c.finish(nil, err)
	}
}

// calls returns the table of proposals or of reads; n.mu must be held
// (observe replaces the tables).
func (n *etcdNode) calls(read bool) map[uint64]*call {
	if read {
		return n.reads
	}
	return n.props
}

// register adds a call under a fresh ID, or refuses when the node has
// stopped or does not lead.
func (n *etcdNode) register(read bool, c *call) (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.failed != nil:
		return 0, n.failed
	case n.stopped:
		return 0, fmt.Errorf("etcd node %d: %w", n.id, node.ErrStopped)
	case core.Role(n.role.Load()) != core.Leader:
		return 0, peers.NotLeader(n.lead.Load())
	}
	id := nextCallID.Add(1)
	n.calls(read)[id] = c
	return id, nil
}

func (n *etcdNode) unregister(read bool, id uint64) {
	n.mu.Lock()
	delete(n.calls(read), id)
	n.mu.Unlock()
}

// stepErr turns an error of raft.Node's Propose or ReadIndex into the
// node package's.
func (n *etcdNode) stepErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raft.ErrStopped):
		return fmt.Errorf("etcd node %d: %w", n.id, node.ErrStopped)
	case errors.Is(err, raft.ErrProposalDropped) && core.Role(n.role.Load()) != core.Leader:
		return peers.NotLeader(n.lead.Load())
	case ctx.Err() != nil:
		return peers.Timeout(ctx)
	}
	return fmt.Errorf("etcd node %d: %w", n.id, err)
}

// Propose implements peers.Node.
func (n *etcdNode) Propose(ctx context.Context, _ int, cmd []byte) (any, error) {
	c := &call{done: make(chan result, 1)}
	id, err := n.register(false, c)
	if err != nil {
		return nil, err
	}
	data := make([]byte, 8+len(cmd))
	binary.LittleEndian.PutUint64(data, id)
	copy(data[8:], cmd)
	if err := n.rn.Propose(ctx, data); err != nil {
		n.unregister(false, id)
		return nil, n.stepErr(ctx, err)
	}
	return n.await(ctx, c, false, id)
}

// Read implements peers.Node.
func (n *etcdNode) Read(ctx context.Context, _ int, query []byte) (any, error) {
	c := &call{query: query, done: make(chan result, 1)}
	id, err := n.register(true, c)
	if err != nil {
		return nil, err
	}
	var rctx [8]byte
	binary.LittleEndian.PutUint64(rctx[:], id)
	if err := n.rn.ReadIndex(ctx, rctx[:]); err != nil {
		n.unregister(true, id)
		return nil, n.stepErr(ctx, err)
	}
	return n.await(ctx, c, true, id)
}

func (n *etcdNode) await(ctx context.Context, c *call, read bool, id uint64) (any, error) {
	select {
	case r := <-c.done:
		return r.v, r.err
	case <-ctx.Done():
		n.unregister(read, id) // a late answer finds no one; done has room
		return nil, peers.Timeout(ctx)
	}
}

// Status implements peers.Node.
func (n *etcdNode) Status(int) peers.Status {
	last, _ := n.storage.LastIndex()
	return peers.Status{
		Role: core.Role(n.role.Load()), Term: n.term.Load(), Leader: n.lead.Load(),
		Commit: n.commit.Load(), Applied: n.applied.Load(), LastIndex: last,
	}
}

// Leads implements peers.Node.
func (n *etcdNode) Leads(int) (bool, uint64) {
	return core.Role(n.role.Load()) == core.Leader, n.term.Load()
}

// Store implements peers.Node.
func (n *etcdNode) Store(int) *kv.Store { return n.store }

// Stop implements peers.Node: the loops end, raft stops, the connections
// close, and the log file is closed without a sync.
func (n *etcdNode) Stop() error {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	close(n.stopc)
	n.rn.Stop()
	n.wg.Wait()
	n.tr.close()
	n.failAll(fmt.Errorf("etcd node %d: %w", n.id, node.ErrStopped))
	return n.log.close()
}

// raftLogger passes etcd raft's warnings and errors to slog and drops its
// informational lines (every election, every term).
type raftLogger struct{ l *slog.Logger }

func (raftLogger) Debug(...any)                  {}
func (raftLogger) Debugf(string, ...any)         {}
func (raftLogger) Info(...any)                   {}
func (raftLogger) Infof(string, ...any)          {}
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.Panic(v...) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.Panicf(f, v...) }
func (r raftLogger) Panic(v ...any)              { s := fmt.Sprint(v...); r.l.Error(s); panic(s) }
func (r raftLogger) Panicf(f string, v ...any)   { s := fmt.Sprintf(f, v...); r.l.Error(s); panic(s) }

// Package nodetest runs whole Raft clusters in one process for tests: every
// node on a real transport (TCP or QUIC) on loopback, wrapped in the fault
// injector, with its own Pebble WAL (and snapshot directory) in a temp dir.
// It is test plumbing, kept out of package node so the library never
// imports testing.
package nodetest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/wal"
)

// Options shape a cluster.
type Options struct {
	// Nodes is the initial number of voters, IDs 1..Nodes.
	Nodes int
	// Transport is "tcp" (default) or "quic".
	Transport string
	// NewSM makes a fresh state machine for a node (on every start).
	NewSM func(id uint64) node.StateMachine
	// Snapshots gives every node a SnapshotDir.
	Snapshots bool
	// Configure adjusts each node's Config before it starts.
	Configure func(*node.Config)
}

// Cluster is a running test cluster. Its methods are safe to call from
// several goroutines (a load generator's and the test's).
type Cluster struct {
	tb        testing.TB
	opts      Options
	clusterID uint64
	// Net holds the partitions shared by every node's fault wrapper.
	Net *fault.Network

	mu     sync.Mutex
	addrs  map[uint64]string // every node ever started
	voters map[uint64]string // the initial membership
	dirs   map[uint64]string
	nodes  map[uint64]*node.Node
	sms    map[uint64]node.StateMachine
	faults map[uint64]*fault.Transport
}

// New starts a cluster of o.Nodes voters; it is stopped when the test ends.
func New(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	c := &Cluster{
		tb: tb, opts: o, clusterID: 7, Net: fault.NewNetwork(),
		addrs: map[uint64]string{}, voters: map[uint64]string{}, dirs: map[uint64]string{},
		nodes: map[uint64]*node.Node{}, sms: map[uint64]node.StateMachine{}, faults: map[uint64]*fault.Transport{},
	}
	trs := map[uint64]transport.Transport{}
	for id := uint64(1); id <= uint64(o.Nodes); id++ {
		trs[id] = c.newTransport(id, "127.0.0.1:0")
		c.voters[id] = trs[id].Addr()
	}
	maps.Copy(c.addrs, c.voters)
	for id := uint64(1); id <= uint64(o.Nodes); id++ {
		c.start(id, trs[id], c.voters, false)
	}
	tb.Cleanup(c.StopAll)
	return c
}

func (c *Cluster) newTransport(id uint64, addr string) *fault.Transport {
	c.tb.Helper()
	opts := transport.Options{ID: id, ClusterID: c.clusterID, Logger: slog.New(slog.DiscardHandler)}
	var inner transport.Transport
	var err error
	switch c.opts.Transport {
	case "quic":
		inner, err = quic.New(quic.Config{Options: opts, ListenAddr: addr})
	case "tcp", "":
		inner, err = tcp.New(tcp.Config{Options: opts, ListenAddr: addr})
	default:
		err = fmt.Errorf("unknown transport %q", c.opts.Transport)
	}
	if err != nil {
		c.tb.Fatalf("transport for %d: %v", id, err)
	}
	ft, err := fault.Wrap(inner, fault.Config{ID: id, Network: c.Net, Seed: id})
	if err != nil {
		c.tb.Fatalf("fault wrapper for %d: %v", id, err)
	}
	c.mu.Lock()
	c.faults[id] = ft
	c.mu.Unlock()
	return ft
}

func (c *Cluster) start(id uint64, tr transport.Transport, peers map[uint64]string, join bool) {
	c.tb.Helper()
	c.mu.Lock()
	dir, ok := c.dirs[id]
	if !ok {
		dir = filepath.Join(c.tb.TempDir(), fmt.Sprintf("node%d", id))
		c.dirs[id] = dir
	}
	c.mu.Unlock()
	lg, err := wal.OpenPebble(filepath.Join(dir, "wal"), wal.PebbleOptions{})
	if err != nil {
		c.tb.Fatalf("open wal of %d: %v", id, err)
	}
	sm := c.opts.NewSM(id)
	cfg := node.Config{
		ID: id, Peers: peers, Transport: tr, Log: lg, StateMachine: sm,
		TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4,
		JoinAsLearner: join,
		Seed:          id,
		Logger:        slog.New(slog.DiscardHandler),
	}
	if c.opts.Snapshots {
		cfg.SnapshotDir = filepath.Join(dir, "snap")
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	n, err := node.Start(cfg)
	if err != nil {
		c.tb.Fatalf("start node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = n, sm
	c.mu.Unlock()
}

// Node returns the running node id, or nil.
func (c *Cluster) Node(id uint64) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// SM returns the state machine of node id's current incarnation.
func (c *Cluster) SM(id uint64) node.StateMachine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

// IDs lists the running nodes.
func (c *Cluster) IDs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.nodes))
}

// Nodes returns the running nodes, in ID order.
func (c *Cluster) Nodes() []*node.Node {
	var out []*node.Node
	for _, id := range c.IDs() {
		if n := c.Node(id); n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Fault returns node id's fault wrapper.
func (c *Cluster) Fault(id uint64) *fault.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faults[id]
}

// Addr is node id's transport address.
func (c *Cluster) Addr(id uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[id]
}

// Dir is node id's data directory (WAL in wal/, snapshots in snap/).
func (c *Cluster) Dir(id uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[id]
}

// Stop stops node id; its WAL and snapshots stay for Restart.
func (c *Cluster) Stop(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		if err := n.Stop(); err != nil {
			c.tb.Errorf("stop %d: %v", id, err)
		}
	}
}

// Restart starts a stopped node again on its directory and address.
func (c *Cluster) Restart(id uint64) {
	c.tb.Helper()
	c.start(id, c.newTransport(id, c.Addr(id)), c.voters, false)
}

// AddNode starts a new, empty node id that joins as a learner (the caller
// then adds it with node.AddLearner on the leader), and returns its address.
func (c *Cluster) AddNode(id uint64) string {
	c.tb.Helper()
	tr := c.newTransport(id, "127.0.0.1:0")
	c.mu.Lock()
	c.addrs[id] = tr.Addr()
	peers := maps.Clone(c.voters)
	for _, n := range c.nodes {
		for mid := range n.Status().Progress {
			if a, ok := c.addrs[mid]; ok {
				peers[mid] = a
			}
		}
	}
	peers[id] = tr.Addr()
	c.mu.Unlock()
	c.start(id, tr, peers, true)
	return tr.Addr()
}

// StopAll stops every node.
func (c *Cluster) StopAll() {
	for _, id := range c.IDs() {
		c.Stop(id)
	}
}

// LeaderNode returns the running node that believes it leads in the
// highest term, or nil.
func (c *Cluster) LeaderNode() *node.Node {
	var best *node.Node
	var term uint64
	for _, n := range c.Nodes() {
		if s := n.Status(); s.Role == core.Leader && s.Term >= term {
			best, term = n, s.Term
		}
	}
	return best
}

// WaitLeader waits for a leader that every running node agrees on.
func (c *Cluster) WaitLeader(timeout time.Duration) uint64 {
	c.tb.Helper()
	var lead uint64
	WaitFor(c.tb, timeout, "a leader every running node agrees on", func() bool {
		lead = 0
		for _, n := range c.Nodes() {
			s := n.Status()
			if s.Leader == core.None || (lead != 0 && s.Leader != lead) {
				return false
			}
			lead = s.Leader
		}
		l := c.Node(lead)
		return l != nil && l.Status().Role == core.Leader
	})
	return lead
}

// WaitFor polls cond until it holds, failing the test at the deadline.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Endpoint is node id as a client sees it: every call goes to the node's
// current incarnation, so clients keep working across Stop and Restart (a
// stopped node answers node.ErrStopped).
type Endpoint struct {
	C  *Cluster
	Id uint64
}

// ID is the node's ID.
func (e Endpoint) ID() uint64 { return e.Id }

// Propose forwards to the running node.
func (e Endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	if n := e.C.Node(e.Id); n != nil {
		return n.Propose(ctx, cmd)
	}
	return nil, node.ErrStopped
}

// Read forwards to the running node.
func (e Endpoint) Read(ctx context.Context, q []byte) (any, error) {
	if n := e.C.Node(e.Id); n != nil {
		return n.Read(ctx, q)
	}
	return nil, node.ErrStopped
}

// Package nodetest runs whole Raft clusters in one process for tests. The
// cluster is cluster.Cluster — the one way nodes are wired, the same as the
// harness's and `raftbench node`'s — on a real transport (TCP or QUIC) on
// loopback, wrapped in the fault injector, each node with its own Pebble
// WAL (and snapshot directory) in the test's temporary directory, with
// timing fast enough for tests. This package only adds the testing
// conveniences: a failed start or wait fails the test, and the cluster
// stops when the test ends. It is kept out of package node so the library
// never imports testing.
package nodetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport/fault"
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

// spareIDs is how many IDs past the initial nodes AddNode may use.
const spareIDs = 32

// clusterID is every test cluster's ID.
const clusterID = 7

// Cluster is a running test cluster. Its methods are safe to call from
// several goroutines (a load generator's and the test's).
type Cluster struct {
	tb testing.TB
	c  *cluster.Cluster
	// Net holds the partitions shared by every node's fault wrapper.
	Net *fault.Network
}

// New starts a cluster of o.Nodes voters; it is stopped when the test ends.
func New(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	tmpl := cluster.Template{
		ClusterID: clusterID, Transport: o.Transport, WAL: cluster.WALPebble, Snapshots: o.Snapshots,
		Node: node.Config{
			TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4,
			Logger: slog.New(slog.DiscardHandler),
		},
	}
	if o.NewSM != nil {
		tmpl.NewStateMachine = func(id uint64) (node.StateMachine, error) { return o.NewSM(id), nil }
	}
	c, err := cluster.Start(cluster.Options{
		Template: tmpl, Nodes: o.Nodes, MaxID: uint64(o.Nodes + spareIDs), Dir: tb.TempDir(), Configure: o.Configure,
	})
	if err != nil {
		tb.Fatalf("nodetest: %v", err)
	}
	tc := &Cluster{tb: tb, c: c, Net: c.Network()}
	tb.Cleanup(tc.StopAll)
	return tc
}

// Cluster is the underlying cluster.Cluster.
func (c *Cluster) Cluster() *cluster.Cluster { return c.c }

// Node returns the running node id, or nil.
func (c *Cluster) Node(id uint64) *node.Node { return c.c.Node(id) }

// SM returns the state machine of node id's current incarnation.
func (c *Cluster) SM(id uint64) node.StateMachine { return c.c.StateMachine(id) }

// IDs lists the running nodes.
func (c *Cluster) IDs() []uint64 { return c.c.IDs() }

// Nodes returns the running nodes, in ID order.
func (c *Cluster) Nodes() []*node.Node { return c.c.Running() }

// Fault returns node id's fault wrapper (nil while it is not running).
func (c *Cluster) Fault(id uint64) *fault.Transport { return c.c.Fault(id) }

// Addr is node id's transport address.
func (c *Cluster) Addr(id uint64) string { return c.c.Addr(id) }

// Dir is node id's data directory (WAL in wal/, snapshots in snap/).
func (c *Cluster) Dir(id uint64) string { return c.c.NodeDir(id) }

// Stop stops node id; its WAL and snapshots stay for Restart. Stopping a
// node that is not running does nothing.
func (c *Cluster) Stop(id uint64) {
	if c.c.Replica(id) == nil {
		return
	}
	if err := c.c.Stop(id); err != nil {
		c.tb.Errorf("nodetest: %v", err)
	}
}

// Restart starts a stopped node again on its directory and address.
func (c *Cluster) Restart(id uint64) {
	c.tb.Helper()
	if err := c.c.Restart(id); err != nil {
		c.tb.Fatalf("nodetest: %v", err)
	}
}

// AddNode starts a new, empty node id that joins as a learner (the caller
// then adds it with node.AddLearner on the leader), and returns its address.
func (c *Cluster) AddNode(id uint64) string {
	c.tb.Helper()
	addr, err := c.c.Join(context.Background(), id)
	if err != nil {
		c.tb.Fatalf("nodetest: %v", err)
	}
	return addr
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
	id, _ := c.c.Leader()
	return c.c.Node(id)
}

// WaitLeader waits for a leader that every running node agrees on.
func (c *Cluster) WaitLeader(timeout time.Duration) uint64 {
	c.tb.Helper()
	lead, err := c.c.WaitLeader(context.Background(), timeout)
	if err != nil {
		c.tb.Fatalf("nodetest: %v", err)
	}
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

// Endpoint is node id as a client sees it (cluster.Endpoint): every call
// goes to the node's current incarnation, so clients keep working across
// Stop and Restart (a stopped node answers node.ErrStopped).
type Endpoint struct {
	C  *Cluster
	Id uint64
}

// ID is the node's ID.
func (e Endpoint) ID() uint64 { return e.Id }

// Propose forwards to the running node.
func (e Endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	return e.C.c.Endpoint(e.Id).Propose(ctx, cmd)
}

// Read forwards to the running node.
func (e Endpoint) Read(ctx context.Context, q []byte) (any, error) {
	return e.C.c.Endpoint(e.Id).Read(ctx, q)
}

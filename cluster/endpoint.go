package cluster

import (
	"context"
	"fmt"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// Endpoint is a kv.Endpoint for one node ID of a Cluster that follows the
// node across restarts: while it is stopped, calls fail with
// node.ErrStopped (the command may have reached its log before it
// stopped). Before a node with that ID has started, and once it is
// removed, calls fail with a *node.NotLeaderError naming the current
// leader, so a client moves on at once and knows the command reached no
// log. An answer from a node that crashed (Cluster.Crash) while the call
// was in flight is withheld as node.ErrStopped. A call takes no lock.
type Endpoint struct {
	c  *Cluster
	id uint64
}

var _ kv.Endpoint = Endpoint{}

// Endpoint returns the endpoint of node id.
func (c *Cluster) Endpoint(id uint64) Endpoint { return Endpoint{c: c, id: id} }

// Endpoints returns one endpoint per node ID the cluster can have
// (1..MaxID), for kv.NewClient.
func (c *Cluster) Endpoints() []kv.Endpoint {
	eps := make([]kv.Endpoint, 0, c.maxID)
	for id := uint64(1); id <= c.maxID; id++ {
		eps = append(eps, c.Endpoint(id))
	}
	return eps
}

// ID is the node's ID.
func (e Endpoint) ID() uint64 { return e.id }

// current returns the running node and its crash count, or the error a
// caller gets instead. It takes no lock: every operation of every client
// passes here.
func (e Endpoint) current() (*node.Node, uint64, error) {
	if e.id == 0 || e.id >= uint64(len(e.c.slots)) {
		lead, _ := e.c.Leader()
		return nil, 0, &node.NotLeaderError{Leader: lead}
	}
	sl := &e.c.slots[e.id]
	crashes := sl.crashes.Load()
	rep, started, removed := sl.rep.Load(), sl.started.Load(), sl.removed.Load()
	switch {
	case !started || (removed && rep == nil):
		lead, _ := e.c.Leader()
		return nil, 0, &node.NotLeaderError{Leader: lead}
	case rep == nil:
		return nil, 0, node.ErrStopped
	}
	return rep.Node, crashes, nil
}

// answer passes on a node's answer, unless the node crashed (Crash) while
// the call was in flight: then the answer may rest on a save the crash
// lost, so the caller is told the node stopped (the outcome is unknown, and
// a kv client retries in the same session).
func (e Endpoint) answer(crashes uint64, v any, err error) (any, error) {
	if err == nil && e.c.slots[e.id].crashes.Load() != crashes {
		return nil, fmt.Errorf("node %d crashed before its answer: %w", e.id, node.ErrStopped)
	}
	return v, err
}

// Propose proposes cmd on the node's current incarnation.
func (e Endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	n, crashes, err := e.current()
	if err != nil {
		return nil, err
	}
	v, err := n.Propose(ctx, cmd)
	return e.answer(crashes, v, err)
}

// Read reads on the node's current incarnation.
func (e Endpoint) Read(ctx context.Context, q []byte) (any, error) {
	n, crashes, err := e.current()
	if err != nil {
		return nil, err
	}
	v, err := n.Read(ctx, q)
	return e.answer(crashes, v, err)
}

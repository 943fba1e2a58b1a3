package cluster

import (
	"context"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// Endpoint is a kv.Endpoint for one node ID of a Cluster that follows the
// node across restarts: while it is stopped, calls fail with
// node.ErrStopped (the command may have reached its log before it
// stopped). Before a node with that ID has started, and once it is
// removed, calls fail with a *node.NotLeaderError naming the current
// leader, so a client moves on at once and knows the command reached no
// log.
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

// current returns the running node, or the error a caller gets instead.
func (e Endpoint) current() (*node.Node, error) {
	e.c.mu.Lock()
	rep, started, removed := e.c.reps[e.id], e.c.addrs[e.id] != "", e.c.removed[e.id]
	e.c.mu.Unlock()
	switch {
	case !started || (removed && rep == nil):
		lead, _ := e.c.Leader()
		return nil, &node.NotLeaderError{Leader: lead}
	case rep == nil:
		return nil, node.ErrStopped
	}
	return rep.Node, nil
}

// Propose proposes cmd on the node's current incarnation.
func (e Endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	n, err := e.current()
	if err != nil {
		return nil, err
	}
	return n.Propose(ctx, cmd)
}

// Read reads on the node's current incarnation.
func (e Endpoint) Read(ctx context.Context, q []byte) (any, error) {
	n, err := e.current()
	if err != nil {
		return nil, err
	}
	return n.Read(ctx, q)
}

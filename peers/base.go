package peers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport/fault"
)

// Node is one incarnation of one node, as an adapter runs it: started by
// BaseConfig.Start, ended by Stop. Base serialises Start and Stop of a
// node; the other methods may be called concurrently with anything,
// including Stop (after which they fail with node.ErrStopped or return
// zero values).
type Node interface {
	// Propose proposes cmd to group g and returns the kv.Store's result
	// once it is applied on this node.
	Propose(ctx context.Context, g int, cmd []byte) (any, error)
	// Read answers a kv query linearizably in group g.
	Read(ctx context.Context, g int, query []byte) (any, error)
	// Status returns the node's state in group g (InFlight is Base's).
	Status(g int) Status
	// Leads reports whether the node leads group g, and in which term: a
	// cheap Status for leader discovery, which harnesses poll often.
	Leads(g int) (bool, uint64)
	// Store returns group g's store.
	Store(g int) *kv.Store
	// Stop stops the incarnation as a crash would (see System.Stop) and
	// waits for its goroutines.
	Stop() error
}

// BaseConfig configures a Base.
type BaseConfig struct {
	// Library is the adapter: its Name, Module and CheckRules are used.
	Library Library
	// Nodes and Groups are the cluster's shape; Seed seeds the Links.
	Nodes, Groups int
	Seed          uint64
	// Start starts an incarnation of node id; link is the node's fault
	// link, the same for every incarnation.
	Start func(id uint64, link *Link) (Node, error)
}

// Base implements System on top of an adapter's Node incarnations: the
// node table, Stop and Restart, endpoints that follow restarts, leader
// discovery, and the fault rules. Adapters embed it.
type Base struct {
	cfg   BaseConfig
	ids   []uint64
	net   *fault.Network
	links map[uint64]*Link
	// inflight[g][i] counts calls in progress on node ids[i] in group g.
	inflight [][]atomic.Int64

	// life serialises Start, Stop, Restart and Close.
	life sync.Mutex
	// mu guards nodes: the running incarnation per node ID.
	mu    sync.RWMutex
	nodes map[uint64]Node
}

// NewBase returns a Base with no node started.
func NewBase(cfg BaseConfig) *Base {
	b := &Base{cfg: cfg, net: fault.NewNetwork(), links: map[uint64]*Link{}, nodes: map[uint64]Node{}}
	for id := uint64(1); id <= uint64(cfg.Nodes); id++ {
		b.ids = append(b.ids, id)
		b.links[id] = NewLink(id, cfg.Seed, b.net)
	}
	b.inflight = make([][]atomic.Int64, cfg.Groups)
	for g := range b.inflight {
		b.inflight[g] = make([]atomic.Int64, cfg.Nodes)
	}
	return b
}

// StartAll starts every node in ID order; on an error it stops those it
// started.
func (b *Base) StartAll() error {
	for _, id := range b.ids {
		if err := b.Restart(id); err != nil {
			_ = b.Close()
			return fmt.Errorf("%s: start node %d: %w", b.cfg.Library.Name, id, err)
		}
	}
	return nil
}

// Name implements System.
func (b *Base) Name() string { return b.cfg.Library.Name }

// Version implements System.
func (b *Base) Version() string { return b.cfg.Library.Version() }

// Nodes implements System.
func (b *Base) Nodes() []uint64 { return append([]uint64(nil), b.ids...) }

// Groups implements System.
func (b *Base) Groups() int { return b.cfg.Groups }

// Network implements System.
func (b *Base) Network() *fault.Network { return b.net }

// Link returns node id's fault link (nil for an unknown ID), for adapters
// whose seam needs the receiving side's rules too.
func (b *Base) Link(id uint64) *Link { return b.links[id] }

func (b *Base) known(g int, id uint64) error {
	if g < 0 || g >= b.cfg.Groups || id < 1 || id > uint64(len(b.ids)) {
		return fmt.Errorf("%w: %s has nodes 1..%d and groups 0..%d, not node %d group %d",
			ErrUnknownNode, b.cfg.Library.Name, len(b.ids), b.cfg.Groups-1, id, g)
	}
	return nil
}

func (b *Base) node(id uint64) Node {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.nodes[id]
}

// Running implements System.
func (b *Base) Running(id uint64) bool { return b.node(id) != nil }

// Store implements System.
func (b *Base) Store(g int, id uint64) *kv.Store {
	if b.known(g, id) != nil {
		return nil
	}
	if n := b.node(id); n != nil {
		return n.Store(g)
	}
	return nil
}

// Status implements System.
func (b *Base) Status(g int, id uint64) (Status, error) {
	if err := b.known(g, id); err != nil {
		return Status{}, err
	}
	n := b.node(id)
	if n == nil {
		return Status{ID: id}, fmt.Errorf("%s node %d: %w", b.cfg.Library.Name, id, node.ErrStopped)
	}
	s := n.Status(g)
	s.ID = id
	s.InFlight = int(b.inflight[g][id-1].Load())
	return s, nil
}

// Leader implements System.
func (b *Base) Leader(g int) (id, term uint64) {
	if b.known(g, 1) != nil {
		return 0, 0
	}
	for _, nid := range b.ids {
		n := b.node(nid)
		if n == nil {
			continue
		}
		if leads, t := n.Leads(g); leads && t >= term {
			id, term = nid, t
		}
	}
	return id, term
}

// MaxTerm implements System.
func (b *Base) MaxTerm(g int) uint64 {
	if b.known(g, 1) != nil {
		return 0
	}
	var term uint64
	for _, nid := range b.ids {
		if n := b.node(nid); n != nil {
			_, t := n.Leads(g)
			term = max(term, t)
		}
	}
	return term
}

// Stop implements System.
func (b *Base) Stop(id uint64) error {
	if err := b.known(0, id); err != nil {
		return err
	}
	b.life.Lock()
	defer b.life.Unlock()
	b.mu.Lock()
	n := b.nodes[id]
	delete(b.nodes, id)
	b.mu.Unlock()
	if n == nil {
		return fmt.Errorf("%s node %d: %w", b.cfg.Library.Name, id, node.ErrStopped)
	}
	if err := n.Stop(); err != nil {
		return fmt.Errorf("%s: stop node %d: %w", b.cfg.Library.Name, id, err)
	}
	return nil
}

// Restart implements System (and starts a node the first time).
func (b *Base) Restart(id uint64) error {
	if err := b.known(0, id); err != nil {
		return err
	}
	b.life.Lock()
	defer b.life.Unlock()
	if b.node(id) != nil {
		return fmt.Errorf("%s node %d: %w", b.cfg.Library.Name, id, ErrRunning)
	}
	n, err := b.cfg.Start(id, b.links[id])
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.nodes[id] = n
	b.mu.Unlock()
	return nil
}

// SetRules implements System.
func (b *Base) SetRules(id uint64, r fault.Rules) error {
	if err := b.known(0, id); err != nil {
		return err
	}
	if err := b.cfg.Library.CheckRules(r); err != nil {
		return err
	}
	return b.links[id].SetRules(r)
}

// FaultCounters implements System.
func (b *Base) FaultCounters() fault.Counters {
	var s fault.Counters
	for _, l := range b.links {
		c := l.Counters()
		s.Dropped += c.Dropped
		s.PartitionedSend += c.PartitionedSend
		s.PartitionedRecv += c.PartitionedRecv
		s.Duplicated += c.Duplicated
		s.Delayed += c.Delayed
		s.Reordered += c.Reordered
	}
	return s
}

// Close implements System.
func (b *Base) Close() error {
	var errs []error
	for _, id := range b.ids {
		if b.Running(id) {
			if err := b.Stop(id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Endpoint implements System.
func (b *Base) Endpoint(g int, id uint64) kv.Endpoint { return endpoint{b: b, g: g, id: id} }

// endpoint is node id's kv.Endpoint into group g, following the node
// across restarts.
type endpoint struct {
	b  *Base
	g  int
	id uint64
}

func (e endpoint) ID() uint64 { return e.id }

func (e endpoint) call(f func(n Node) (any, error)) (any, error) {
	if err := e.b.known(e.g, e.id); err != nil {
		return nil, err
	}
	n := e.b.node(e.id)
	if n == nil {
		return nil, fmt.Errorf("%s node %d: %w", e.b.cfg.Library.Name, e.id, node.ErrStopped)
	}
	c := &e.b.inflight[e.g][e.id-1]
	c.Add(1)
	defer c.Add(-1)
	return f(n)
}

func (e endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	return e.call(func(n Node) (any, error) { return n.Propose(ctx, e.g, cmd) })
}

func (e endpoint) Read(ctx context.Context, query []byte) (any, error) {
	return e.call(func(n Node) (any, error) { return n.Read(ctx, e.g, query) })
}

// NotLeader returns the error a node that does not lead answers with: a
// *node.NotLeaderError naming leader (0 when unknown).
func NotLeader(leader uint64) error { return &node.NotLeaderError{Leader: leader} }

// Timeout wraps ctx's end as node.ErrTimeout: the outcome is unknown.
func Timeout(ctx context.Context) error {
	return fmt.Errorf("%w: %w", node.ErrTimeout, context.Cause(ctx))
}

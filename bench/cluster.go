package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/wal"
)

// cluster runs the nodes of one run in this process, each on its own
// transport (on loopback) and WAL directory, every transport wrapped by a
// fault injector sharing one fault.Network.
type cluster struct {
	cfg       *Config
	dir       string
	removeDir bool
	clusterID uint64
	addrs     map[uint64]string
	net       *fault.Network
	logger    *slog.Logger

	mu       sync.Mutex
	nodes    map[uint64]*node.Node // running nodes only
	stores   map[uint64]*kv.Store
	wraps    map[uint64]*fault.Transport
	rules    map[uint64]fault.Rules // rules in force per node, kept across restarts
	disks    map[uint64]*atomic.Int64
	restarts map[uint64]int
}

func startCluster(cfg *Config, logger *slog.Logger) (*cluster, error) {
	c := &cluster{
		cfg: cfg, clusterID: 0x7261667462656e63, addrs: map[uint64]string{}, net: fault.NewNetwork(), logger: logger,
		nodes: map[uint64]*node.Node{}, stores: map[uint64]*kv.Store{}, wraps: map[uint64]*fault.Transport{},
		rules: map[uint64]fault.Rules{}, disks: map[uint64]*atomic.Int64{}, restarts: map[uint64]int{},
	}
	if cfg.WAL == "pebble" {
		if cfg.Dir != "" {
			if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
				return nil, fmt.Errorf("%w: --dir: %v", ErrBadConfig, err)
			}
			d, err := os.MkdirTemp(cfg.Dir, "raftbench-wal-")
			if err != nil {
				return nil, fmt.Errorf("%w: --dir: %v", ErrBadConfig, err)
			}
			c.dir = d
		} else {
			d, err := os.MkdirTemp("", "raftbench-wal-")
			if err != nil {
				return nil, fmt.Errorf("WAL directory: %w", err)
			}
			c.dir = d
		}
		c.removeDir = true
	}
	trs := map[uint64]*fault.Transport{}
	for id := uint64(1); id <= uint64(cfg.Nodes); id++ {
		c.disks[id] = &atomic.Int64{}
		tr, err := c.newTransport(id, "127.0.0.1:0")
		if err != nil {
			c.close()
			return nil, err
		}
		trs[id] = tr
		c.addrs[id] = tr.Addr()
	}
	for id := uint64(1); id <= uint64(cfg.Nodes); id++ {
		if err := c.start(id, trs[id]); err != nil {
			for _, tr := range trs { // not yet owned by a node
				_ = tr.Close()
			}
			c.close()
			return nil, err
		}
		delete(trs, id)
	}
	return c, nil
}

func (c *cluster) newTransport(id uint64, addr string) (*fault.Transport, error) {
	maxFrame := max(transport.DefaultMaxFrameSize, 2*c.cfg.MaxMsgBytes+(1<<20))
	opts := transport.Options{ID: id, ClusterID: c.clusterID, MaxFrameSize: maxFrame, Logger: c.logger}
	var inner transport.Transport
	var err error
	switch c.cfg.Transport {
	case "quic":
		inner, err = quic.New(quic.Config{Options: opts, ListenAddr: addr})
	default:
		inner, err = tcp.New(tcp.Config{Options: opts, ListenAddr: addr})
	}
	if err != nil {
		return nil, fmt.Errorf("%s transport for node %d on %s: %w", c.cfg.Transport, id, addr, err)
	}
	ft, err := fault.Wrap(inner, fault.Config{ID: id, Network: c.net, Seed: c.cfg.Seed, Rules: c.rules[id]})
	if err != nil {
		_ = inner.Close()
		return nil, fmt.Errorf("fault wrapper for node %d: %w", id, err)
	}
	return ft, nil
}

func (c *cluster) start(id uint64, tr *fault.Transport) error {
	var lg wal.Log
	if c.cfg.WAL == "memory" {
		lg = wal.NewMemory()
	} else {
		p, err := wal.OpenPebble(filepath.Join(c.dir, fmt.Sprintf("node%d", id)), wal.PebbleOptions{})
		if err != nil {
			return fmt.Errorf("open WAL of node %d: %w", id, err)
		}
		lg = p
	}
	lg = &slowLog{Log: lg, delay: c.disks[id]}
	store, err := kv.NewStore(kv.StoreOptions{})
	if err != nil {
		_ = lg.Close()
		return fmt.Errorf("kv store for node %d: %w", id, err)
	}
	tick := c.cfg.Tick.D()
	ncfg := node.Config{
		ID: id, Peers: c.addrs, Transport: tr, Log: lg, StateMachine: store,
		TickInterval:       tick,
		ElectionTicks:      int(c.cfg.ElectionTimeout.D() / tick),
		HeartbeatTicks:     int(c.cfg.Heartbeat.D() / tick),
		MaxBatchEntries:    c.cfg.BatchEntries,
		MaxBatchBytes:      c.cfg.BatchBytes,
		MaxInflight:        c.cfg.MaxInflight,
		MaxSizePerMsg:      uint64(c.cfg.MaxMsgBytes),
		DisablePreVote:     !c.cfg.PreVote,
		DisableCheckQuorum: !c.cfg.CheckQuorum,
		NoSync:             !c.cfg.Sync,
		Seed:               c.cfg.Seed*1000 + id + uint64(c.restarts[id])*7919,
		Logger:             c.logger,
	}
	n, err := node.Start(ncfg)
	if err != nil {
		_ = lg.Close()
		return fmt.Errorf("start node %d: %w", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.stores[id], c.wraps[id] = n, store, tr
	c.mu.Unlock()
	return nil
}

// stop stops node id as a kill does: queued saves complete, the rest is
// lost with the process.
func (c *cluster) stop(id uint64) error {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	delete(c.wraps, id)
	c.mu.Unlock()
	if n == nil {
		return fmt.Errorf("node %d is not running", id)
	}
	if err := n.Stop(); err != nil {
		return fmt.Errorf("stop node %d: %w", id, err)
	}
	return nil
}

// restart starts a stopped node again on its WAL directory and address.
// The transport may need a moment for the OS to release the port.
func (c *cluster) restart(id uint64) error {
	c.mu.Lock()
	running := c.nodes[id] != nil
	c.restarts[id]++
	c.mu.Unlock()
	if running {
		return fmt.Errorf("node %d is running", id)
	}
	var tr *fault.Transport
	var err error
	for range 50 {
		if tr, err = c.newTransport(id, c.addrs[id]); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if err := c.start(id, tr); err != nil {
		_ = tr.Close()
		return err
	}
	return nil
}

// stopped lists the nodes not running, in ID order.
func (c *cluster) stopped() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id := uint64(1); id <= uint64(c.cfg.Nodes); id++ {
		if c.nodes[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// running returns the running nodes, in ID order.
func (c *cluster) running() []*node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	ns := make([]*node.Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].ID() < ns[j].ID() })
	return ns
}

func (c *cluster) node(id uint64) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// leader returns the leader with the highest term among the running
// nodes that say they lead, or 0.
func (c *cluster) leader() (id, term uint64) {
	for _, n := range c.running() {
		s := n.Status()
		if s.Role == core.Leader && s.Term >= term {
			id, term = s.ID, s.Term
		}
	}
	return id, term
}

// maxTerm is the highest term any running node is in.
func (c *cluster) maxTerm() uint64 {
	var t uint64
	for _, n := range c.running() {
		t = max(t, n.Status().Term)
	}
	return t
}

// waitLeader waits until a running node leads and every running node
// follows it.
func (c *cluster) waitLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		id, _ := c.leader()
		if id != 0 {
			agree := true
			for _, n := range c.running() {
				if n.Status().Leader != id {
					agree = false
				}
			}
			if agree {
				return id, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no leader that every running node follows after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// setRules sets the message rules of node id (kept for its restarts).
func (c *cluster) setRules(id uint64, r fault.Rules) error {
	c.mu.Lock()
	c.rules[id] = r
	w := c.wraps[id]
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.SetRules(r)
}

// setDiskDelay makes every WAL save of node id sleep d first.
func (c *cluster) setDiskDelay(id uint64, d time.Duration) { c.disks[id].Store(int64(d)) }

// faultCounters sums the fault wrappers' counters.
func (c *cluster) faultCounters() fault.Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s fault.Counters
	for _, w := range c.wraps {
		x := w.Counters()
		s.Dropped += x.Dropped
		s.PartitionedSend += x.PartitionedSend
		s.PartitionedRecv += x.PartitionedRecv
		s.Duplicated += x.Duplicated
		s.Delayed += x.Delayed
		s.Reordered += x.Reordered
	}
	return s
}

// healAll lifts every fault: partitions, message rules, slow disks.
func (c *cluster) healAll() {
	c.net.Heal()
	for id := uint64(1); id <= uint64(c.cfg.Nodes); id++ {
		_ = c.setRules(id, fault.Rules{})
		c.setDiskDelay(id, 0)
	}
}

// close stops every node and removes the WAL directory if it made it.
func (c *cluster) close() {
	for _, n := range c.running() {
		_ = c.stop(n.ID())
	}
	if c.removeDir && c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// endpoint is a kv.Endpoint for node id that follows the node across
// restarts: while it is down, calls fail with node.ErrStopped.
type endpoint struct {
	c  *cluster
	id uint64
}

func (e endpoint) ID() uint64 { return e.id }

func (e endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	n := e.c.node(e.id)
	if n == nil {
		return nil, node.ErrStopped
	}
	return n.Propose(ctx, cmd)
}

func (e endpoint) Read(ctx context.Context, q []byte) (any, error) {
	n := e.c.node(e.id)
	if n == nil {
		return nil, node.ErrStopped
	}
	return n.Read(ctx, q)
}

func (c *cluster) endpoints() []kv.Endpoint {
	eps := make([]kv.Endpoint, 0, c.cfg.Nodes)
	for id := uint64(1); id <= uint64(c.cfg.Nodes); id++ {
		eps = append(eps, endpoint{c: c, id: id})
	}
	return eps
}

// slowLog is a wal.Log whose saves sleep first while a slow-disk fault is
// in force.
type slowLog struct {
	wal.Log
	delay *atomic.Int64
}

func (s *slowLog) Save(hs core.HardState, ents []core.Entry, sync bool) error {
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	return s.Log.Save(hs, ents, sync)
}

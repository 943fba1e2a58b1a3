package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
// transport (on loopback) and data directory (node<ID>/wal for the Pebble
// WAL, node<ID>/snap for snapshot images), every transport wrapped by a
// fault injector sharing one fault.Network.
//
// Node IDs run from 1 to maxID: the initial nodes 1..cfg.Nodes, then the
// nodes the fault schedule adds, in order. A node is "started" once it has
// an address; it is a member until the schedule removes it.
type cluster struct {
	cfg       *Config
	dir       string
	removeDir bool
	clusterID uint64
	maxID     uint64
	net       *fault.Network
	logger    *slog.Logger

	mu       sync.Mutex
	addrs    map[uint64]string            // every node ever started
	peersAt  map[uint64]map[uint64]string // the Peers each node first started with
	joined   map[uint64]bool              // nodes that joined a running cluster as learners
	removed  map[uint64]bool              // nodes removed from the membership
	nextID   uint64                       // the ID the next new node takes
	nodes    map[uint64]*node.Node        // running nodes only
	stores   map[uint64]*kv.Store
	wraps    map[uint64]*fault.Transport
	rules    map[uint64]fault.Rules // rules in force per node, kept across restarts
	disks    map[uint64]*atomic.Int64
	restarts map[uint64]int
	walPeak  map[uint64]int64 // peak size of each node's data directory
	dur      durability       // crash faults, WAL damage and their checks

	// slots mirror, per node ID, what the clients' endpoints and the
	// leader polls read on every call (running node, started, removed),
	// without taking mu: one lock shared by every operation of every client
	// was the harness's largest source of contention.
	slots []slot
}

// slot is one node ID's lock-free view (see cluster.slots).
type slot struct {
	n       atomic.Pointer[node.Node]
	started atomic.Bool
	removed atomic.Bool
	// crashes counts the node's crash faults: an answer from a node whose
	// count changed during the call is withheld (see endpoint.answer).
	crashes atomic.Uint64
}

func startCluster(cfg *Config, logger *slog.Logger) (*cluster, error) {
	c := &cluster{
		cfg: cfg, clusterID: 0x7261667462656e63, maxID: cfg.MaxNodeID(), net: fault.NewNetwork(), logger: logger,
		addrs: map[uint64]string{}, peersAt: map[uint64]map[uint64]string{}, joined: map[uint64]bool{}, removed: map[uint64]bool{},
		nextID: uint64(cfg.Nodes) + 1,
		nodes:  map[uint64]*node.Node{}, stores: map[uint64]*kv.Store{}, wraps: map[uint64]*fault.Transport{},
		rules: map[uint64]fault.Rules{}, disks: map[uint64]*atomic.Int64{}, restarts: map[uint64]int{}, walPeak: map[uint64]int64{},
		dur: newDurability(),
	}
	c.slots = make([]slot, c.maxID+1)
	for id := uint64(1); id <= c.maxID; id++ {
		c.disks[id] = &atomic.Int64{}
	}
	if cfg.WAL == "pebble" || cfg.SnapshotEvery > 0 {
		// (A crashable WAL lives in memory, so it needs no directory.)
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
		tr, err := c.newTransport(id, "127.0.0.1:0")
		if err != nil {
			c.close()
			return nil, err
		}
		trs[id] = tr
		c.addrs[id] = tr.Addr()
		c.slots[id].started.Store(true)
	}
	for id := uint64(1); id <= uint64(cfg.Nodes); id++ {
		c.peersAt[id] = maps.Clone(c.addrs)
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

// nodeDir is node id's data directory ("" with --wal memory and no
// snapshots).
func (c *cluster) nodeDir(id uint64) string {
	if c.dir == "" {
		return ""
	}
	return filepath.Join(c.dir, fmt.Sprintf("node%d", id))
}

// start starts node id on tr with the Peers it first started with.
func (c *cluster) start(id uint64, tr *fault.Transport) error {
	c.mu.Lock()
	peers, join := c.peersAt[id], c.joined[id]
	c.mu.Unlock()
	var inner wal.Log
	if c.cfg.WAL == "memory" {
		inner = wal.NewMemory()
	} else {
		fs, dir := c.walFS(id)
		p, err := wal.OpenPebble(dir, wal.PebbleOptions{FS: fs, MemTableSize: uint64(c.cfg.WALMemtable)})
		if err != nil {
			c.dur.noteStartFailure(id, err)
			return fmt.Errorf("open WAL of node %d: %w", id, err)
		}
		c.dur.checkFloor(id, p)
		inner = p
	}
	sl := &slowLog{Log: inner, delay: c.disks[id]}
	if last, err := inner.LastIndex(); err == nil {
		sl.durable = last // what the log holds at open is on disk
	}
	lg := wal.Log(sl)
	store, err := kv.NewStore(kv.StoreOptions{})
	if err != nil {
		_ = lg.Close()
		return fmt.Errorf("kv store for node %d: %w", id, err)
	}
	tick := c.cfg.Tick.D()
	ncfg := node.Config{
		ID: id, Peers: peers, Transport: tr, Log: lg, StateMachine: store,
		JoinAsLearner:       join,
		TickInterval:        tick,
		ElectionTicks:       int(c.cfg.ElectionTimeout.D() / tick),
		HeartbeatTicks:      int(c.cfg.Heartbeat.D() / tick),
		MaxBatchEntries:     c.cfg.BatchEntries,
		MaxBatchBytes:       c.cfg.BatchBytes,
		MaxProposalPipeline: c.cfg.ProposalPipeline,
		MaxInflight:         c.cfg.MaxInflight,
		MaxSizePerMsg:       uint64(c.cfg.MaxMsgBytes),
		DisablePreVote:      !c.cfg.PreVote,
		MaxInflightBytes:    uint64(c.cfg.MaxInflightBytes),
		MaxUncommittedBytes: uint64(c.cfg.MaxUncommittedBytes),
		DisableCheckQuorum:  !c.cfg.CheckQuorum,
		ReadMode:            readMode(c.cfg.ReadMode),
		NoSync:              !c.cfg.Sync,
		Seed:                c.cfg.Seed*1000 + id + uint64(c.restarts[id])*7919,
		Logger:              c.logger,
	}
	if c.cfg.SnapshotEvery > 0 {
		ncfg.SnapshotDir = filepath.Join(c.nodeDir(id), "snap")
		ncfg.SnapshotEntries = uint64(c.cfg.SnapshotEvery)
		ncfg.SnapshotTrailing = uint64(c.cfg.SnapshotTrailing)
	}
	n, err := node.Start(ncfg)
	if err != nil {
		_ = lg.Close()
		return fmt.Errorf("start node %d: %w", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.stores[id], c.wraps[id] = n, store, tr
	c.slots[id].n.Store(n)
	c.mu.Unlock()
	c.dur.started(id, sl)
	return nil
}

// stop stops node id as a kill does: queued saves complete, the rest is
// lost with the process.
func (c *cluster) stop(id uint64) error {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	delete(c.wraps, id)
	if id < uint64(len(c.slots)) {
		c.slots[id].n.Store(nil)
	}
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
	running, started, removed := c.nodes[id] != nil, c.addrs[id] != "", c.removed[id]
	if !running && started && !removed {
		c.restarts[id]++
	}
	c.mu.Unlock()
	switch {
	case running:
		return fmt.Errorf("node %d is running", id)
	case !started:
		return fmt.Errorf("node %d was never started", id)
	case removed:
		return fmt.Errorf("node %d was removed from the cluster", id)
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

// stopped lists the nodes started and not removed that are not running,
// in ID order, leaving out those that refused to start on a damaged WAL.
func (c *cluster) stopped() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id := uint64(1); id <= c.maxID; id++ {
		if c.addrs[id] != "" && !c.removed[id] && c.nodes[id] == nil && !c.dur.isRefused(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// startNew starts the next new node, empty, as a learner that joins the
// running cluster (the leader must then add it), and returns its ID and
// address. Its Peers are the current members and itself.
func (c *cluster) startNew(ctx context.Context) (uint64, string, error) {
	c.mu.Lock()
	id := c.nextID
	if id > c.maxID {
		c.mu.Unlock()
		return 0, "", fmt.Errorf("no node ID left (the schedule planned %d nodes)", c.maxID)
	}
	c.nextID++
	c.mu.Unlock()
	peers := map[uint64]string{}
	voters, learners, err := c.members(ctx)
	c.mu.Lock()
	if err == nil {
		for _, m := range append(voters, learners...) {
			peers[m] = c.addrs[m]
		}
	} else { // no leader to ask: every node started and not removed
		for m, a := range c.addrs {
			if !c.removed[m] {
				peers[m] = a
			}
		}
	}
	c.mu.Unlock()
	tr, err := c.newTransport(id, "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	addr := tr.Addr()
	peers[id] = addr
	c.mu.Lock()
	c.addrs[id], c.peersAt[id], c.joined[id] = addr, peers, true
	c.slots[id].started.Store(true)
	c.mu.Unlock()
	if err := c.start(id, tr); err != nil {
		_ = tr.Close()
		return 0, "", err
	}
	return id, addr, nil
}

// members returns the membership as the current leader sees it (its
// progress tracker), waiting up to 5 s for a leader.
func (c *cluster) members(ctx context.Context) (voters, learners []uint64, err error) {
	if _, err := c.waitAnyLeader(ctx, 5*time.Second); err != nil {
		return nil, nil, err
	}
	l := c.node(func() uint64 { id, _ := c.leader(); return id }())
	if l == nil {
		return nil, nil, errors.New("the leader stopped")
	}
	st := l.Status()
	if st.Role != core.Leader {
		return nil, nil, errors.New("the leader stepped down")
	}
	for id, p := range st.Progress {
		if p.Learner {
			learners = append(learners, id)
		} else {
			voters = append(voters, id)
		}
	}
	slices.Sort(voters)
	slices.Sort(learners)
	return voters, learners, nil
}

// waitAnyLeader waits until some running node leads.
func (c *cluster) waitAnyLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		if id, _ := c.leader(); id != 0 {
			return id, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no leader after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// isMember reports whether the current leader counts id as a voter
// (learner false) or as any member (learner true).
func (c *cluster) isMember(id uint64, orLearner bool) bool {
	l := c.node(func() uint64 { id, _ := c.leader(); return id }())
	if l == nil {
		return false
	}
	p, ok := l.Status().Progress[id]
	return ok && (orLearner || !p.Learner)
}

// leaderOtherThan reports whether a running node other than id leads.
func (c *cluster) leaderOtherThan(id uint64) bool {
	l, _ := c.leader()
	return l != 0 && l != id
}

// markRemoved records that id left the membership: it is not restarted,
// compared or counted any more.
func (c *cluster) markRemoved(id uint64) {
	c.mu.Lock()
	c.removed[id] = true
	c.slots[id].removed.Store(true)
	c.mu.Unlock()
}

// change runs f against the current leader until done holds, retrying the
// errors a membership change meets while the cluster moves (another change
// settling, a leader change, an attempt whose outcome was unknown), for at
// most timeout. Once f succeeds it only waits for done: a joint change
// returns when it is entered, and done holds once it has been left.
func (c *cluster) change(ctx context.Context, timeout time.Duration, done func() bool, f func(ctx context.Context, l *node.Node) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	succeeded := false
	for {
		if done() {
			return nil
		}
		if id, _ := c.leader(); id != 0 && !succeeded {
			if l := c.node(id); l != nil {
				actx, acancel := context.WithTimeout(ctx, 3*time.Second)
				err := f(actx, l)
				acancel()
				if err == nil {
					succeeded = true
					continue
				}
				if !errors.Is(err, core.ErrConfChangePending) && !errors.Is(err, node.ErrNotLeader) &&
					!errors.Is(err, node.ErrLeadershipLost) && !errors.Is(err, node.ErrTimeout) && !errors.Is(err, node.ErrStopped) {
					return err
				}
				last = err
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("not done within %v: %w", timeout, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
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
// nodes that say they lead, or 0. It takes no lock and allocates nothing,
// so polling it does not disturb the run.
func (c *cluster) leader() (id, term uint64) {
	for i := 1; i < len(c.slots); i++ {
		if n := c.slots[i].n.Load(); n != nil {
			if l := n.Leadership(); l.Role == core.Leader && l.Term >= term {
				id, term = uint64(i), l.Term
			}
		}
	}
	return id, term
}

// maxTerm is the highest term any running node is in.
func (c *cluster) maxTerm() uint64 {
	var t uint64
	for i := 1; i < len(c.slots); i++ {
		if n := c.slots[i].n.Load(); n != nil {
			t = max(t, n.Leadership().Term)
		}
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
				if n.Leadership().Leader != id {
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
	for id := uint64(1); id <= c.maxID; id++ {
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
// restarts: while it is down, calls fail with node.ErrStopped. The client
// gets one for every ID the run can have, including nodes the schedule
// adds later: before such a node starts, and after a node is removed,
// calls fail with a *node.NotLeaderError naming the current leader, so the
// client moves on at once and knows the command never reached a log.
type endpoint struct {
	c  *cluster
	id uint64
}

func (e endpoint) ID() uint64 { return e.id }

// current returns the running node and its crash count, or the error a
// caller gets instead.
func (e endpoint) current() (*node.Node, uint64, error) {
	sl := &e.c.slots[e.id]
	crashes := sl.crashes.Load()
	n, started, removed := sl.n.Load(), sl.started.Load(), sl.removed.Load()
	switch {
	case !started || (removed && n == nil):
		lead, _ := e.c.leader()
		return nil, 0, &node.NotLeaderError{Leader: lead}
	case n == nil:
		return nil, 0, node.ErrStopped
	}
	return n, crashes, nil
}

// answer passes on a node's answer, unless the node crashed while the call
// was in flight: then the answer may rest on a save the crash lost, so the
// caller is told the node stopped (the outcome is unknown, and a kv client
// retries in the same session).
func (e endpoint) answer(crashes uint64, v any, err error) (any, error) {
	if err == nil && e.c.slots[e.id].crashes.Load() != crashes {
		return nil, fmt.Errorf("node %d crashed before its answer: %w", e.id, node.ErrStopped)
	}
	return v, err
}

func (e endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	n, crashes, err := e.current()
	if err != nil {
		return nil, err
	}
	v, err := n.Propose(ctx, cmd)
	return e.answer(crashes, v, err)
}

func (e endpoint) Read(ctx context.Context, q []byte) (any, error) {
	n, crashes, err := e.current()
	if err != nil {
		return nil, err
	}
	v, err := n.Read(ctx, q)
	return e.answer(crashes, v, err)
}

// endpoints returns one endpoint per node ID the run can have.
func (c *cluster) endpoints() []kv.Endpoint {
	eps := make([]kv.Endpoint, 0, c.maxID)
	for id := uint64(1); id <= c.maxID; id++ {
		eps = append(eps, endpoint{c: c, id: id})
	}
	return eps
}

// sampleDisk measures every started node's data directory (WAL and
// snapshot images) and keeps the peak per node.
func (c *cluster) sampleDisk() {
	if c.dir == "" {
		return
	}
	c.mu.Lock()
	ids := slices.Collect(maps.Keys(c.addrs))
	c.mu.Unlock()
	for _, id := range ids {
		n := dirSize(c.nodeDir(id)) + c.dur.memSize(id)
		c.mu.Lock()
		c.walPeak[id] = max(c.walPeak[id], n)
		c.mu.Unlock()
	}
}

// diskPeaks returns the peak size of every node's data directory.
func (c *cluster) diskPeaks() map[uint64]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.walPeak)
}

// dirSize sums the sizes of the regular files under dir. Files that vanish
// while it walks (Pebble deletes obsolete ones all the time) are skipped.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// slowLog is a wal.Log whose saves sleep first while a slow-disk fault is
// in force. It also notes, for the durability checks, the log's last index
// after the newest synced save that returned (durable) and when it closed
// (closed): a crash must keep the first, a graceful stop the second.
type slowLog struct {
	wal.Log
	delay *atomic.Int64

	mu      sync.Mutex
	frozen  bool // a crash took its image: later saves are lost with it
	durable uint64
	closed  uint64
}

func (s *slowLog) Save(hs core.HardState, ents []core.Entry, sync bool) error {
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if err := s.Log.Save(hs, ents, sync); err != nil {
		return err
	}
	if sync {
		// One writer goroutine saves, so nothing moves the log between
		// the save and this read.
		if last, err := s.Log.LastIndex(); err == nil {
			s.mu.Lock()
			if !s.frozen {
				s.durable = last
			}
			s.mu.Unlock()
		}
	}
	return nil
}

// Close notes the last index before closing: all of it is durable after.
func (s *slowLog) Close() error {
	last, err := s.Log.LastIndex()
	s.mu.Lock()
	if err == nil {
		s.closed = last
	}
	s.mu.Unlock()
	return s.Log.Close()
}

// freeze marks the crash point and returns the last index reported durable
// before it.
func (s *slowLog) freeze() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	return s.durable
}

// lastClosed is the last index the log held when it was closed.
func (s *slowLog) lastClosed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// readMode maps --read-mode (validated to index or lease) to node's.
func readMode(s string) node.ReadMode {
	if s == "lease" {
		return node.ReadModeLease
	}
	return node.ReadModeIndex
}

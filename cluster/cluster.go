package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport/fault"
)

// Options shape an in-process Cluster.
type Options struct {
	// Template is what every node is built from.
	Template Template
	// Nodes is the number of initial voters, IDs 1..Nodes.
	Nodes int
	// MaxID is the highest node ID the cluster may ever have: the initial
	// nodes plus those StartNew will add. Endpoints covers 1..MaxID, so a
	// client knows in advance every node it may be redirected to. Default
	// (and minimum) Nodes.
	MaxID uint64
	// Dir is where the cluster's directory is made (a fresh temporary
	// directory inside it, holding node<ID>/ per node). Default: the
	// system's temporary directory. Only made when the template keeps
	// anything on disk.
	Dir string
	// KeepDir keeps the cluster's directory when it closes.
	KeepDir bool
	// Host is the address the transports listen on, with port 0. Default
	// 127.0.0.1.
	Host string
	// Configure, when set, adjusts each node's Config just before it
	// starts (on every start).
	Configure func(*node.Config)
	// DiskUsage, when set, adds to what SampleDisk measures of node id:
	// the bytes it keeps outside its data directory (a WAL on an
	// in-memory filesystem, say).
	DiskUsage func(id uint64) int64
}

// Cluster runs the nodes of one cluster in this process, each on its own
// transport (on loopback) and data directory, every transport wrapped by a
// fault injector sharing one fault.Network. It keeps what must outlive a
// node's restart: its address, the peers it first started with, its
// message rules and slow-disk setting, and how often it restarted.
//
// A node is "started" once it has an address; it is a member until
// MarkRemoved. Every method is safe for concurrent use (a load generator's
// goroutines and a fault schedule's). What every client operation and every
// leadership poll reads (Endpoint, Leader, MaxTerm) takes no lock and
// allocates nothing: one lock shared by every operation of every client was
// the in-process harness's largest source of contention.
type Cluster struct {
	opts  Options
	tmpl  *Template
	dir   string // "" when nothing is kept on disk
	maxID uint64
	net   *fault.Network

	mu       sync.Mutex
	addrs    map[uint64]string            // every node ever started
	peersAt  map[uint64]map[uint64]string // the Peers each node first started with
	joined   map[uint64]bool              // nodes that joined a running cluster as learners
	removed  map[uint64]bool              // nodes removed from the membership
	nextID   uint64                       // the ID StartNew gives next
	reps     map[uint64]*Replica          // running nodes only
	rules    map[uint64]fault.Rules       // rules in force per node, kept across restarts
	disks    map[uint64]*SlowDisk         // per node, kept across restarts
	restarts map[uint64]int
	diskPeak map[uint64]int64 // peak size of each node's data directory
	closed   bool

	// slots mirror, per node ID (index), what the lock-free readers need:
	// the running replica, started and removed, and the crash count. They
	// are written under mu, with the maps above.
	slots []slot
}

// slot is one node ID's lock-free view (see Cluster.slots).
type slot struct {
	rep     atomic.Pointer[Replica]
	started atomic.Bool
	removed atomic.Bool
	// crashes counts the node's crashes: an answer from a node whose
	// count changed during the call is withheld (see Endpoint).
	crashes atomic.Uint64
}

// Start starts a cluster of o.Nodes voters and waits for nothing: use
// WaitLeader. Close stops it.
func Start(o Options) (*Cluster, error) {
	if err := o.Template.Validate(); err != nil {
		return nil, err
	}
	if o.Nodes < 1 {
		return nil, fmt.Errorf("%w: Nodes is %d, want at least 1", ErrInvalidSpec, o.Nodes)
	}
	if o.MaxID < uint64(o.Nodes) {
		o.MaxID = uint64(o.Nodes)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	c := &Cluster{
		opts: o, tmpl: &o.Template, maxID: o.MaxID, net: fault.NewNetwork(),
		addrs: map[uint64]string{}, peersAt: map[uint64]map[uint64]string{}, joined: map[uint64]bool{},
		removed: map[uint64]bool{}, nextID: uint64(o.Nodes) + 1, reps: map[uint64]*Replica{},
		rules: map[uint64]fault.Rules{}, disks: map[uint64]*SlowDisk{}, restarts: map[uint64]int{},
		diskPeak: map[uint64]int64{}, slots: make([]slot, o.MaxID+1),
	}
	for id := uint64(1); id <= c.maxID; id++ {
		c.disks[id] = &SlowDisk{}
	}
	if c.tmpl.NeedsDir() {
		if o.Dir != "" {
			if err := os.MkdirAll(o.Dir, 0o755); err != nil {
				return nil, fmt.Errorf("cluster: directory: %w", err)
			}
		}
		d, err := os.MkdirTemp(o.Dir, "raftbench-cluster-")
		if err != nil {
			return nil, fmt.Errorf("cluster: directory: %w", err)
		}
		c.dir = d
	}
	trs := map[uint64]*fault.Transport{}
	fail := func(err error) (*Cluster, error) {
		for _, tr := range trs { // not yet owned by a node
			_ = tr.Close()
		}
		c.Close()
		return nil, err
	}
	for id := uint64(1); id <= uint64(o.Nodes); id++ {
		tr, err := c.listen(id, c.listenAddr())
		if err != nil {
			return fail(err)
		}
		trs[id] = tr
		c.addrs[id] = tr.Addr()
		c.slots[id].started.Store(true)
	}
	for id := uint64(1); id <= uint64(o.Nodes); id++ {
		c.peersAt[id] = maps.Clone(c.addrs)
	}
	for id := uint64(1); id <= uint64(o.Nodes); id++ {
		tr := trs[id]
		delete(trs, id) // Start owns it now, even if it fails
		if err := c.start(id, tr); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

func (c *Cluster) listenAddr() string { return c.opts.Host + ":0" }

func (c *Cluster) listen(id uint64, addr string) (*fault.Transport, error) {
	c.mu.Lock()
	rules := c.rules[id]
	c.mu.Unlock()
	return c.tmpl.Listen(id, addr, Faults{Network: c.net, Rules: rules, Seed: c.tmpl.Node.Seed})
}

// NodeDir is node id's data directory ("" when the template keeps nothing
// on disk).
func (c *Cluster) NodeDir(id uint64) string {
	if c.dir == "" {
		return ""
	}
	return filepath.Join(c.dir, fmt.Sprintf("node%d", id))
}

// Dir is the cluster's directory ("" when nothing is kept on disk).
func (c *Cluster) Dir() string { return c.dir }

// start starts node id on tr with the Peers it first started with.
func (c *Cluster) start(id uint64, tr *fault.Transport) error {
	c.mu.Lock()
	spec := NodeSpec{
		ID: id, Peers: c.peersAt[id], Transport: tr, Dir: c.NodeDir(id), Join: c.joined[id],
		Incarnation: c.restarts[id], Disk: c.disks[id], Configure: c.opts.Configure,
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		_ = tr.Close()
		return fmt.Errorf("cluster: start node %d: %w", id, ErrClosed)
	}
	rep, err := c.tmpl.Start(spec)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.reps[id] = rep
	c.slots[id].rep.Store(rep)
	c.mu.Unlock()
	return nil
}

// Errors of a Cluster's node operations; each is wrapped with the node.
var (
	// ErrClosed is returned by calls that would start a node on a closed
	// Cluster.
	ErrClosed = errors.New("cluster: closed")
	// ErrNotRunning: the node is not running (stopped, crashed, never
	// started).
	ErrNotRunning = errors.New("cluster: node is not running")
)

// Stop stops node id as a kill does: saves already queued complete, the
// rest is lost with it. Its directory, address, rules and slow disk stay
// for Restart.
func (c *Cluster) Stop(id uint64) error {
	rep := c.take(id, false)
	if rep == nil {
		return fmt.Errorf("%w: node %d", ErrNotRunning, id)
	}
	return rep.Stop()
}

// take removes running node id from the cluster's view (counting a crash
// first when crash is set) and returns it, or nil when it is not running.
func (c *Cluster) take(id uint64, crash bool) *Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.reps[id]
	if rep == nil {
		return nil
	}
	delete(c.reps, id)
	if crash {
		c.slots[id].crashes.Add(1)
	}
	c.slots[id].rep.Store(nil)
	return rep
}

// Crash crashes node id: from this instant nothing it does counts. The
// answers to calls in flight through its Endpoint are withheld (the caller
// gets node.ErrStopped, outcome unknown: the answer may rest on a save the
// crash loses), every message it sends from now on is dropped, then image
// runs (a harness takes the image of what the node's storage synced, which
// is what survives), and then the node is stopped; its last writes go to
// storage the image no longer reflects. Its address, directory, rules and
// slow disk stay for Restart, as after Stop. The error of the stop itself
// (expected noise on a node cut off mid-flight) is returned after image
// has run.
func (c *Cluster) Crash(id uint64, image func(*Replica)) error {
	rep := c.take(id, true)
	if rep == nil {
		return fmt.Errorf("%w: node %d", ErrNotRunning, id)
	}
	// Only this incarnation's transport gets the rule; a restart makes a
	// new one with the node's own rules.
	_ = rep.Fault.SetRules(fault.Rules{DropRate: 1})
	if image != nil {
		image(rep)
	}
	return rep.Stop()
}

// restartTries bounds how long Restart waits for the OS to release a
// stopped node's port: 50 tries 20 ms apart.
const restartTries = 50

// Restart starts a stopped node again on its data directory and address.
// The port may take the OS a moment to release; Restart retries for up to
// a second.
func (c *Cluster) Restart(id uint64) error {
	c.mu.Lock()
	running, addr, removed := c.reps[id] != nil, c.addrs[id], c.removed[id]
	if !running && addr != "" && !removed {
		c.restarts[id]++
	}
	c.mu.Unlock()
	switch {
	case running:
		return fmt.Errorf("cluster: node %d is running", id)
	case addr == "":
		return fmt.Errorf("cluster: node %d was never started", id)
	case removed:
		return fmt.Errorf("cluster: node %d was removed from the cluster", id)
	case !c.tmpl.Durable():
		return fmt.Errorf("cluster: node %d cannot restart: the %s WAL does not survive a restart", id, c.tmpl.walName())
	}
	var tr *fault.Transport
	var err error
	for i := range restartTries {
		if tr, err = c.listen(id, addr); err == nil || i == restartTries-1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	return c.start(id, tr)
}

// Stopped lists the nodes started and not removed that are not running,
// in ID order.
func (c *Cluster) Stopped() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id := uint64(1); id <= c.maxID; id++ {
		if c.addrs[id] != "" && !c.removed[id] && c.reps[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// StartNew starts the next new node (IDs after the initial ones, in
// order, up to MaxID), empty, as a learner that joins the running cluster
// (the leader must then add it), and returns its ID and address. Its Peers
// are the current members as the leader sees them (every node started and
// not removed when no leader answers) and itself.
func (c *Cluster) StartNew(ctx context.Context) (uint64, string, error) {
	c.mu.Lock()
	id := c.nextID
	if id > c.maxID {
		c.mu.Unlock()
		return 0, "", fmt.Errorf("cluster: no node ID left (MaxID is %d)", c.maxID)
	}
	c.nextID++
	c.mu.Unlock()
	addr, err := c.join(ctx, id)
	return id, addr, err
}

// Join starts a new, empty node with the given ID (which must never have
// been started) as a learner joining the running cluster, like StartNew.
func (c *Cluster) Join(ctx context.Context, id uint64) (string, error) {
	c.mu.Lock()
	switch {
	case id == 0 || id > c.maxID:
		c.mu.Unlock()
		return "", fmt.Errorf("%w: node ID %d outside 1..MaxID %d", ErrInvalidSpec, id, c.maxID)
	case c.addrs[id] != "":
		c.mu.Unlock()
		return "", fmt.Errorf("cluster: node %d was already started", id)
	}
	if id >= c.nextID {
		c.nextID = id + 1
	}
	c.mu.Unlock()
	return c.join(ctx, id)
}

func (c *Cluster) join(ctx context.Context, id uint64) (string, error) {
	peers := map[uint64]string{}
	voters, learners, err := c.Members(ctx, 5*time.Second)
	c.mu.Lock()
	if err == nil {
		for _, m := range append(voters, learners...) {
			if a := c.addrs[m]; a != "" {
				peers[m] = a
			}
		}
	} else { // no leader to ask: every node started and not removed
		for m, a := range c.addrs {
			if !c.removed[m] {
				peers[m] = a
			}
		}
	}
	c.mu.Unlock()
	tr, err := c.listen(id, c.listenAddr())
	if err != nil {
		return "", err
	}
	addr := tr.Addr()
	peers[id] = addr
	c.mu.Lock()
	c.addrs[id], c.peersAt[id], c.joined[id] = addr, peers, true
	c.slots[id].started.Store(true)
	c.mu.Unlock()
	if err := c.start(id, tr); err != nil {
		return "", err
	}
	return addr, nil
}

// Members returns the membership as the current leader sees it (its
// progress tracker), waiting up to timeout for a leader.
func (c *Cluster) Members(ctx context.Context, timeout time.Duration) (voters, learners []uint64, err error) {
	lead, err := c.WaitAnyLeader(ctx, timeout)
	if err != nil {
		return nil, nil, err
	}
	l := c.Node(lead)
	if l == nil {
		return nil, nil, errors.New("cluster: the leader stopped")
	}
	st := l.Status()
	if st.Role != core.Leader {
		return nil, nil, errors.New("cluster: the leader stepped down")
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

// IsMember reports whether the current leader counts id as a voter, or
// with orLearner as any member.
func (c *Cluster) IsMember(id uint64, orLearner bool) bool {
	lead, _ := c.Leader()
	l := c.Node(lead)
	if l == nil {
		return false
	}
	p, ok := l.Status().Progress[id]
	return ok && (orLearner || !p.Learner)
}

// MarkRemoved records that id left the membership: it is not restarted,
// and its endpoint redirects to the leader from then on.
func (c *Cluster) MarkRemoved(id uint64) {
	c.mu.Lock()
	c.removed[id] = true
	if id < uint64(len(c.slots)) {
		c.slots[id].removed.Store(true)
	}
	c.mu.Unlock()
}

// Removed reports whether id was marked removed.
func (c *Cluster) Removed(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removed[id]
}

// Replica returns running node id's wiring, or nil.
func (c *Cluster) Replica(id uint64) *Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reps[id]
}

// Node returns running node id, or nil.
func (c *Cluster) Node(id uint64) *node.Node {
	if r := c.Replica(id); r != nil {
		return r.Node
	}
	return nil
}

// StateMachine returns the state machine of node id's current incarnation
// (nil while it is not running).
func (c *Cluster) StateMachine(id uint64) node.StateMachine {
	if r := c.Replica(id); r != nil {
		return r.StateMachine
	}
	return nil
}

// Store returns node id's state machine as a *kv.Store (nil while it is not
// running, or when the state machine is another kind).
func (c *Cluster) Store(id uint64) *kv.Store {
	s, _ := c.StateMachine(id).(*kv.Store)
	return s
}

// Fault returns running node id's fault wrapper, or nil.
func (c *Cluster) Fault(id uint64) *fault.Transport {
	if r := c.Replica(id); r != nil {
		return r.Fault
	}
	return nil
}

// Network holds the partitions every node's fault wrapper obeys.
func (c *Cluster) Network() *fault.Network { return c.net }

// Addr is node id's transport address ("" if it was never started). It
// stays the same across restarts.
func (c *Cluster) Addr(id uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[id]
}

// Addrs returns the address of every node ever started.
func (c *Cluster) Addrs() map[uint64]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.addrs)
}

// MaxID is the highest node ID the cluster may have.
func (c *Cluster) MaxID() uint64 { return c.maxID }

// Restarts is how many times node id was restarted.
func (c *Cluster) Restarts(id uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts[id]
}

// IDs lists the running nodes in ID order.
func (c *Cluster) IDs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.reps))
}

// Running returns the running nodes in ID order.
func (c *Cluster) Running() []*node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	ns := make([]*node.Node, 0, len(c.reps))
	for _, id := range slices.Sorted(maps.Keys(c.reps)) {
		ns = append(ns, c.reps[id].Node)
	}
	return ns
}

// Leader returns the running node that says it leads in the highest term,
// and that term; 0, 0 when none does. It takes no lock and allocates
// nothing (node.Leadership), so polling it does not disturb a run.
func (c *Cluster) Leader() (id, term uint64) {
	for i := 1; i < len(c.slots); i++ {
		if rep := c.slots[i].rep.Load(); rep != nil {
			if l := rep.Node.Leadership(); l.Role == core.Leader && l.Term >= term {
				id, term = uint64(i), l.Term
			}
		}
	}
	return id, term
}

// MaxTerm is the highest term any running node is in. Like Leader it
// takes no lock and allocates nothing.
func (c *Cluster) MaxTerm() uint64 {
	var t uint64
	for i := 1; i < len(c.slots); i++ {
		if rep := c.slots[i].rep.Load(); rep != nil {
			t = max(t, rep.Node.Leadership().Term)
		}
	}
	return t
}

// pollInterval is how often the waits look at the nodes' status.
const pollInterval = 5 * time.Millisecond

// WaitAnyLeader waits until some running node leads, for at most timeout.
func (c *Cluster) WaitAnyLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	var lead uint64
	err := waitFor(ctx, timeout, "a leader", func() bool {
		lead, _ = c.Leader()
		return lead != 0
	})
	return lead, err
}

// WaitLeader waits until a running node leads and every running node
// follows it, for at most timeout.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	var lead uint64
	err := waitFor(ctx, timeout, "a leader every running node follows", func() bool {
		lead, _ = c.Leader()
		if lead == 0 {
			return false
		}
		for _, n := range c.Running() {
			if n.Leadership().Leader != lead {
				return false
			}
		}
		return true
	})
	return lead, err
}

// ErrWaitTimeout is wrapped by the waits' errors when their time runs out.
var ErrWaitTimeout = errors.New("cluster: timed out waiting")

// waitFor polls cond until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no %s after %v", ErrWaitTimeout, what, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// SetRules sets node id's message rules; they are kept for its restarts.
func (c *Cluster) SetRules(id uint64, r fault.Rules) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	c.rules[id] = r
	rep := c.reps[id]
	c.mu.Unlock()
	if rep == nil {
		return nil
	}
	return rep.Fault.SetRules(r)
}

// Rules returns node id's message rules.
func (c *Cluster) Rules(id uint64) fault.Rules {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rules[id]
}

// SetDiskDelay makes every WAL save of node id sleep d first (kept across
// its restarts).
func (c *Cluster) SetDiskDelay(id uint64, d time.Duration) {
	if disk := c.disk(id); disk != nil {
		disk.SetDelay(d)
	}
}

// DiskDelay is node id's slow-disk delay.
func (c *Cluster) DiskDelay(id uint64) time.Duration {
	if disk := c.disk(id); disk != nil {
		return disk.Delay()
	}
	return 0
}

func (c *Cluster) disk(id uint64) *SlowDisk {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disks[id]
}

// FaultCounters sums the running nodes' fault wrappers' counters.
func (c *Cluster) FaultCounters() fault.Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s fault.Counters
	for _, r := range c.reps {
		x := r.Fault.Counters()
		s.Dropped += x.Dropped
		s.PartitionedSend += x.PartitionedSend
		s.PartitionedRecv += x.PartitionedRecv
		s.Duplicated += x.Duplicated
		s.Delayed += x.Delayed
		s.Reordered += x.Reordered
	}
	return s
}

// HealAll lifts every fault: partitions, message rules, slow disks.
func (c *Cluster) HealAll() {
	c.net.Heal()
	for id := uint64(1); id <= c.maxID; id++ {
		_ = c.SetRules(id, fault.Rules{})
		c.SetDiskDelay(id, 0)
	}
}

// SampleDisk measures every started node's data directory (WAL and
// snapshots) and keeps the peak per node.
func (c *Cluster) SampleDisk() {
	if c.dir == "" && c.opts.DiskUsage == nil {
		return
	}
	c.mu.Lock()
	ids := slices.Collect(maps.Keys(c.addrs))
	c.mu.Unlock()
	for _, id := range ids {
		n := DirSize(c.NodeDir(id))
		if c.opts.DiskUsage != nil {
			n += c.opts.DiskUsage(id)
		}
		c.mu.Lock()
		c.diskPeak[id] = max(c.diskPeak[id], n)
		c.mu.Unlock()
	}
}

// DiskPeaks returns the peak size SampleDisk saw of every node's data
// directory.
func (c *Cluster) DiskPeaks() map[uint64]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.diskPeak)
}

// DirSize sums the sizes of the regular files under dir. Files that vanish
// while it walks (Pebble deletes obsolete ones all the time) are skipped.
func DirSize(dir string) int64 {
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

// Close stops every node and removes the cluster's directory unless
// KeepDir. It returns the nodes' stop errors. Nothing can start after it.
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var errs []error
	for _, id := range c.IDs() {
		if err := c.Stop(id); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.opts.KeepDir && c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("cluster: remove %s: %w", c.dir, err))
		}
	}
	return errors.Join(errs...)
}

func slicesSorted(m map[uint64]string) []uint64 { return slices.Sorted(maps.Keys(m)) }

// Package fault wraps any transport.Transport and injects network faults:
// drops, delays (fixed plus jitter), duplicates, reordering and partitions,
// all changeable while running, all counted.
//
// Random decisions come from a PCG generator seeded by Config.Seed and the
// node ID, so a test with a fixed seed sees the same decisions for the same
// sequence of Sends (delays are real time, so interleavings with other
// goroutines can still vary).
//
// Partitions live in a Network shared by all the wrapped transports of a
// cluster: cutting a link there affects both ends. A cut link (from, to) is
// enforced where from sends and again where to receives, so a partition
// holds even when only one side is wrapped, and messages already delayed
// in the wrapper are checked again when their delay ends.
//
// A MsgSnap is one message to the rules, whatever its size: it is dropped,
// cut, delayed or duplicated whole, and the inner transport streams it.
// When the wrapper drops or cuts one and the Handler implements
// transport.SnapshotReporter, it reports SnapshotStatus(to, false) (from
// its own goroutine, as the inner transport would), so the runtime tells
// core and the snapshot is sent again. A snapshot cut on the receiving
// side is discarded after the receiver acknowledged it, as a message lost
// after delivery would be; Raft recovers when the follower's next answer
// shows it lacks the snapshot.
package fault

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// ErrInvalidConfig wraps every problem Config.Validate and Rules.Validate
// find.
var ErrInvalidConfig = errors.New("fault: invalid config")

// Rules are the per-message faults a wrapper applies to what it sends.
type Rules struct {
	// DropRate is the probability that a message is dropped.
	DropRate float64
	// DuplicateRate is the probability that a message is sent twice.
	DuplicateRate float64
	// ReorderRate is the probability that a message is held back for a
	// random time up to ReorderWindow, so messages sent after it overtake
	// it.
	ReorderRate   float64
	ReorderWindow time.Duration
	// Delay is added to every message, plus a uniform random jitter in
	// [0, Jitter). Jitter reorders as a side effect, as on a real network.
	Delay  time.Duration
	Jitter time.Duration
}

// DefaultReorderWindow is used when ReorderRate > 0 and ReorderWindow is 0.
const DefaultReorderWindow = 5 * time.Millisecond

// EnsureDefaults fills zero fields with their defaults: ReorderWindow,
// when ReorderRate asks for reordering. The other zero values mean "no such
// fault".
func (r *Rules) EnsureDefaults() {
	if r.ReorderRate > 0 && r.ReorderWindow == 0 {
		r.ReorderWindow = DefaultReorderWindow
	}
}

// Validate reports every invalid field, each naming the field, its value
// and the limit, joined into one error wrapping ErrInvalidConfig. It does
// not change r.
func (r *Rules) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"DropRate", r.DropRate}, {"DuplicateRate", r.DuplicateRate}, {"ReorderRate", r.ReorderRate}} {
		if !(f.v >= 0 && f.v <= 1) {
			errs = append(errs, fmt.Errorf("%w: %s = %v, must be in [0, 1]", ErrInvalidConfig, f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"ReorderWindow", r.ReorderWindow}, {"Delay", r.Delay}, {"Jitter", r.Jitter}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s = %v, must be >= 0", ErrInvalidConfig, f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// Network is the partition state shared by the wrappers of one cluster.
// Its methods are safe for concurrent use and take effect at once.
type Network struct {
	mu       sync.RWMutex
	cuts     map[[2]uint64]bool // one-way cuts: {from, to}
	isolated map[uint64]bool
	group    map[uint64]int // node -> group index, from Split
}

// NewNetwork returns a network with every link up.
func NewNetwork() *Network {
	n := &Network{}
	n.Heal()
	return n
}

// Cut blocks messages from from to to (one way; to can still reach from).
func (n *Network) Cut(from, to uint64) {
	n.mu.Lock()
	n.cuts[[2]uint64{from, to}] = true
	n.mu.Unlock()
}

// Isolate blocks every message to or from id.
func (n *Network) Isolate(id uint64) {
	n.mu.Lock()
	n.isolated[id] = true
	n.mu.Unlock()
}

// Uncut lifts a Cut from from to to (one way), leaving every other cut,
// isolation and split in force.
func (n *Network) Uncut(from, to uint64) {
	n.mu.Lock()
	delete(n.cuts, [2]uint64{from, to})
	n.mu.Unlock()
}

// Unisolate lifts an Isolate of id, leaving every other cut, isolation and
// split in force (a link of id that is also cut stays cut).
func (n *Network) Unisolate(id uint64) {
	n.mu.Lock()
	delete(n.isolated, id)
	n.mu.Unlock()
}

// Split partitions the cluster into groups: nodes in different groups
// cannot reach each other. A node in no group is unaffected by the split.
// Split replaces any earlier split (cuts and isolations stay).
func (n *Network) Split(groups ...[]uint64) {
	n.mu.Lock()
	n.group = make(map[uint64]int)
	for i, g := range groups {
		for _, id := range g {
			n.group[id] = i
		}
	}
	n.mu.Unlock()
}

// Heal removes every cut, isolation and split.
func (n *Network) Heal() {
	n.mu.Lock()
	n.cuts = make(map[[2]uint64]bool)
	n.isolated = make(map[uint64]bool)
	n.group = make(map[uint64]int)
	n.mu.Unlock()
}

// NetworkState is a copy of a Network's partitions, in a canonical order
// (IDs ascending), for reports and remote control.
type NetworkState struct {
	// Isolated lists the isolated nodes.
	Isolated []uint64
	// Cuts lists the one-way cuts as {from, to}.
	Cuts [][2]uint64
	// Groups is the split in force (nil: none), each group's IDs ascending,
	// groups ordered by their smallest ID.
	Groups [][]uint64
}

// State returns a copy of the partitions in force.
func (n *Network) State() NetworkState {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var s NetworkState
	for id := range n.isolated {
		s.Isolated = append(s.Isolated, id)
	}
	slices.Sort(s.Isolated)
	for c := range n.cuts {
		s.Cuts = append(s.Cuts, c)
	}
	slices.SortFunc(s.Cuts, func(a, b [2]uint64) int {
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		return cmp.Compare(a[1], b[1])
	})
	byGroup := map[int][]uint64{}
	for id, g := range n.group {
		byGroup[g] = append(byGroup[g], id)
	}
	for _, ids := range byGroup {
		slices.Sort(ids)
		s.Groups = append(s.Groups, ids)
	}
	slices.SortFunc(s.Groups, func(a, b []uint64) int { return cmp.Compare(a[0], b[0]) })
	return s
}

// Blocked reports whether a message from from to to is currently cut.
func (n *Network) Blocked(from, to uint64) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.isolated[from] || n.isolated[to] || n.cuts[[2]uint64{from, to}] {
		return true
	}
	gf, okf := n.group[from]
	gt, okt := n.group[to]
	return okf && okt && gf != gt
}

// Config configures a wrapper.
type Config struct {
	// ID is the wrapped node's ID (needed to check partitions).
	ID uint64
	// Seed seeds the random decisions (mixed with ID, so nodes of one
	// cluster sharing a seed still decide independently).
	Seed uint64
	// Network holds the partitions; nil gives the wrapper a private one.
	Network *Network
	// Rules are the initial faults; SetRules changes them later.
	Rules Rules
}

// EnsureDefaults fills zero fields with their defaults: a private Network
// when none is given, and the Rules' defaults.
func (c *Config) EnsureDefaults() {
	if c.Network == nil {
		c.Network = NewNetwork()
	}
	c.Rules.EnsureDefaults()
}

// Validate reports every invalid field, each naming the field, its value
// and the limit, joined into one error wrapping ErrInvalidConfig. It does
// not change c.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, fmt.Errorf("%w: ID = 0, must be the wrapped node's (non-zero) ID", ErrInvalidConfig))
	}
	return errors.Join(append(errs, c.Rules.Validate())...)
}

// Counters are what the wrapper did.
type Counters struct {
	Dropped         uint64 // dropped by DropRate
	PartitionedSend uint64 // not sent: link cut at send or at end of delay
	PartitionedRecv uint64 // received but discarded: link cut
	Duplicated      uint64 // extra copies sent
	Delayed         uint64 // messages held for Delay/Jitter
	Reordered       uint64 // messages held back by ReorderRate
}

// Transport is a fault-injecting transport.Transport.
type Transport struct {
	inner transport.Transport
	id    uint64
	net   *Network

	mu     sync.Mutex // guards rules, rng, the delay queue
	rules  Rules
	rng    *rand.Rand
	queue  delayQueue
	seq    uint64
	closed bool
	wake   chan struct{} // capacity 1
	done   chan struct{}
	exited chan struct{}

	dropped, partSend, partRecv, duplicated, delayed, reordered atomic.Uint64
	// per-peer drops by this wrapper, merged into Stats
	pmu       sync.Mutex
	peerDrops map[uint64]*[2]uint64 // [fault, partition]

	// handler is the Handler given to Start, for snapshot reports;
	// reports run on goroutines tracked by reports (waited for by Close,
	// added to only under mu while not closed).
	handler atomic.Pointer[transport.Handler]
	reports sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var _ transport.Transport = (*Transport)(nil)

// Wrap returns inner with faults applied. The wrapper owns inner: closing
// the wrapper closes inner.
func Wrap(inner transport.Transport, cfg Config) (*Transport, error) {
	cfg.EnsureDefaults()
	err := cfg.Validate()
	if inner == nil {
		err = errors.Join(err, fmt.Errorf("%w: the inner transport is nil", ErrInvalidConfig))
	}
	if err != nil {
		return nil, err
	}
	t := &Transport{
		inner:     inner,
		id:        cfg.ID,
		net:       cfg.Network,
		rules:     cfg.Rules,
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.ID)),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		exited:    make(chan struct{}),
		peerDrops: make(map[uint64]*[2]uint64),
	}
	go t.releaseLoop()
	return t, nil
}

// SetRules replaces the rules (defaults filled, then validated); messages
// already delayed keep their times.
func (t *Transport) SetRules(r Rules) error {
	r.EnsureDefaults()
	if err := r.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	t.rules = r
	t.mu.Unlock()
	return nil
}

// Rules returns the rules in force.
func (t *Transport) Rules() Rules {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rules
}

// Network returns the partition state this wrapper obeys.
func (t *Transport) Network() *Network { return t.net }

// Inner returns the wrapped transport.
func (t *Transport) Inner() transport.Transport { return t.inner }

// Counters returns what the wrapper has done so far.
func (t *Transport) Counters() Counters {
	return Counters{
		Dropped:         t.dropped.Load(),
		PartitionedSend: t.partSend.Load(),
		PartitionedRecv: t.partRecv.Load(),
		Duplicated:      t.duplicated.Load(),
		Delayed:         t.delayed.Load(),
		Reordered:       t.reordered.Load(),
	}
}

func (t *Transport) countPeer(peer uint64, partition bool) {
	t.pmu.Lock()
	d := t.peerDrops[peer]
	if d == nil {
		d = new([2]uint64)
		t.peerDrops[peer] = d
	}
	if partition {
		d[1]++
	} else {
		d[0]++
	}
	t.pmu.Unlock()
}

// Start wraps h so messages over a cut link are discarded on arrival.
func (t *Transport) Start(h transport.Handler) error {
	if err := t.inner.Start(&recvFilter{t: t, h: h}); err != nil {
		return err
	}
	t.handler.Store(&h)
	return nil
}

// reportSnapFailures tells the handler that the snapshots to peers in to
// were lost here. It runs them on a goroutine so Send never calls the
// handler (the runtime calls Send from the loop the report feeds).
func (t *Transport) reportSnapFailures(to []uint64) {
	hp := t.handler.Load()
	if len(to) == 0 || hp == nil {
		return
	}
	r, ok := (*hp).(transport.SnapshotReporter)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.reports.Add(1)
	go func() {
		defer t.reports.Done()
		for _, id := range to {
			r.SnapshotStatus(id, false)
		}
	}()
}

type recvFilter struct {
	t *Transport
	h transport.Handler
}

func (f *recvFilter) Deliver(msgs []core.Message) {
	kept := msgs[:0]
	for _, m := range msgs {
		if f.t.net.Blocked(m.From, f.t.id) {
			f.t.partRecv.Add(1)
			f.t.countPeer(m.From, true)
			continue
		}
		kept = append(kept, m)
	}
	if len(kept) > 0 {
		f.h.Deliver(kept)
	}
}

func (f *recvFilter) Unreachable(peer uint64) { f.h.Unreachable(peer) }

// SnapshotStatus passes the inner transport's snapshot reports on.
func (f *recvFilter) SnapshotStatus(to uint64, ok bool) {
	if r, is := f.h.(transport.SnapshotReporter); is {
		r.SnapshotStatus(to, ok)
	}
}

// Send applies the rules to each message and passes the survivors to the
// inner transport, now or when their delay ends. It never blocks.
func (t *Transport) Send(msgs []core.Message) {
	var now []core.Message
	var lostSnaps []uint64
	defer func() { t.reportSnapFailures(lostSnaps) }()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.inner.Send(msgs) // inner is closed too and counts them
		return
	}
	r := t.rules
	woke := false
	for _, m := range msgs {
		if t.net.Blocked(t.id, m.To) {
			t.partSend.Add(1)
			t.countPeer(m.To, true)
			if m.Type == core.MsgSnap {
				lostSnaps = append(lostSnaps, m.To)
			}
			continue
		}
		if r.DropRate > 0 && t.rng.Float64() < r.DropRate {
			t.dropped.Add(1)
			t.countPeer(m.To, false)
			if m.Type == core.MsgSnap {
				lostSnaps = append(lostSnaps, m.To)
			}
			continue
		}
		copies := 1
		if r.DuplicateRate > 0 && t.rng.Float64() < r.DuplicateRate {
			copies = 2
			t.duplicated.Add(1)
		}
		for range copies {
			d := r.Delay
			if r.Jitter > 0 {
				d += time.Duration(t.rng.Int64N(int64(r.Jitter)))
			}
			if r.ReorderRate > 0 && t.rng.Float64() < r.ReorderRate {
				d += 1 + time.Duration(t.rng.Int64N(int64(r.ReorderWindow)))
				t.reordered.Add(1)
			} else if d > 0 {
				t.delayed.Add(1)
			}
			if d == 0 {
				now = append(now, m)
				continue
			}
			t.seq++
			heap.Push(&t.queue, delayed{due: time.Now().Add(d), seq: t.seq, m: m})
			woke = true
		}
	}
	t.mu.Unlock()
	if woke {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	if len(now) > 0 {
		t.inner.Send(now)
	}
}

// releaseLoop sends delayed messages when they are due.
func (t *Transport) releaseLoop() {
	defer close(t.exited)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.mu.Lock()
		var due []core.Message
		nowT := time.Now()
		for t.queue.Len() > 0 && !t.queue[0].due.After(nowT) {
			d := heap.Pop(&t.queue).(delayed)
			due = append(due, d.m)
		}
		wait := time.Hour
		if t.queue.Len() > 0 {
			wait = t.queue[0].due.Sub(nowT)
		}
		t.mu.Unlock()
		kept := due[:0]
		var lostSnaps []uint64
		for _, m := range due {
			if t.net.Blocked(t.id, m.To) {
				t.partSend.Add(1)
				t.countPeer(m.To, true)
				if m.Type == core.MsgSnap {
					lostSnaps = append(lostSnaps, m.To)
				}
				continue
			}
			kept = append(kept, m)
		}
		t.reportSnapFailures(lostSnaps)
		if len(kept) > 0 {
			t.inner.Send(kept)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-t.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-t.done:
			return
		}
	}
}

// AddPeer implements transport.Transport.
func (t *Transport) AddPeer(id uint64, addr string) error { return t.inner.AddPeer(id, addr) }

// RemovePeer implements transport.Transport.
func (t *Transport) RemovePeer(id uint64) { t.inner.RemovePeer(id) }

// Addr implements transport.Transport.
func (t *Transport) Addr() string { return t.inner.Addr() }

// MaxFrameSize implements transport.Transport: the inner transport's limit,
// since every message the wrapper lets through is sent by it, unchanged.
func (t *Transport) MaxFrameSize() int { return t.inner.MaxFrameSize() }

// Stats returns the inner transport's counters with the wrapper's own
// drops added per peer as transport.DropFault and DropPartition.
func (t *Transport) Stats() transport.Stats {
	s := t.inner.Stats()
	if s.Peers == nil {
		s.Peers = make(map[uint64]transport.PeerStats)
	}
	t.pmu.Lock()
	defer t.pmu.Unlock()
	for id, d := range t.peerDrops {
		ps := s.Peers[id]
		ps.Drops[transport.DropFault] += d[0]
		ps.Drops[transport.DropPartition] += d[1]
		s.Peers[id] = ps
	}
	return s
}

// Close stops the delay goroutine (messages still delayed are lost, as in
// a crash) and closes the inner transport.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.queue = nil
		t.mu.Unlock()
		close(t.done)
		<-t.exited
		t.closeErr = t.inner.Close()
		t.reports.Wait()
	})
	return t.closeErr
}

type delayed struct {
	due time.Time
	seq uint64
	m   core.Message
}

// delayQueue is a min-heap by due time, then by send order, so messages
// with equal delays leave in the order they were sent.
type delayQueue []delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if q[i].due.Equal(q[j].due) {
		return q[i].seq < q[j].seq
	}
	return q[i].due.Before(q[j].due)
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*q = old[:len(old)-1]
	return d
}

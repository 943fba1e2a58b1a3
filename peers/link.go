package peers

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/transport/fault"
)

// Link applies the main module's fault semantics — fault.Rules for what
// one node sends, a fault.Network shared by the cluster for partitions —
// to the messages of a library whose transport is not a
// transport.Transport, so fault.Transport cannot wrap it. Each adapter
// calls it at its own seam (a message, an RPC, a batch); the decisions are
// the ones fault.Transport makes, drawn from a PCG seeded by the seed and
// the node ID. A Link outlives its node's restarts, as the rules do.
//
// It is safe for concurrent use.
type Link struct {
	id  uint64
	net *fault.Network

	mu    sync.Mutex // guards rules and rng
	rules fault.Rules
	rng   *rand.Rand

	dropped, partitioned, duplicated, delayed, reordered atomic.Uint64
}

// NewLink returns the link of node id, obeying net.
func NewLink(id, seed uint64, net *fault.Network) *Link {
	return &Link{id: id, net: net, rng: rand.New(rand.NewPCG(seed, id))}
}

// SetRules replaces the rules (after filling their defaults and
// validating them, as fault.Transport.SetRules does).
func (l *Link) SetRules(r fault.Rules) error {
	r.EnsureDefaults()
	if err := r.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	l.rules = r
	l.mu.Unlock()
	return nil
}

// Rules returns the rules in force.
func (l *Link) Rules() fault.Rules {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rules
}

// Blocked reports whether the network cuts messages from this node to to,
// counting one partitioned message when it does.
func (l *Link) Blocked(to uint64) bool {
	if l.net.Blocked(l.id, to) {
		l.partitioned.Add(1)
		return true
	}
	return false
}

// BlockedFrom reports whether the network cuts messages from from to this
// node: a receiver checks it so that a partition also stops what was
// already on the wire when it began.
func (l *Link) BlockedFrom(from uint64) bool {
	if l.net.Blocked(from, l.id) {
		l.partitioned.Add(1)
		return true
	}
	return false
}

// Lose reports whether one message to to is lost: cut by the network or
// dropped by DropRate.
func (l *Link) Lose(to uint64) bool {
	if l.Blocked(to) {
		return true
	}
	l.mu.Lock()
	drop := l.rules.DropRate > 0 && l.rng.Float64() < l.rules.DropRate
	l.mu.Unlock()
	if drop {
		l.dropped.Add(1)
	}
	return drop
}

// Delay returns how long to hold one message: Delay plus a uniform jitter
// in [0, Jitter). It is for seams that keep order (a byte stream), where a
// message cannot overtake another; Decide is for message seams.
func (l *Link) Delay() time.Duration {
	l.mu.Lock()
	d := l.rules.Delay
	if l.rules.Jitter > 0 {
		d += time.Duration(l.rng.Int64N(int64(l.rules.Jitter)))
	}
	l.mu.Unlock()
	if d > 0 {
		l.delayed.Add(1)
	}
	return d
}

// Decide returns the fate of one message to to: how many copies to send
// (0 when it is lost, 2 when duplicated) and how long to hold each (0:
// send now), exactly as fault.Transport.Send decides.
func (l *Link) Decide(to uint64) (copies int, delays [2]time.Duration) {
	if l.Blocked(to) {
		return 0, delays
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rules
	if r.DropRate > 0 && l.rng.Float64() < r.DropRate {
		l.dropped.Add(1)
		return 0, delays
	}
	copies = 1
	if r.DuplicateRate > 0 && l.rng.Float64() < r.DuplicateRate {
		copies = 2
		l.duplicated.Add(1)
	}
	for i := range copies {
		d := r.Delay
		if r.Jitter > 0 {
			d += time.Duration(l.rng.Int64N(int64(r.Jitter)))
		}
		if r.ReorderRate > 0 && l.rng.Float64() < r.ReorderRate {
			d += 1 + time.Duration(l.rng.Int64N(int64(r.ReorderWindow)))
			l.reordered.Add(1)
		} else if d > 0 {
			l.delayed.Add(1)
		}
		delays[i] = d
	}
	return copies, delays
}

// Counters returns what the link decided so far, in fault.Transport's
// terms (partitioned messages count as PartitionedSend wherever the cut
// was seen).
func (l *Link) Counters() fault.Counters {
	return fault.Counters{
		Dropped:         l.dropped.Load(),
		PartitionedSend: l.partitioned.Load(),
		Duplicated:      l.duplicated.Load(),
		Delayed:         l.delayed.Load(),
		Reordered:       l.reordered.Load(),
	}
}

// Delayer holds items until their time and then hands them, in due order
// (send order among equal times), to its sink on its own goroutine. The
// sink must not block for long: it runs for every due item in turn.
type Delayer[T any] struct {
	sink func([]T)

	mu     sync.Mutex
	queue  delayHeap[T]
	seq    uint64
	closed bool
	wake   chan struct{}
	done   chan struct{}
	exited chan struct{}
}

// NewDelayer starts a delayer that releases into sink.
func NewDelayer[T any](sink func([]T)) *Delayer[T] {
	d := &Delayer[T]{sink: sink, wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	go d.loop()
	return d
}

// After hands item to the sink once delay has passed. After Close it
// drops the item, as a crash loses what was in flight.
func (d *Delayer[T]) After(delay time.Duration, item T) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.seq++
	heap.Push(&d.queue, delayedItem[T]{due: time.Now().Add(delay), seq: d.seq, item: item})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Close stops the delayer, dropping what it holds, and waits for its
// goroutine (and so for a sink call in progress) to end.
func (d *Delayer[T]) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.exited
		return
	}
	d.closed = true
	d.queue = nil
	d.mu.Unlock()
	close(d.done)
	<-d.exited
}

func (d *Delayer[T]) loop() {
	defer close(d.exited)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		var due []T
		now := time.Now()
		for d.queue.Len() > 0 && !d.queue[0].due.After(now) {
			due = append(due, heap.Pop(&d.queue).(delayedItem[T]).item)
		}
		wait := time.Hour
		if d.queue.Len() > 0 {
			wait = d.queue[0].due.Sub(now)
		}
		d.mu.Unlock()
		if len(due) > 0 {
			d.sink(due)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.wake:
		case <-d.done:
			return
		}
	}
}

type delayedItem[T any] struct {
	due  time.Time
	seq  uint64
	item T
}

// delayHeap is a min-heap by due time, then send order.
type delayHeap[T any] []delayedItem[T]

func (h delayHeap[T]) Len() int { return len(h) }
func (h delayHeap[T]) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h delayHeap[T]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap[T]) Push(x any)   { *h = append(*h, x.(delayedItem[T])) }
func (h *delayHeap[T]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = delayedItem[T]{}
	*h = old[:len(old)-1]
	return it
}

package bench

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// opKind says what an operation was.
type opKind uint8

const (
	opWrite opKind = iota
	opRead
)

// latencyRecorder measures the operations of the window [t0, end): an
// operation belongs to the window when its intended start (open loop: its
// slot in the schedule; closed loop: its call) falls in it, and its latency
// and outcome are attributed to the second of that start. Operations that
// have not completed when the window closes are recorded then, with latency
// (close − intended start) — a lower bound of their true latency — and
// counted as incomplete, so an outage at the end of a run shows in the tail
// instead of vanishing. Whatever they do afterwards is not recorded again.
//
// Separately, it keeps what completed since the last roll for the live
// progress line. Safe for concurrent use.
type latencyRecorder struct {
	// t0 and end are the planned window; closedAt is set once it closes
	// (at end, or earlier when the run is interrupted).
	t0, end  time.Time
	closedAt atomic.Pointer[time.Time]

	mu         sync.Mutex
	secs       []secondStats // by second of intended start
	reads      int64
	writes     int64
	incomplete int64
	errs       map[string]int64
	live       *hdrhistogram.Histogram // completions since the last roll
	liveErrs   int64

	inflight [inflightShards]inflightShard
	seq      atomic.Uint64

	watching atomic.Int32
	wmu      sync.Mutex
	watches  []*ackWatch
}

// secondStats is one second of the window, by intended start.
type secondStats struct {
	h          *hdrhistogram.Histogram
	errs       int64
	incomplete int64
}

// inflightShards spreads the set of operations in flight, and the
// completed ones not yet in the histograms, over several locks, so that
// beginning and ending operations on many goroutines does not contend on
// one; completions reach the histograms (under mu) flushBatch at a time.
const (
	inflightShards = 32
	flushBatch     = 128
)

type inflightShard struct {
	mu sync.Mutex
	// ops lists the shard's operations in flight, linked through the ops
	// themselves: a map here cost 0.2 s of 14.9 s of CPU at 256 clients
	// (an insert and a delete per operation); n is the list's length.
	ops     *op
	n       int
	pending []sample
	spare   []sample // a recorded batch's buffer, for the next one
}

// sample is one completed operation waiting to be recorded.
type sample struct {
	intended time.Time
	lat      time.Duration
	kind     opKind
	errKind  string // "" for success
}

// op is one measured operation in flight. state moves from opPending to
// opDone (it completed, and was recorded) or to opIncomplete (the window
// closed first, and it was recorded then) exactly once.
type op struct {
	intended time.Time
	shard    uint32
	state    atomic.Uint32
	// prev, next and linked place it in its shard's list while it is in
	// flight; the shard's mu guards them.
	prev, next *op
	linked     bool
}

// link adds o to the shard's list; sh.mu is held.
func (sh *inflightShard) link(o *op) {
	o.prev, o.next, o.linked = nil, sh.ops, true
	if sh.ops != nil {
		sh.ops.prev = o
	}
	sh.ops = o
	sh.n++
}

// unlink removes o from the shard's list if it is there; sh.mu is held.
func (sh *inflightShard) unlink(o *op) {
	if !o.linked {
		return
	}
	if o.prev != nil {
		o.prev.next = o.next
	} else {
		sh.ops = o.next
	}
	if o.next != nil {
		o.next.prev = o.prev
	}
	o.prev, o.next, o.linked = nil, nil, false
	sh.n--
}

const (
	opPending uint32 = iota
	opDone
	opIncomplete
)

func newLatencyRecorder(t0, end time.Time) *latencyRecorder {
	return &latencyRecorder{t0: t0, end: end, errs: map[string]int64{}, live: results.NewHistogram()}
}

// second is the index of the window's second holding t; r.mu must be held.
func (r *latencyRecorder) second(t time.Time) *secondStats {
	i := int(t.Sub(r.t0) / time.Second)
	for len(r.secs) <= i {
		r.secs = append(r.secs, secondStats{h: results.NewHistogram()})
	}
	return &r.secs[i]
}

// inWindow reports whether an operation intended to start at t belongs to
// the planned window.
func (r *latencyRecorder) inWindow(t time.Time) bool { return !t.Before(r.t0) && t.Before(r.end) }

// windowEnd is the end of the window: its close, or the planned end while
// it is open.
func (r *latencyRecorder) windowEnd() time.Time {
	if at := r.closedAt.Load(); at != nil && at.Before(r.end) {
		return *at
	}
	return r.end
}

// begin registers an operation intended to start at intended. It returns
// nil for an operation outside the window (warm-up, or after its end).
// Called after the window closed, an operation that belonged to it is
// recorded as incomplete at once.
func (r *latencyRecorder) begin(intended time.Time) *op {
	if !r.inWindow(intended) {
		return nil
	}
	o := &op{intended: intended, shard: uint32(r.seq.Add(1) % inflightShards)}
	sh := &r.inflight[o.shard]
	sh.mu.Lock()
	sh.link(o)
	sh.mu.Unlock()
	// close publishes closedAt before it sweeps the shards, so an operation
	// registered too late for the sweep sees it here.
	if at := r.closedAt.Load(); at != nil {
		if !intended.Before(*at) {
			sh.mu.Lock()
			sh.unlink(o)
			sh.mu.Unlock()
			return nil
		}
		r.abandon(o, *at)
	}
	return o
}

// finish records how o ended at done (err nil for success). start is when
// the call was made (for the failover watch: a write proposed after a
// fault). o may be nil (an operation outside the window).
func (r *latencyRecorder) finish(o *op, kind opKind, err error, start, done time.Time) {
	if err == nil && kind == opWrite && r.watching.Load() > 0 {
		r.notifyAck(start, done)
	}
	if o == nil {
		return
	}
	if end := r.windowEnd(); !done.Before(end) {
		// It completed after the window's end, even if before close
		// ran: it was incomplete when the window closed.
		r.drop(o)
		r.abandon(o, end)
		return
	}
	smp := sample{intended: o.intended, lat: done.Sub(o.intended), kind: kind}
	if err != nil {
		smp.errKind = errorKind(err)
	}
	sh := &r.inflight[o.shard]
	sh.mu.Lock()
	sh.unlink(o)
	if !o.state.CompareAndSwap(opPending, opDone) {
		sh.mu.Unlock()
		return // the window closed first: already recorded as incomplete
	}
	sh.pending = append(sh.pending, smp)
	var batch []sample
	if len(sh.pending) >= flushBatch {
		batch, sh.pending, sh.spare = sh.pending, sh.spare[:0], nil
	}
	sh.mu.Unlock()
	if batch != nil {
		r.record(batch)
		sh.mu.Lock()
		sh.spare = batch[:0]
		sh.mu.Unlock()
	}
}

// flush records every shard's pending completions.
func (r *latencyRecorder) flush() {
	for i := range r.inflight {
		sh := &r.inflight[i]
		sh.mu.Lock()
		batch := sh.pending
		sh.pending = nil
		sh.mu.Unlock()
		r.record(batch)
	}
}

// record puts completed operations into the histograms and counts.
func (r *latencyRecorder) record(batch []sample) {
	if len(batch) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, smp := range batch {
		s := r.second(smp.intended)
		if smp.errKind != "" {
			r.errs[smp.errKind]++
			s.errs++
			r.liveErrs++
			continue
		}
		if smp.kind == opRead {
			r.reads++
		} else {
			r.writes++
		}
		results.RecordUS(s.h, smp.lat)
		results.RecordUS(r.live, smp.lat)
	}
}

// drop forgets o, which never ran (the window closed before it could start;
// close has recorded it as incomplete).
func (r *latencyRecorder) drop(o *op) {
	if o == nil {
		return
	}
	sh := &r.inflight[o.shard]
	sh.mu.Lock()
	sh.unlink(o)
	sh.mu.Unlock()
}

// abandon records o as incomplete at the window's close at.
func (r *latencyRecorder) abandon(o *op, at time.Time) {
	if !o.state.CompareAndSwap(opPending, opIncomplete) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.second(o.intended)
	results.RecordUS(s.h, at.Sub(o.intended))
	s.incomplete++
	r.incomplete++
}

// missed records an operation of the window that was never started (the
// scheduler was stopped, or fell behind, before its slot): incomplete, with
// latency from its intended start to the close at.
func (r *latencyRecorder) missed(intended, at time.Time) {
	if !r.inWindow(intended) || !intended.Before(at) {
		return
	}
	r.abandon(&op{intended: intended}, at)
}

// close closes the window at at (its planned end, or earlier when the run
// was interrupted): operations still in flight are recorded as incomplete,
// and operations intended at or after at no longer belong to it.
func (r *latencyRecorder) close(at time.Time) {
	r.closedAt.Store(&at)
	for i := range r.inflight {
		sh := &r.inflight[i]
		sh.mu.Lock()
		ops := make([]*op, 0, sh.n)
		for o := sh.ops; o != nil; o = o.next {
			ops = append(ops, o)
		}
		sh.mu.Unlock()
		for _, o := range ops {
			if o.intended.Before(at) {
				r.abandon(o, at)
			}
		}
	}
}

// inFlight counts the measured operations begun and not finished (those
// recorded as incomplete included: they still have to end).
func (r *latencyRecorder) inFlight() int {
	n := 0
	for i := range r.inflight {
		sh := &r.inflight[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// roll returns what completed since the last roll (for the live progress
// line) and starts the next.
func (r *latencyRecorder) roll() (*hdrhistogram.Histogram, int64) {
	r.flush()
	r.mu.Lock()
	defer r.mu.Unlock()
	h, errs := r.live, r.liveErrs
	r.live, r.liveErrs = results.NewHistogram(), 0
	return h, errs
}

// recorded is the window's record once it is closed.
type recorded struct {
	total      *hdrhistogram.Histogram
	intervals  []*hdrhistogram.Histogram // one per second, tagged with its span
	secErrs    []int64
	secIncompl []int64
	reads      int64
	writes     int64
	incomplete int64
	errs       map[string]int64
}

// result returns the record of the closed window: one interval per second
// of it (the last one cut at the close), each holding the operations
// intended to start in it.
func (r *latencyRecorder) result() recorded {
	r.flush()
	end := r.windowEnd()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	if end.After(r.t0) {
		n = int((end.Sub(r.t0) + time.Second - 1) / time.Second)
	}
	if n > 0 {
		r.second(r.t0.Add(time.Duration(n-1) * time.Second))
	}
	out := recorded{total: results.NewHistogram(), reads: r.reads, writes: r.writes, incomplete: r.incomplete, errs: map[string]int64{}}
	for k, v := range r.errs {
		out.errs[k] = v
	}
	for i := range r.secs {
		s := &r.secs[i]
		from := r.t0.Add(time.Duration(i) * time.Second)
		to := from.Add(time.Second)
		if to.After(end) {
			to = end
		}
		s.h.SetStartTimeMs(from.UnixMilli())
		s.h.SetEndTimeMs(to.UnixMilli())
		out.total.Merge(s.h)
		out.intervals = append(out.intervals, s.h)
		out.secErrs = append(out.secErrs, s.errs)
		out.secIncompl = append(out.secIncompl, s.incomplete)
	}
	return out
}

// errorKind classifies an operation's error for summary.json.
func errorKind(err error) string {
	switch {
	case errors.Is(err, kv.ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, kv.ErrSessionExpired):
		return "session_expired"
	case errors.Is(err, kv.ErrStaleSequence):
		return "stale_sequence"
	case errors.Is(err, node.ErrProposalTooLarge):
		return "proposal_too_large"
	case errors.Is(err, node.ErrStopped):
		return "stopped"
	case errors.Is(err, node.ErrTimeout):
		return "timeout"
	case errors.Is(err, node.ErrNotLeader):
		return "not_leader"
	default:
		return "other"
	}
}

// ackWatch is closed at the first acknowledgement of a write proposed after
// from; at is when that acknowledgement came.
type ackWatch struct {
	from time.Time
	at   time.Time
	done chan struct{}
}

// watchAck returns a watch on the first acknowledged write proposed after
// from.
func (r *latencyRecorder) watchAck(from time.Time) *ackWatch {
	w := &ackWatch{from: from, done: make(chan struct{})}
	r.wmu.Lock()
	r.watches = append(r.watches, w)
	r.watching.Add(1)
	r.wmu.Unlock()
	return w
}

// notifyAck is told of a write proposed at start and acknowledged at done.
// A write proposed before a fault proves nothing about the cluster after
// it, however late its acknowledgement.
func (r *latencyRecorder) notifyAck(start, done time.Time) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	keep := r.watches[:0]
	for _, w := range r.watches {
		if start.After(w.from) {
			w.at = done
			close(w.done)
			r.watching.Add(-1)
			continue
		}
		keep = append(keep, w)
	}
	r.watches = keep
}

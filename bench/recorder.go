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

// latencyRecorder collects latencies into one histogram for the measured
// run and one per second, plus counts and errors by kind. Operations that
// end outside the measured window are not counted. Safe for concurrent use.
type latencyRecorder struct {
	mu        sync.Mutex
	measuring bool
	total     *hdrhistogram.Histogram
	cur       *hdrhistogram.Histogram
	curStart  time.Time
	curErrs   int64
	intervals []*hdrhistogram.Histogram
	intErrs   []int64
	reads     int64
	writes    int64
	errs      map[string]int64

	watching atomic.Int32
	wmu      sync.Mutex
	watches  []*ackWatch
}

func newLatencyRecorder() *latencyRecorder {
	return &latencyRecorder{total: results.NewHistogram(), errs: map[string]int64{}}
}

// start begins the measured window at now.
func (r *latencyRecorder) start(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.measuring, r.curStart, r.cur = true, now, results.IntervalHistogram(now, now)
}

// record counts one operation that ended at done after lat, with err nil
// for success.
func (r *latencyRecorder) record(kind opKind, lat time.Duration, err error, done time.Time) {
	if err == nil && kind == opWrite && r.watching.Load() > 0 {
		r.notifyAck(done)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.measuring {
		return
	}
	if err != nil {
		r.errs[errorKind(err)]++
		r.curErrs++
		return
	}
	if kind == opRead {
		r.reads++
	} else {
		r.writes++
	}
	results.RecordUS(r.total, lat)
	results.RecordUS(r.cur, lat)
}

// roll closes the current one-second interval at now and starts the next
// (or, with last, stops measuring). It returns the closed interval.
func (r *latencyRecorder) roll(now time.Time, last bool) (*hdrhistogram.Histogram, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, errs := r.cur, r.curErrs
	h.SetEndTimeMs(now.UnixMilli())
	r.intervals = append(r.intervals, h)
	r.intErrs = append(r.intErrs, errs)
	r.cur, r.curStart, r.curErrs = results.IntervalHistogram(now, now), now, 0
	if last {
		r.measuring = false
	}
	return h, errs
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

// ackWatch is closed at the first write acknowledged after from.
type ackWatch struct {
	from time.Time
	at   time.Time
	done chan struct{}
}

// watchAck returns a watch on the first write acknowledged after from.
func (r *latencyRecorder) watchAck(from time.Time) *ackWatch {
	w := &ackWatch{from: from, done: make(chan struct{})}
	r.wmu.Lock()
	r.watches = append(r.watches, w)
	r.watching.Add(1)
	r.wmu.Unlock()
	return w
}

func (r *latencyRecorder) notifyAck(done time.Time) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	keep := r.watches[:0]
	for _, w := range r.watches {
		if done.After(w.from) {
			w.at = done
			close(w.done)
			r.watching.Add(-1)
			continue
		}
		keep = append(keep, w)
	}
	r.watches = keep
}

package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Stage is one part of a committed write's latency on its leader, along the
// critical path (see Latency attribution in the package documentation).
type Stage uint8

// The stages, in the order a write passes them.
const (
	// StageQueue: Propose called → the write's batch handed to core.
	StageQueue Stage = iota
	// StageLeaderAppend: → the leader's own save of the batch durable (0
	// when a quorum of followers was durable first).
	StageLeaderAppend
	// StageReplication: → committed (a quorum's acknowledgements in and
	// seen by the loop), beyond the leader's own save.
	StageReplication
	// StageApply: → applied by the state machine.
	StageApply
	// StageAnswer: → the caller's goroutine running again with the result.
	StageAnswer
	// NumStages counts the stages.
	NumStages
)

var stageNames = [NumStages]string{"queue", "leader_append", "replication", "apply", "answer"}

// String is the stage's name in summaries and metrics labels.
func (s Stage) String() string {
	if s < NumStages {
		return stageNames[s]
	}
	return fmt.Sprintf("Stage(%d)", uint8(s))
}

// Detail is a timing beside the critical path: it overlaps the stages.
type Detail uint8

// The details.
const (
	// DetailToCommit, per write: batch handed to core → committed
	// (leader_append + replication).
	DetailToCommit Detail = iota
	// DetailAppendRTT, per acknowledgement: the leader sent an append → its
	// acknowledgement taken in by the leader's loop.
	DetailAppendRTT
	// DetailNetwork, per acknowledgement: DetailAppendRTT minus the
	// follower's hold — both directions of the network, the transports'
	// queues and the wait for each side's loop to pick the message up.
	DetailNetwork
	// DetailFollowerHold, per acknowledgement, as the follower reports it:
	// from its loop taking the append in to the answer leaving after its
	// save.
	DetailFollowerHold
	// DetailFollowerPersist, per acknowledgement, as the follower reports
	// it: its WAL save (fsync included) that made the entries durable.
	DetailFollowerPersist
	// DetailWALFsync, per synced save: this node's own WAL saves.
	DetailWALFsync
	// NumDetails counts the details.
	NumDetails
)

var detailNames = [NumDetails]string{"to_commit", "append_rtt", "network", "follower_hold", "follower_fsync", "wal_fsync"}

// String is the detail's name in summaries and metrics labels.
func (d Detail) String() string {
	if d < NumDetails {
		return detailNames[d]
	}
	return fmt.Sprintf("Detail(%d)", uint8(d))
}

// Geometry of the stage histograms: microseconds from 1 µs to 60 s with 2
// significant digits (1% resolution), about 20 KiB each. Three digits, as
// the harness's end-to-end histogram has, would take 136 KiB each, a
// dozen per node, for a precision stage percentiles do not need; the
// exact means come from SumNanos.
const (
	StageLowestUS  = 1
	StageHighestUS = 60_000_000
	StageSigFigs   = 2
)

// Timing is one distribution of StageTimings.
type Timing struct {
	// Hist holds the durations in microseconds (see StageLowestUS): each
	// rounded down to a microsecond and clamped to the range.
	Hist *hdrhistogram.Histogram
	// SumNanos is the exact sum of the durations, before rounding.
	SumNanos int64
}

func newTiming() Timing {
	return Timing{Hist: hdrhistogram.New(StageLowestUS, StageHighestUS, StageSigFigs)}
}

// Count is the number of durations recorded.
func (t Timing) Count() int64 {
	if t.Hist == nil {
		return 0
	}
	return t.Hist.TotalCount()
}

// Mean is the exact mean duration (0 when none was recorded).
func (t Timing) Mean() time.Duration {
	if n := t.Count(); n > 0 {
		return time.Duration(t.SumNanos / n)
	}
	return 0
}

func (t *Timing) record(ns int64) {
	t.SumNanos += ns
	us := min(max(ns/1000, StageLowestUS), StageHighestUS)
	_ = t.Hist.RecordValue(us) // cannot fail within the range
}

// StageTimings is a node's latency attribution since it started (see
// Stage and Detail for what each distribution measures). The stages and
// Total count the writes this node answered as leader; the details count
// what their names say. Node.StageTimings returns a copy; Sub takes the
// difference of two copies (a measured window), Merge adds another node's.
type StageTimings struct {
	Stages [NumStages]Timing
	// Total is each write's Propose call → its answer: the sum of its
	// stages.
	Total  Timing
	Detail [NumDetails]Timing
}

// NewStageTimings returns empty timings, to Merge others into.
func NewStageTimings() *StageTimings {
	t := &StageTimings{Total: newTiming()}
	for i := range t.Stages {
		t.Stages[i] = newTiming()
	}
	for i := range t.Detail {
		t.Detail[i] = newTiming()
	}
	return t
}

// all lists every distribution of t with its name, stages first, then
// "total", then the details.
func (t *StageTimings) all() []*Timing {
	out := make([]*Timing, 0, int(NumStages)+1+int(NumDetails))
	for i := range t.Stages {
		out = append(out, &t.Stages[i])
	}
	out = append(out, &t.Total)
	for i := range t.Detail {
		out = append(out, &t.Detail[i])
	}
	return out
}

func timingNames() []string {
	out := append([]string{}, stageNames[:]...)
	out = append(out, "total")
	return append(out, detailNames[:]...)
}

// Clone returns an independent copy of t.
func (t *StageTimings) Clone() *StageTimings {
	c := &StageTimings{}
	src, dst := t.all(), c.all()
	for i := range src {
		dst[i].Hist = src[i].Hist.Clone()
		dst[i].SumNanos = src[i].SumNanos
	}
	return c
}

// Merge adds o's durations to t's (say, to sum a cluster's nodes).
func (t *StageTimings) Merge(o *StageTimings) {
	dst, src := t.all(), o.all()
	for i := range dst {
		dst[i].Hist.Merge(src[i].Hist)
		dst[i].SumNanos += src[i].SumNanos
	}
}

// ErrNotEarlier is returned by StageTimings.Sub when the timings
// subtracted were not taken earlier from the same node run: some count
// would go negative.
var ErrNotEarlier = errors.New("node: stage timings are not an earlier copy of the same node's")

// Sub returns the durations recorded in t but not yet in earlier, an
// earlier copy from the same node run: what happened between the two
// copies, such as a benchmark's measured window.
func (t *StageTimings) Sub(earlier *StageTimings) (*StageTimings, error) {
	out := &StageTimings{}
	a, b, dst := t.all(), earlier.all(), out.all()
	names := timingNames()
	for i := range a {
		sa, sb := a[i].Hist.Export(), b[i].Hist.Export()
		if len(sa.Counts) != len(sb.Counts) {
			return nil, fmt.Errorf("%w: %s histograms differ in geometry", ErrNotEarlier, names[i])
		}
		for j := range sa.Counts {
			sa.Counts[j] -= sb.Counts[j]
			if sa.Counts[j] < 0 {
				return nil, fmt.Errorf("%w: %s holds %d fewer durations near %d µs", ErrNotEarlier, names[i], -sa.Counts[j], a[i].Hist.ValueAtQuantile(0))
			}
		}
		dst[i].Hist = hdrhistogram.Import(sa)
		dst[i].SumNanos = a[i].SumNanos - b[i].SumNanos
	}
	return out, nil
}

// ByName returns the distribution called name: a Stage's or Detail's
// String, or "total".
func (t *StageTimings) ByName(name string) (Timing, bool) {
	for i, n := range timingNames() {
		if n == name {
			return *t.all()[i], true
		}
	}
	return Timing{}, false
}

// timingJSON is one distribution on the wire: the histogram in
// HdrHistogram's compressed base64 form, which keeps every count, and the
// exact sum.
type timingJSON struct {
	Count    int64  `json:"count"`
	SumNanos int64  `json:"sum_ns"`
	Hist     string `json:"hdr"`
}

// MarshalJSON encodes t as an object keyed by distribution name ("queue",
// ..., "total", "to_commit", ...), each with its count, exact sum and
// compressed histogram, so another process (a harness reading a node's
// admin endpoint) gets exactly what Node.StageTimings returns.
func (t *StageTimings) MarshalJSON() ([]byte, error) {
	m := map[string]timingJSON{}
	names := timingNames()
	for i, tm := range t.all() {
		enc, err := tm.Hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			return nil, fmt.Errorf("node: encode %s histogram: %w", names[i], err)
		}
		m[names[i]] = timingJSON{Count: tm.Count(), SumNanos: tm.SumNanos, Hist: string(enc)}
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes what MarshalJSON wrote, checking every histogram:
// a missing distribution, an undecodable histogram, one of another
// geometry or a count that does not match is an error naming it.
func (t *StageTimings) UnmarshalJSON(b []byte) error {
	var m map[string]timingJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("node: stage timings: %w", err)
	}
	var out StageTimings
	names := timingNames()
	var errs []error
	for i, dst := range out.all() {
		tj, ok := m[names[i]]
		if !ok {
			errs = append(errs, fmt.Errorf("node: stage timings: %q is missing", names[i]))
			continue
		}
		h, err := hdrhistogram.Decode([]byte(tj.Hist))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("node: stage timings: %q histogram: %w", names[i], err))
			continue
		case h.LowestTrackableValue() != StageLowestUS || h.HighestTrackableValue() != StageHighestUS || h.SignificantFigures() != StageSigFigs:
			errs = append(errs, fmt.Errorf("node: stage timings: %q histogram covers %d..%d µs with %d digits, want %d..%d with %d",
				names[i], h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(), StageLowestUS, StageHighestUS, StageSigFigs))
			continue
		case h.TotalCount() != tj.Count:
			errs = append(errs, fmt.Errorf("node: stage timings: %q says count %d but its histogram holds %d", names[i], tj.Count, h.TotalCount()))
			continue
		}
		dst.Hist, dst.SumNanos = h, tj.SumNanos
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	*t = out
	return nil
}

// monoEpoch anchors the stage clock: a stage timestamp is the nanoseconds
// of the monotonic clock since it, an int64 cheap to store and subtract.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// monoOf converts a reading taken for another purpose to the stage clock,
// so one clock read serves both.
func monoOf(t time.Time) int64 { return int64(t.Sub(monoEpoch)) }

// stageShards is how many StageTimings a recorder spreads its writes
// over. Every caller records its own write when its answer arrives, and a
// committed batch answers hundreds of callers at once: with one mutex they
// queued behind each other (1.5 s of mutex delay in a 7 s run at 256
// clients, the largest in the process). Four shards take the convoy apart
// on this 2-core machine's two Ps and a few more. Each shard holds about
// 240 KB of histograms, so a node holds about 1 MB (a 1000-node in-process
// run, which raftbench already warns about, 1 GB).
const stageShards = 4

// stageRecorder accumulates a node's StageTimings in shards, each under
// its own mutex for a few histogram increments. Callers' goroutines record
// their writes round robin over the shards; the loop's acknowledgements
// and the WAL writer's saves go to shard 0 (one goroutine each, rarely
// contended). snapshot merges the shards: a sum of histograms, so
// sharding changes no figure.
type stageRecorder struct {
	next   atomic.Uint32
	shards [stageShards]stageShard
}

type stageShard struct {
	mu sync.Mutex
	t  *StageTimings
	// pad keeps two shards' locks off one cache line.
	_ [48]byte
}

func newStageRecorder() *stageRecorder {
	r := &stageRecorder{}
	for i := range r.shards {
		r.shards[i].t = NewStageTimings()
	}
	return r
}

// batchTimes are the timestamps a proposal batch's writes share. The loop
// writes them; once any entry of the batch is committed they are final
// (the loop never writes them again), and the committed entries reach the
// applier, and from it the callers, only after that.
type batchTimes struct {
	first, end, term uint64
	// propose is t1; durable is td once known (0 before: still pending).
	propose, durable int64
}

// writeStages splits one write's latency into its stages. They add up to
// t5−t0 by construction.
func writeStages(t0 int64, b *batchTimes, t3, t4, t5 int64) [NumStages]int64 {
	return [NumStages]int64{
		StageQueue:        b.propose - t0,
		StageLeaderAppend: b.durable - b.propose,
		StageReplication:  t3 - b.durable,
		StageApply:        t4 - t3,
		StageAnswer:       t5 - t4,
	}
}

// write records one answered write.
func (r *stageRecorder) write(p *proposal, t5 int64) {
	st := writeStages(p.start, p.batch, p.committed, p.applied, t5)
	sh := &r.shards[r.next.Add(1)%stageShards]
	sh.mu.Lock()
	for i, d := range st {
		sh.t.Stages[i].record(d)
	}
	sh.t.Total.record(t5 - p.start)
	sh.t.Detail[DetailToCommit].record(p.committed - p.batch.propose)
	sh.mu.Unlock()
}

// ack records a follower's acknowledgement: the leader's round trip and
// the follower's report.
func (r *stageRecorder) ack(rtt int64, hold, persist uint64) {
	h, p := clampNanos(hold), clampNanos(persist)
	sh := &r.shards[0]
	sh.mu.Lock()
	sh.t.Detail[DetailAppendRTT].record(rtt)
	// Each side measured its own duration on its own clock, so the
	// follower's hold cannot exceed the leader's round trip but for the
	// two clocks' rates; clamp rather than record a negative network.
	sh.t.Detail[DetailNetwork].record(max(rtt-h, 0))
	sh.t.Detail[DetailFollowerHold].record(h)
	if persist > 0 {
		sh.t.Detail[DetailFollowerPersist].record(p)
	}
	sh.mu.Unlock()
}

// clampNanos reads a follower-reported duration, bounded so a broken
// report cannot overflow the sums.
func clampNanos(ns uint64) int64 {
	return int64(min(ns, uint64(StageHighestUS)*1000))
}

func (r *stageRecorder) detail(d Detail, ns int64) {
	sh := &r.shards[0]
	sh.mu.Lock()
	sh.t.Detail[d].record(ns)
	sh.mu.Unlock()
}

// snapshot is the sum of the shards, one locked at a time: a write
// recorded in a shard already copied waits for the next snapshot, as it
// would had it come a moment later.
func (r *stageRecorder) snapshot() *StageTimings {
	out := NewStageTimings()
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		out.Merge(sh.t)
		sh.mu.Unlock()
	}
	return out
}

// sendLog remembers, for one follower, when the leader sent each append
// that carried entries, to time the acknowledgements: a follower answers
// its appends in order, and an acknowledgement's Index is the last entry
// of the append it answers. The loop owns it.
type sendLog struct {
	sent []sentApp
	head int
}

type sentApp struct {
	last uint64
	at   int64
}

// maxSendLog bounds a follower's log: one that stopped answering must not
// grow the leader's memory. Beyond MaxInflight appends are not pipelined
// anyway, so a healthy follower never comes near it.
const maxSendLog = 4096

func (l *sendLog) add(last uint64, at int64) {
	if len(l.sent)-l.head >= maxSendLog {
		l.head++
	}
	if l.head > 0 && l.head >= len(l.sent)/2 {
		l.sent = append(l.sent[:0], l.sent[l.head:]...)
		l.head = 0
	}
	l.sent = append(l.sent, sentApp{last, at})
}

// match returns when the append whose last entry is index was sent,
// forgetting it and every earlier append (answered out of sight, or lost).
func (l *sendLog) match(index uint64) (int64, bool) {
	for l.head < len(l.sent) && l.sent[l.head].last < index {
		l.head++
	}
	if l.head < len(l.sent) && l.sent[l.head].last == index {
		at := l.sent[l.head].at
		l.head++
		return at, true
	}
	return 0, false
}

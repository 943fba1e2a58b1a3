package node

import (
	"math"
	"sync/atomic"
	"time"
)

// Metrics are a node's counters. Counts are totals since Start. The
// latency histograms of where each write's time went are Node.StageTimings
// (a separate call: they are larger than a counter copy).
type Metrics struct {
	// Proposals accepted by this node as leader, and the batches (core
	// Propose calls) they were folded into.
	Proposals uint64
	Batches   uint64
	// AppendsInflight is the sum over followers of appends sent and not
	// yet acknowledged (leader only), as of the last tick.
	AppendsInflight int64
	// Saves and Fsyncs count WAL writes (synced ones for Fsyncs);
	// FsyncMean and FsyncMax are the synced writes' latencies.
	Saves     uint64
	Fsyncs    uint64
	FsyncMean time.Duration
	FsyncMax  time.Duration
	// Applied is the last applied index; ApplyLag how many committed
	// entries wait to be applied.
	Applied  uint64
	ApplyLag uint64
	// Elections counts the elections this node started as a candidate;
	// LeaderChanges the leaders it has seen come to power.
	Elections     uint64
	LeaderChanges uint64
	// MessagesSent and MessagesReceived count Raft messages.
	MessagesSent     uint64
	MessagesReceived uint64
	// Snapshots counts snapshots taken and persisted; Compactions the log
	// compactions that followed them.
	Snapshots   uint64
	Compactions uint64
	// LeaseReads counts the read points this node answered from its
	// leader lease, without a heartbeat round (ReadModeLease).
	LeaseReads uint64
	// LoopSaturation is the fraction of time the Raft loop was busy over
	// the last completed second (hashicorp/raft's saturation metric): near
	// 1 the loop itself is the bottleneck.
	LoopSaturation float64
}

// metrics holds the live counters behind Metrics.
type metrics struct {
	proposals, batches       atomic.Uint64
	saves, fsyncs            atomic.Uint64
	fsyncNanos, fsyncMax     atomic.Int64
	elections, leaderChanges atomic.Uint64
	sent, received           atomic.Uint64
	inflight                 atomic.Int64
	snapshots, compactions   atomic.Uint64
	leaseReads               atomic.Uint64
	saturation               atomic.Uint64 // float64 bits
	// The saturation window: the loop's own (addRound), in nanoseconds of
	// the stage clock (monoNow). windowOpen says windowStart is set.
	windowOpen                          bool
	windowStart, windowBusy, windowIdle int64
}

func (m *metrics) saved(d time.Duration, synced bool) {
	m.saves.Add(1)
	if !synced {
		return
	}
	m.fsyncs.Add(1)
	m.fsyncNanos.Add(int64(d))
	for {
		cur := m.fsyncMax.Load()
		if int64(d) <= cur || m.fsyncMax.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// addRound feeds the saturation window with one loop round: idle before
// it, busy in it, ending at now. Only the loop calls it, so the window
// needs no lock; the saturation it publishes is an atomic.
func (m *metrics) addRound(idle, busy, now int64) {
	if !m.windowOpen {
		m.windowOpen, m.windowStart = true, now
	}
	m.windowIdle += idle
	m.windowBusy += busy
	if now-m.windowStart >= int64(time.Second) {
		total := m.windowBusy + m.windowIdle
		if total > 0 {
			m.saturation.Store(math.Float64bits(float64(m.windowBusy) / float64(total)))
		}
		m.windowStart, m.windowBusy, m.windowIdle = now, 0, 0
	}
}

// Metrics returns a snapshot of the node's counters.
func (n *Node) Metrics() Metrics {
	m := &n.metrics
	out := Metrics{
		Proposals:        m.proposals.Load(),
		Batches:          m.batches.Load(),
		AppendsInflight:  m.inflight.Load(),
		Saves:            m.saves.Load(),
		Fsyncs:           m.fsyncs.Load(),
		FsyncMax:         time.Duration(m.fsyncMax.Load()),
		Applied:          n.app.applied.Load(),
		Elections:        m.elections.Load(),
		LeaderChanges:    m.leaderChanges.Load(),
		MessagesSent:     m.sent.Load(),
		MessagesReceived: m.received.Load(),
		LoopSaturation:   math.Float64frombits(m.saturation.Load()),
		Snapshots:        m.snapshots.Load(),
		Compactions:      m.compactions.Load(),
		LeaseReads:       m.leaseReads.Load(),
	}
	if out.Fsyncs > 0 {
		out.FsyncMean = time.Duration(m.fsyncNanos.Load() / int64(out.Fsyncs))
	}
	out.ApplyLag = n.app.lag(n.commit.Load())
	return out
}

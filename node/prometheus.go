package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector exporting the node's Metrics
// (register it with prometheus.MustRegister or a registry of your own). The
// metrics carry a "node" label with the node's ID, so the collectors of
// several nodes in one process can share a registry.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

type promMetric struct {
	name, help string
	kind       prometheus.ValueType
	value      func(m Metrics) float64
}

var promMetrics = []promMetric{
	{"raftbench_proposals_total", "Proposals accepted by this node as leader.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.Proposals) }},
	{"raftbench_proposal_batches_total", "Core Propose calls the proposals were folded into.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.Batches) }},
	{"raftbench_appends_inflight", "Appends sent to followers and not yet acknowledged.", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.AppendsInflight) }},
	{"raftbench_wal_saves_total", "WAL writes.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.Saves) }},
	{"raftbench_wal_fsyncs_total", "Synced WAL writes.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.Fsyncs) }},
	{"raftbench_wal_fsync_mean_seconds", "Mean latency of a synced WAL write.", prometheus.GaugeValue, func(m Metrics) float64 { return m.FsyncMean.Seconds() }},
	{"raftbench_wal_fsync_max_seconds", "Longest synced WAL write.", prometheus.GaugeValue, func(m Metrics) float64 { return m.FsyncMax.Seconds() }},
	{"raftbench_applied_index", "Index of the last applied entry.", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.Applied) }},
	{"raftbench_apply_lag_entries", "Committed entries waiting to be applied.", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.ApplyLag) }},
	{"raftbench_elections_total", "Elections this node started as a candidate.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.Elections) }},
	{"raftbench_leader_changes_total", "Leaders this node has seen come to power.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.LeaderChanges) }},
	{"raftbench_messages_sent_total", "Raft messages sent.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.MessagesSent) }},
	{"raftbench_messages_received_total", "Raft messages received.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.MessagesReceived) }},
	{"raftbench_lease_reads_total", "Read points answered from the leader lease without a heartbeat round.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.LeaseReads) }},
	{"raftbench_loop_saturation", "Fraction of the last second the Raft loop was busy.", prometheus.GaugeValue, func(m Metrics) float64 { return m.LoopSaturation }},
}

var promDescs = func() []*prometheus.Desc {
	out := make([]*prometheus.Desc, len(promMetrics))
	for i, pm := range promMetrics {
		out[i] = prometheus.NewDesc(pm.name, pm.help, []string{"node"}, nil)
	}
	return out
}()

// Latency attribution (Node.StageTimings) as Prometheus histograms: the
// stages of a write and its total, labelled stage="queue", ...,
// stage="total", and the details beside them, labelled detail="to_commit",
// .... Sums and counts are exact; the buckets are read off the HDR
// histograms, whose 1% resolution is far finer than the buckets.
var (
	promStageDesc  = prometheus.NewDesc("raftbench_write_stage_seconds", "Where a committed write's latency went on its leader, stage by stage along the critical path (the stages add up to stage=\"total\", Propose called to answered).", []string{"node", "stage"}, nil)
	promDetailDesc = prometheus.NewDesc("raftbench_write_detail_seconds", "Timings beside the write stages: to_commit per write; append_rtt, network, follower_hold and follower_fsync per follower acknowledgement; wal_fsync per synced save of this node's WAL.", []string{"node", "detail"}, nil)
	// promStageBuckets are the bucket bounds in seconds: 10 µs to 10 s,
	// 1-2.5-5 per decade.
	promStageBuckets = []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}
)

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range promDescs {
		ch <- d
	}
	ch <- promStageDesc
	ch <- promDetailDesc
}

// Collect implements prometheus.Collector, reading Metrics and the stage
// timings once per scrape.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.n.Metrics()
	id := strconv.FormatUint(c.n.id, 10)
	for i, pm := range promMetrics {
		if metric, err := prometheus.NewConstMetric(promDescs[i], pm.kind, pm.value(m), id); err == nil {
			ch <- metric
		}
	}
	st := c.n.StageTimings()
	if st == nil {
		return
	}
	emit := func(desc *prometheus.Desc, t Timing, label string) {
		if metric, err := prometheus.NewConstHistogram(desc, uint64(t.Count()), float64(t.SumNanos)/1e9, promBuckets(t), id, label); err == nil {
			ch <- metric
		}
	}
	for s := range NumStages {
		emit(promStageDesc, st.Stages[s], s.String())
	}
	emit(promStageDesc, st.Total, "total")
	for d := range NumDetails {
		emit(promDetailDesc, st.Detail[d], d.String())
	}
}

// promBuckets counts t's durations at or below each bucket bound
// (cumulative, as Prometheus wants).
func promBuckets(t Timing) map[float64]uint64 {
	out := make(map[float64]uint64, len(promStageBuckets))
	bars := t.Hist.Distribution()
	k, cum := 0, uint64(0)
	for _, le := range promStageBuckets {
		for k < len(bars) && float64(bars[k].To)/1e6 <= le {
			cum += uint64(bars[k].Count)
			k++
		}
		out[le] = cum
	}
	return out
}

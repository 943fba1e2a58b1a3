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

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range promDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector, reading Metrics once per scrape.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.n.Metrics()
	id := strconv.FormatUint(c.n.id, 10)
	for i, pm := range promMetrics {
		if metric, err := prometheus.NewConstMetric(promDescs[i], pm.kind, pm.value(m), id); err == nil {
			ch <- metric
		}
	}
}

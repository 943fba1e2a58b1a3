package bench

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/raftbench/raftbench/transport/fault"
)

// scrapeTimeout bounds one node's /metrics when --metrics-addr is
// scraped: a node that is down or paused is left out of that scrape, not
// waited for.
const scrapeTimeout = 2 * time.Second

// Describe and Collect make a remote cluster (--procs, --cluster) the
// Prometheus collector --metrics-addr serves, as the in-process target is:
// every answering node's metrics, read from its admin endpoint's /metrics
// at scrape time, each sample labelled with its node ("node", which the
// Raft metrics carry already). The nodes' Go runtime and process metrics
// (go_*, process_*, promhttp_*) are left out: they would collide with the
// harness's own, which --metrics-addr serves beside them, and the
// per-node process figures are in summary.json's nodes.
func (r *remote) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (r *remote) Collect(ch chan<- prometheus.Metric) {
	for id, fs := range r.scrape() {
		for _, f := range fs {
			if n := f.GetName(); strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") || strings.HasPrefix(n, "promhttp_") {
				continue
			}
			for _, m := range f.GetMetric() {
				if pm, ok := constMetric(f, m, id); ok {
					ch <- pm
				}
			}
		}
	}
}

// FaultCounters sums what the answering nodes' fault wrappers did
// during the run (raftbench_fault_messages_total): each node's counters
// less those it had when the run began (faultBase; a cluster someone else
// runs has counted earlier runs), or whole when they went down since (its
// process restarted, and counts from zero). The nodes whose counts it
// could not include in full are kept for FaultCountGaps.
func (r *remote) FaultCounters() fault.Counters {
	var sum faultCounts
	var gaps []uint64
	now := r.faultCounters()
	r.mu.Lock()
	restarted := maps.Clone(r.restartCnt)
	r.mu.Unlock()
	for _, id := range r.ids {
		c, answered := now[id]
		b, hadBase := r.faultBase[id]
		switch {
		case !answered || restarted[id] > 0:
			// Down at the end, or its earlier process's counts went
			// with it.
			gaps = append(gaps, id)
		case hadBase && b.after(c):
			// Its counters went backwards: its process restarted
			// since the run began, out of this run's hands.
			gaps = append(gaps, id)
		case hadBase:
			c = c.less(b)
		}
		sum = sum.plus(c)
	}
	r.mu.Lock()
	r.faultGaps = gaps
	r.mu.Unlock()
	return sum.Counters
}

// FaultCountGaps names the nodes whose counts the last FaultCounters
// missed in part, in ID order: down when it read them, restarted by the
// run (what the earlier process counted died with it), or restarted from
// outside (--cluster: counters lower than at the start). With any named,
// the counts are a lower bound.
func (r *remote) FaultCountGaps() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.faultGaps)
}

// faultCounts is fault.Counters with the arithmetic FaultCounters needs.
type faultCounts struct{ fault.Counters }

func (a faultCounts) fields() [6]uint64 {
	return [6]uint64{a.Dropped, a.PartitionedSend, a.PartitionedRecv, a.Duplicated, a.Delayed, a.Reordered}
}

func countsOf(f [6]uint64) faultCounts {
	return faultCounts{fault.Counters{Dropped: f[0], PartitionedSend: f[1], PartitionedRecv: f[2], Duplicated: f[3], Delayed: f[4], Reordered: f[5]}}
}

// after reports whether a holds more of anything than b: b was counted
// by a process that has since restarted.
func (a faultCounts) after(b faultCounts) bool {
	af, bf := a.fields(), b.fields()
	for i := range af {
		if af[i] > bf[i] {
			return true
		}
	}
	return false
}

func (a faultCounts) less(b faultCounts) faultCounts {
	af, bf := a.fields(), b.fields()
	for i := range af {
		af[i] -= bf[i]
	}
	return countsOf(af)
}

func (a faultCounts) plus(b faultCounts) faultCounts {
	af, bf := a.fields(), b.fields()
	for i := range af {
		af[i] += bf[i]
	}
	return countsOf(af)
}

// faultCounters reads each answering node's fault counters.
func (r *remote) faultCounters() map[uint64]faultCounts {
	out := map[uint64]faultCounts{}
	for id, fs := range r.scrape() {
		var c faultCounts
		for _, m := range fs["raftbench_fault_messages_total"].GetMetric() {
			v := uint64(m.GetCounter().GetValue())
			for _, l := range m.GetLabel() {
				if l.GetName() != "action" {
					continue
				}
				switch l.GetValue() {
				case "dropped":
					c.Dropped += v
				case "cut-at-send":
					c.PartitionedSend += v
				case "cut-at-receive":
					c.PartitionedRecv += v
				case "duplicated":
					c.Duplicated += v
				case "delayed":
					c.Delayed += v
				case "reordered":
					c.Reordered += v
				}
			}
		}
		out[id] = c
	}
	return out
}

// scrape reads every answering node's /metrics, at once, parsed; a node
// that does not answer within scrapeTimeout is left out.
func (r *remote) scrape() map[uint64]map[string]*dto.MetricFamily {
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[uint64]map[string]*dto.MetricFamily{}
	for _, id := range r.ids {
		if r.skip != nil && r.skip(id) {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
			defer cancel()
			text, err := r.admins[id].Metrics(ctx)
			if err != nil {
				return
			}
			var p expfmt.TextParser
			fs, err := p.TextToMetricFamilies(strings.NewReader(text))
			if err != nil {
				return
			}
			mu.Lock()
			out[id] = fs
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// constMetric rebuilds one parsed sample of family f of node id as a
// constant metric, adding the label node="id" when it has none; ok is
// false for a kind that cannot be rebuilt.
func constMetric(f *dto.MetricFamily, m *dto.Metric, id uint64) (prometheus.Metric, bool) {
	var names, values []string
	node := false
	for _, l := range m.GetLabel() {
		names, values = append(names, l.GetName()), append(values, l.GetValue())
		node = node || l.GetName() == "node"
	}
	if !node {
		names, values = append(names, "node"), append(values, strconv.FormatUint(id, 10))
	}
	desc := prometheus.NewDesc(f.GetName(), f.GetHelp(), names, nil)
	var pm prometheus.Metric
	var err error
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		pm, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
	case dto.MetricType_GAUGE:
		pm, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
	case dto.MetricType_UNTYPED:
		pm, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		buckets := map[float64]uint64{}
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		pm, err = prometheus.NewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), buckets, values...)
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		qs := map[float64]float64{}
		for _, q := range s.GetQuantile() {
			qs[q.GetQuantile()] = q.GetValue()
		}
		pm, err = prometheus.NewConstSummary(desc, s.GetSampleCount(), s.GetSampleSum(), qs, values...)
	default:
		return nil, false
	}
	return pm, err == nil
}

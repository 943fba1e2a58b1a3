package bench

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrapeTimeout bounds one node's /metrics when --metrics-addr is
// scraped: a node that is down or paused is left out of that scrape, not
// waited for.
const scrapeTimeout = 2 * time.Second

// Describe and Collect make a remote cluster (--procs, --cluster) the
// Prometheus collector --metrics-addr serves, as the in-process target is:
// every answering node's Raft metrics, each with its "node" label, read
// from its admin endpoint's /metrics at scrape time. Only the families
// whose every sample carries a "node" label are passed on; the nodes'
// process and Go runtime metrics would collide with the harness's own
// (go_*, process_*), which --metrics-addr serves beside them.
func (r *remote) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (r *remote) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fams []map[string]*dto.MetricFamily
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
			fams = append(fams, fs)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, fs := range fams {
		for _, f := range fs {
			for _, m := range f.GetMetric() {
				if pm, ok := constMetric(f, m); ok {
					ch <- pm
				}
			}
		}
	}
}

// constMetric rebuilds one parsed sample of family f as a constant
// metric; ok is false for a sample without a "node" label or of a kind
// that cannot be rebuilt.
func constMetric(f *dto.MetricFamily, m *dto.Metric) (prometheus.Metric, bool) {
	var names, values []string
	node := false
	for _, l := range m.GetLabel() {
		names, values = append(names, l.GetName()), append(values, l.GetValue())
		node = node || l.GetName() == "node"
	}
	if !node {
		return nil, false
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

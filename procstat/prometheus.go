package procstat

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the process's cumulative cost counters (Read, once per
// scrape) under raftbench_process_*: CPU by mode, bytes written to
// storage, heap allocations, GC cycles and their pauses, page faults by
// kind, and the scheduling waits as a histogram. A window's
// difference of two scrapes is its cost, all but the longest GC pause,
// which takes the ring of recent pauses in Sample (the admin endpoint's
// /stats serves it).
func Collector() prometheus.Collector { return collector{} }

type collector struct{}

var (
	descCPU     = prometheus.NewDesc("raftbench_process_cpu_seconds_total", "CPU time of the whole process, by mode (getrusage).", []string{"mode"}, nil)
	descWrite   = prometheus.NewDesc("raftbench_process_storage_write_bytes_total", "Bytes the process made the kernel write to storage (/proc/self/io write_bytes less cancelled_write_bytes; whole pages as they were dirtied).", nil, nil)
	descMallocs = prometheus.NewDesc("raftbench_process_heap_allocs_total", "Heap allocations (objects, tiny ones included).", nil, nil)
	descAllocB  = prometheus.NewDesc("raftbench_process_heap_alloc_bytes_total", "Bytes of heap allocations.", nil, nil)
	descGC      = prometheus.NewDesc("raftbench_process_gc_cycles_total", "Completed GC cycles.", nil, nil)
	descPause   = prometheus.NewDesc("raftbench_process_gc_pause_seconds_total", "Stop-the-world GC pauses in all.", nil, nil)
	descFaults  = prometheus.NewDesc("raftbench_process_page_faults_total", "Page faults (getrusage), by kind: minor (mapped without I/O, mostly first touches of fresh memory) or major (read from storage).", []string{"kind"}, nil)
	descWait    = prometheus.NewDesc("raftbench_process_sched_wait_seconds", "How long goroutines waited, runnable, for a CPU (the Go runtime's /sched/latencies:seconds; one scheduling in eight of each goroutine is timed).", nil, nil)
)

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCPU, descWrite, descMallocs, descAllocB, descGC, descPause, descFaults, descWait} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (collector) Collect(ch chan<- prometheus.Metric) {
	s := Read()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	counter(descCPU, s.UserCPU.Seconds(), "user")
	counter(descCPU, s.SystemCPU.Seconds(), "system")
	if s.HasIO {
		counter(descWrite, float64(s.WriteBytes))
	}
	counter(descMallocs, float64(s.Mallocs))
	counter(descAllocB, float64(s.AllocBytes))
	counter(descGC, float64(s.NumGC))
	counter(descPause, s.PauseTotal.Seconds())
	if s.HasFaults {
		counter(descFaults, float64(s.MinorFaults), "minor")
		counter(descFaults, float64(s.MajorFaults), "major")
	}
	if h, ok := waitHistogram(s.SchedWait); ok {
		ch <- h
	}
}

// waitHistogram is a scheduling-wait histogram as a Prometheus one:
// cumulative counts by upper bound, the unbounded bucket in the count
// only. The runtime gives no sum, so each wait counts in it as its
// bucket's upper bound (at most a bucket's width, about 25%, too much),
// one in the unbounded bucket as the bound below it.
func waitHistogram(h []WaitBucket) (prometheus.Metric, bool) {
	if len(h) == 0 {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(h))
	var cum uint64
	var sum, up float64
	for _, b := range h {
		cum += b.Count
		if b.UpperNs != math.MaxInt64 {
			up = float64(b.UpperNs) / 1e9
			buckets[up] = cum
		}
		sum += float64(b.Count) * up
	}
	return prometheus.MustNewConstHistogram(descWait, cum, sum, buckets), true
}

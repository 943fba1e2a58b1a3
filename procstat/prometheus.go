package procstat

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the process's cumulative cost counters (Read, once per
// scrape) under raftbench_process_*: CPU by mode, bytes written to
// storage, heap allocations, GC cycles and their pauses. A window's
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
)

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCPU, descWrite, descMallocs, descAllocB, descGC, descPause} {
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
}

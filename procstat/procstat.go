// Package procstat samples what this process has spent so far — CPU time,
// bytes it made the kernel write to storage, heap allocations, garbage
// collector pauses, time its goroutines waited for a CPU — so that a
// benchmark can charge a measured window with its cost: take a Sample
// when the window opens and another when it closes, and Between returns
// the difference. A raftbench node process
// serves its samples on its admin endpoint, so a harness driving several
// processes charges each its own.
package procstat

import (
	"bytes"
	"runtime"
	"strconv"
	"time"
)

// Sample is the process's cumulative counters at one moment.
type Sample struct {
	// At is when the sample was taken (with a monotonic reading in this
	// process; wall-clock only once it has travelled as JSON).
	At time.Time `json:"at"`
	// UserCPU and SystemCPU are the CPU time of every thread of the
	// process (getrusage RUSAGE_SELF).
	UserCPU   time.Duration `json:"user_cpu_ns"`
	SystemCPU time.Duration `json:"system_cpu_ns"`
	// WriteBytes is what the process made the kernel send to storage:
	// /proc/self/io write_bytes less cancelled_write_bytes (pages dirtied
	// and then truncated away before they were written). The kernel counts
	// whole pages as they are dirtied, so a 100-byte append synced on its
	// own costs a 4 KiB page: this is the write amplification the device
	// sees, WAL files, memtable flushes, compactions and snapshot images
	// alike, not the bytes handed to write(2). HasIO is false where the
	// kernel does not say (not Linux, or /proc unreadable).
	WriteBytes int64 `json:"write_bytes"`
	HasIO      bool  `json:"has_io"`
	// Mallocs and AllocBytes count heap allocations since the process
	// started (runtime.MemStats Mallocs and TotalAlloc: tiny objects
	// included).
	Mallocs    uint64 `json:"mallocs"`
	AllocBytes uint64 `json:"alloc_bytes"`
	// NumGC counts completed GC cycles; PauseTotal is their stop-the-world
	// pauses in all; RecentPauses is the runtime's ring of the last 256
	// cycles' pauses in nanoseconds (runtime.MemStats.PauseNs: cycle k's
	// pause is at (k-1) % 256).
	NumGC        uint32        `json:"num_gc"`
	PauseTotal   time.Duration `json:"pause_total_ns"`
	RecentPauses []uint64      `json:"recent_pauses_ns"`
	// SchedWait is the runtime's histogram of how long goroutines waited,
	// runnable, for a CPU (runtime/metrics /sched/latencies:seconds),
	// since the process started. The runtime times one scheduling in
	// eight of each goroutine, so its counts are a sample of the waits,
	// not all of them.
	SchedWait []WaitBucket `json:"sched_wait,omitempty"`
	// MinorFaults and MajorFaults count the process's page faults since
	// it started (getrusage ru_minflt, ru_majflt). A minor fault is
	// mostly the first touch of memory fresh from the kernel, which it
	// must zero and map: about 0.25 µs on bare metal, but 10 µs per 4 KiB
	// page on the 2-core virtual machine this harness was tuned on, where
	// Pebble's new memtable arenas alone faulted ~12k pages a second at
	// 256 clients. HasFaults is false where the kernel does not say.
	MinorFaults uint64 `json:"minor_faults"`
	MajorFaults uint64 `json:"major_faults"`
	HasFaults   bool   `json:"has_faults"`
}

// Read samples the process now. It stops the world briefly (as
// runtime.ReadMemStats does: tens of microseconds), so sample at a
// window's edges, not in a hot loop.
func Read() Sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Sample{At: time.Now(), Mallocs: ms.Mallocs, AllocBytes: ms.TotalAlloc,
		NumGC: ms.NumGC, PauseTotal: time.Duration(ms.PauseTotalNs), RecentPauses: append([]uint64(nil), ms.PauseNs[:]...),
		SchedWait: readSchedWait()}
	s.UserCPU, s.SystemCPU, s.MinorFaults, s.MajorFaults, s.HasFaults = usage()
	s.WriteBytes, s.HasIO = writeBytes()
	return s
}

// Cost is what a process spent between two samples.
type Cost struct {
	// Wall is the time between the samples.
	Wall time.Duration `json:"wall_ns"`
	// UserCPU and SystemCPU are the CPU time spent (all threads).
	UserCPU   time.Duration `json:"user_cpu_ns"`
	SystemCPU time.Duration `json:"system_cpu_ns"`
	// WriteBytes is what the process made the kernel write to storage
	// (see Sample.WriteBytes); HasIO is false when it is unknown.
	WriteBytes int64 `json:"write_bytes"`
	HasIO      bool  `json:"has_io"`
	// Mallocs and AllocBytes are the heap allocations made.
	Mallocs    uint64 `json:"mallocs"`
	AllocBytes uint64 `json:"alloc_bytes"`
	// GCCycles is how many GC cycles completed; GCPauseTotal their
	// stop-the-world pauses in all, exact; GCPauseMax the longest cycle's
	// pauses. GCPauseMaxExact is false when more than 256 cycles completed
	// (the runtime keeps only the last 256): GCPauseMax is then the
	// longest of the last 256, a lower bound.
	GCCycles        uint32        `json:"gc_cycles"`
	GCPauseTotal    time.Duration `json:"gc_pause_total_ns"`
	GCPauseMax      time.Duration `json:"gc_pause_max_ns"`
	GCPauseMaxExact bool          `json:"gc_pause_max_exact"`
	// SchedWait is the histogram of the scheduling waits sampled in the
	// window (see Sample.SchedWait): where a stage's time went when a
	// goroutine was ready to run and no CPU ran it.
	SchedWait []WaitBucket `json:"sched_wait,omitempty"`
	// MinorFaults and MajorFaults are the page faults taken (see
	// Sample.MinorFaults); HasFaults is false when they are unknown.
	MinorFaults uint64 `json:"minor_faults"`
	MajorFaults uint64 `json:"major_faults"`
	HasFaults   bool   `json:"has_faults"`
}

// CPU is the user and system time together.
func (c Cost) CPU() time.Duration { return c.UserCPU + c.SystemCPU }

// Between returns what the process spent from a to b, two samples of the
// same process with a taken first.
func Between(a, b Sample) Cost {
	c := Cost{
		Wall:    b.At.Sub(a.At),
		UserCPU: b.UserCPU - a.UserCPU, SystemCPU: b.SystemCPU - a.SystemCPU,
		HasIO:   a.HasIO && b.HasIO,
		Mallocs: b.Mallocs - a.Mallocs, AllocBytes: b.AllocBytes - a.AllocBytes,
		GCCycles: b.NumGC - a.NumGC, GCPauseTotal: b.PauseTotal - a.PauseTotal,
		GCPauseMaxExact: true,
		SchedWait:       subWait(a.SchedWait, b.SchedWait),
		HasFaults:       a.HasFaults && b.HasFaults,
	}
	if c.HasIO {
		c.WriteBytes = b.WriteBytes - a.WriteBytes
	}
	if c.HasFaults {
		c.MinorFaults, c.MajorFaults = b.MinorFaults-a.MinorFaults, b.MajorFaults-a.MajorFaults
	}
	ring := uint32(len(b.RecentPauses))
	if ring == 0 {
		c.GCPauseMaxExact = c.GCCycles == 0
		return c
	}
	first := a.NumGC + 1
	if c.GCCycles > ring {
		first, c.GCPauseMaxExact = b.NumGC-ring+1, false
	}
	for k := first; k <= b.NumGC && k > a.NumGC; k++ {
		c.GCPauseMax = max(c.GCPauseMax, time.Duration(b.RecentPauses[(k-1)%ring]))
	}
	return c
}

// parseIO extracts write_bytes − cancelled_write_bytes from the text of
// /proc/<pid>/io; false when write_bytes is missing or unreadable.
func parseIO(b []byte) (int64, bool) {
	var write, cancelled int64
	found := false
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "write_bytes":
			write, found = n, true
		case "cancelled_write_bytes":
			cancelled = n
		}
	}
	return write - cancelled, found
}

// Plus is what c and o cost together, o being another process's cost over
// the same window (a harness summing the node processes it drives): the
// longer wall time, every count added (the scheduling waits' histograms
// bucket by bucket), the longest pause of either, exact and measured only
// when both are.
func (c Cost) Plus(o Cost) Cost {
	sum := Cost{
		Wall:    max(c.Wall, o.Wall),
		UserCPU: c.UserCPU + o.UserCPU, SystemCPU: c.SystemCPU + o.SystemCPU,
		WriteBytes: c.WriteBytes + o.WriteBytes, HasIO: c.HasIO && o.HasIO,
		Mallocs: c.Mallocs + o.Mallocs, AllocBytes: c.AllocBytes + o.AllocBytes,
		GCCycles: c.GCCycles + o.GCCycles, GCPauseTotal: c.GCPauseTotal + o.GCPauseTotal,
		GCPauseMax: max(c.GCPauseMax, o.GCPauseMax), GCPauseMaxExact: c.GCPauseMaxExact && o.GCPauseMaxExact,
		SchedWait: addWait(c.SchedWait, o.SchedWait),
		HasFaults: c.HasFaults && o.HasFaults,
	}
	if !sum.HasIO {
		sum.WriteBytes = 0 // unknown for one of them, so for the sum
	}
	if sum.HasFaults {
		sum.MinorFaults, sum.MajorFaults = c.MinorFaults+o.MinorFaults, c.MajorFaults+o.MajorFaults
	}
	return sum
}

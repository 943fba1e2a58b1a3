package procstat

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var sink [][]byte

// A window that burns CPU, allocates, collects garbage and writes a synced
// file is charged with all of it.
func TestBetweenChargesTheWindow(t *testing.T) {
	a := Read()
	// CPU: spin until the process has used some.
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		sink = append(sink[:0], make([]byte, 64))
	}
	for range 1000 {
		sink = append(sink, make([]byte, 128))
	}
	runtime.GC()
	runtime.GC()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if _, err := f.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b := Read()
	c := Between(a, b)
	if c.Wall <= 0 || c.CPU() <= 0 {
		t.Errorf("wall %v, CPU %v: want both positive", c.Wall, c.CPU())
	}
	if c.Mallocs < 1000 || c.AllocBytes < 128*1000 {
		t.Errorf("mallocs %d, alloc bytes %d: the window allocated at least 1000 objects of 128 B", c.Mallocs, c.AllocBytes)
	}
	if c.GCCycles < 2 || c.GCPauseTotal <= 0 || c.GCPauseMax <= 0 || c.GCPauseMax > c.GCPauseTotal || !c.GCPauseMaxExact {
		t.Errorf("GC: %d cycles, pauses %v total, max %v (exact %v)", c.GCCycles, c.GCPauseTotal, c.GCPauseMax, c.GCPauseMaxExact)
	}
	if runtime.GOOS == "linux" && !c.HasIO {
		t.Error("no /proc/self/io figures on Linux")
	}
	// A real disk counts a page per synced append; tmpfs has no device
	// behind it and counts nothing.
	if c.HasIO && !onTmpfs(dir) && c.WriteBytes < 8*4096 {
		t.Errorf("%d bytes written to storage for 8 synced appends, want at least 8 pages", c.WriteBytes)
	}
}

// The longest pause comes from the window's own cycles, exactly while the
// runtime's ring holds them all, and is a lower bound beyond.
func TestGCPauseMaxFromTheRing(t *testing.T) {
	ring := make([]uint64, 256)
	for k := 1; k <= 300; k++ {
		ring[(k-1)%256] = uint64(k) // cycle k paused k ns
	}
	b := Sample{NumGC: 300, RecentPauses: ring, PauseTotal: 1}
	if c := Between(Sample{NumGC: 290}, b); c.GCPauseMax != 300 || !c.GCPauseMaxExact || c.GCCycles != 10 {
		t.Errorf("10 cycles: max %v exact %v cycles %d", c.GCPauseMax, c.GCPauseMaxExact, c.GCCycles)
	}
	// Cycle 280 is in the ring; the window is 271..280 of a later sample.
	b2 := b
	b2.NumGC = 280
	ring2 := make([]uint64, 256)
	for k := 1; k <= 280; k++ {
		ring2[(k-1)%256] = uint64(1000 - k)
	}
	b2.RecentPauses = ring2
	if c := Between(Sample{NumGC: 270}, b2); c.GCPauseMax != 1000-271 {
		t.Errorf("window 271..280: max %v, want %d", c.GCPauseMax, 1000-271)
	}
	if c := Between(Sample{NumGC: 0}, b); c.GCPauseMaxExact || c.GCPauseMax != 300 {
		t.Errorf("300 cycles: max %v exact %v; want 300 and not exact", c.GCPauseMax, c.GCPauseMaxExact)
	}
	if c := Between(Sample{NumGC: 300}, b); c.GCPauseMax != 0 || c.GCCycles != 0 {
		t.Errorf("no cycle: max %v cycles %d", c.GCPauseMax, c.GCCycles)
	}
}

func TestParseIO(t *testing.T) {
	in := "rchar: 6976\nwchar: 100\nsyscr: 10\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 409600\ncancelled_write_bytes: 4096\n"
	if n, ok := parseIO([]byte(in)); !ok || n != 405504 {
		t.Errorf("parseIO = %d, %v", n, ok)
	}
	if _, ok := parseIO([]byte("rchar: 1\n")); ok {
		t.Error("parseIO found write_bytes in a file without it")
	}
	if _, ok := parseIO([]byte("write_bytes: lots\n")); ok {
		t.Error("parseIO accepted a non-number")
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	for _, want := range []string{"raftbench_process_cpu_seconds_total", "raftbench_process_heap_allocs_total", "raftbench_process_gc_pause_seconds_total", "raftbench_process_sched_wait_seconds", "raftbench_process_page_faults_total"} {
		if !names[want] {
			t.Errorf("%s not exported (got %v)", want, names)
		}
	}
}

// Plus sums two processes' windows: counts add, the longest pause is the
// longer one, and what one of them does not know the sum does not either.
func TestPlus(t *testing.T) {
	a := Cost{Wall: time.Second, UserCPU: 2 * time.Millisecond, SystemCPU: time.Millisecond, WriteBytes: 4096, HasIO: true,
		Mallocs: 10, AllocBytes: 100, GCCycles: 1, GCPauseTotal: 50 * time.Microsecond, GCPauseMax: 50 * time.Microsecond, GCPauseMaxExact: true,
		SchedWait: []WaitBucket{{100, 3}, {400, 1}}, HasFaults: true, MinorFaults: 40, MajorFaults: 1}
	b := Cost{Wall: 2 * time.Second, UserCPU: time.Millisecond, SystemCPU: 3 * time.Millisecond, WriteBytes: 8192, HasIO: true,
		Mallocs: 5, AllocBytes: 7, GCCycles: 2, GCPauseTotal: 90 * time.Microsecond, GCPauseMax: 70 * time.Microsecond, GCPauseMaxExact: false,
		SchedWait: []WaitBucket{{50, 2}, {400, 5}, {math.MaxInt64, 1}}, HasFaults: true, MinorFaults: 2, MajorFaults: 3}
	want := Cost{Wall: 2 * time.Second, UserCPU: 3 * time.Millisecond, SystemCPU: 4 * time.Millisecond, WriteBytes: 12288, HasIO: true,
		Mallocs: 15, AllocBytes: 107, GCCycles: 3, GCPauseTotal: 140 * time.Microsecond, GCPauseMax: 70 * time.Microsecond, GCPauseMaxExact: false,
		SchedWait: []WaitBucket{{50, 2}, {100, 3}, {400, 6}, {math.MaxInt64, 1}}, HasFaults: true, MinorFaults: 42, MajorFaults: 4}
	if got := a.Plus(b); !reflect.DeepEqual(got, want) {
		t.Errorf("a.Plus(b) = %+v, want %+v", got, want)
	}
	b.HasIO, b.HasFaults = false, false
	if got := a.Plus(b); got.HasIO || got.WriteBytes != 0 || got.HasFaults || got.MinorFaults != 0 || got.MajorFaults != 0 {
		t.Errorf("with one side's writes and faults unknown: %+v", got)
	}
}

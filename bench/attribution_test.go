package bench

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/bench/report"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
)

// The result format's stage names are node's, in node's order.
func TestStageNamesMatchNode(t *testing.T) {
	if len(results.StageOrder) != int(node.NumStages) || len(results.StageDetailOrder) != int(node.NumDetails) {
		t.Fatalf("results names %d stages and %d details, node %d and %d", len(results.StageOrder), len(results.StageDetailOrder), node.NumStages, node.NumDetails)
	}
	for i, name := range results.StageOrder {
		if got := node.Stage(i).String(); got != name {
			t.Errorf("stage %d: node calls it %q, results %q", i, got, name)
		}
	}
	for i, name := range results.StageDetailOrder {
		if got := node.Detail(i).String(); got != name {
			t.Errorf("detail %d: node calls it %q, results %q", i, got, name)
		}
	}
}

// TestStagesAddUpOnARun checks the latency attribution on a real run: the
// stages of the window's writes add up to their latency at the leader —
// exactly, since each write's stages are differences of consecutive
// readings of one clock and summary.json carries the exact sums — and
// that latency agrees with the harness's own end-to-end histogram within
// what the client side (kv client, the call, the harness's recording) and
// the window's edges can account for. Medians are not checked to add up:
// the median of a sum is not the sum of the medians.
func TestStagesAddUpOnARun(t *testing.T) {
	cfg := Default()
	// Writes only, so the client's histogram holds the writes the leaders
	// time; few clients, so each does many operations in the window and
	// its edges weigh little.
	cfg.WAL, cfg.SnapshotEvery, cfg.Clients, cfg.ReadRatio = "memory", 0, 8, 0
	cfg.Duration, cfg.Warmup = Duration(time.Second), Duration(300*time.Millisecond)
	cfg.Out = filepath.Join(t.TempDir(), "run")
	o, err := Run(context.Background(), cfg, Options{hooks: &testHooks{noPlots: true}})
	if err != nil {
		t.Fatal(err)
	}
	s := o.Summaries[0]
	if len(s.Problems) > 0 {
		t.Fatalf("problems: %v", s.Problems)
	}
	tot := s.StagesTotalUS
	if tot == nil || tot.Count == 0 || len(s.StagesUS) != len(results.StageOrder) {
		t.Fatalf("stages %v, total %v", s.StagesUS, tot)
	}
	var sum, means float64
	for _, name := range results.StageOrder {
		l, ok := s.StagesUS[name]
		if !ok || l.Count != tot.Count {
			t.Errorf("stage %s: %+v, want %d writes", name, l, tot.Count)
		}
		if l.SumUS < 0 {
			t.Errorf("stage %s sums to %g µs", name, l.SumUS)
		}
		sum += l.SumUS
		means += l.Mean
	}
	// Exact in nanoseconds; summary.json's microseconds with three
	// decimals leave float rounding only.
	if d := math.Abs(sum - tot.SumUS); d > 0.01 {
		t.Errorf("the stages sum to %.3f µs, the writes' latencies to %.3f µs (off by %.3f)", sum, tot.SumUS, d)
	}
	if d := math.Abs(means - tot.Mean); d > 1e-6*tot.Mean {
		t.Errorf("the stage means add up to %.3f µs, the mean latency is %.3f µs", means, tot.Mean)
	}
	td := s.StageDetailUS["to_commit"]
	if d := math.Abs(td.SumUS - s.StagesUS["leader_append"].SumUS - s.StagesUS["replication"].SumUS); d > 0.01 {
		t.Errorf("to_commit sums to %.3f µs, leader_append + replication to %.3f", td.SumUS, s.StagesUS["leader_append"].SumUS+s.StagesUS["replication"].SumUS)
	}
	for _, name := range []string{"append_rtt", "network", "follower_hold", "follower_fsync", "wal_fsync"} {
		if s.StageDetailUS[name].Count == 0 {
			t.Errorf("no %s timings", name)
		}
	}

	// Against the harness's histogram. Writes the leader answered between
	// the probe's reads (Cost.WindowSec apart), against operations the
	// harness counts by their intended start in the measured duration:
	// they differ by at most the clients' operations in flight at either
	// edge, the incomplete ones, and what the probe's window adds at the
	// run's rate.
	c := s.Cost
	if c == nil {
		t.Fatal("no cost")
	}
	// The stage timings count writes answered between the start of the
	// opening reading and the end of the closing one (StagesWindowSec);
	// within that span the counts are exact only outside the readings
	// themselves (the process's window, WindowSec, lies inside it), and
	// the load runs on throughout.
	slack := math.Abs(s.StagesWindowSec-s.DurationSec) + (s.StagesWindowSec - c.WindowSec)
	if s.StagesWindowSec < c.WindowSec || s.StagesWindowSec <= 0 {
		t.Errorf("stages_window_sec %g does not hold the cost's window %g", s.StagesWindowSec, c.WindowSec)
	}
	edge := int64(2*cfg.Clients) + s.IncompleteOps + int64(math.Ceil(s.ThroughputOpsPerSec*slack))
	if tot.Count < s.Writes-edge || tot.Count > s.Writes+edge {
		t.Errorf("the leaders timed %d writes, the harness counted %d (±%d at the edges)", tot.Count, s.Writes, edge)
	}
	// Every operation's latency at the client contains its latency at
	// the leader; what is outside (the kv client, the call and return,
	// the harness's recording) is small next to a commit. But the two
	// means are over different sets of writes: they differ by the edge
	// operations above, each of which moves a mean by at most the longest
	// latency over the number of writes. Stated tolerance: the leader's
	// mean is at most the client's plus 5% and 100 µs (timer granularity,
	// the client's incomplete operations counted with their time so far)
	// plus twice that edge shift, and at least 75% of the client's less
	// 500 µs (the client side, slow under -race) less the same shift.
	h := s.LatencyUS.Mean
	shift := 2 * float64(edge) * s.LatencyUS.Max / float64(max(tot.Count, 1))
	if tot.Mean > 1.05*h+100+shift || tot.Mean < 0.75*h-500-shift {
		t.Errorf("mean latency at the leader %.0f µs against %.0f µs at the client (edge shift %.0f µs): outside the tolerance", tot.Mean, h, shift)
	}
	t.Logf("%d writes: %s; client mean %.0f µs", tot.Count, report.StageMeans(s), h)

	// The result directory holds one histogram per stage, in .hgrm form.
	for _, name := range append(append([]string{"total"}, results.StageOrder...), results.StageDetailOrder...) {
		f, err := os.Open(filepath.Join(o.RunDirs[0], results.StagesDir, name+".hgrm"))
		if err != nil {
			t.Errorf("stage histogram: %v", err)
			continue
		}
		_, _, _, n, err := results.ReadHgrm(f)
		f.Close()
		want := tot.Count
		if l, ok := s.StageDetailUS[name]; ok {
			want = l.Count
		}
		if err != nil || n != want {
			t.Errorf("%s.hgrm: %d values, %v; want %d", name, n, err, want)
		}
	}
	md, err := os.ReadFile(filepath.Join(o.RunDirs[0], results.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Where the time goes", "| **write at its leader** (Propose → answer) |", "## Cost per operation", "| CPU (user + system) |", "| waiting for a CPU (goroutines runnable, not running) | | p50 ≤ ", "| page faults (mostly first touches of fresh memory) | "} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if c.CPUUSPerOp <= 0 || s.CPUUSPerOp != c.CPUUSPerOp || c.Fsyncs == 0 || c.Allocs == 0 || c.PayloadBytes <= 0 {
		t.Errorf("cost %+v (cpu_us_per_op %g)", c, s.CPUUSPerOp)
	}
	// A process starting up touches fresh memory, and getrusage says so.
	if !c.PageFaultsMeasured || c.MinorFaults == 0 || c.PageFaultsPerOp <= 0 {
		t.Errorf("page faults: measured %v, %d minor, %g per op", c.PageFaultsMeasured, c.MinorFaults, c.PageFaultsPerOp)
	}
	// Every write wakes goroutines, so the window samples scheduling waits.
	if w := c.SchedWaitUS; w == nil || w.Samples == 0 || w.P50 > w.P99 || (w.Max >= 0 && w.P999 > w.Max) {
		t.Errorf("sched_wait_us %+v", w)
	}
	// Per operation is the window's rate over the throughput.
	if want := (c.CPUUserSec + c.CPUSystemSec) / c.WindowSec / s.ThroughputOpsPerSec * 1e6; math.Abs(c.CPUUSPerOp-want) > 1e-6*want {
		t.Errorf("cpu_us_per_op %g, want %g", c.CPUUSPerOp, want)
	}
	t.Logf("window %.4f s (stages %.4f s) against %.4f s measured; cost %+v", c.WindowSec, s.StagesWindowSec, s.DurationSec, *c)
}

// fakeAttributor answers ReadAttribution with its readings in turn.
type fakeAttributor struct {
	readings []AttributionReading
	edges    []WindowEdge
}

func (f *fakeAttributor) ReadAttribution(_ context.Context, edge WindowEdge) (AttributionReading, error) {
	f.edges = append(f.edges, edge)
	r := f.readings[0]
	f.readings = f.readings[1:]
	return r, nil
}

// stagesWith returns stage timings holding n writes of each stage lasting
// us microseconds (and their total).
func stagesWith(n int, us int64) *node.StageTimings {
	st := node.NewStageTimings()
	for range n {
		for i := range st.Stages {
			_ = st.Stages[i].Hist.RecordValue(us)
			st.Stages[i].SumNanos += us * 1000
		}
		_ = st.Total.Hist.RecordValue(us * int64(node.NumStages))
		st.Total.SumNanos += us * 1000 * int64(node.NumStages)
	}
	return st
}

// The window of a run whose nodes run in processes of their own: each is
// charged the difference of its readings, a node restarted in the window
// (another incarnation) counts from zero, a node gone at the close counts
// nothing, and the whole is the nodes' sum plus the harness's own
// process.
func TestWindowOfNodeProcesses(t *testing.T) {
	at := time.Now()
	proc := func(cpu time.Duration, mallocs uint64, gcs uint32, pauses ...uint64) *procstat.Sample {
		ring := make([]uint64, 256)
		copy(ring, pauses)
		return &procstat.Sample{At: at, UserCPU: cpu, HasIO: true, WriteBytes: int64(cpu / time.Millisecond), Mallocs: mallocs,
			NumGC: gcs, PauseTotal: 0, RecentPauses: ring, HasFaults: true, MinorFaults: mallocs / 10, MajorFaults: uint64(gcs)}
	}
	open := AttributionReading{Nodes: map[uint64]NodeAttribution{
		1: {Incarnation: "pid 11", Stages: stagesWith(10, 100), Fsyncs: 10, Process: proc(time.Second, 1000, 1, 5)},
		2: {Incarnation: "pid 12", Stages: stagesWith(3, 100), Fsyncs: 50, Process: proc(3*time.Second, 5000, 2, 5, 6)},
		3: {Incarnation: "pid 13", Stages: stagesWith(1, 100), Fsyncs: 7, Process: proc(time.Second, 10, 0)},
	}}
	at = at.Add(2 * time.Second)
	closing := AttributionReading{Nodes: map[uint64]NodeAttribution{
		1: {Incarnation: "pid 11", Stages: stagesWith(30, 100), Fsyncs: 30, Process: proc(1500*time.Millisecond, 1600, 3, 5, 9, 40)},
		// Restarted in the window: its counters began again at zero.
		2: {Incarnation: "pid 22", Stages: stagesWith(4, 100), Fsyncs: 4, Process: proc(200*time.Millisecond, 300, 1, 7)},
		// Node 3 stopped in the window.
	}}
	open.Nodes[1].Process.SchedWait = []procstat.WaitBucket{{UpperNs: 1024, Count: 100}, {UpperNs: 2048, Count: 10}}
	closing.Nodes[1].Process.SchedWait = []procstat.WaitBucket{{UpperNs: 1024, Count: 150}, {UpperNs: 2048, Count: 10}, {UpperNs: 1 << 20, Count: 50}}
	closing.Nodes[2].Process.SchedWait = []procstat.WaitBucket{{UpperNs: 4096, Count: 8}}
	fa := &fakeAttributor{readings: []AttributionReading{open, closing}}
	w := openProbe(context.Background(), fa, false)
	wc := w.closeWindow(context.Background())
	if !slices.Equal(fa.edges, []WindowEdge{WindowOpens, WindowCloses}) {
		t.Errorf("edges read %v", fa.edges)
	}
	if len(wc.problems) > 0 {
		t.Fatalf("problems: %v", wc.problems)
	}
	if wc.fsyncs[1] != 20 || wc.fsyncs[2] != 4 || len(wc.fsyncs) != 2 {
		t.Errorf("fsyncs by node %v, want 1:20 2:4", wc.fsyncs)
	}
	if got := wc.stages.Total.Count(); got != 20+4 {
		t.Errorf("the window timed %d writes, want 24 (20 on node 1, 4 on restarted node 2)", got)
	}
	n1, n2 := wc.byNode[1], wc.byNode[2]
	if n1.UserCPU != 500*time.Millisecond || n1.Mallocs != 600 || n1.GCCycles != 2 || n1.GCPauseMax != 40 || !n1.GCPauseMaxExact || n1.WriteBytes != 500 {
		t.Errorf("node 1's window %+v", n1)
	}
	if n2.UserCPU != 200*time.Millisecond || n2.Mallocs != 300 || n2.GCCycles != 1 || n2.GCPauseMax != 7 || n2.WriteBytes != 200 {
		t.Errorf("restarted node 2's window %+v, want its counters from zero", n2)
	}

	s := &results.Summary{Ops: 2000, Writes: 2000, ThroughputOpsPerSec: 1000}
	wc.fill(s, 100)
	if s.Cost == nil || s.CostHarness == nil || len(s.CostByNode) != 2 {
		t.Fatalf("cost %v, harness %v, by node %v", s.Cost, s.CostHarness, s.CostByNode)
	}
	c1 := s.CostByNode["1"]
	if want := 0.5 / c1.WindowSec / 1000 * 1e6; math.Abs(c1.CPUUSPerOp-want) > 1e-9*want || c1.Fsyncs != 20 {
		t.Errorf("node 1: %g µs CPU per op (want %g), %d fsyncs", c1.CPUUSPerOp, want, c1.Fsyncs)
	}
	var sum float64
	for _, c := range s.CostByNode {
		sum += c.CPUUserSec + c.CPUSystemSec
	}
	sum += s.CostHarness.CPUUserSec + s.CostHarness.CPUSystemSec
	if got := s.Cost.CPUUserSec + s.Cost.CPUSystemSec; math.Abs(got-sum) > 1e-9 || s.Cost.Fsyncs != 24 || s.CPUUSPerOp != s.Cost.CPUUSPerOp {
		t.Errorf("whole: %g s CPU, %d fsyncs; nodes and harness %g s, 24 fsyncs", got, s.Cost.Fsyncs, sum)
	}
	// Scheduling waits: node 1's are the window's growth (50 of ≤ 1 µs,
	// 50 of ≤ 1 ms), restarted node 2's all it sampled, and the whole
	// holds them and the harness's own.
	if w := s.CostByNode["1"].SchedWaitUS; w == nil || w.Samples != 100 || w.P50 != 1.024 || w.P90 != 1048.576 {
		t.Errorf("node 1's scheduling waits %+v, want 100 samples, p50 ≤ 1.024 µs, p90 ≤ 1048.576 µs", w)
	}
	if w := s.CostByNode["2"].SchedWaitUS; w == nil || w.Samples != 8 || w.Max != 4.096 {
		t.Errorf("node 2's scheduling waits %+v, want 8 samples of ≤ 4.096 µs", w)
	}
	var harness uint64 // the harness's own, in its (short) real window
	if h := s.CostHarness.SchedWaitUS; h != nil {
		harness = h.Samples
	}
	if w := s.Cost.SchedWaitUS; w == nil || w.Samples != 108+harness {
		t.Errorf("the whole's scheduling waits %+v, want the nodes' 108 and the harness's %d", w, harness)
	}
	// Page faults, like every count: node 1's growth (60 minor, 2 major),
	// restarted node 2's from zero (30, 1), the whole their sum and the
	// harness's own.
	if c := s.CostByNode["1"]; c.MinorFaults != 60 || c.MajorFaults != 2 || !c.PageFaultsMeasured || math.Abs(c.PageFaultsPerOp-62/c.WindowSec/1000) > 1e-9 {
		t.Errorf("node 1's page faults %d minor, %d major, %g per op (measured %v)", c.MinorFaults, c.MajorFaults, c.PageFaultsPerOp, c.PageFaultsMeasured)
	}
	if c := s.CostByNode["2"]; c.MinorFaults != 30 || c.MajorFaults != 1 {
		t.Errorf("node 2's page faults %d minor, %d major, want 30 and 1", c.MinorFaults, c.MajorFaults)
	}
	if h := s.CostHarness; s.Cost.MinorFaults != 90+h.MinorFaults || s.Cost.MajorFaults != 3+h.MajorFaults || !s.Cost.PageFaultsMeasured {
		t.Errorf("the whole's page faults %d minor, %d major; want the nodes' 90 and 3 and the harness's %d and %d", s.Cost.MinorFaults, s.Cost.MajorFaults, h.MinorFaults, h.MajorFaults)
	}
	if s.StagesUS["queue"].Count != 24 || s.StagesTotalUS.Count != 24 {
		t.Errorf("stages %+v", s.StagesUS["queue"])
	}
}

// A target that reports nothing still gets the harness's process charged
// when its nodes run in it, and nothing at all when they run elsewhere.
func TestWindowWithoutAttributor(t *testing.T) {
	for _, inProc := range []bool{true, false} {
		wc := openProbe(context.Background(), nil, inProc).closeWindow(context.Background())
		s := &results.Summary{Ops: 10, Writes: 10, ThroughputOpsPerSec: 10}
		wc.fill(s, 100)
		if (s.Cost != nil) != inProc || s.StagesUS != nil || s.CostByNode != nil || s.CostHarness != nil {
			t.Errorf("in process %v: cost %v, stages %v, by node %v", inProc, s.Cost, s.StagesUS, s.CostByNode)
		}
	}
}

// A node process's /stats maps onto its NodeAttribution, and a restarted
// process (another PID, or the same PID started again) is another
// incarnation.
func TestAttributionFromStats(t *testing.T) {
	started := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	st := admin.Stats{Node: node.Metrics{Fsyncs: 42}, Process: admin.ProcessStats{PID: 7, Started: started},
		Stages: stagesWith(3, 10), Sample: procstat.Sample{At: started, UserCPU: time.Second, Mallocs: 9}}
	a := attributionFromStats(st)
	if a.Fsyncs != 42 || a.Stages != st.Stages || a.Process == nil || a.Process.UserCPU != time.Second || a.Process.Mallocs != 9 {
		t.Errorf("attribution %+v from stats %+v", a, st)
	}
	again := st
	again.Process.Started = started.Add(time.Second)
	other := st
	other.Process.PID = 8
	if a.Incarnation == attributionFromStats(again).Incarnation || a.Incarnation == attributionFromStats(other).Incarnation ||
		a.Incarnation != attributionFromStats(st).Incarnation {
		t.Errorf("incarnations %q, %q, %q", a.Incarnation, attributionFromStats(again).Incarnation, attributionFromStats(other).Incarnation)
	}
}

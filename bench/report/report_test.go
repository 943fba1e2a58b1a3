package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/bench/results"
)

// attributedSummary is a summary with stages and per-process costs.
func attributedSummary() results.Summary {
	s := results.Summary{Ops: 1000, Writes: 1000, ThroughputOpsPerSec: 500, LatencyUS: results.Latency{Mean: 1100, P50: 1000}}
	s.StagesUS = map[string]results.StageLatency{}
	for i, name := range results.StageOrder {
		v := float64(100 * (i + 1)) // 100, 200, ... 500: mean sum 1500
		s.StagesUS[name] = results.StageLatency{P50: v, P99: 2 * v, P999: 3 * v, Max: 4 * v, Mean: v, Count: 1000}
	}
	s.StagesTotalUS = &results.StageLatency{P50: 1400, P99: 2900, P999: 4400, Max: 6000, Mean: 1500, Count: 1000}
	s.StageDetailUS = map[string]results.StageLatency{"network": {P50: 80, Count: 2000}}
	node := results.Cost{WindowSec: 2, CPUUserSec: 0.1, CPUUSPerOp: 100, FsyncsPerOp: 0.25, StorageWriteMeasured: true, StorageWriteBytesPerOp: 4096, GCPauseMaxExact: true}
	harness := results.Cost{WindowSec: 2, CPUUserSec: 0.05, CPUUSPerOp: 50, GCPauseMaxExact: true}
	s.CostByNode = map[string]results.Cost{"1": node, "2": node, "10": node}
	s.CostHarness = &harness
	s.Cost = &results.Cost{WindowSec: 2, CPUUserSec: 0.35, CPUUSPerOp: 350, FsyncsPerOp: 0.75, StorageWriteMeasured: true, GCPauseMaxExact: true,
		SchedWaitUS:        &results.SchedWait{Samples: 400, P50: 3, P90: 655.36, P99: 1310.72, P999: 4194.304, Max: -1},
		PageFaultsMeasured: true, MinorFaults: 3000, MajorFaults: 2, PageFaultsPerOp: 0.15}
	s.CPUUSPerOp = 350
	return s
}

// report.md's "where the time goes" lists every stage with its share of
// the mean and the sum of the stages, and the cost section lists every
// node process, in ID order, and the harness.
func TestAttributionSections(t *testing.T) {
	md := Markdown(&results.Run{Summary: attributedSummary()})
	for _, want := range []string{
		"## Where the time goes", "| queue | 100 µs | 200 µs | 300 µs |", "| answer | 500 µs |", "33.3% |",
		"| **sum of the stages** | | | | | 1.50 ms |", "| network | follower acknowledgement (append_rtt − follower_hold) | 2000 |",
		"![where the time goes](plots/stages.png)",
		"## Cost per operation", "| CPU per operation | 350.0 µs", "### By process", "| harness (clients) | 50.0 µs |",
		"| waiting for a CPU (goroutines runnable, not running) | | p50 ≤ 3 µs, p90 ≤ 655 µs, p99 ≤ 1.31 ms, p99.9 ≤ 4.19 ms, max beyond the runtime's last bound (400 sampled waits) |",
		"| 0.0 ms | 0.00 ms | none sampled |",
		"| page faults (mostly first touches of fresh memory) | 0.150 | 3000 minor, 2 major (1501/s) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	n1, n2, n10 := strings.Index(md, "| node 1 |"), strings.Index(md, "| node 2 |"), strings.Index(md, "| node 10 |")
	if n1 < 0 || n2 < n1 || n10 < n2 {
		t.Errorf("node rows at %d, %d, %d: want all, in ID order", n1, n2, n10)
	}

	s := attributedSummary()
	s.StagesUS, s.StagesTotalUS, s.Cost, s.CostByNode = nil, nil, nil, nil
	md = Markdown(&results.Run{Summary: s})
	if !strings.Contains(md, "## Where the time goes\n\nNot measured") || !strings.Contains(md, "## Cost per operation\n\nNot measured") {
		t.Errorf("a run without attribution does not say so:\n%s", md)
	}
}

// The stacked bar of the stage percentiles renders, one bar per statistic.
func TestStageBars(t *testing.T) {
	s := attributedSummary()
	sb := stageBars(&s)
	if len(sb.Bars) != len(stagePercentiles) || len(sb.PartNames) != len(results.StageOrder) {
		t.Fatalf("%d bars of %d parts", len(sb.Bars), len(sb.PartNames))
	}
	if got := sb.Bars[1].Parts; got[0] != 100 || got[4] != 500 {
		t.Errorf("the p50 bar's parts %v", got)
	}
	path := filepath.Join(t.TempDir(), StagesPlot)
	if err := SaveStackedBars(sb, path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("stages plot: %v", err)
	}
}

// The environment line names the collector's target when the run recorded
// it, and says nothing of it for results that did not.
func TestEnvironmentGOGC(t *testing.T) {
	pct := func(p int) *int { return &p }
	for _, c := range []struct {
		pct  *int
		want string
	}{{pct(400), "(2 CPUs), GOGC 400, "}, {pct(-1), "(2 CPUs), GOGC off, "}, {pct(0), "(2 CPUs), GOGC 0, "}, {nil, "(2 CPUs), x86"}} {
		s := attributedSummary()
		s.Env = results.Env{GoVersion: "go1.26", GOMAXPROCS: 2, NumCPU: 2, CPUModel: "x86", GCPercent: c.pct}
		if md := Markdown(&results.Run{Summary: s}); !strings.Contains(md, c.want) {
			t.Errorf("want %q in the environment line", c.want)
		}
	}
}

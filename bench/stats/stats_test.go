package stats

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/bench/results"
)

func group(name string, tput ...float64) Group {
	g := Group{Name: name}
	for i, v := range tput {
		g.Runs = append(g.Runs, Run{Name: fmt.Sprintf("run-%02d", i+1), Summary: results.Summary{ThroughputOpsPerSec: v, LatencyUS: results.Latency{P99: 1000},
			ReplicaCheck: "agree", ReplicasAgree: true, AckedOpsFound: true}})
	}
	return g
}

func summaries(g Group) []results.Summary { return g.Summaries() }

func TestCompareSignificance(t *testing.T) {
	m := Metrics[0] // throughput, higher is better
	base := Summarize(summaries(group("a", 100, 101, 99, 100, 102, 98)), m)
	if base.Center != 100 || base.N != 6 {
		t.Fatalf("median %v n %d, want 100 and 6", base.Center, base.N)
	}
	if !(base.Lo <= 100 && base.Hi >= 100 && base.Hi-base.Lo < 10) {
		t.Errorf("confidence interval [%v, %v] should be tight around 100", base.Lo, base.Hi)
	}
	faster := Summarize(summaries(group("b", 120, 121, 119, 122, 118, 120)), m)
	d := CompareCells(base, faster, m)
	if !d.Significant || !d.Better || math.Abs(d.Pct-20) > 0.01 || d.P >= 0.05 {
		t.Errorf("clearly faster: %+v, want a significant +20%% improvement", d)
	}
	same := Summarize(summaries(group("c", 101, 99, 100, 98, 102, 100)), m)
	if d := CompareCells(base, same, m); d.Significant || !strings.HasPrefix(d.Text, "~") {
		t.Errorf("same distribution: %+v, want ~", d)
	}
	p99 := Metrics[4]
	worse := Summarize([]results.Summary{{LatencyUS: results.Latency{P99: 2000}}, {LatencyUS: results.Latency{P99: 2100}},
		{LatencyUS: results.Latency{P99: 1900}}, {LatencyUS: results.Latency{P99: 2050}}, {LatencyUS: results.Latency{P99: 1950}}, {LatencyUS: results.Latency{P99: 2000}}}, p99)
	if d := CompareCells(Summarize(summaries(group("a", 1, 1, 1, 1, 1, 1)), p99), worse, p99); !d.Significant || d.Better {
		t.Errorf("doubled p99: %+v, want significant and worse", d)
	}
	one := Summarize(summaries(group("d", 150)), m)
	if d := CompareCells(base, one, m); d.Significant || !strings.Contains(d.Text, "no test") {
		t.Errorf("single run: %+v, want no test", d)
	}
}

func TestTable(t *testing.T) {
	tab := Compare([]Group{group("base", 100, 101, 99, 100, 102, 98), group("new", 120, 121, 119, 122, 118, 120)}).Markdown()
	for _, want := range []string{"| throughput (ops/s) | 100 ±", "+20.00% (p=", "better", "base (n=6)"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}

// writeRun writes a result directory with only what compare reads.
func writeRun(t *testing.T, dir string, s results.Summary, cfg map[string]any) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := results.WriteJSON(filepath.Join(dir, results.SummaryFile), s); err != nil {
		t.Fatal(err)
	}
	if err := results.WriteJSON(filepath.Join(dir, results.ConfigFile), cfg); err != nil {
		t.Fatal(err)
	}
}

func gcPct(p int) *int { return &p }

func okSummary(tput float64, commit string) results.Summary {
	return results.Summary{ThroughputOpsPerSec: tput, LatencyUS: results.Latency{P99: 1000}, ReplicaCheck: "agree", ReplicasAgree: true,
		AckedOpsFound: true, Env: results.Env{GoVersion: "go1.26", GOMAXPROCS: 2, NumCPU: 2, Commit: commit, GCPercent: gcPct(400)}}
}

// TestLoadRefusesMixedConfigs: repetitions pool into one sample only when
// their configurations match (seeds and output settings aside), unless
// forced.
func TestLoadRefusesMixedConfigs(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, filepath.Join(dir, "run-01"), okSummary(100, "a"), map[string]any{"clients": 64, "seed": 1, "out": "x"})
	writeRun(t, filepath.Join(dir, "run-02"), okSummary(101, "a"), map[string]any{"clients": 64, "seed": 2, "cpuprofile": "cpu.pprof"})
	if g, err := Load(dir, false); err != nil || len(g.Runs) != 2 {
		t.Fatalf("same configuration, other seeds: %d runs, %v", len(g.Runs), err)
	}
	writeRun(t, filepath.Join(dir, "run-03"), okSummary(150, "a"), map[string]any{"clients": 128, "seed": 3})
	_, err := Load(dir, false)
	if !errors.Is(err, ErrMixedConfigs) || !strings.Contains(err.Error(), "clients (64 vs 128)") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("mixed configurations: %v", err)
	}
	if g, err := Load(dir, true); err != nil || len(g.Runs) != 3 {
		t.Errorf("--force: %d runs, %v", len(g.Runs), err)
	}
}

// TestCompareReport: the configuration and environment differences between
// groups are listed, a run whose verdicts failed is marked, too few runs
// for a confidence interval are pointed out, and every format renders.
func TestCompareReport(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for i := range 6 {
		writeRun(t, filepath.Join(a, fmt.Sprintf("run-%02d", i+1)), okSummary(100+float64(i), "c1"), map[string]any{"clients": 64, "transport": "tcp", "seed": i})
	}
	bad := okSummary(90, "c2")
	bad.ReplicaCheck, bad.ReplicasAgree = "disagree", false
	bad.Env.GCPercent = gcPct(100)
	writeRun(t, filepath.Join(b, "run-01"), bad, map[string]any{"clients": 64, "transport": "quic"})
	off := okSummary(95, "c2")
	off.Env.GCPercent = gcPct(-1)
	writeRun(t, filepath.Join(b, "run-02"), off, map[string]any{"clients": 64, "transport": "quic"})
	ga, err := Load(a, false)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := Load(b, false)
	if err != nil {
		t.Fatal(err)
	}
	cmp := Compare([]Group{ga, gb})
	text := cmp.Text()
	for _, want := range []string{"a (n=6)", "b (n=2) †", "transport: a=tcp  b=quic", "commit: a=c1  b=c2", "gc_percent: a=400  b=100, off", "b/run-01 is doubtful (verdicts failed: replicas disagree)",
		"too few runs for a 95% confidence interval in b (n=2)"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "clients:") || strings.Contains(text, "a (n=6) †") {
		t.Errorf("text lists a setting that does not differ, or marks a clean group:\n%s", text)
	}
	var js Comparison
	out, err := cmp.Render("json")
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || len(js.Groups) != 2 || len(js.Groups[1].Doubtful) != 1 || len(js.Metrics) != len(Metrics) {
		t.Errorf("json: %v\n%s", err, out)
	}
	if js.Metrics[0].Cells[1].CILow != nil {
		t.Errorf("n=2 has a finite interval in json: %v", *js.Metrics[0].Cells[1].CILow)
	}
	out, err = cmp.Render("csv")
	recs, cerr := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || cerr != nil || len(recs) != 1+2*len(Metrics) || recs[0][0] != "metric" || recs[2][2] != "b" || recs[2][9] == "" {
		t.Errorf("csv: %v %v\n%s", err, cerr, out)
	}
	if _, err := cmp.Render("yaml"); err == nil {
		t.Error("an unknown format rendered")
	}
}

// TestCombine: the median, interval and range of each figure over the
// repetitions, and whether their verdicts held.
func TestCombine(t *testing.T) {
	var ss []results.Summary
	var names []string
	for i, v := range []float64{100, 104, 98, 101, 99, 103} {
		ss = append(ss, okSummary(v, "c"))
		names = append(names, fmt.Sprintf("run-%02d", i+1))
	}
	c := Combine(names, ss)
	m := c.Metric("throughput_ops_per_sec")
	if m.N != 6 || m.Median != 100.5 || m.Min != 98 || m.Max != 104 || m.CILow == nil || *m.CILow > 100.5 || *m.CIHigh < 100.5 || !c.VerdictsHold {
		t.Errorf("combined throughput %+v (verdicts hold %v)", m, c.VerdictsHold)
	}
	ss[2].AckedOpsFound = false
	c = Combine(names[:3], ss[:3])
	if c.VerdictsHold || len(c.Doubtful) != 1 || len(c.Notes) != 1 || c.Metric("throughput_ops_per_sec").CILow != nil {
		t.Errorf("3 runs, one failing: %+v", c)
	}
	if md := c.Markdown(); !strings.Contains(md, "SOME VERDICTS FAILED") || !strings.Contains(md, "unbounded") {
		t.Errorf("markdown:\n%s", md)
	}
}

// TestCostMetricsLeaveOutUnmeasuredRuns: a run with no cost (written before
// cost existed, or by a system without it) is no zero-cost run: it is left
// out of CPU per op, and a group with none shows n/a rather than 0 or an
// infinite change.
func TestCostMetricsLeaveOutUnmeasuredRuns(t *testing.T) {
	m, ok := MetricByKey("cpu_us_per_op")
	if !ok || m.HigherIsBetter {
		t.Fatalf("cpu_us_per_op metric %+v, %v: want one, lower is better", m, ok)
	}
	with := func(us ...float64) Group {
		g := group("costed", us...)
		for i := range g.Runs {
			g.Runs[i].Summary.Cost = &results.Cost{CPUUSPerOp: us[i]}
		}
		return g
	}
	mixed := with(20, 21, 19)
	mixed.Runs = append(mixed.Runs, group("old", 100).Runs...) // no cost
	c := Summarize(mixed.Summaries(), m)
	if c.N != 3 || c.Center != 20 || c.Min != 19 {
		t.Errorf("mixed group: n %d median %v min %v, want the 3 costed runs (median 20, min 19)", c.N, c.Center, c.Min)
	}
	none := Summarize(summaries(group("old", 100, 101)), m)
	if none.N != 0 || none.String() != "n/a" {
		t.Errorf("group with no costed run: %+v %q, want n=0 shown as n/a", none, none.String())
	}
	if d := CompareCells(c, none, m); d.Significant || !strings.Contains(d.Text, "n/a") {
		t.Errorf("change to an unmeasured group: %+v, want n/a", d)
	}
	tab := Compare([]Group{with(20, 21, 19, 20, 22, 18), with(10, 11, 9, 10, 12, 8)}).Markdown()
	if !strings.Contains(tab, "| CPU per op (µs) | 20 ±") || !strings.Contains(tab, "-50.00%") {
		t.Errorf("compare table lacks the CPU row or its change:\n%s", tab)
	}
	comb := Combine([]string{"a", "b"}, summaries(group("old", 100, 101)))
	if txt := comb.Text(); !strings.Contains(txt, "n/a") {
		t.Errorf("--count summary of runs without cost shows no n/a:\n%s", txt)
	}
}

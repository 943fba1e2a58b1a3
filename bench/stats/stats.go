// Package stats compares result directories the way benchstat compares
// benchmark runs: per metric, the median of the repetitions with a 95%
// confidence interval, and between two configurations the change and
// whether it is significant (Mann-Whitney U test, alpha 0.05), using
// golang.org/x/perf/benchmath. Repetitions pool into one sample only when
// their configurations are the same.
package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchmath"

	"github.com/raftbench/raftbench/bench/results"
)

// MinRunsForCI is the smallest sample with a finite 95% confidence
// interval for the median without assuming a distribution (benchstat's
// advice: -count 6 or more).
const MinRunsForCI = 6

// ErrMixedConfigs is wrapped by Load's error for a directory whose runs
// have different configurations.
var ErrMixedConfigs = errors.New("runs of different configurations")

// Metric is one number compared across runs.
type Metric struct {
	// Key names it in JSON and CSV; Name and Unit for people.
	Key  string
	Name string
	Unit string
	// HigherIsBetter says which direction is an improvement.
	HigherIsBetter bool
	Get            func(*results.Summary) float64
	// Has, if set, says whether a run measured the metric at all: a run
	// written before the figure existed, or by a system that cannot
	// report it, reads 0, which is no measurement. Summarize leaves such
	// runs out, and a group with none shows "n/a".
	Has func(*results.Summary) bool
}

// hasCost says whether a run charged its window (summary.json "cost").
func hasCost(s *results.Summary) bool { return s.Cost != nil }

// Metrics are the headline figures compare and --count summarise.
var Metrics = []Metric{
	{"throughput_ops_per_sec", "throughput", "ops/s", true, func(s *results.Summary) float64 { return s.ThroughputOpsPerSec }, nil},
	{"throughput_mb_per_sec", "throughput", "MB/s", true, func(s *results.Summary) float64 { return s.ThroughputMBPerSec }, nil},
	{"p50_us", "p50", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P50 }, nil},
	{"p90_us", "p90", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P90 }, nil},
	{"p99_us", "p99", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P99 }, nil},
	{"p999_us", "p99.9", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P999 }, nil},
	{"max_us", "max", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.Max }, nil},
	{"errors", "errors", "ops", false, func(s *results.Summary) float64 {
		var n int64
		for _, v := range s.Errors {
			n += v
		}
		return float64(n)
	}, nil},
	{"incomplete_ops", "incomplete", "ops", false, func(s *results.Summary) float64 { return float64(s.IncompleteOps) }, nil},
	{"leader_changes", "leader changes", "", false, func(s *results.Summary) float64 { return float64(s.LeaderChanges) }, nil},
	{Key: "cpu_us_per_op", Name: "CPU per op", Unit: "µs", Get: func(s *results.Summary) float64 { return s.Cost.CPUUSPerOp }, Has: hasCost},
	{Key: "fsyncs_per_op", Name: "fsyncs per op", Get: func(s *results.Summary) float64 { return s.Cost.FsyncsPerOp }, Has: hasCost},
	{Key: "allocs_per_op", Name: "allocs per op", Get: func(s *results.Summary) float64 { return s.Cost.AllocsPerOp }, Has: hasCost},
	{Key: "page_faults_per_op", Name: "page faults per op", Get: func(s *results.Summary) float64 { return s.Cost.PageFaultsPerOp }, Has: hasFaults},
	{Key: "sched_wait_p99_us", Name: "CPU wait p99", Unit: "µs", Get: func(s *results.Summary) float64 { return s.Cost.SchedWaitUS.P99 }, Has: hasSchedWait},
}

// hasFaults: the run measured its page faults.
func hasFaults(s *results.Summary) bool { return hasCost(s) && s.Cost.PageFaultsMeasured }

// hasSchedWait: the run sampled scheduling waits, and its p99 is bounded.
func hasSchedWait(s *results.Summary) bool {
	return hasCost(s) && s.Cost.SchedWaitUS != nil && s.Cost.SchedWaitUS.P99 >= 0
}

// MetricByKey finds a metric.
func MetricByKey(key string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Key == key {
			return m, true
		}
	}
	return Metric{}, false
}

func (m Metric) label() string {
	if m.Unit == "" {
		return m.Name
	}
	return m.Name + " (" + m.Unit + ")"
}

// Run is one result directory of a group.
type Run struct {
	Name    string
	Summary results.Summary
	// Config is its config.json, keyed by knob name (older files'
	// underscores read as dashes); nil when it has none.
	Config map[string]any
}

// Problem says what makes a run's numbers doubtful: failed verdicts, an
// interruption, a harness problem. "" when nothing does.
func (r *Run) Problem() string {
	var p []string
	if v := results.FailedVerdicts(&r.Summary); v != "" {
		p = append(p, "verdicts failed: "+v)
	}
	if r.Summary.Interrupted {
		p = append(p, "interrupted")
	}
	if len(r.Summary.Problems) > 0 && results.FailedVerdicts(&r.Summary) == "" {
		p = append(p, "harness problems: "+strings.Join(r.Summary.Problems, "; "))
	}
	return strings.Join(p, "; ")
}

// Group is the repetitions of one configuration.
type Group struct {
	Name string
	Runs []Run
}

// Summaries returns the runs' summaries.
func (g *Group) Summaries() []results.Summary {
	out := make([]results.Summary, len(g.Runs))
	for i := range g.Runs {
		out[i] = g.Runs[i].Summary
	}
	return out
}

// IgnoredKeys are the config keys that may differ between repetitions of
// one configuration: where the output and profiles go, the seed (each
// repetition takes the next), and the repetition count itself.
var IgnoredKeys = []string{"seed", "count", "out", "dir", "cpuprofile", "memprofile", "mutexprofile", "blockprofile", "trace", "pprof-addr", "metrics-addr"}

// Load reads dir as a group: a result directory is a group of one; a
// directory of repetitions (run-01, run-02, ... as --count writes them, or
// any subdirectories holding summary.json) is a group of them. Runs whose
// configurations differ (beyond IgnoredKeys) are not pooled into one
// sample: Load fails with ErrMixedConfigs unless force is set.
func Load(dir string, force bool) (Group, error) {
	g := Group{Name: filepath.Base(filepath.Clean(dir))}
	if s, err := results.ReadSummary(dir); err == nil {
		g.Runs = append(g.Runs, Run{Name: g.Name, Summary: s, Config: readConfig(dir)})
		return g, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return g, fmt.Errorf("%s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		s, err := results.ReadSummary(sub)
		if err != nil {
			continue
		}
		g.Runs = append(g.Runs, Run{Name: e.Name(), Summary: s, Config: readConfig(sub)})
	}
	if len(g.Runs) == 0 {
		return g, fmt.Errorf("%s: no summary.json in it or in its subdirectories", dir)
	}
	if !force {
		for _, r := range g.Runs[1:] {
			if d := configDiff(g.Runs[0].Config, r.Config); len(d) > 0 {
				return g, fmt.Errorf("%w: %s: refusing to pool %s and %s into one sample: they differ in %s; compare them as separate directories, or pass --force",
					ErrMixedConfigs, dir, g.Runs[0].Name, r.Name, strings.Join(d, ", "))
			}
		}
	}
	return g, nil
}

func readConfig(dir string) map[string]any {
	b, err := os.ReadFile(filepath.Join(dir, results.ConfigFile))
	if err != nil {
		return nil
	}
	var raw map[string]any
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		out[strings.ReplaceAll(k, "_", "-")] = v
	}
	return out
}

// configDiff describes the keys (beyond IgnoredKeys) whose values differ
// between a and b, as "key (va vs vb)".
func configDiff(a, b map[string]any) []string {
	var out []string
	for _, k := range unionKeys(a, b) {
		if va, vb := showValue(a, k), showValue(b, k); va != vb {
			out = append(out, fmt.Sprintf("%s (%s vs %s)", k, va, vb))
		}
	}
	return out
}

func unionKeys(ms ...map[string]any) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(IgnoredKeys, k) {
				set[k] = true
			}
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// showValue formats m[k] as config.json holds it ("–" when absent).
func showValue(m map[string]any, k string) string {
	v, ok := m[k]
	if !ok {
		return "–"
	}
	switch x := v.(type) {
	case nil:
		return "none"
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprintf("%g", x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, " ")
	default:
		return fmt.Sprint(x)
	}
}

// Cell is one metric of one group.
type Cell struct {
	N      int
	Sample *benchmath.Sample
	benchmath.Summary
	Min, Max float64
}

// Summarize computes the cell of metric m for the summaries.
func Summarize(ss []results.Summary, m Metric) Cell {
	vals := make([]float64, 0, len(ss))
	for i := range ss {
		if m.Has == nil || m.Has(&ss[i]) {
			vals = append(vals, m.Get(&ss[i]))
		}
	}
	if len(vals) == 0 {
		return Cell{}
	}
	smp := benchmath.NewSample(vals, &benchmath.DefaultThresholds)
	c := Cell{N: len(vals), Sample: smp, Summary: benchmath.AssumeNothing.Summary(smp, 0.95)}
	if len(vals) > 0 {
		c.Min, c.Max = slices.Min(vals), slices.Max(vals)
	}
	return c
}

// String formats c as benchstat does: center ± the larger half-width of
// the confidence interval in percent (only with 2 or more runs; "∞" when
// the sample is too small for a 95% interval).
func (c Cell) String() string {
	if c.N == 0 {
		return "n/a"
	}
	v := fmtNum(c.Center)
	if c.N < 2 {
		return v
	}
	return v + " ± " + c.PctRangeString()
}

// Delta is the change from a base group to another.
type Delta struct {
	Pct float64
	// P is the Mann-Whitney U test's p-value; Significant is P < 0.05
	// (with enough runs for the test to reach it at all).
	P           float64
	Significant bool
	// Text is "+12.3% (p=0.008 n=5+5)", "~ (p=0.421 n=5+5)" or, with
	// single runs, the raw change marked "(n=1, no test)".
	Text string
	// Better says whether the change is an improvement (when significant).
	Better bool
}

// CompareCells computes the change of metric m from base to other.
func CompareCells(base, other Cell, m Metric) Delta {
	if base.N == 0 || other.N == 0 {
		return Delta{Text: "n/a (not measured)"}
	}
	d := Delta{Pct: pct(base.Center, other.Center)}
	if base.N < 2 || other.N < 2 {
		d.Text = fmt.Sprintf("%+.2f%% (n=%d+%d, no test)", d.Pct, base.N, other.N)
		return d
	}
	cmp := benchmath.AssumeNothing.Compare(base.Sample, other.Sample)
	d.P = cmp.P
	d.Significant = cmp.P < cmp.Alpha
	d.Text = cmp.FormatDelta(base.Center, other.Center) + " (" + cmp.String() + ")"
	if d.Significant {
		d.Better = (other.Center > base.Center) == m.HigherIsBetter
	}
	return d
}

func pct(old, new float64) float64 {
	if old == 0 {
		if new == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (new - old) / old * 100
}

func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

// finite returns &v, or nil for an infinite bound (JSON has no infinity).
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}

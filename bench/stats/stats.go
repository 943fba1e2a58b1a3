// Package stats compares result directories the way benchstat compares
// benchmark runs: per metric, the median of the repetitions with a 95%
// confidence interval, and between two configurations the change and
// whether it is significant (Mann-Whitney U test, alpha 0.05), using
// golang.org/x/perf/benchmath.
package stats

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/perf/benchmath"

	"github.com/raftbench/raftbench/bench/results"
)

// Metric is one number compared across runs.
type Metric struct {
	Name string
	Unit string
	// HigherIsBetter says which direction is an improvement.
	HigherIsBetter bool
	Get            func(*results.Summary) float64
}

// Metrics are the numbers compare shows.
var Metrics = []Metric{
	{"throughput", "ops/s", true, func(s *results.Summary) float64 { return s.ThroughputOpsPerSec }},
	{"throughput", "MB/s", true, func(s *results.Summary) float64 { return s.ThroughputMBPerSec }},
	{"p50", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P50 }},
	{"p90", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P90 }},
	{"p99", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P99 }},
	{"p99.9", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.P999 }},
	{"max", "µs", false, func(s *results.Summary) float64 { return s.LatencyUS.Max }},
	{"errors", "ops", false, func(s *results.Summary) float64 {
		var n int64
		for _, v := range s.Errors {
			n += v
		}
		return float64(n)
	}},
	{"leader changes", "", false, func(s *results.Summary) float64 { return float64(s.LeaderChanges) }},
}

// Group is the repetitions of one configuration.
type Group struct {
	Name      string
	Summaries []results.Summary
}

// Load reads dir as a group: a result directory is a group of one; a
// directory of repetitions (run-01, run-02, ... as --count writes them, or
// any subdirectories holding summary.json) is a group of them.
func Load(dir string) (Group, error) {
	g := Group{Name: filepath.Base(filepath.Clean(dir))}
	if s, err := results.ReadSummary(dir); err == nil {
		g.Summaries = append(g.Summaries, s)
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
		s, err := results.ReadSummary(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		g.Summaries = append(g.Summaries, s)
	}
	if len(g.Summaries) == 0 {
		return g, fmt.Errorf("%s: no summary.json in it or in its subdirectories", dir)
	}
	return g, nil
}

// Cell is one metric of one group.
type Cell struct {
	N      int
	Sample *benchmath.Sample
	benchmath.Summary
}

// Summarize computes the cell of metric m for g.
func Summarize(g Group, m Metric) Cell {
	vals := make([]float64, len(g.Summaries))
	for i := range g.Summaries {
		vals[i] = m.Get(&g.Summaries[i])
	}
	smp := benchmath.NewSample(vals, &benchmath.DefaultThresholds)
	return Cell{N: len(vals), Sample: smp, Summary: benchmath.AssumeNothing.Summary(smp, 0.95)}
}

// String formats c as benchstat does: center ± the larger half-width of
// the confidence interval in percent (only with 2 or more runs).
func (c Cell) String() string {
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

// Compare computes the change of metric m from base to other.
func Compare(base, other Cell, m Metric) Delta {
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
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

// Table renders the comparison of groups as a markdown table: the first
// group is the base, and every other group's column is followed by its
// change from the base.
func Table(groups []Group) string {
	var b bytes.Buffer
	b.WriteString("| metric |")
	for i, g := range groups {
		fmt.Fprintf(&b, " %s (n=%d) |", g.Name, len(g.Summaries))
		if i > 0 {
			b.WriteString(" vs base |")
		}
	}
	b.WriteString("\n|---|")
	for i := range groups {
		b.WriteString("---|")
		if i > 0 {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, m := range Metrics {
		name := m.Name
		if m.Unit != "" {
			name += " (" + m.Unit + ")"
		}
		fmt.Fprintf(&b, "| %s |", name)
		base := Summarize(groups[0], m)
		for i, g := range groups {
			c := Summarize(g, m)
			fmt.Fprintf(&b, " %s |", c)
			if i > 0 {
				d := Compare(base, c, m)
				mark := ""
				if d.Significant {
					if d.Better {
						mark = " better"
					} else {
						mark = " worse"
					}
				}
				fmt.Fprintf(&b, " %s%s |", d.Text, mark)
			}
		}
		b.WriteString("\n")
	}
	var notes []string
	for _, g := range groups {
		if len(g.Summaries) < 2 {
			notes = append(notes, g.Name)
		}
	}
	if len(notes) > 0 {
		sort.Strings(notes)
		fmt.Fprintf(&b, "\nSingle runs (%s): no confidence interval or significance test; repeat with --count 5 or more for one.\n", strings.Join(notes, ", "))
	}
	b.WriteString("\nCells: median ± 95% confidence interval; changes: Mann-Whitney U test, ~ means no significant difference at alpha 0.05.\n")
	return b.String()
}

package stats

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/raftbench/raftbench/bench/results"
)

// Combined summarises the repetitions of one configuration (`run --count
// N`, a sweep point): per headline figure the median, its 95% confidence
// interval (null when the sample is too small for one) and the range, plus
// the runs whose numbers are doubtful.
type Combined struct {
	Runs     []string         `json:"runs"`
	Metrics  []CombinedMetric `json:"metrics"`
	Doubtful []RunProblem     `json:"doubtful,omitempty"`
	// VerdictsHold is true when every repetition's verdicts held.
	VerdictsHold bool     `json:"verdicts_hold"`
	Notes        []string `json:"notes,omitempty"`
}

// CombinedMetric is one figure over the repetitions.
type CombinedMetric struct {
	Key  string `json:"key"`
	Name string `json:"name"`
	Unit string `json:"unit"`
	CellJSON
}

// Combine summarises the summaries of the runs named names.
func Combine(names []string, ss []results.Summary) *Combined {
	c := &Combined{Runs: names, VerdictsHold: true}
	for _, m := range Metrics {
		c.Metrics = append(c.Metrics, CombinedMetric{Key: m.Key, Name: m.Name, Unit: m.Unit, CellJSON: cellJSON(Summarize(ss, m))})
	}
	for i := range ss {
		r := Run{Name: names[i], Summary: ss[i]}
		if results.FailedVerdicts(&ss[i]) != "" {
			c.VerdictsHold = false
		}
		if p := r.Problem(); p != "" {
			c.Doubtful = append(c.Doubtful, RunProblem{Run: names[i], Problem: p})
		}
	}
	if len(ss) < MinRunsForCI {
		c.Notes = append(c.Notes, fmt.Sprintf("%d runs: a 95%% confidence interval for the median needs at least %d (use --count %d or more)", len(ss), MinRunsForCI, MinRunsForCI))
	}
	return c
}

// Metric returns the figure with key (see Metrics), or a zero one.
func (c *Combined) Metric(key string) CombinedMetric {
	for _, m := range c.Metrics {
		if m.Key == key {
			return m
		}
	}
	return CombinedMetric{}
}

// Markdown renders the combined summary as a table.
func (c *Combined) Markdown() string {
	var b bytes.Buffer
	b.WriteString("| figure | median | 95% CI | min | max | n |\n|---|---|---|---|---|---|\n")
	for _, m := range c.Metrics {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d |\n", Metric{Name: m.Name, Unit: m.Unit}.label(), numText(m.CellJSON, m.Median), ciText(m.CellJSON), numText(m.CellJSON, m.Min), numText(m.CellJSON, m.Max), m.N)
	}
	b.WriteString(c.notes("- "))
	return b.String()
}

// Text renders the combined summary for a terminal.
func (c *Combined) Text() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "  %-22s %12s %22s %12s %12s\n", "figure", "median", "95% CI", "min", "max")
	for _, m := range c.Metrics {
		fmt.Fprintf(&b, "  %-22s %12s %22s %12s %12s\n", Metric{Name: m.Name, Unit: m.Unit}.label(), numText(m.CellJSON, m.Median), ciText(m.CellJSON), numText(m.CellJSON, m.Min), numText(m.CellJSON, m.Max))
	}
	b.WriteString(c.notes("  "))
	return b.String()
}

func (c *Combined) notes(bullet string) string {
	var b strings.Builder
	verdict := "all verdicts held"
	if !c.VerdictsHold {
		verdict = "SOME VERDICTS FAILED"
	}
	runs := strings.Join(c.Runs, ", ")
	if len(c.Runs) > 6 {
		runs = c.Runs[0] + " … " + c.Runs[len(c.Runs)-1]
	}
	fmt.Fprintf(&b, "\n%d runs (%s); %s.\n", len(c.Runs), runs, verdict)
	for _, d := range c.Doubtful {
		fmt.Fprintf(&b, "%s%s: %s\n", bullet, d.Run, d.Problem)
	}
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "%s%s\n", bullet, n)
	}
	return b.String()
}

// numText formats v, a figure of c, or "n/a" when no run of c measured it.
func numText(c CellJSON, v float64) string {
	if c.N == 0 {
		return "n/a"
	}
	return fmtNum(v)
}

func ciText(c CellJSON) string {
	if c.N < 2 {
		return "–"
	}
	if c.CILow == nil || c.CIHigh == nil {
		return "unbounded (n too small)"
	}
	return fmt.Sprintf("[%s, %s]", fmtNum(*c.CILow), fmtNum(*c.CIHigh))
}

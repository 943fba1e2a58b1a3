package stats

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/raftbench/raftbench/bench/results"
)

// Comparison is what `raftbench compare` shows: every metric of every
// group against the first (the base), the configuration and environment
// differences between the groups, the runs whose numbers are doubtful, and
// notes (such as too few runs for a confidence interval).
type Comparison struct {
	Groups  []GroupInfo `json:"groups"`
	Metrics []MetricRow `json:"metrics"`
	// ConfigDifferences and EnvDifferences list the settings and
	// environment fields whose values are not the same in every group.
	ConfigDifferences []Difference `json:"config_differences"`
	EnvDifferences    []Difference `json:"environment_differences"`
	Notes             []string     `json:"notes,omitempty"`
}

// GroupInfo describes one compared group.
type GroupInfo struct {
	Name string   `json:"name"`
	N    int      `json:"n"`
	Runs []string `json:"runs"`
	// Doubtful lists runs whose verdicts failed, that were interrupted or
	// that had harness problems, with why.
	Doubtful []RunProblem `json:"doubtful,omitempty"`
}

// RunProblem is one doubtful run.
type RunProblem struct {
	Run     string `json:"run"`
	Problem string `json:"problem"`
}

// MetricRow is one metric across the groups.
type MetricRow struct {
	Key    string       `json:"key"`
	Name   string       `json:"name"`
	Unit   string       `json:"unit"`
	Cells  []CellJSON   `json:"cells"`
	Deltas []*DeltaJSON `json:"deltas"` // nil for the base
	cells  []Cell
}

// CellJSON is a Cell for JSON: infinite interval bounds are null.
type CellJSON struct {
	N      int      `json:"n"`
	Median float64  `json:"median"`
	CILow  *float64 `json:"ci_low"`
	CIHigh *float64 `json:"ci_high"`
	Min    float64  `json:"min"`
	Max    float64  `json:"max"`
}

// DeltaJSON is a Delta for JSON.
type DeltaJSON struct {
	Pct         *float64 `json:"pct"`
	P           float64  `json:"p"`
	Tested      bool     `json:"tested"`
	Significant bool     `json:"significant"`
	Better      bool     `json:"better"`
	Text        string   `json:"text"`
}

// Difference is one setting or environment field that differs, with its
// value in each group (in group order).
type Difference struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

func cellJSON(c Cell) CellJSON {
	return CellJSON{N: c.N, Median: c.Center, CILow: finite(c.Lo), CIHigh: finite(c.Hi), Min: c.Min, Max: c.Max}
}

// Compare builds the comparison of groups; the first is the base.
func Compare(groups []Group) *Comparison {
	cmp := &Comparison{}
	for _, g := range groups {
		gi := GroupInfo{Name: g.Name, N: len(g.Runs)}
		for i := range g.Runs {
			gi.Runs = append(gi.Runs, g.Runs[i].Name)
			if p := g.Runs[i].Problem(); p != "" {
				gi.Doubtful = append(gi.Doubtful, RunProblem{Run: g.Runs[i].Name, Problem: p})
			}
		}
		cmp.Groups = append(cmp.Groups, gi)
	}
	for _, m := range Metrics {
		row := MetricRow{Key: m.Key, Name: m.Name, Unit: m.Unit}
		for i := range groups {
			c := Summarize(groups[i].Summaries(), m)
			row.cells = append(row.cells, c)
			row.Cells = append(row.Cells, cellJSON(c))
			if i == 0 {
				row.Deltas = append(row.Deltas, nil)
				continue
			}
			d := CompareCells(row.cells[0], c, m)
			row.Deltas = append(row.Deltas, &DeltaJSON{Pct: finite(d.Pct), P: d.P, Tested: row.cells[0].N >= 2 && c.N >= 2,
				Significant: d.Significant, Better: d.Better, Text: d.Text})
		}
		cmp.Metrics = append(cmp.Metrics, row)
	}
	cmp.ConfigDifferences = configDifferences(groups)
	cmp.EnvDifferences = envDifferences(groups)
	var small []string
	for _, g := range groups {
		if len(g.Runs) < MinRunsForCI {
			small = append(small, fmt.Sprintf("%s (n=%d)", g.Name, len(g.Runs)))
		}
	}
	if len(small) > 0 {
		cmp.Notes = append(cmp.Notes, fmt.Sprintf("too few runs for a 95%% confidence interval in %s: it needs at least %d runs per configuration (as benchstat advises); repeat with --count %d or more, else the intervals are unbounded (±∞) and differences untested",
			strings.Join(small, ", "), MinRunsForCI, MinRunsForCI))
	}
	for _, g := range cmp.Groups {
		for _, d := range g.Doubtful {
			cmp.Notes = append(cmp.Notes, fmt.Sprintf("%s/%s is doubtful (%s); it is still in the sample", g.Name, d.Run, d.Problem))
		}
	}
	return cmp
}

// configDifferences lists the settings (beyond IgnoredKeys) whose value
// is not the same in every group, taking each group's first run (the runs
// of a group share their settings, or Load refused them).
func configDifferences(groups []Group) []Difference {
	var cfgs []map[string]any
	for _, g := range groups {
		cfgs = append(cfgs, g.Runs[0].Config)
	}
	var out []Difference
	for _, k := range unionKeys(cfgs...) {
		d := Difference{Key: k}
		for _, c := range cfgs {
			d.Values = append(d.Values, showValue(c, k))
		}
		if !allSame(d.Values) {
			out = append(out, d)
		}
	}
	return out
}

// envDifferences lists the environment fields not the same across all
// runs; a group whose runs differ among themselves shows all its values.
func envDifferences(groups []Group) []Difference {
	fields := []struct {
		key string
		get func(e results.Env) string
	}{
		{"go_version", func(e results.Env) string { return e.GoVersion }},
		{"gomaxprocs", func(e results.Env) string { return strconv.Itoa(e.GOMAXPROCS) }},
		{"num_cpu", func(e results.Env) string { return strconv.Itoa(e.NumCPU) }},
		{"cpu_model", func(e results.Env) string { return e.CPUModel }},
		{"os", func(e results.Env) string { return e.OS }},
		{"arch", func(e results.Env) string { return e.Arch }},
		{"commit", func(e results.Env) string { return e.Commit }},
		{"hostname", func(e results.Env) string { return e.Hostname }},
		{"gc_percent", func(e results.Env) string { return cmp.Or(e.GOGC(), "unknown") }},
	}
	var out []Difference
	for _, f := range fields {
		d := Difference{Key: f.key}
		var all []string
		for _, g := range groups {
			var vals []string
			for i := range g.Runs {
				v := f.get(g.Runs[i].Summary.Env)
				all = append(all, v)
				if !contains(vals, v) {
					vals = append(vals, v)
				}
			}
			d.Values = append(d.Values, strings.Join(vals, ", "))
		}
		if !allSame(all) {
			out = append(out, d)
		}
	}
	return out
}

func allSame(vs []string) bool {
	for _, v := range vs {
		if v != vs[0] {
			return false
		}
	}
	return true
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// header is the table's header row.
func (c *Comparison) header() []string {
	h := []string{"metric"}
	for i, g := range c.Groups {
		name := fmt.Sprintf("%s (n=%d)", g.Name, g.N)
		if len(g.Doubtful) > 0 {
			name += " †"
		}
		h = append(h, name)
		if i > 0 {
			h = append(h, "vs "+c.Groups[0].Name)
		}
	}
	return h
}

func (c *Comparison) rows() [][]string {
	var out [][]string
	for _, m := range c.Metrics {
		r := []string{Metric{Name: m.Name, Unit: m.Unit}.label()}
		for i, cell := range m.cells {
			r = append(r, cell.String())
			if i > 0 {
				d := m.Deltas[i]
				mark := ""
				if d.Significant {
					mark = " worse"
					if d.Better {
						mark = " better"
					}
				}
				r = append(r, d.Text+mark)
			}
		}
		out = append(out, r)
	}
	return out
}

// footer is what follows the table: differences, doubtful runs, notes.
func (c *Comparison) footer(bullet string) string {
	var b strings.Builder
	diffs := func(title string, ds []Difference) {
		if len(ds) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		for _, d := range ds {
			var parts []string
			for i, v := range d.Values {
				parts = append(parts, c.Groups[i].Name+"="+v)
			}
			fmt.Fprintf(&b, "%s%s: %s\n", bullet, d.Key, strings.Join(parts, "  "))
		}
	}
	if len(c.ConfigDifferences) == 0 {
		b.WriteString("\nConfiguration: the same in every group.\n")
	}
	diffs("Configuration differences", c.ConfigDifferences)
	diffs("Environment differences", c.EnvDifferences)
	if len(c.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "%s%s\n", bullet, n)
		}
	}
	b.WriteString("\nCells: median ± 95% confidence interval; changes: Mann-Whitney U test, ~ means no significant difference at alpha 0.05; † marks a group with doubtful runs.\n")
	return b.String()
}

// Text renders the comparison as an aligned table for a terminal.
func (c *Comparison) Text() string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(c.header(), "\t"))
	for _, r := range c.rows() {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
	b.WriteString(c.footer("  "))
	return b.String()
}

// Markdown renders the comparison as a markdown table.
func (c *Comparison) Markdown() string {
	var b bytes.Buffer
	h := c.header()
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat("---|", len(h)))
	for _, r := range c.rows() {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	b.WriteString(c.footer("- "))
	return b.String()
}

// CSV renders one line per metric and group: the cell, and its change
// from the base.
func (c *Comparison) CSV() string {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"metric", "unit", "group", "n", "median", "ci_low", "ci_high", "min", "max", "delta_pct", "p_value", "significant", "better", "doubtful_runs"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return f(*v)
	}
	for _, m := range c.Metrics {
		for i, cell := range m.Cells {
			row := []string{m.Key, m.Unit, c.Groups[i].Name, strconv.Itoa(cell.N), f(cell.Median), opt(cell.CILow), opt(cell.CIHigh), f(cell.Min), f(cell.Max)}
			if d := m.Deltas[i]; d != nil {
				p := ""
				if d.Tested {
					p = f(d.P)
				}
				row = append(row, opt(d.Pct), p, strconv.FormatBool(d.Significant), strconv.FormatBool(d.Better))
			} else {
				row = append(row, "", "", "", "")
			}
			row = append(row, strconv.Itoa(len(c.Groups[i].Doubtful)))
			_ = w.Write(row)
		}
	}
	w.Flush()
	return b.String()
}

// JSON renders the comparison as indented JSON.
func (c *Comparison) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode comparison: %w", err)
	}
	return append(b, '\n'), nil
}

// Formats are compare's output formats.
var Formats = []string{"text", "markdown", "csv", "json"}

// Render renders c in format (one of Formats).
func (c *Comparison) Render(format string) (string, error) {
	switch format {
	case "text":
		return c.Text(), nil
	case "markdown", "md":
		return c.Markdown(), nil
	case "csv":
		return c.CSV(), nil
	case "json":
		b, err := c.JSON()
		return string(b), err
	}
	return "", fmt.Errorf("unknown format %q, want one of %s", format, strings.Join(Formats, ", "))
}

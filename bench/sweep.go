package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/raftbench/raftbench/bench/report"
	"github.com/raftbench/raftbench/bench/results"
)

// Axis is one swept knob and its values.
type Axis struct {
	Knob   string
	Values []string
}

// ParseAxis parses a --set argument, "batch-entries=1,16,64".
func ParseAxis(s string) (Axis, error) {
	name, vals, ok := strings.Cut(s, "=")
	if !ok || vals == "" {
		return Axis{}, fmt.Errorf("%w: --set %q: want KNOB=V1,V2,... such as batch-entries=1,16,64", ErrBadConfig, s)
	}
	k, found := KnobByName(name)
	if !found || !k.Sweepable {
		return Axis{}, fmt.Errorf("%w: --set %q: %q is not a knob that can be swept", ErrBadConfig, s, name)
	}
	return Axis{Knob: name, Values: strings.Split(vals, ",")}, nil
}

// Point is one combination of a sweep and its outcome.
type Point struct {
	Settings []Assignment
	Config   Config
	Dir      string
	Summary  *results.Summary
}

// Name is the point's directory name, like "batch-entries=16,payload=128".
func (p *Point) Name() string {
	var parts []string
	for _, a := range p.Settings {
		parts = append(parts, a.Name+"="+a.Value)
	}
	return sanitize(strings.Join(parts, ","))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// SweepSpec is a sweep: base settings (config file and flags) and axes.
type SweepSpec struct {
	ConfigPath string
	Flags      []Assignment
	Axes       []Axis
	// Out is the sweep directory ("" = results/runs/<time>-<Name>).
	Out string
	// Name names the sweep in its default directory ("sweep", "tune-batch").
	Name string
}

// Points expands the axes into every combination and validates each; any
// bad value is an ErrBadConfig before anything runs.
func (sp *SweepSpec) Points() ([]*Point, error) {
	combos := [][]Assignment{nil}
	for _, ax := range sp.Axes {
		var next [][]Assignment
		for _, c := range combos {
			for _, v := range ax.Values {
				next = append(next, append(append([]Assignment(nil), c...), Assignment{ax.Knob, v}))
			}
		}
		combos = next
	}
	var pts []*Point
	for _, c := range combos {
		cfg, err := Merge(sp.ConfigPath, append(append([]Assignment(nil), sp.Flags...), c...))
		if err != nil {
			return nil, err
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("sweep point %v: %w", c, err)
		}
		pts = append(pts, &Point{Settings: c, Config: cfg})
	}
	return pts, nil
}

// Sweep runs every point into its own result directory under one sweep
// directory, then writes the table (sweep.md, sweep.csv) and plots.
func Sweep(ctx context.Context, sp SweepSpec, opt Options) (string, []*Point, error) {
	pts, err := sp.Points()
	if err != nil {
		return "", nil, err
	}
	out := sp.Out
	if out == "" {
		name := sp.Name
		if name == "" {
			name = "sweep"
		}
		var ks []string
		for _, a := range sp.Axes {
			ks = append(ks, a.Knob)
		}
		out = filepath.Join("results", "runs", time.Now().UTC().Format("20060102T150405Z")+"-"+name+"-"+strings.Join(ks, "-"))
	}
	partial, err := prepareOut(out)
	if err != nil {
		return "", nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(partial)
		}
	}()
	for i, p := range pts {
		p.Config.Out = filepath.Join(partial, p.Name())
		o := opt
		o.Label = fmt.Sprintf("[%d/%d %s]", i+1, len(pts), p.Name())
		oc, err := Run(ctx, p.Config, o)
		if err != nil {
			return "", nil, fmt.Errorf("sweep point %s: %w", p.Name(), err)
		}
		p.Summary = median(oc.Summaries)
		p.Dir = filepath.Join(out, p.Name())
	}
	if err := writeSweep(partial, sp.Axes, pts); err != nil {
		return "", nil, err
	}
	if err := os.Rename(partial, out); err != nil {
		return "", nil, fmt.Errorf("move sweep directory into place: %w", err)
	}
	ok = true
	return out, pts, nil
}

// median picks the repetition with the median throughput.
func median(ss []*results.Summary) *results.Summary {
	best := ss[0]
	if len(ss) > 2 {
		cp := append([]*results.Summary(nil), ss...)
		for i := 1; i < len(cp); i++ {
			for j := i; j > 0 && cp[j].ThroughputOpsPerSec < cp[j-1].ThroughputOpsPerSec; j-- {
				cp[j], cp[j-1] = cp[j-1], cp[j]
			}
		}
		best = cp[len(cp)/2]
	}
	return best
}

// Sweep output files.
const (
	SweepMD  = "sweep.md"
	SweepCSV = "sweep.csv"
)

// SweepTable renders the points as markdown.
func SweepTable(axes []Axis, pts []*Point) string {
	var b bytes.Buffer
	b.WriteString("|")
	for _, a := range axes {
		fmt.Fprintf(&b, " %s |", a.Knob)
	}
	b.WriteString(" ops/s | MB/s | p50 | p99 | p99.9 | errors | verdicts | run |\n|")
	for range axes {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|---|---|---|---|\n")
	for _, p := range pts {
		s := p.Summary
		b.WriteString("|")
		for _, a := range p.Settings {
			fmt.Fprintf(&b, " %s |", a.Value)
		}
		fmt.Fprintf(&b, " %.0f | %.2f | %s | %s | %s | %s | %s | [%s](%s/%s) |\n", s.ThroughputOpsPerSec, s.ThroughputMBPerSec,
			report.US(s.LatencyUS.P50), report.US(s.LatencyUS.P99), report.US(s.LatencyUS.P999), report.ErrorsString(s.Errors),
			report.Verdicts(s), p.Name(), p.Name(), results.ReportFile)
	}
	return b.String()
}

func writeSweep(dir string, axes []Axis, pts []*Point) error {
	md := "# raftbench sweep\n\n" + SweepTable(axes, pts) + "\n## Plots\n\n"
	var cb bytes.Buffer
	w := csv.NewWriter(&cb)
	hdr := []string{}
	for _, a := range axes {
		hdr = append(hdr, a.Knob)
	}
	_ = w.Write(append(hdr, "throughput_ops_per_sec", "throughput_mb_per_sec", "p50_us", "p99_us", "p999_us", "max_us", "errors", "replicas_agree", "acked_ops_found", "dir"))
	for _, p := range pts {
		var row []string
		for _, a := range p.Settings {
			row = append(row, a.Value)
		}
		s := p.Summary
		var errs int64
		for _, v := range s.Errors {
			errs += v
		}
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		_ = w.Write(append(row, f(s.ThroughputOpsPerSec), f(s.ThroughputMBPerSec), f(s.LatencyUS.P50), f(s.LatencyUS.P99),
			f(s.LatencyUS.P999), f(s.LatencyUS.Max), strconv.FormatInt(errs, 10), strconv.FormatBool(s.ReplicasAgree),
			strconv.FormatBool(s.AckedOpsFound), p.Name()))
	}
	w.Flush()
	if err := os.WriteFile(filepath.Join(dir, SweepCSV), cb.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", SweepCSV, err)
	}
	pdir := filepath.Join(dir, results.PlotsDir)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return fmt.Errorf("plots directory: %w", err)
	}
	for i, a := range axes {
		file := "throughput_vs_" + sanitize(a.Knob) + ".png"
		if err := report.Save(report.Plot{Title: "Throughput by " + a.Knob, XLabel: a.Knob, YLabel: "ops/s", LogX: geometric(a.Values),
			Series: seriesBy(axes, pts, i, func(s *results.Summary) float64 { return s.ThroughputOpsPerSec }), Points: len(pts) < 3},
			filepath.Join(pdir, file)); err != nil {
			return err
		}
		md += fmt.Sprintf("![throughput by %s](%s/%s)\n\n", a.Knob, results.PlotsDir, file)
	}
	var xs, ys []float64
	var labels []string
	for _, p := range pts {
		xs = append(xs, p.Summary.ThroughputOpsPerSec)
		ys = append(ys, p.Summary.LatencyUS.P99/1000)
		labels = append(labels, p.Name())
	}
	if err := report.Save(report.Plot{Title: "p99 against throughput", XLabel: "ops/s", YLabel: "p99 (ms)", Points: true,
		Series: []report.Series{{Name: "runs", X: xs, Y: ys, Labels: labels}}}, filepath.Join(pdir, "p99_vs_throughput.png")); err != nil {
		return err
	}
	md += fmt.Sprintf("![p99 against throughput](%s/p99_vs_throughput.png)\n", results.PlotsDir)
	if err := os.WriteFile(filepath.Join(dir, SweepMD), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", SweepMD, err)
	}
	return nil
}

// seriesBy makes one series per combination of the other axes, with axis
// i's value on X (numeric when every value parses as a number or a size,
// else the value's position) and get on Y.
func seriesBy(axes []Axis, pts []*Point, i int, get func(*results.Summary) float64) []report.Series {
	numeric := true
	for _, v := range axes[i].Values {
		if _, err := axisNumber(v); err != nil {
			numeric = false
		}
	}
	var order []string
	byName := map[string]*report.Series{}
	for _, p := range pts {
		var others []string
		for j, a := range p.Settings {
			if j != i {
				others = append(others, a.Name+"="+a.Value)
			}
		}
		name := strings.Join(others, " ")
		if name == "" {
			name = axes[i].Knob
		}
		s := byName[name]
		if s == nil {
			s = &report.Series{Name: name}
			byName[name] = s
			order = append(order, name)
		}
		x := 0.0
		if numeric {
			x, _ = axisNumber(p.Settings[i].Value)
		} else {
			for k, v := range axes[i].Values {
				if v == p.Settings[i].Value {
					x = float64(k)
				}
			}
		}
		s.X = append(s.X, x)
		s.Y = append(s.Y, get(p.Summary))
	}
	var out []report.Series
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out
}

func axisNumber(v string) (float64, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f, nil
	}
	if n, err := parseSize(v); err == nil {
		return float64(n), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	return float64(d) / float64(time.Millisecond), nil
}

// geometric reports whether an axis's values are all positive numbers
// spanning a factor of 16 or more (batch sizes 1, 16, 256, say), which a
// log scale shows better than a linear one.
func geometric(values []string) bool {
	lo, hi := math.Inf(1), 0.0
	for _, v := range values {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			d, derr := time.ParseDuration(v)
			if derr != nil {
				return false
			}
			x = d.Seconds()
		}
		if x <= 0 {
			return false
		}
		lo, hi = min(lo, x), max(hi, x)
	}
	return len(values) > 1 && hi/lo >= 16
}

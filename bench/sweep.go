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
	"github.com/raftbench/raftbench/bench/stats"
)

// Axis is one swept knob and its values.
type Axis struct {
	Knob   string
	Values []string
}

// ParseAxis parses a --set argument, "batch-entries=1,16,64". A value
// given twice (also as another spelling of the same setting, 4KiB and
// 4096) is an error: the sweep would run the same point twice and plot it
// as two.
func ParseAxis(s string) (Axis, error) {
	name, vals, ok := strings.Cut(s, "=")
	if !ok || vals == "" {
		return Axis{}, fmt.Errorf("%w: --set %q: want KNOB=V1,V2,... such as batch-entries=1,16,64", ErrBadConfig, s)
	}
	k, found := KnobByName(name)
	if !found || !k.Sweepable {
		return Axis{}, fmt.Errorf("%w: --set %q: %q is not a knob that can be swept", ErrBadConfig, s, name)
	}
	ax := Axis{Knob: name, Values: strings.Split(vals, ",")}
	if err := ax.check(); err != nil {
		return Axis{}, err
	}
	return ax, nil
}

// check rejects an axis that names a value twice, in any spelling.
func (ax Axis) check() error {
	k, found := KnobByName(ax.Knob)
	if !found || !k.Sweepable {
		return fmt.Errorf("%w: --set %s: not a knob that can be swept", ErrBadConfig, ax.Knob)
	}
	seen := map[string]string{}
	for _, v := range ax.Values {
		var c Config
		canon := v
		if k.set(&c, v) == nil {
			canon = k.get(&c)
		}
		if first, dup := seen[canon]; dup {
			if first == v {
				return fmt.Errorf("%w: --set %s: the value %q is given twice", ErrBadConfig, ax.Knob, v)
			}
			return fmt.Errorf("%w: --set %s: %q and %q are the same value", ErrBadConfig, ax.Knob, first, v)
		}
		seen[canon] = v
	}
	return nil
}

// Point is one combination of a sweep and its outcome.
type Point struct {
	Settings []Assignment
	Config   Config
	Dir      string
	// Summaries are the point's repetitions (--count); Combined
	// summarises them (medians).
	Summaries []*results.Summary
	Combined  *stats.Combined
}

// Median is the median over the point's repetitions of the figure with
// the key (see stats.Metrics).
func (p *Point) Median(key string) float64 { return p.Combined.Metric(key).Median }

// VerdictsHold reports whether every repetition's verdicts held.
func (p *Point) VerdictsHold() bool { return p.Combined.VerdictsHold }

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
	for i, ax := range sp.Axes {
		if err := ax.check(); err != nil {
			return nil, err
		}
		for _, other := range sp.Axes[:i] {
			if other.Knob == ax.Knob {
				return nil, fmt.Errorf("%w: --set %s is given twice; list all its values in one --set", ErrBadConfig, ax.Knob)
			}
		}
		for _, a := range sp.Flags {
			if a.Name == ax.Knob {
				return nil, fmt.Errorf("%w: --%s is both swept (--set) and fixed (--%s %s)", ErrBadConfig, ax.Knob, ax.Knob, a.Value)
			}
		}
	}
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

// SweepResult is what Sweep did.
type SweepResult struct {
	Dir    string
	Points []*Point
	// Interrupted is set when the sweep was interrupted: the point under
	// way was written marked interrupted, later points did not run, and
	// Points holds only the points that ran.
	Interrupted bool
}

// Sweep runs every point into its own result directory under one sweep
// directory, then writes the table (sweep.md, sweep.csv) and plots. Every
// point is validated before anything runs.
func Sweep(ctx context.Context, sp SweepSpec, opt Options) (*SweepResult, error) {
	pts, err := sp.Points()
	if err != nil {
		return nil, err
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
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(partial)
		}
	}()
	res := &SweepResult{Dir: out}
	for i, p := range pts {
		p.Config.Out = filepath.Join(partial, p.Name())
		o := opt
		o.Label = fmt.Sprintf("[%d/%d %s]", i+1, len(pts), p.Name())
		oc, err := Run(ctx, p.Config, o)
		if err != nil {
			return nil, fmt.Errorf("sweep point %s: %w", p.Name(), err)
		}
		p.Summaries = oc.Summaries
		names := make([]string, len(oc.RunDirs))
		sums := make([]results.Summary, len(oc.Summaries))
		for j := range oc.Summaries {
			names[j], sums[j] = filepath.Base(oc.RunDirs[j]), *oc.Summaries[j]
		}
		p.Combined = stats.Combine(names, sums)
		p.Dir = filepath.Join(out, p.Name())
		res.Points = append(res.Points, p)
		if oc.Interrupted {
			res.Interrupted = true
			break
		}
	}
	if err := writeSweep(partial, sp.Axes, res); err != nil {
		return nil, err
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, fmt.Errorf("move sweep directory into place: %w", err)
	}
	ok = true
	return res, nil
}

// Sweep output files.
const (
	SweepMD  = "sweep.md"
	SweepCSV = "sweep.csv"
)

// SweepTable renders the points as markdown: each figure the median of
// the point's repetitions.
func SweepTable(axes []Axis, pts []*Point) string {
	var b bytes.Buffer
	b.WriteString("|")
	for _, a := range axes {
		fmt.Fprintf(&b, " %s |", a.Knob)
	}
	b.WriteString(" n | ops/s | MB/s | p50 | p99 | p99.9 | max | errors | incomplete | verdicts | run |\n|")
	for range axes {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pts {
		b.WriteString("|")
		for _, a := range p.Settings {
			fmt.Fprintf(&b, " %s |", a.Value)
		}
		errs := fmt.Sprintf("%.0f", p.Median("errors"))
		verdicts := "all hold"
		if len(p.Summaries) == 1 {
			errs = report.ErrorsString(p.Summaries[0].Errors)
			verdicts = report.Verdicts(p.Summaries[0])
		} else if !p.VerdictsHold() {
			verdicts = "FAILED in some runs"
		}
		if p.Summaries[len(p.Summaries)-1].Interrupted {
			verdicts += " (interrupted)"
		}
		link := p.Name()
		if len(p.Summaries) == 1 {
			link += "/" + results.ReportFile
		} else {
			link += "/" + CombinedMD
		}
		fmt.Fprintf(&b, " %d | %.0f | %.2f | %s | %s | %s | %s | %s | %.0f | %s | [%s](%s) |\n", len(p.Summaries), p.Median("throughput_ops_per_sec"), p.Median("throughput_mb_per_sec"),
			report.US(p.Median("p50_us")), report.US(p.Median("p99_us")), report.US(p.Median("p999_us")), report.US(p.Median("max_us")), errs,
			p.Median("incomplete_ops"), verdicts, p.Name(), link)
	}
	return b.String()
}

// FixedSettings renders, as a markdown table, every setting the sweep did
// not vary, as the points ran with it.
func FixedSettings(axes []Axis, cfg *Config) string {
	var b bytes.Buffer
	b.WriteString("| setting | value |\n|---|---|\n")
	for i := range Knobs {
		k := &Knobs[i]
		swept := k.Name == "out"
		for _, a := range axes {
			swept = swept || a.Knob == k.Name
		}
		if swept {
			continue
		}
		v := k.Show(cfg)
		if v == "" {
			v = "–"
		}
		fmt.Fprintf(&b, "| %s | %s |\n", k.Name, v)
	}
	return b.String()
}

// EnvironmentLine describes the machine and binary in one line.
func EnvironmentLine(e results.Env) string {
	gogc := ""
	if g := e.GOGC(); g != "" {
		gogc = ", GOGC " + g
	}
	return fmt.Sprintf("%s, GOMAXPROCS %d (%d CPUs)%s, %s, %s/%s, commit `%s`, host %s", e.GoVersion, e.GOMAXPROCS, e.NumCPU, gogc, e.CPUModel, e.OS, e.Arch, e.Commit, e.Hostname)
}

func writeSweep(dir string, axes []Axis, res *SweepResult) error {
	pts := res.Points
	title := "# raftbench sweep\n\n"
	if res.Interrupted {
		title = "# raftbench sweep (interrupted)\n\nInterrupted: only the points below ran; the last one was cut short.\n\n"
	}
	md := title + SweepTable(axes, pts) + "\n## Plots\n\n"
	var cb bytes.Buffer
	w := csv.NewWriter(&cb)
	hdr := []string{}
	for _, a := range axes {
		hdr = append(hdr, a.Knob)
	}
	_ = w.Write(append(hdr, "n", "throughput_ops_per_sec", "throughput_mb_per_sec", "p50_us", "p99_us", "p999_us", "max_us", "errors", "incomplete_ops", "verdicts_hold", "interrupted", "dir"))
	for _, p := range pts {
		var row []string
		for _, a := range p.Settings {
			row = append(row, a.Value)
		}
		f := func(key string) string { return strconv.FormatFloat(p.Median(key), 'f', -1, 64) }
		_ = w.Write(append(row, strconv.Itoa(len(p.Summaries)), f("throughput_ops_per_sec"), f("throughput_mb_per_sec"), f("p50_us"), f("p99_us"),
			f("p999_us"), f("max_us"), f("errors"), f("incomplete_ops"), strconv.FormatBool(p.VerdictsHold()),
			strconv.FormatBool(p.Summaries[len(p.Summaries)-1].Interrupted), p.Name()))
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
			Series: seriesBy(axes, pts, i, func(p *Point) float64 { return p.Median("throughput_ops_per_sec") }), Points: len(pts) < 3},
			filepath.Join(pdir, file)); err != nil {
			return err
		}
		md += fmt.Sprintf("![throughput by %s](%s/%s)\n\n", a.Knob, results.PlotsDir, file)
	}
	var xs, ys []float64
	var labels []string
	for _, p := range pts {
		xs = append(xs, p.Median("throughput_ops_per_sec"))
		ys = append(ys, p.Median("p99_us")/1000)
		labels = append(labels, p.Name())
	}
	if err := report.Save(report.Plot{Title: "p99 against throughput", XLabel: "ops/s", YLabel: "p99 (ms)", Points: true,
		Series: []report.Series{{Name: "runs", X: xs, Y: ys, Labels: labels}}}, filepath.Join(pdir, "p99_vs_throughput.png")); err != nil {
		return err
	}
	md += fmt.Sprintf("![p99 against throughput](%s/p99_vs_throughput.png)\n", results.PlotsDir)
	if len(pts) > 0 {
		md += "\n## Fixed settings\n\nEvery point ran with these (the swept knobs aside):\n\n" + FixedSettings(axes, &pts[0].Config)
	}
	md += "\n## Environment\n\n" + EnvironmentLine(results.CurrentEnv()) + ".\n"
	if err := os.WriteFile(filepath.Join(dir, SweepMD), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", SweepMD, err)
	}
	return nil
}

// seriesBy makes one series per combination of the other axes, with axis
// i's value on X (numeric when every value parses as a number or a size,
// else the value's position) and get on Y.
func seriesBy(axes []Axis, pts []*Point, i int, get func(*Point) float64) []report.Series {
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
		s.Y = append(s.Y, get(p))
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

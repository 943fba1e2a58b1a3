package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftbench/raftbench/bench/report"
	"github.com/raftbench/raftbench/bench/results"
)

// BatchTuning is what `tune batch` found.
type BatchTuning struct {
	Dir    string
	Axes   []Axis
	Points []*Point
	// Best is the point with the highest median throughput whose median
	// p99 meets the SLO and whose verdicts held in every repetition; nil
	// when none does.
	Best *Point
	SLO  time.Duration
	// Edges names the axes on which Best sits at an end of the range
	// tried ("batch-entries 1024, the largest tried"): the optimum may lie
	// beyond it.
	Edges []string
	// Interrupted is set when the sweep was interrupted.
	Interrupted bool
}

// DefaultTuneCount is how many times tune batch runs each point unless
// --count says otherwise: a recommendation is not one noisy sample.
const DefaultTuneCount = 3

// TuneBatch sweeps batch-entries × max-inflight and recommends the setting
// with the highest median throughput whose median p99 meets slo. It writes
// tune.md and the curve next to the sweep's files.
func TuneBatch(ctx context.Context, sp SweepSpec, batches, inflights []string, slo time.Duration, opt Options) (*BatchTuning, error) {
	sp.Axes = []Axis{{Knob: "batch-entries", Values: batches}, {Knob: "max-inflight", Values: inflights}}
	sp.Name = "tune-batch"
	res, err := Sweep(ctx, sp, opt)
	if err != nil {
		return nil, err
	}
	t := &BatchTuning{Dir: res.Dir, Axes: sp.Axes, Points: res.Points, SLO: slo, Interrupted: res.Interrupted}
	for _, p := range res.Points {
		if p.Median("p99_us") <= float64(slo.Microseconds()) && p.VerdictsHold() &&
			(t.Best == nil || p.Median("throughput_ops_per_sec") > t.Best.Median("throughput_ops_per_sec")) {
			t.Best = p
		}
	}
	if t.Best != nil {
		t.Edges = edges(sp.Axes, t.Best)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# raftbench tune batch\n\n%s\n\n", t.Recommendation())
	if res.Interrupted {
		b.WriteString("Interrupted: only the points below ran.\n\n")
	}
	b.WriteString(SweepTable(sp.Axes, res.Points))
	fmt.Fprintf(&b, "\n![throughput by batch size](%s/throughput_vs_batch-entries.png)\n\n![p99 against throughput](%s/p99_vs_throughput.png)\n", results.PlotsDir, results.PlotsDir)
	if err := os.WriteFile(filepath.Join(res.Dir, "tune.md"), b.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write tune.md: %w", err)
	}
	return t, nil
}

// edges names the axes (of more than one value) on which p's value is the
// smallest or largest tried.
func edges(axes []Axis, p *Point) []string {
	var out []string
	for i, ax := range axes {
		if len(ax.Values) < 2 {
			continue
		}
		v, err := axisNumber(p.Settings[i].Value)
		if err != nil {
			continue
		}
		lo, hi := true, true
		for _, o := range ax.Values {
			x, err := axisNumber(o)
			if err != nil {
				lo, hi = false, false
				break
			}
			lo, hi = lo && v <= x, hi && v >= x
		}
		switch {
		case lo:
			out = append(out, fmt.Sprintf("--%s %s is the smallest value tried", ax.Knob, p.Settings[i].Value))
		case hi:
			out = append(out, fmt.Sprintf("--%s %s is the largest value tried", ax.Knob, p.Settings[i].Value))
		}
	}
	return out
}

// Recommendation says what to use, and whether the range tried was wide
// enough to trust it.
func (t *BatchTuning) Recommendation() string {
	if t.Best == nil {
		return fmt.Sprintf("No setting met the p99 SLO of %v with its verdicts holding; the lowest median p99 was %s. Relax the SLO or lower the load (--clients, --rate).", t.SLO, report.US(t.lowestP99()))
	}
	p := t.Best
	rec := fmt.Sprintf("Recommended: --batch-entries %s --max-inflight %s: %.0f ops/s with p99 %s (medians of %d runs; SLO %v).",
		p.Settings[0].Value, p.Settings[1].Value, p.Median("throughput_ops_per_sec"), report.US(p.Median("p99_us")), len(p.Summaries), t.SLO)
	if len(t.Edges) > 0 {
		rec += " The winner sits at the edge of the range tried (" + strings.Join(t.Edges, "; ") + "): extend the range there (--batches, --inflights) to see whether the optimum lies beyond it."
	}
	if len(p.Summaries) < 2 {
		rec += " Each point ran once: with --count 3 or more the recommendation is less at the mercy of one noisy run."
	}
	return rec
}

func (t *BatchTuning) lowestP99() float64 {
	lo := -1.0
	for _, p := range t.Points {
		if v := p.Median("p99_us"); lo < 0 || v < lo {
			lo = v
		}
	}
	return lo
}

// ElectionPoint is one election timeout's measurements.
type ElectionPoint struct {
	Timeout time.Duration
	// Failovers are from the run that kills the leader repeatedly.
	Failovers []results.Failover
	// Needless counts leader changes in the runs with only network jitter,
	// where no election was needed (summed over the --count repetitions;
	// Failovers likewise holds every repetition's).
	Needless      int
	KillDir       string
	QuietDir      string
	MeanToLeader  float64
	MeanToCommit  float64
	MissedLeaders int
}

// ElectionTuning is what `tune election` found.
type ElectionTuning struct {
	Dir    string
	Points []*ElectionPoint
	// Best is the smallest timeout with no needless elections and a new
	// leader after every kill; nil when none qualifies.
	Best   *ElectionPoint
	Jitter string
	// Interrupted is set when the tuning was interrupted: Points holds
	// the timeouts measured so far.
	Interrupted bool
}

// ElectionSpec configures `tune election`.
type ElectionSpec struct {
	ConfigPath string
	Flags      []Assignment
	Timeouts   []time.Duration
	// Kills is how many times the leader is killed per timeout.
	Kills int
	// Jitter is the delay rule of the quiet run, like "1ms~20ms".
	Jitter string
	// Quiet is the quiet run's length.
	Quiet time.Duration
	Out   string
}

// electionRun derives the run settings for timeout t: heartbeat t/10, tick
// no longer than the heartbeat.
func electionRun(t time.Duration) []Assignment {
	hb := max(t/10, time.Millisecond)
	tick := min(10*time.Millisecond, hb)
	return []Assignment{{"election-timeout", t.String()}, {"heartbeat", hb.String()}, {"tick", tick.String()}}
}

// TuneElection measures, for each timeout, the failover after repeated
// leader kills and the needless elections under network jitter alone, and
// recommends the smallest timeout with none.
func TuneElection(ctx context.Context, es ElectionSpec, opt Options) (*ElectionTuning, error) {
	if len(es.Timeouts) == 0 || es.Kills < 1 || es.Quiet <= 0 {
		return nil, fmt.Errorf("%w: tune election needs --timeouts, --kills >= 1 and a positive --quiet", ErrBadConfig)
	}
	// The recommendation is the smallest timeout that qualifies, so they
	// run from the smallest up.
	es.Timeouts = slices.Clone(es.Timeouts)
	slices.Sort(es.Timeouts)
	for i := 1; i < len(es.Timeouts); i++ {
		if es.Timeouts[i] == es.Timeouts[i-1] {
			return nil, fmt.Errorf("%w: --timeouts: %v is given twice", ErrBadConfig, es.Timeouts[i])
		}
	}
	type plan struct {
		t           time.Duration
		kill, quiet Config
	}
	var plans []plan
	for _, t := range es.Timeouts {
		gap := max(2*time.Second, 5*t)
		kills := append([]Assignment(nil), es.Flags...)
		kills = append(kills, electionRun(t)...)
		kills = append(kills, Assignment{"duration", (time.Duration(es.Kills)*gap + time.Second).String()})
		for i := range es.Kills {
			at := time.Second + time.Duration(i)*gap
			kills = append(kills, Assignment{"fault", fmt.Sprintf("kill-leader@%v+%v", at, gap/2)})
		}
		kc, err := Merge(es.ConfigPath, kills)
		if err != nil {
			return nil, err
		}
		if err := kc.Validate(); err != nil {
			return nil, fmt.Errorf("timeout %v: %w", t, err)
		}
		quiet := append([]Assignment(nil), es.Flags...)
		quiet = append(quiet, electionRun(t)...)
		quiet = append(quiet, Assignment{"duration", es.Quiet.String()}, Assignment{"fault", "delay=" + es.Jitter})
		qc, err := Merge(es.ConfigPath, quiet)
		if err != nil {
			return nil, err
		}
		if err := qc.Validate(); err != nil {
			return nil, fmt.Errorf("timeout %v: %w", t, err)
		}
		plans = append(plans, plan{t, kc, qc})
	}
	out := es.Out
	if out == "" {
		out = filepath.Join("results", "runs", time.Now().UTC().Format("20060102T150405Z")+"-tune-election")
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
	et := &ElectionTuning{Dir: out, Jitter: es.Jitter}
	for _, p := range plans {
		ep := &ElectionPoint{Timeout: p.t}
		name := "timeout=" + p.t.String()
		p.kill.Out = filepath.Join(partial, name+"-kills")
		o := opt
		o.Label = "[" + name + " kills]"
		oc, err := Run(ctx, p.kill, o)
		if err != nil {
			return nil, fmt.Errorf("%s kills: %w", name, err)
		}
		ep.KillDir = filepath.Join(out, name+"-kills")
		for _, sm := range oc.Summaries {
			ep.Failovers = append(ep.Failovers, sm.Failovers...)
		}
		var nl, nc int
		for _, f := range ep.Failovers {
			if f.ToLeaderMS < 0 {
				ep.MissedLeaders++
				continue
			}
			ep.MeanToLeader += f.ToLeaderMS
			nl++
			if f.ToCommitMS >= 0 {
				ep.MeanToCommit += f.ToCommitMS
				nc++
			}
		}
		ep.MeanToLeader /= float64(max(nl, 1))
		ep.MeanToCommit /= float64(max(nc, 1))
		if oc.Interrupted {
			et.Interrupted = true
			et.Points = append(et.Points, ep)
			break
		}
		p.quiet.Out = filepath.Join(partial, name+"-jitter")
		o.Label = "[" + name + " jitter]"
		if oc, err = Run(ctx, p.quiet, o); err != nil {
			return nil, fmt.Errorf("%s jitter: %w", name, err)
		}
		ep.QuietDir = filepath.Join(out, name+"-jitter")
		for _, sm := range oc.Summaries {
			ep.Needless += sm.LeaderChanges
		}
		et.Points = append(et.Points, ep)
		if oc.Interrupted {
			et.Interrupted = true
			break
		}
		if et.Best == nil && ep.Needless == 0 && ep.MissedLeaders == 0 {
			et.Best = ep
		}
	}
	if err := writeElection(partial, et); err != nil {
		return nil, err
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, fmt.Errorf("move tuning directory into place: %w", err)
	}
	ok = true
	return et, nil
}

// Recommendation says what to use, in one sentence.
func (et *ElectionTuning) Recommendation() string {
	if et.Best == nil {
		return fmt.Sprintf("No timeout tried was free of needless elections under delay=%s with a new leader after every kill: try longer ones.", et.Jitter)
	}
	return fmt.Sprintf("Recommended: --election-timeout %v (heartbeat %v): the smallest with no needless election under delay=%s; a killed leader was replaced in %.0f ms on average, with the first new commit after %.0f ms.",
		et.Best.Timeout, max(et.Best.Timeout/10, time.Millisecond), et.Jitter, et.Best.MeanToLeader, et.Best.MeanToCommit)
}

// ElectionTable renders the points as markdown.
func (et *ElectionTuning) ElectionTable() string {
	var b bytes.Buffer
	b.WriteString("| election timeout | kills | mean to new leader | mean to first commit | kills with no new leader | needless elections (jitter only) |\n|---|---|---|---|---|---|\n")
	for _, p := range et.Points {
		fmt.Fprintf(&b, "| %v | %d | %.0f ms | %.0f ms | %d | %d |\n", p.Timeout, len(p.Failovers), p.MeanToLeader, p.MeanToCommit, p.MissedLeaders, p.Needless)
	}
	return b.String()
}

func writeElection(dir string, et *ElectionTuning) error {
	var xs, lead, commit, needless []float64
	for _, p := range et.Points {
		x := float64(p.Timeout.Milliseconds())
		xs = append(xs, x)
		lead = append(lead, p.MeanToLeader)
		commit = append(commit, p.MeanToCommit)
		needless = append(needless, float64(p.Needless))
	}
	pdir := filepath.Join(dir, results.PlotsDir)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return fmt.Errorf("plots directory: %w", err)
	}
	if err := report.Save(report.Plot{Title: "Failover time by election timeout", XLabel: "election timeout (ms)", YLabel: "ms", Points: len(xs) < 2,
		Series: []report.Series{{Name: "to new leader", X: xs, Y: lead}, {Name: "to first commit", X: xs, Y: commit}}},
		filepath.Join(pdir, "failover_vs_timeout.png")); err != nil {
		return err
	}
	if err := report.Save(report.Plot{Title: "Needless elections under jitter by election timeout", XLabel: "election timeout (ms)", YLabel: "leader changes", Points: true,
		Series: []report.Series{{Name: "needless", X: xs, Y: needless}}}, filepath.Join(pdir, "needless_vs_timeout.png")); err != nil {
		return err
	}
	md := "# raftbench tune election\n\n" + et.Recommendation() + "\n\n" + et.ElectionTable() +
		"\n![failover time](plots/failover_vs_timeout.png)\n\n![needless elections](plots/needless_vs_timeout.png)\n"
	if err := os.WriteFile(filepath.Join(dir, "tune.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write tune.md: %w", err)
	}
	return nil
}

// ParseDurations parses "100ms,300ms,1s".
func ParseDurations(flag, s string) ([]time.Duration, error) {
	var ds []time.Duration
	for _, p := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: --%s: %q is not a positive duration", ErrBadConfig, flag, p)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// ParseList checks a comma-separated list of positive integers.
func ParseList(flag, s string) ([]string, error) {
	parts := strings.Split(s, ",")
	for _, p := range parts {
		if n, err := strconv.Atoi(p); err != nil || n < 1 {
			return nil, fmt.Errorf("%w: --%s: %q is not a positive integer", ErrBadConfig, flag, p)
		}
	}
	return parts, nil
}

// Package report renders a result directory for people: the PNG plots
// under plots/ and report.md, from the data files alone, so `raftbench
// report DIR` can rebuild them at any time.
package report

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/raftbench/raftbench/bench/results"
)

// Plot file names under plots/.
const (
	PercentilesPlot = "latency_percentiles.png"
	ThroughputPlot  = "throughput.png"
	P99Plot         = "p99.png"
	StagesPlot      = "stages.png"
)

// Write (re)writes run's plots and report.md.
func Write(run *results.Run) error {
	pdir := filepath.Join(run.Dir, results.PlotsDir)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return fmt.Errorf("plots directory: %w", err)
	}
	if err := writePlots(run, pdir); err != nil {
		return err
	}
	return WriteMarkdown(run)
}

// WriteMarkdown (re)writes run's report.md alone.
func WriteMarkdown(run *results.Run) error {
	md := Markdown(run)
	if err := os.WriteFile(filepath.Join(run.Dir, results.ReportFile), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", results.ReportFile, err)
	}
	return nil
}

func writePlots(run *results.Run, pdir string) error {
	var xs, ys []float64
	for _, b := range run.Total.CumulativeDistributionWithTicks(5) {
		q := b.Quantile / 100
		if q >= 1 {
			continue
		}
		xs = append(xs, math.Log10(1/(1-q)))
		ys = append(ys, float64(b.ValueAt)/1000)
	}
	if err := Save(Plot{Title: "Latency by percentile", XLabel: "percentile (log scale of 1/(1-p))", YLabel: "latency (ms, log scale)",
		Series: []Series{{Name: "latency", X: xs, Y: ys}}, XTicks: percentileTicks{}, LogY: true}, filepath.Join(pdir, PercentilesPlot)); err != nil {
		return err
	}
	var sec, ops, p99, mx []float64
	for _, r := range run.Timeline {
		sec = append(sec, float64(r.Second)+0.5)
		ops = append(ops, float64(r.Ops))
		p99 = append(p99, r.P99US/1000)
		mx = append(mx, r.MaxUS/1000)
	}
	var marks []Marker
	for _, f := range run.Summary.Faults {
		marks = append(marks, Marker{X: f.AtMS / 1000, Label: fmt.Sprintf("%.1f s %s", f.AtMS/1000, f.What)})
	}
	dashed := ""
	if len(marks) > 0 {
		dashed = " (dashed: faults)"
	}
	xmax := run.Summary.DurationSec
	if err := Save(Plot{Title: "Throughput by second of intended start" + dashed, XLabel: "second of the measured run", YLabel: "successful ops",
		Series: []Series{{Name: "ops", X: sec, Y: ops}}, Markers: marks, FromZero: true, XMax: xmax}, filepath.Join(pdir, ThroughputPlot)); err != nil {
		return err
	}
	series := []Series{{Name: "p99", X: sec, Y: p99}}
	if hasMax(run.Timeline) {
		series = append(series, Series{Name: "max", X: sec, Y: mx})
	}
	if err := Save(Plot{Title: "Latency by second of intended start" + dashed, XLabel: "second of the measured run", YLabel: "latency (ms, log scale)",
		Series: series, Markers: marks, FromZero: true, XMax: xmax, LogY: true}, filepath.Join(pdir, P99Plot)); err != nil {
		return err
	}
	if hasStages(&run.Summary) {
		return SaveStackedBars(stageBars(&run.Summary), filepath.Join(pdir, StagesPlot))
	}
	return nil
}

// hasStages reports whether the run timed its writes' stages.
func hasStages(s *results.Summary) bool {
	return len(s.StagesUS) > 0 && s.StagesTotalUS != nil && s.StagesTotalUS.Count > 0
}

// stagePercentiles are the rows of the stage chart and table: the exact
// mean, then percentiles.
var stagePercentiles = []struct {
	name string
	get  func(results.StageLatency) float64
}{
	{"mean", func(l results.StageLatency) float64 { return l.Mean }},
	{"p50", func(l results.StageLatency) float64 { return l.P50 }},
	{"p90", func(l results.StageLatency) float64 { return l.P90 }},
	{"p99", func(l results.StageLatency) float64 { return l.P99 }},
	{"p99.9", func(l results.StageLatency) float64 { return l.P999 }},
}

// stageBars is the "where the time goes" chart: for the mean and each
// percentile, the stages' values at it, as shares of their sum.
func stageBars(s *results.Summary) StackedBars {
	sb := StackedBars{Title: "Where a write's time goes on its leader, by stage", XLabel: "share of the stages' sum at that statistic (%)", PartNames: results.StageOrder}
	for _, p := range stagePercentiles {
		b := StackedBar{Label: fmt.Sprintf("%s (write %s)", p.name, US(p.get(*s.StagesTotalUS)))}
		for _, name := range results.StageOrder {
			b.Parts = append(b.Parts, p.get(s.StagesUS[name]))
		}
		sb.Bars = append(sb.Bars, b)
	}
	return sb
}

// StageMeans is a one-line account of where the writes' time went: each
// stage's exact mean, then their sum (a write's mean latency at its
// leader); "" when the run kept no stage timings.
func StageMeans(s *results.Summary) string {
	if !hasStages(s) {
		return ""
	}
	parts := make([]string, 0, len(results.StageOrder))
	for _, name := range results.StageOrder {
		parts = append(parts, name+" "+US(s.StagesUS[name].Mean))
	}
	return strings.Join(parts, " + ") + " = " + US(s.StagesTotalUS.Mean)
}

// stagesSection writes "Where the time goes": the stages' percentiles
// along the critical path, their chart, and the timings beside them.
func stagesSection(b *bytes.Buffer, s *results.Summary) {
	b.WriteString("\n## Where the time goes\n\n")
	if !hasStages(s) {
		b.WriteString("Not measured: the nodes kept no stage timings.\n")
		return
	}
	tot := *s.StagesTotalUS
	fmt.Fprintf(b, "The window's %d committed writes, on their leader, split along the critical path from the Propose call to its answer (results/README.md defines each stage). "+
		"Each write's stages add up to its latency as the leader measured it, so the means add up exactly; "+
		"a percentile of a sum is not the sum of the percentiles, so each statistic's bar in the chart shows the stages at that statistic as shares of their sum.\n\n", tot.Count)
	b.WriteString("| stage | p50 | p99 | p99.9 | max | mean | share of the mean |\n|---|---|---|---|---|---|---|\n")
	var sum float64
	for _, name := range results.StageOrder {
		l := s.StagesUS[name]
		sum += l.Mean
		share := 0.0
		if tot.Mean > 0 {
			share = 100 * l.Mean / tot.Mean
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.1f%% |\n", name, US(l.P50), US(l.P99), US(l.P999), US(l.Max), US(l.Mean), share)
	}
	fmt.Fprintf(b, "| **sum of the stages** | | | | | %s | |\n", US(sum))
	fmt.Fprintf(b, "| **write at its leader** (Propose → answer) | %s | %s | %s | %s | %s | 100%% |\n", US(tot.P50), US(tot.P99), US(tot.P999), US(tot.Max), US(tot.Mean))
	l := s.LatencyUS
	fmt.Fprintf(b, "| operation at the client (latency above) | %s | %s | %s | %s | %s | |\n", US(l.P50), US(l.P99), US(l.P999), US(l.Max), US(l.Mean))
	if l.Mean > 0 {
		fmt.Fprintf(b, "\nThe client's mean exceeds the leader's by %s: the client library, the call into the node and back, and the harness's own recording (and with reads or incomplete operations in the run, those).\n", US(l.Mean-tot.Mean))
	}
	fmt.Fprintf(b, "\n![where the time goes](%s/%s)\n\n", results.PlotsDir, StagesPlot)
	b.WriteString("Beside the critical path (these overlap the stages):\n\n| timing | counted per | count | p50 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|---|---|\n")
	per := map[string]string{"to_commit": "write (leader_append + replication)", "append_rtt": "follower acknowledgement", "network": "follower acknowledgement (append_rtt − follower_hold)",
		"follower_hold": "follower acknowledgement", "follower_fsync": "follower acknowledgement", "wal_fsync": "synced WAL save, any node"}
	for _, name := range results.StageDetailOrder {
		d, ok := s.StageDetailUS[name]
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", name, per[name], d.Count, US(d.P50), US(d.P99), US(d.P999), US(d.Max), US(d.Mean))
	}
}

// costSection writes "Cost per operation".
func costSection(b *bytes.Buffer, s *results.Summary) {
	b.WriteString("\n## Cost per operation\n\n")
	c := s.Cost
	if c == nil {
		b.WriteString("Not measured.\n")
		return
	}
	whose := "the whole process's: every node, the clients and the harness"
	if len(s.CostByNode) > 0 {
		whose = "the node processes' and the harness's (which runs the clients) together; by process below"
	}
	fmt.Fprintf(b, "Over the %.1f s window, per operation completed in it (%d). CPU, storage writes, allocations and GC are %s.\n\n", c.WindowSec, s.Ops, whose)
	costTable(b, c)
	if len(s.CostByNode) > 0 {
		b.WriteString("\n### By process\n\nPer operation of the whole run, so the rows add up to the figures above.\n\n" +
			"| process | CPU per op | fsyncs per op | storage bytes per op | allocations per op | GC pause total | GC pause max | waiting for a CPU |\n|---|---|---|---|---|---|---|---|\n")
		row := func(name string, n *results.Cost) {
			fmt.Fprintf(b, "| %s | %.1f µs | %.4f | %s | %.0f | %.1f ms | %s | %s |\n", name, n.CPUUSPerOp, n.FsyncsPerOp, storagePerOp(n), n.AllocsPerOp, n.GCPauseTotalMS, gcMax(n), SchedWaitString(n.SchedWaitUS))
		}
		for _, id := range nodeKeys(s.CostByNode) {
			n := s.CostByNode[id]
			row("node "+id, &n)
		}
		if s.CostHarness != nil {
			row("harness (clients)", s.CostHarness)
		}
	}
}

func costTable(b *bytes.Buffer, c *results.Cost) {
	b.WriteString("| cost | per operation | in the window |\n|---|---|---|\n")
	fmt.Fprintf(b, "| CPU (user + system) | **%.1f µs** | %.2f s user + %.2f s system (%.2f cores) |\n", c.CPUUSPerOp, c.CPUUserSec, c.CPUSystemSec, cores(c))
	fmt.Fprintf(b, "| fsyncs (synced WAL saves, all nodes) | %.4f | %d (%.0f/s) |\n", c.FsyncsPerOp, c.Fsyncs, c.FsyncsPerSec)
	if c.StorageWriteMeasured {
		fmt.Fprintf(b, "| bytes written to storage | %s | %s; write amplification %.1f× of %s of payload |\n", storagePerOp(c), Bytes(c.StorageWriteBytes), c.WriteAmplification, Bytes(c.PayloadBytes))
	} else {
		b.WriteString("| bytes written to storage | not measured (no /proc/self/io) | |\n")
	}
	fmt.Fprintf(b, "| heap allocations | %.0f objects, %s | %d objects |\n", c.AllocsPerOp, Bytes(int64(c.AllocBytesPerOp)), c.Allocs)
	if c.PageFaultsMeasured {
		fmt.Fprintf(b, "| page faults (mostly first touches of fresh memory) | %.3f | %d minor, %d major (%.0f/s) |\n", c.PageFaultsPerOp, c.MinorFaults, c.MajorFaults, faultsPerSec(c))
	} else {
		b.WriteString("| page faults | not measured | |\n")
	}
	fmt.Fprintf(b, "| GC | | %d cycles; stop-the-world pauses %.2f ms in all, longest %s |\n", c.GCCycles, c.GCPauseTotalMS, gcMax(c))
	fmt.Fprintf(b, "| waiting for a CPU (goroutines runnable, not running) | | %s |\n", SchedWaitString(c.SchedWaitUS))
}

// faultsPerSec is the window's page-fault rate.
func faultsPerSec(c *results.Cost) float64 {
	if c.WindowSec <= 0 {
		return 0
	}
	return float64(c.MinorFaults+c.MajorFaults) / c.WindowSec
}

// SchedWaitString formats a window's scheduling waits: the Go runtime's
// sampled histogram, each figure a bucket's upper bound.
func SchedWaitString(w *results.SchedWait) string {
	if w == nil {
		return "none sampled"
	}
	le := func(name string, v float64) string {
		if v < 0 {
			return name + " beyond the runtime's last bound"
		}
		return name + " ≤ " + US(v)
	}
	return fmt.Sprintf("%s, %s, %s, %s, %s (%d sampled waits)", le("p50", w.P50), le("p90", w.P90), le("p99", w.P99), le("p99.9", w.P999), le("max", w.Max), w.Samples)
}

func cores(c *results.Cost) float64 {
	if c.WindowSec <= 0 {
		return 0
	}
	return (c.CPUUserSec + c.CPUSystemSec) / c.WindowSec
}

func storagePerOp(c *results.Cost) string {
	if !c.StorageWriteMeasured {
		return "not measured"
	}
	return Bytes(int64(c.StorageWriteBytesPerOp))
}

func gcMax(c *results.Cost) string {
	if !c.GCPauseMaxExact {
		return fmt.Sprintf("≥ %.2f ms (of the last 256 cycles)", c.GCPauseMaxMS)
	}
	return fmt.Sprintf("%.2f ms", c.GCPauseMaxMS)
}

// hasMax reports whether the timeline carries per-second maxima (files
// written before they were added do not).
func hasMax(rows []results.TimelineRow) bool {
	for _, r := range rows {
		if r.MaxUS > 0 {
			return true
		}
	}
	return false
}

// Verdicts summarises the checks in one line.
func Verdicts(s *results.Summary) string {
	var v []string
	switch s.LinearizabilityCheck {
	case "ok":
		v = append(v, "linearizable")
	case "violation":
		v = append(v, "NOT LINEARIZABLE")
	case "timeout":
		v = append(v, "linearizability unknown (check timed out)")
	}
	switch {
	case s.ReplicaCheck == "incomplete":
		v = append(v, "replicas NOT COMPARED (harness problem)")
	case s.ReplicasAgree:
		v = append(v, "replicas agree")
	default:
		v = append(v, "REPLICAS DISAGREE")
	}
	switch {
	case s.ReplicaCheck == "incomplete":
		v = append(v, "acknowledged writes not checked")
	case s.AckedOpsFound:
		v = append(v, fmt.Sprintf("all %d acknowledged writes found", s.AckedWrites))
	default:
		v = append(v, fmt.Sprintf("%d ACKNOWLEDGED WRITES LOST", s.LostWrites))
	}
	return strings.Join(v, ", ")
}

// Markdown renders report.md.
func Markdown(run *results.Run) string {
	s := &run.Summary
	var b bytes.Buffer
	name := run.Name
	if name == "" {
		name = filepath.Base(run.Dir)
	}
	title := "# raftbench run " + name
	if s.Interrupted {
		title += " (interrupted)"
	}
	b.WriteString(title + "\n\n")
	fmt.Fprintf(&b, "**%.0f ops/s** (%.2f MB/s), p50 %s, p99 %s, p99.9 %s, max %s. Verdicts: %s.\n\n",
		s.ThroughputOpsPerSec, s.ThroughputMBPerSec, US(s.LatencyUS.P50), US(s.LatencyUS.P99), US(s.LatencyUS.P999), US(s.LatencyUS.Max), Verdicts(s))
	fmt.Fprintf(&b, "Started %s; measured %.1f s after a %.1f s warm-up.\n\n", s.Started.Format("2006-01-02 15:04:05 UTC"), s.DurationSec, s.WarmupSec)
	if s.Interrupted {
		b.WriteString("**Interrupted**: the run was stopped before its planned end; the numbers cover the window until then, and the verdicts were checked after the load stopped and the cluster settled.\n\n")
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "**Warning**: %s.\n\n", w)
	}

	b.WriteString("## Configuration\n\n| setting | value |\n|---|---|\n")
	keys := make([]string, 0, len(run.Config))
	for k := range run.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %s |\n", k, mdValue(run.Config[k]))
	}

	b.WriteString("\n## Results\n\n| metric | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| throughput | %.0f ops/s, %.2f MB/s |\n", s.ThroughputOpsPerSec, s.ThroughputMBPerSec)
	fmt.Fprintf(&b, "| operations | %d (%d writes, %d reads) |\n", s.Ops, s.Writes, s.Reads)
	fmt.Fprintf(&b, "| incomplete at the close | %d (in the latencies with their time until the close) |\n", s.IncompleteOps)
	for _, p := range []struct {
		n string
		v float64
	}{{"p50", s.LatencyUS.P50}, {"p90", s.LatencyUS.P90}, {"p99", s.LatencyUS.P99}, {"p99.9", s.LatencyUS.P999}, {"max", s.LatencyUS.Max}, {"mean", s.LatencyUS.Mean}} {
		fmt.Fprintf(&b, "| latency %s | %s |\n", p.n, US(p.v))
	}
	fmt.Fprintf(&b, "| errors | %s |\n", ErrorsString(s.Errors))
	fmt.Fprintf(&b, "| leader changes | %d (elections started: %d) |\n", s.LeaderChanges, s.Elections)
	fmt.Fprintf(&b, "| WAL peak | %s |\n", WALPeak(s))
	if s.Cost != nil {
		fmt.Fprintf(&b, "| CPU per operation | %.1f µs (whole process; see the cost below) |\n", s.CPUUSPerOp)
	}
	stagesSection(&b, s)
	costSection(&b, s)

	b.WriteString("\n## Verdicts\n\n")
	lin := "not checked (run with --check)"
	switch s.LinearizabilityCheck {
	case "ok":
		lin = fmt.Sprintf("yes: porcupine checked %d operations", s.HistoryOps)
	case "violation":
		lin = fmt.Sprintf("**no**: see [%s](%s)", results.HistoryFile, results.HistoryFile)
	case "timeout":
		lin = "unknown: the check timed out"
	}
	fmt.Fprintf(&b, "- linearizable: %s\n", lin)
	if s.ReplicaCheck == "incomplete" {
		b.WriteString("- replicas agree: **not compared**: the harness could not bring the cluster to one applied index (see the problems below); this says nothing about the replicas\n")
	} else {
		fmt.Fprintf(&b, "- replicas agree: %v (all at applied index %d; state hashes %s)\n", s.ReplicasAgree, s.AppliedIndex, nodeMap(s.ReplicaHashes))
	}
	if len(s.ReplicaApplied) > 0 {
		fmt.Fprintf(&b, "- applied index per replica: %s\n", nodeMapU(s.ReplicaApplied))
	}
	if s.ReplicaCheck != "incomplete" {
		fmt.Fprintf(&b, "- acknowledged writes found on every replica: %v (%d acknowledged, %d keys lost", s.AckedOpsFound, s.AckedWrites, s.LostWrites)
		if len(s.LostWritesByNode) > 0 {
			fmt.Fprintf(&b, "; by replica %s", nodeMapI(s.LostWritesByNode))
		}
		if len(s.LostKeys) > 0 {
			fmt.Fprintf(&b, "; keys %s", strings.Join(s.LostKeys, ", "))
		}
		b.WriteString(")\n")
	}
	for _, id := range slices.Sorted(maps.Keys(s.RefusedNodes)) {
		fmt.Fprintf(&b, "- node %s refused to start on its damaged WAL and stayed down (the verdicts cover the others): %s\n", id, s.RefusedNodes[id])
	}
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "- problem: %s\n", p)
	}

	b.WriteString("\n## Faults\n\n")
	if len(s.Faults) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString("| at | fault | what happened |\n|---|---|---|\n")
		for _, f := range s.Faults {
			what := f.What
			if f.Error != "" {
				what += " (error: " + f.Error + ")"
			}
			fmt.Fprintf(&b, "| %.3f s | `%s` | %s |\n", f.AtMS/1000, f.Spec, what)
		}
	}
	if len(s.Failovers) > 0 {
		b.WriteString("\n### Failovers\n\nTo first commit: to the acknowledgement of the first write proposed after the fault.\n\n| at | fault | old leader | new leader | to new leader | to first commit |\n|---|---|---|---|---|---|\n")
		for _, f := range s.Failovers {
			fmt.Fprintf(&b, "| %.3f s | `%s` | %d | %d | %s | %s |\n", f.AtMS/1000, f.Fault, f.OldLeader, f.NewLeader, msOrNone(f.ToLeaderMS), msOrNone(f.ToCommitMS))
		}
	}

	if len(s.Membership) > 0 {
		b.WriteString("\n### Membership changes\n\n| at | fault | added | removed | in force after | new node caught up after | voters after | error |\n|---|---|---|---|---|---|---|---|\n")
		for _, m := range s.Membership {
			caught := "–"
			if m.Added != 0 {
				caught = msOrNone(m.CaughtUpMS)
				if m.SnapshotIndex > 0 {
					caught += fmt.Sprintf(" (snapshot at %d)", m.SnapshotIndex)
				}
			}
			fmt.Fprintf(&b, "| %.3f s | `%s` | %s | %s | %s | %s | %s | %s |\n", m.AtMS/1000, m.Spec, idOrDash(m.Added), idOrDash(m.Removed),
				msOrNone(m.DoneMS), caught, idList(m.Voters), m.Error)
		}
	}

	b.WriteString("\n## Plots\n\n")
	for _, p := range []struct{ file, alt string }{{PercentilesPlot, "latency by percentile"}, {ThroughputPlot, "throughput over time"}, {P99Plot, "p99 and max over time"}} {
		fmt.Fprintf(&b, "![%s](%s/%s)\n\n", p.alt, results.PlotsDir, p.file)
	}

	b.WriteString("## Per second\n\nOperations by the second of their intended start; incomplete ones had not completed when the window closed.\n\n")
	b.WriteString("| s | ops | errors | incomplete | p50 | p99 | max | leader | term | faults |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range run.Timeline {
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %s | %s | %s | %d | %d | %s |\n", r.Second, r.Ops, r.Errors, r.Incomplete, US(r.P50US), US(r.P99US), US(r.MaxUS), r.Leader, r.Term, r.Faults)
	}

	if len(s.Nodes) > 0 {
		b.WriteString("\n## Nodes\n\n| node | proposals | batches | fsyncs | fsync mean | fsync max | elections | loop saturation | restarts | snapshots | WAL peak |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, n := range s.Nodes {
			fmt.Fprintf(&b, "| %d | %d | %d | %d | %s | %s | %d | %.0f%% | %d | %d | %s |\n", n.ID, n.Proposals, n.Batches, n.Fsyncs, US(n.FsyncMeanUS), US(n.FsyncMaxUS), n.Elections, 100*n.LoopSaturation, n.Restarts, n.Snapshots, Bytes(n.WALPeakBytes))
		}
	}

	if profs := profilesIn(run); len(profs) > 0 {
		b.WriteString("\n## Profiles\n\n| file | what | open with |\n|---|---|---|\n")
		for _, p := range profs {
			fmt.Fprintf(&b, "| [`%s`](%s) | %s | `%s` |\n", p.file, p.file, p.what, p.cmd)
		}
	}

	e := s.Env
	gogc := ""
	if g := e.GOGC(); g != "" {
		gogc = ", GOGC " + g
	}
	fmt.Fprintf(&b, "\n## Environment\n\n%s, GOMAXPROCS %d (%d CPUs)%s, %s, %s/%s, commit `%s`.\n", e.GoVersion, e.GOMAXPROCS, e.NumCPU, gogc, e.CPUModel, e.OS, e.Arch, e.Commit)
	stages := ""
	if hasStages(s) {
		stages = fmt.Sprintf(", `%s/*.hgrm` (one per stage and timing, ms)", results.StagesDir)
	}
	fmt.Fprintf(&b, "\nFiles: `%s`, `%s`, `%s` (ms), `%s` (µs intervals), `%s`%s; see results/README.md for the format.\n",
		results.ConfigFile, results.SummaryFile, results.HgrmFile, results.HlogFile, results.TimelineFile, stages)
	return b.String()
}

// profile is one profile file of a run.
type profile struct{ file, what, cmd string }

// profilesIn lists the profiles the run's configuration asked for that
// are in its directory.
func profilesIn(run *results.Run) []profile {
	var out []profile
	for _, p := range []struct{ key, what, tool string }{
		{"cpuprofile", "CPU profile (warm-up and measured window)", "go tool pprof -http=: %s"},
		{"memprofile", "heap profile (at the end; -sample_index=alloc_space for all allocations)", "go tool pprof -sample_index=alloc_space -http=: %s"},
		{"mutexprofile", "mutex contention", "go tool pprof -http=: %s"},
		{"blockprofile", "blocking", "go tool pprof -http=: %s"},
		{"trace", "execution trace", "go tool trace %s"},
	} {
		f, _ := run.Config[p.key].(string)
		if f == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(run.Dir, f)); err != nil {
			continue
		}
		out = append(out, profile{file: f, what: p.what, cmd: fmt.Sprintf(p.tool, f)})
	}
	return out
}

// WALPeak describes the peak data directory sizes: the largest, then every
// node's.
func WALPeak(s *results.Summary) string {
	if len(s.WALPeakBytesByNode) == 0 {
		return "not measured"
	}
	ids := make([]string, 0, len(s.WALPeakBytesByNode))
	for id := range s.WALPeakBytesByNode {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) < len(ids[j])
		}
		return ids[i] < ids[j]
	})
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s: %s", id, Bytes(s.WALPeakBytesByNode[id]))
	}
	return fmt.Sprintf("%s (by node: %s)", Bytes(s.WALPeakBytes), strings.Join(parts, ", "))
}

// Bytes formats a byte count readably (binary units).
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func idOrDash(id uint64) string {
	if id == 0 {
		return "–"
	}
	return fmt.Sprint(id)
}

func idList(ids []uint64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ", ")
}

// US formats microseconds readably.
func US(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

// ErrorsString formats errors by kind, "none" for none.
func ErrorsString(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func msOrNone(v float64) string {
	if v < 0 {
		return "none seen"
	}
	return fmt.Sprintf("%.1f ms", v)
}

// nodeMap formats a by-node map as "1:ab 2:cd", in node order.
func nodeMap(m map[string]string) string {
	var parts []string
	for _, k := range nodeKeys(m) {
		parts = append(parts, k+":"+m[k])
	}
	return strings.Join(parts, " ")
}

func nodeMapU(m map[string]uint64) string {
	var parts []string
	for _, k := range nodeKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func nodeMapI(m map[string]int64) string {
	var parts []string
	for _, k := range nodeKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// nodeKeys sorts node IDs numerically.
func nodeKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if len(ks[i]) != len(ks[j]) {
			return len(ks[i]) < len(ks[j])
		}
		return ks[i] < ks[j]
	})
	return ks
}

func mdValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, fmt.Sprintf("`%v`", e))
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprintf("%v", x)
	}
}

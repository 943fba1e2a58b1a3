package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/report"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/bench/stats"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/transport/fault"
)

// Options say how a run reports while it runs.
type Options struct {
	// Progress receives the live bar (Live) or one line per second; nil
	// shows nothing.
	Progress io.Writer
	Live     bool
	// Logger receives the nodes' and transports' logs; nil discards them.
	Logger *slog.Logger
	// Label prefixes progress lines (say, the sweep point).
	Label string
	// Binary is the raftbench executable that --procs runs as `raftbench
	// node` processes; the CLI passes its own (os.Executable).
	Binary string
	// NoPlots writes report.md without its plots (`raftbench report DIR`
	// draws them later): rendering them is most of a short run's time
	// under the race detector, so other modules' tests set it.
	NoPlots bool

	// hooks let tests reach into a run (nil: none).
	hooks *testHooks
}

// testHooks are the points where tests reach into a run.
type testHooks struct {
	// noGrace cancels the operations in flight as soon as the window
	// closes, without the stragglers' grace, so proposals whose callers
	// gave up are left queued while the cluster settles.
	noGrace bool
	// afterCancel runs just after the load's contexts are cancelled.
	afterCancel func(t Target)
	// beforeCompare runs once the cluster has quiesced, just before the
	// replicas' states are read: a test corrupts a replica there.
	beforeCompare func(t Target)
	// noPlots writes report.md without the plots (rendering PNGs is most
	// of a short run's time under the race detector).
	noPlots bool
}

// DefaultOut is the result directory of a run without --out.
func DefaultOut(cfg *Config, now time.Time) string {
	return filepath.Join("results", "runs", now.UTC().Format("20060102T150405Z")+"-"+cfg.Short())
}

// Outcome is what Run did.
type Outcome struct {
	// Dir is the result directory; with Count > 1 it holds one result
	// directory per repetition, run-01, run-02, ..., and the combined
	// summary (CombinedJSON, CombinedMD).
	Dir       string
	Summaries []*results.Summary
	// RunDirs are the result directories, one per repetition.
	RunDirs []string
	// Combined summarises the repetitions (nil with one).
	Combined *stats.Combined
	// Interrupted is set when the run was interrupted (its context ended):
	// the repetition under way was cut short, settled and written, marked
	// interrupted, and no further repetition ran.
	Interrupted bool
}

// Files at the top of a --count directory.
const (
	CombinedJSON = "combined.json"
	CombinedMD   = "combined.md"
)

// Failed reports the verdicts that failed in any repetition, or "".
func (o *Outcome) Failed() string {
	var bad []string
	for i, s := range o.Summaries {
		if v := results.FailedVerdicts(s); v != "" {
			bad = append(bad, fmt.Sprintf("%s: %s", filepath.Base(o.RunDirs[i]), v))
		}
	}
	return strings.Join(bad, "; ")
}

// stragglerGrace bounds how long a run waits, once its window has closed,
// for the operations still in flight to end (they are already recorded as
// incomplete; waiting lets the end-of-run checks know their outcome).
// Whatever is still running then is cancelled, its outcome unknown.
const stragglerGrace = 2 * time.Second

// Run validates cfg, runs it cfg.Count times and writes the result
// directory. The directory is written under a ".partial" name and renamed
// into place at the end, so a failed run leaves none behind. When ctx ends
// (Ctrl-C) the repetition under way stops its load, settles and is written
// marked interrupted, with what it measured; Run then returns it with
// Outcome.Interrupted set. Configuration problems wrap ErrBadConfig.
func Run(ctx context.Context, cfg Config, opt Options) (*Outcome, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := cfg.Out
	if out == "" {
		out = DefaultOut(&cfg, time.Now())
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
	pr := newProgress(opt.Progress, false, opt.Label, 0)
	for _, w := range cfg.Warnings() {
		pr.logf("warning: %s", w)
	}
	mc := &nodeMetrics{}
	stopServers, err := serveDebug(cfg.PprofAddr, cfg.MetricsAddr, mc, pr)
	if err != nil {
		return nil, err
	}
	defer stopServers()
	o := &Outcome{Dir: out}
	for i := range cfg.Count {
		dir, final := partial, out
		label := opt.Label
		c := cfg
		c.Seed = cfg.Seed + uint64(i)
		if cfg.Count > 1 {
			name := fmt.Sprintf("run-%02d", i+1)
			dir, final = filepath.Join(partial, name), filepath.Join(out, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, fmt.Errorf("result directory: %w", err)
			}
			label = strings.TrimSpace(label + " " + name)
			// Each repetition's config.json reproduces that repetition
			// alone when fed back as --config.
			c.Count = 1
		}
		s, err := runOnce(ctx, &c, dir, filepath.Base(final), opt, label, mc)
		if err != nil {
			return nil, err
		}
		o.Summaries = append(o.Summaries, s)
		o.RunDirs = append(o.RunDirs, final)
		if s.Interrupted {
			o.Interrupted = true
			break
		}
	}
	if cfg.Count > 1 {
		if err := writeCombined(partial, &cfg, o); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, fmt.Errorf("move result directory into place: %w", err)
	}
	ok = true
	return o, nil
}

// writeCombined writes the base configuration and the combined summary of
// the repetitions at the top of a --count directory.
func writeCombined(dir string, cfg *Config, o *Outcome) error {
	names := make([]string, len(o.RunDirs))
	sums := make([]results.Summary, len(o.Summaries))
	for i := range o.Summaries {
		names[i], sums[i] = filepath.Base(o.RunDirs[i]), *o.Summaries[i]
	}
	o.Combined = stats.Combine(names, sums)
	if err := results.WriteJSON(filepath.Join(dir, results.ConfigFile), cfg); err != nil {
		return err
	}
	if err := results.WriteJSON(filepath.Join(dir, CombinedJSON), o.Combined); err != nil {
		return err
	}
	md := fmt.Sprintf("# raftbench run %s: %d repetitions\n\n%s", filepath.Base(o.Dir), len(o.Summaries), o.Combined.Markdown())
	if err := os.WriteFile(filepath.Join(dir, CombinedMD), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", CombinedMD, err)
	}
	return nil
}

// prepareOut checks that out can be written and creates out.partial.
func prepareOut(out string) (string, error) {
	if _, err := os.Stat(out); err == nil {
		return "", fmt.Errorf("%w: --out: %s already exists", ErrBadConfig, out)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("%w: --out: cannot create %s: %v", ErrBadConfig, filepath.Dir(out), err)
	}
	partial := out + ".partial"
	_ = os.RemoveAll(partial)
	if err := os.Mkdir(partial, 0o755); err != nil {
		return "", fmt.Errorf("%w: --out: cannot write %s: %v", ErrBadConfig, out, err)
	}
	return partial, nil
}

// runOnce runs one repetition into dir, which will be named name.
func runOnce(ctx context.Context, cfg *Config, dir, name string, opt Options, label string, mc *nodeMetrics) (*results.Summary, error) {
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if label == "" {
		label = "run"
	}
	prof, err := startProfiles(cfg, dir)
	if err != nil {
		return nil, err
	}
	defer prof.stopEarly()

	sys, ok := LookupSystem(cfg.System)
	if !ok {
		return nil, fmt.Errorf("%w: --system: %q is not registered", ErrBadConfig, cfg.System)
	}
	startPr := newProgress(opt.Progress, false, label, 0)
	tgt, err := sys.Start(ctx, cfg, Env{Dir: dir, Logger: logger, Binary: opt.Binary, Logf: startPr.logf})
	if err != nil {
		return nil, err
	}
	var closeOnce sync.Once
	var closeErr error
	closeTarget := func() {
		closeOnce.Do(func() { closeErr = tgt.Close() })
	}
	defer closeTarget()
	info := tgt.Info()
	if want := max(cfg.Groups, 1); info.Groups != want {
		return nil, fmt.Errorf("%w: --groups %d: --system %s started %d Raft groups", ErrBadConfig, want, cfg.System, info.Groups)
	}
	if err := checkFaults(tgt, cfg.ParsedFaults()); err != nil {
		return nil, err
	}
	if info.Where != "" {
		startPr.logf("%s: %s", label, info.Where)
	}
	g := tgt.Group(0)
	if col, ok := tgt.(prometheus.Collector); ok {
		mc.set(col)
		defer mc.set(nil)
	}
	// Sample the nodes' data directories every second until the measured
	// window closes (settling restarts nodes and would blur the peak).
	disks, _ := tgt.(DiskSampler)
	diskCtx, stopDisk := context.WithCancel(context.Background())
	diskDone := make(chan struct{})
	go func() {
		defer close(diskDone)
		if disks == nil {
			return
		}
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			disks.SampleDisk()
			select {
			case <-diskCtx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	defer func() { stopDisk(); <-diskDone }()
	// Every group needs a leader; the leader faults, the timeline and the
	// leader changes follow group 0's.
	groupEps := make([][]kv.Endpoint, info.Groups)
	for gi := range info.Groups {
		if _, err := tgt.Group(gi).WaitLeader(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("start cluster: group %d: %w", gi, err)
		}
		groupEps[gi] = tgt.Group(gi).Endpoints()
	}

	tWarm := time.Now()
	t0 := tWarm.Add(cfg.Warmup.D())
	tEnd := t0.Add(cfg.Duration.D())
	rec := newLatencyRecorder(t0, tEnd)
	var history *kv.Recorder
	if cfg.Check {
		history = kv.NewRecorder()
	}
	w := newWorkload(cfg, realClock{}, rec, history, groupEps...)
	nodeProf, _ := tgt.(Profiler)
	if nodeProf != nil && cfg.wantsProfiles() {
		if err := nodeProf.StartProfiles(ctx, cfg, dir, cfg.Warmup.D()+cfg.Duration.D()); err != nil {
			return nil, err
		}
	}
	// The load has a context of its own: an interrupt closes the window
	// and stops the load in order instead of cutting every call short.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() {
		if cfg.Rate > 0 {
			loadDone <- w.openLoop(loadCtx, tWarm, tEnd)
		} else {
			loadDone <- w.closedLoop(loadCtx)
		}
	}()

	pr := newProgress(opt.Progress, opt.Live, label, cfg.Duration.D())
	if cfg.Warmup > 0 {
		pr.logf("%s: warming up for %v", label, cfg.Warmup.D())
	}
	interrupted := (realClock{}).SleepUntil(ctx, t0) != nil
	probe := openWindow(ctx, tgt)
	ictx, stopInject := context.WithCancel(context.Background())
	defer stopInject()
	inj := newInjector(tgt, cfg, rec, t0)
	injDone := make(chan struct{})
	go func() {
		inj.run(ictx, faultspec.Schedule(cfg.ParsedFaults()))
		close(injDone)
	}()

	// The measured window: sample the leader every 5 ms (cheaply: no lock,
	// no allocation), count leader changes, note the leader at the end of
	// every second and show progress.
	var (
		secLeaders, secTerms []uint64
		lastLead, lastTerm   uint64
		leaderChanges        int
		seenLeader           bool
		sample               = time.NewTicker(5 * time.Millisecond)
		nextSec              = t0.Add(time.Second)
		closeAt              = tEnd
	)
	defer sample.Stop()
	for !interrupted {
		select {
		case <-ctx.Done():
			interrupted = true
			continue
		case <-sample.C:
		}
		id, term := g.Leader()
		if id != 0 && (id != lastLead || term != lastTerm) {
			if seenLeader {
				leaderChanges++
			}
			seenLeader, lastLead, lastTerm = true, id, term
		}
		now := time.Now()
		if now.Before(nextSec) && now.Before(tEnd) {
			continue
		}
		secLeaders, secTerms = append(secLeaders, id), append(secTerms, lastTerm)
		h, _ := rec.roll()
		span := max(now.Sub(nextSec.Add(-time.Second)).Seconds(), 1e-3)
		pr.update(progressState{Elapsed: now.Sub(t0), Total: cfg.Duration.D(),
			OpsPerSec: float64(h.TotalCount()) / span, P99: time.Duration(h.ValueAtQuantile(99)) * time.Microsecond,
			Leader: id, Faults: len(inj.appliedSoFar())})
		nextSec = nextSec.Add(time.Second)
		if !now.Before(tEnd) {
			break
		}
	}
	if interrupted {
		closeAt = time.Now()
		if closeAt.Before(t0) {
			closeAt = t0
		}
		if closeAt.After(tEnd) {
			closeAt = tEnd
		}
		id, term := g.Leader()
		if n := int((closeAt.Sub(t0) + time.Second - 1) / time.Second); len(secLeaders) < n {
			secLeaders, secTerms = append(secLeaders, id), append(secTerms, term)
		}
	}
	// Close the window: what is still in flight is recorded as incomplete;
	// then stop issuing load, end the fault schedule, give the stragglers
	// a bounded grace and cancel the rest.
	rec.close(closeAt)
	window := probe.closeWindow(context.WithoutCancel(ctx))
	w.stopIssuing()
	stopDisk()
	<-diskDone
	if disks != nil {
		disks.SampleDisk()
	}
	stopInject()
	<-injDone
	grace := min(cfg.OpTimeout.D(), stragglerGrace)
	if opt.hooks != nil && opt.hooks.noGrace {
		grace = 0
	}
	graceEnd := time.Now().Add(grace)
	for w.active.Load() > 0 && time.Now().Before(graceEnd) {
		time.Sleep(5 * time.Millisecond)
	}
	stopLoad()
	w.release()
	if opt.hooks != nil && opt.hooks.afterCancel != nil {
		opt.hooks.afterCancel(tgt)
	}
	loadErr := <-loadDone
	pr.done()
	prof.stopEarly()
	if loadErr != nil {
		return nil, loadErr
	}

	rd := rec.result()
	measured := closeAt.Sub(t0)
	s := &results.Summary{
		Started: t0.UTC(), DurationSec: measured.Seconds(), WarmupSec: cfg.Warmup.D().Seconds(),
		Errors: rd.errs, LatencyUS: results.LatencyOf(rd.total), LeaderChanges: leaderChanges,
		Reads: rd.reads, Writes: rd.writes, IncompleteOps: rd.incomplete, Env: results.CurrentEnv(),
		LinearizabilityCheck: "off", Interrupted: interrupted, Warnings: cfg.Warnings(),
		Mode: info.Mode, System: info.System, SystemVersion: info.Version,
	}
	s.Ops = s.Reads + s.Writes
	if measured > 0 {
		s.ThroughputOpsPerSec = float64(s.Ops) / measured.Seconds()
	}
	s.ThroughputMBPerSec = s.ThroughputOpsPerSec * float64(cfg.Payload) / 1e6
	window.fill(s, cfg.Payload)
	s.Faults, s.Failovers, s.Membership = inj.results()
	var peaks map[uint64]int64
	if disks != nil {
		peaks = disks.DiskPeaks()
	}
	if len(peaks) > 0 {
		s.WALPeakBytesByNode = map[string]int64{}
		for id, b := range peaks {
			s.WALPeakBytesByNode[fmt.Sprint(id)] = b
			s.WALPeakBytes = max(s.WALPeakBytes, b)
		}
	}
	var fc fault.Counters
	if f, ok := tgt.(FaultCounter); ok {
		fc = f.FaultCounters()
	}
	// Counts that missed a restarted or absent node are reported, zero or
	// not, with the nodes they missed, when the run injected message
	// faults: an empty message_faults would say nothing happened.
	var gaps []uint64
	if g, ok := tgt.(FaultCountGapper); ok && slices.ContainsFunc(cfg.ParsedFaults(), faultspec.Fault.IsRule) {
		gaps = g.FaultCountGaps()
	}
	if fc != (fault.Counters{}) || len(gaps) > 0 {
		s.MessageFaults = map[string]uint64{"dropped": fc.Dropped, "partitioned_send": fc.PartitionedSend,
			"partitioned_recv": fc.PartitionedRecv, "duplicated": fc.Duplicated, "delayed": fc.Delayed, "reordered": fc.Reordered}
		s.MessageFaultsIncomplete = gaps
	}
	if s.Failovers == nil {
		s.Failovers = []results.Failover{}
	}
	if s.Faults == nil {
		s.Faults = []results.AppliedFault{}
	}
	rows := timeline(rd, secLeaders, secTerms, s.Faults)

	pr.logf("%s: measured %v; checking replicas", label, measured.Round(time.Millisecond))
	if interrupted {
		pr.logf("%s: interrupted: stopped the load; settling the cluster to check what was measured", label)
	}
	settleCtx := context.WithoutCancel(ctx)
	var beforeCompare func(Target)
	if opt.hooks != nil {
		beforeCompare = opt.hooks.beforeCompare
	}
	if err := settle(settleCtx, tgt, w.tracker, s, beforeCompare); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if pr, ok := tgt.(ProblemReporter); ok {
		s.Problems = append(s.Problems, pr.Problems()...)
	}
	if cr, ok := tgt.(Crasher); ok {
		var problems []string
		s.RefusedNodes, problems = cr.DurabilityReport()
		s.Problems = append(s.Problems, problems...)
	}
	if nodeProf != nil && cfg.wantsProfiles() {
		files, err := nodeProf.FinishProfiles(settleCtx)
		if err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("node profiles: %v", err))
		}
		for _, f := range files {
			s.NodeProfiles = append(s.NodeProfiles, filepath.Base(f))
		}
	}
	closeTarget()
	if closeErr != nil {
		s.Problems = append(s.Problems, fmt.Sprintf("stopping the cluster: %v", closeErr))
	}
	if history != nil {
		pr.logf("%s: checking %d operations for linearizability", label, len(history.Operations()))
		if err := checkHistory(history, dir, s); err != nil {
			return nil, err
		}
	}
	if err := prof.finish(); err != nil {
		return nil, err
	}
	jc := *cfg
	if cfg.System != DefaultSystem {
		jc.SystemVersion = info.Version
	}
	if info.Mode == ModeCluster {
		// The nodes run what they were started with, not this run's
		// defaults: config.json says what they reported.
		if err := setNodeKnobs(&jc, info.NodeKnobs); err != nil {
			s.Warnings = append(s.Warnings, err.Error())
		}
	}
	if jc.Faults == nil {
		jc.Faults = []string{} // [] rather than null in config.json
	}
	if err := results.WriteData(dir, &jc, s, rd.total, rd.intervals, rows); err != nil {
		return nil, err
	}
	if err := results.WriteStages(dir, window.hists()); err != nil {
		return nil, err
	}
	run, err := results.Read(dir)
	if err != nil {
		return nil, fmt.Errorf("read back result directory: %w", err)
	}
	run.Name = name
	write := report.Write
	if opt.NoPlots || (opt.hooks != nil && opt.hooks.noPlots) {
		write = report.WriteMarkdown
	}
	if err := write(run); err != nil {
		return nil, err
	}
	return s, nil
}

// timeline builds the per-second rows: operations by the second of their
// intended start, the leader at the end of each second, and the faults
// applied in it.
func timeline(rd recorded, leaders, terms []uint64, faults []results.AppliedFault) []results.TimelineRow {
	rows := make([]results.TimelineRow, len(rd.intervals))
	for i, h := range rd.intervals {
		lat := results.LatencyOf(h)
		r := results.TimelineRow{Second: i, Ops: h.TotalCount() - rd.secIncompl[i], Errors: rd.secErrs[i], Incomplete: rd.secIncompl[i],
			P50US: lat.P50, P99US: lat.P99, MaxUS: lat.Max}
		if i < len(leaders) {
			r.Leader, r.Term = leaders[i], terms[i]
		}
		var evs []string
		for _, f := range faults {
			if at := int(f.AtMS / 1000); at == i || (i == len(rd.intervals)-1 && at > i) {
				evs = append(evs, f.Spec+": "+f.What)
			}
		}
		r.Faults = strings.Join(evs, "; ")
		rows[i] = r
	}
	return rows
}

// checkHistory runs porcupine on the history and writes the visualisation
// when it is not linearizable.
func checkHistory(h *kv.Recorder, dir string, s *results.Summary) error {
	s.HistoryOps = len(h.Operations())
	res, info := h.Check(2 * time.Minute)
	switch res {
	case porcupine.Ok:
		t := true
		s.Linearizable, s.LinearizabilityCheck = &t, "ok"
	case porcupine.Illegal:
		f := false
		s.Linearizable, s.LinearizabilityCheck = &f, "violation"
		if _, err := kv.Visualize(info, filepath.Join(dir, results.HistoryFile)); err != nil {
			return fmt.Errorf("write linearizability visualisation: %w", err)
		}
	default:
		s.LinearizabilityCheck = "timeout"
	}
	return nil
}

// setNodeKnobs sets c's node knobs that belong to the nodes alone
// (clusterFixedKnob) to what a cluster's nodes reported
// (TargetInfo.NodeKnobs). Nothing reported, or a value this build cannot
// read, is an error saying config.json's node knobs are this run's own
// defaults rather than what the nodes ran.
func setNodeKnobs(c *Config, knobs map[string]string) error {
	var names []string
	for _, name := range NodeKnobs {
		// seed and max-msg-bytes are the run's own too: it keeps them.
		if clusterFixedKnob(name) {
			names = append(names, name)
		}
	}
	if knobs == nil {
		return fmt.Errorf("the nodes did not report their knobs (a raftbench node older than this run?): config.json's %s are this run's defaults, not necessarily what the nodes ran", strings.Join(names, ", "))
	}
	var bad []string
	for _, name := range names {
		v, ok := knobs[name]
		k, known := KnobByName(name)
		if !ok || !known {
			bad = append(bad, "--"+name+" (not reported)")
			continue
		}
		if err := k.Set(c, v); err != nil {
			bad = append(bad, fmt.Sprintf("--%s=%s (%v)", name, v, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("config.json's node knobs are this run's defaults for %s: the nodes did not report them in a form this build reads", strings.Join(bad, ", "))
	}
	return nil
}

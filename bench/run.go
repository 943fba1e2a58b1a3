package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/report"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/core"
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
}

// DefaultOut is the result directory of a run without --out.
func DefaultOut(cfg *Config, now time.Time) string {
	return filepath.Join("results", "runs", now.UTC().Format("20060102T150405Z")+"-"+cfg.Short())
}

// Outcome is what Run did.
type Outcome struct {
	// Dir is the result directory; with Count > 1 it holds one result
	// directory per repetition, run-01, run-02, ...
	Dir       string
	Summaries []*results.Summary
	// RunDirs are the result directories, one per repetition.
	RunDirs []string
}

// Failed reports the verdicts that failed in any repetition, or "".
func (o *Outcome) Failed() string {
	var bad []string
	for i, s := range o.Summaries {
		var v []string
		if s.Linearizable != nil && !*s.Linearizable {
			v = append(v, "not linearizable")
		}
		if !s.ReplicasAgree {
			v = append(v, "replicas disagree")
		}
		if !s.AckedOpsFound {
			v = append(v, fmt.Sprintf("%d acknowledged writes lost", s.LostWrites))
		}
		if len(v) > 0 {
			bad = append(bad, fmt.Sprintf("%s: %s", filepath.Base(o.RunDirs[i]), strings.Join(v, ", ")))
		}
	}
	return strings.Join(bad, "; ")
}

// Run validates cfg, runs it cfg.Count times and writes the result
// directory. The directory is written under a ".partial" name and renamed
// into place at the end, so a failed or interrupted run leaves none behind.
// Configuration problems wrap ErrBadConfig.
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
	if cfg.PprofAddr != "" {
		stop, err := servePprof(cfg.PprofAddr)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	o := &Outcome{Dir: out}
	for i := range cfg.Count {
		dir, final := partial, out
		label := opt.Label
		if cfg.Count > 1 {
			name := fmt.Sprintf("run-%02d", i+1)
			dir, final = filepath.Join(partial, name), filepath.Join(out, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, fmt.Errorf("result directory: %w", err)
			}
			label = strings.TrimSpace(label + " " + name)
		}
		c := cfg
		c.Seed = cfg.Seed + uint64(i)
		s, err := runOnce(ctx, &c, dir, opt, label)
		if err != nil {
			return nil, err
		}
		o.Summaries = append(o.Summaries, s)
		o.RunDirs = append(o.RunDirs, final)
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, fmt.Errorf("move result directory into place: %w", err)
	}
	ok = true
	return o, nil
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

// runOnce runs one repetition into dir.
func runOnce(ctx context.Context, cfg *Config, dir string, opt Options, label string) (*results.Summary, error) {
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

	c, err := startCluster(cfg, logger)
	if err != nil {
		return nil, err
	}
	defer c.close()
	// Sample the nodes' data directories every second until the measured
	// run ends (settle restarts nodes and would blur the peak).
	diskCtx, stopDisk := context.WithCancel(ctx)
	diskDone := make(chan struct{})
	go func() {
		defer close(diskDone)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			c.sampleDisk()
			select {
			case <-diskCtx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	defer func() { stopDisk(); <-diskDone }()
	if _, err := c.waitLeader(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}

	rec := newLatencyRecorder()
	tracker := newAckTracker()
	var history *kv.Recorder
	if cfg.Check {
		history = kv.NewRecorder()
	}
	w := newWorkload(cfg, realClock{}, rec, tracker, history, c.endpoints())
	wctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	tWarm := time.Now()
	t0 := tWarm.Add(cfg.Warmup.D())
	tEnd := t0.Add(cfg.Duration.D())
	loadDone := make(chan error, 1)
	go func() {
		if cfg.Rate > 0 {
			loadDone <- w.openLoop(wctx, tWarm, tEnd)
		} else {
			loadDone <- w.closedLoop(wctx)
		}
	}()

	pr := newProgress(opt.Progress, opt.Live, label, cfg.Duration.D())
	if cfg.Warmup > 0 {
		pr.logf("%s: warming up for %v", label, cfg.Warmup.D())
	}
	if err := (realClock{}).SleepUntil(ctx, t0); err != nil {
		return nil, err
	}
	started := time.Now()
	rec.start(started)
	ictx, stopInject := context.WithCancel(ctx)
	defer stopInject()
	inj := newInjector(c, rec, started)
	injDone := make(chan struct{})
	go func() {
		inj.run(ictx, faultspec.Schedule(cfg.ParsedFaults()))
		close(injDone)
	}()

	// The measured run: roll the interval histogram every second, sample
	// the leader, count leader changes.
	var (
		rows               []results.TimelineRow
		lastLead, lastTerm uint64
		leaderChanges      int
		seenLeader         bool
		sample             = time.NewTicker(5 * time.Millisecond)
		nextRoll           = started.Add(time.Second)
		interrupted        error
	)
	defer sample.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			interrupted = ctx.Err()
			done = true
			continue
		case <-sample.C:
		}
		id, term := c.leader()
		if id != 0 && (id != lastLead || term != lastTerm) {
			if seenLeader {
				leaderChanges++
			}
			seenLeader, lastLead, lastTerm = true, id, term
		}
		curLead := id
		now := time.Now()
		if now.Before(nextRoll) && now.Before(tEnd) {
			continue
		}
		last := !now.Before(tEnd)
		h, errs := rec.roll(now, last)
		lat := results.LatencyOf(h)
		rows = append(rows, results.TimelineRow{Second: len(rows), Ops: h.TotalCount(), Errors: errs,
			P50US: lat.P50, P99US: lat.P99, Leader: curLead, Term: lastTerm})
		span := now.Sub(time.UnixMilli(h.StartTimeMs())).Seconds()
		pr.update(progressState{Elapsed: now.Sub(started), Total: cfg.Duration.D(),
			OpsPerSec: float64(h.TotalCount()) / max(span, 1e-3), P99: time.Duration(lat.P99) * time.Microsecond,
			Leader: curLead, Faults: len(inj.appliedSoFar())})
		nextRoll = nextRoll.Add(time.Second)
		done = last
	}
	measured := time.Since(started)
	stopDisk()
	<-diskDone
	c.sampleDisk()
	stopInject()
	<-injDone
	stopLoad()
	if err := <-loadDone; err != nil {
		pr.done()
		return nil, err
	}
	pr.done()
	prof.stopEarly()
	if interrupted != nil {
		return nil, fmt.Errorf("run interrupted: %w", interrupted)
	}

	s := &results.Summary{
		Started: started.UTC(), DurationSec: measured.Seconds(), WarmupSec: cfg.Warmup.D().Seconds(),
		Errors: rec.errs, LatencyUS: results.LatencyOf(rec.total), LeaderChanges: leaderChanges,
		Reads: rec.reads, Writes: rec.writes, Env: results.CurrentEnv(), LinearizabilityCheck: "off",
	}
	s.Ops = s.Reads + s.Writes
	s.ThroughputOpsPerSec = float64(s.Ops) / measured.Seconds()
	s.ThroughputMBPerSec = s.ThroughputOpsPerSec * float64(cfg.Payload) / 1e6
	s.Faults, s.Failovers, s.Membership = inj.results()
	if peaks := c.diskPeaks(); len(peaks) > 0 {
		s.WALPeakBytesByNode = map[string]int64{}
		for id, b := range peaks {
			s.WALPeakBytesByNode[fmt.Sprint(id)] = b
			s.WALPeakBytes = max(s.WALPeakBytes, b)
		}
	}
	if fc := c.faultCounters(); fc != (fault.Counters{}) {
		s.MessageFaults = map[string]uint64{"dropped": fc.Dropped, "partitioned_send": fc.PartitionedSend,
			"partitioned_recv": fc.PartitionedRecv, "duplicated": fc.Duplicated, "delayed": fc.Delayed, "reordered": fc.Reordered}
	}
	if s.Failovers == nil {
		s.Failovers = []results.Failover{}
	}
	if s.Faults == nil {
		s.Faults = []results.AppliedFault{}
	}
	for i := range rows {
		var evs []string
		for _, f := range s.Faults {
			if int(f.AtMS/1000) == i || (i == len(rows)-1 && int(f.AtMS/1000) > i) {
				evs = append(evs, f.Spec+": "+f.What)
			}
		}
		rows[i].Faults = strings.Join(evs, "; ")
	}

	pr.logf("%s: measured %v; checking replicas", label, measured.Round(time.Millisecond))
	if err := settle(ctx, c, tracker, s); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	s.RefusedNodes = c.dur.refusals()
	s.Problems = append(s.Problems, c.dur.problemList()...)
	if history != nil {
		pr.logf("%s: checking %d operations for linearizability", label, len(history.Operations()))
		if err := checkHistory(history, dir, s); err != nil {
			return nil, err
		}
	}
	if err := prof.finish(); err != nil {
		return nil, err
	}
	if err := results.WriteData(dir, cfg, s, rec.total, rec.intervals, rows); err != nil {
		return nil, err
	}
	run, err := results.Read(dir)
	if err != nil {
		return nil, fmt.Errorf("read back result directory: %w", err)
	}
	if err := report.Write(run); err != nil {
		return nil, err
	}
	return s, nil
}

// settle ends the faults, restarts the stopped members, waits until every
// member (as the leader sees the membership) applied the same index,
// compares their state hashes, stops them and checks every acknowledged
// write against the final state. Removed nodes, and new nodes that never
// became members, are left out.
func settle(ctx context.Context, c *cluster, tracker *ackTracker, s *results.Summary) error {
	c.healAll()
	var problems []error
	if c.cfg.WAL != "memory" {
		for _, id := range c.stopped() {
			if err := c.restart(id); err != nil {
				problems = append(problems, err)
			}
		}
	}
	s.ReplicaHashes = map[string]string{}
	converged := false
	var members []uint64
	deadline := time.Now().Add(30 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		lead, _ := c.leader()
		ln := c.node(lead)
		if ln != nil {
			st := ln.Status()
			commit := st.Commit
			all := st.Role == core.Leader && len(st.Progress) > 0
			members = members[:0]
			for id := range st.Progress {
				if c.dur.isRefused(id) {
					continue // down for good: its WAL was refused (see RefusedNodes)
				}
				members = append(members, id)
				n := c.node(id)
				if n == nil {
					all = false
					continue
				}
				if ns := n.Status(); ns.Applied != commit || ns.Commit != commit {
					all = false
				}
			}
			if all && commit == ln.Status().Commit {
				s.AppliedIndex = commit
				converged = true
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !converged {
		problems = append(problems, errors.New("members did not converge on one applied index within 30s"))
	}
	c.mu.Lock()
	stores := map[uint64]*kv.Store{}
	for _, id := range members {
		if c.nodes[id] != nil {
			stores[id] = c.stores[id]
		}
	}
	c.mu.Unlock()
	// Metrics, then stop: after Stop nothing applies concurrently, so the
	// stores can be read directly.
	peaks := c.diskPeaks()
	for _, n := range c.running() {
		m := n.Metrics()
		s.Elections += m.Elections
		s.Nodes = append(s.Nodes, results.NodeStats{ID: n.ID(), Proposals: m.Proposals, Batches: m.Batches,
			Fsyncs: m.Fsyncs, FsyncMeanUS: float64(m.FsyncMean.Microseconds()), FsyncMaxUS: float64(m.FsyncMax.Microseconds()),
			Elections: m.Elections, LoopSaturation: m.LoopSaturation, Restarts: c.restarts[n.ID()],
			Snapshots: m.Snapshots, Compactions: m.Compactions, WALPeakBytes: peaks[n.ID()]})
	}
	for _, n := range c.running() {
		_ = c.stop(n.ID())
	}
	var ref [32]byte
	agree := converged && len(stores) == len(members)
	first := true
	var ids []uint64
	for id := range stores {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		h := stores[id].Hash()
		s.ReplicaHashes[fmt.Sprint(id)] = hex.EncodeToString(h[:8])
		if first {
			ref, first = h, false
		} else if h != ref {
			agree = false
		}
	}
	s.ReplicasAgree = agree
	if len(ids) == 0 {
		s.AckedOpsFound = false
		return errors.Join(append(problems, errors.New("no replica to check"))...)
	}
	st := stores[ids[0]]
	acked, lost := tracker.verify(func(key string) ([]byte, bool) { return st.Get([]byte(key)) })
	s.AckedWrites, s.LostWrites = acked, int64(len(lost))
	s.AckedOpsFound = len(lost) == 0
	s.LostKeys = lost[:min(len(lost), 10)]
	return errors.Join(problems...)
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

func servePprof(addr string) (func(), error) {
	mux := http.NewServeMux()
	registerPprof(mux)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: --pprof-addr: %v", ErrBadConfig, err)
	}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

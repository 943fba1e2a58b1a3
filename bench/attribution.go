package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
)

// windowProbe is what the measured window's attribution starts from: the
// target's reading (Attributor) and the harness's own process, taken when
// the window opens (openWindow) and differenced when it closes
// (closeWindow).
type windowProbe struct {
	attr   Attributor // nil: the target reports nothing
	inProc bool       // the nodes run in the harness's process
	open   AttributionReading
	self   procstat.Sample
	// begun is when the opening reading began.
	begun time.Time
	// problems are what went wrong reading the target.
	problems []string
}

// openWindow reads the probe at the window's opening: the target first,
// the harness's process last, so that what the target copies is not
// charged to the window (see Attributor).
func openWindow(ctx context.Context, t Target) *windowProbe {
	attr, _ := t.(Attributor)
	return openProbe(ctx, attr, t.Info().Mode == ModeInProcess)
}

// openProbe is openWindow for a target's attr (nil: none), whose nodes
// run in the harness's process when inProc.
func openProbe(ctx context.Context, attr Attributor, inProc bool) *windowProbe {
	w := &windowProbe{attr: attr, inProc: inProc, begun: time.Now()}
	if w.attr != nil {
		r, err := w.attr.ReadAttribution(ctx, WindowOpens)
		if err != nil {
			w.problems = append(w.problems, fmt.Sprintf("attribution at the window's opening: %v", err))
			w.attr = nil
		}
		w.open = r
	}
	w.self = procstat.Read()
	return w
}

// windowCost is what the window cost and where its writes' time went,
// before it is charged to operations (fill).
type windowCost struct {
	// self is the harness's process; measured says whether it is (part
	// of) the system's cost: the nodes run in it, or they run in
	// processes of their own (byNode) and it holds the clients.
	self     procstat.Cost
	measured bool
	byNode   map[uint64]procstat.Cost
	fsyncs   map[uint64]uint64
	stages   *node.StageTimings // nil: no node kept stage timings
	// span is from the start of the opening reading to the end of the
	// closing one: the stage timings count writes answered within it.
	span     time.Duration
	problems []string
}

// closeWindow reads the probe again at the window's close, in
// openWindow's order reversed, and keeps the differences.
func (w *windowProbe) closeWindow(ctx context.Context) *windowCost {
	end := procstat.Read()
	wc := &windowCost{self: procstat.Between(w.self, end), measured: w.inProc, problems: w.problems}
	if w.attr == nil {
		return wc
	}
	r, err := w.attr.ReadAttribution(ctx, WindowCloses)
	wc.span = time.Since(w.begun)
	if err != nil {
		if len(r.Nodes) == 0 {
			wc.problems = append(wc.problems, fmt.Sprintf("attribution at the window's close: %v", err))
			return wc
		}
		// Some nodes answered (one cut off by a link cut still in force,
		// say): charge those, and say the rest are not charged.
		wc.problems = append(wc.problems, fmt.Sprintf("attribution at the window's close, so those nodes are not charged: %v", err))
	}
	wc.fsyncs = map[uint64]uint64{}
	for _, id := range slices.Sorted(maps.Keys(r.Nodes)) {
		now := r.Nodes[id]
		was, same := w.open.Nodes[id]
		same = same && was.Incarnation == now.Incarnation
		st, fsyncs := now.Stages, now.Fsyncs
		if same {
			fsyncs -= was.Fsyncs
			if st != nil && was.Stages != nil {
				if st, err = st.Sub(was.Stages); err != nil {
					wc.problems = append(wc.problems, fmt.Sprintf("node %d's stage timings: %v", id, err))
					st = nil
				}
			}
		}
		wc.fsyncs[id] = fsyncs
		if now.Process != nil {
			if wc.byNode == nil {
				wc.byNode = map[uint64]procstat.Cost{}
			}
			// A node process started in the window counts from its start,
			// where its counters began at zero; its rates are over the
			// whole window, what it added to the system's.
			from := procstat.Sample{At: w.self.At, HasIO: now.Process.HasIO, HasFaults: now.Process.HasFaults}
			if same && was.Process != nil {
				from = *was.Process
			}
			wc.byNode[id] = procstat.Between(from, *now.Process)
		}
		if st == nil {
			continue
		}
		if wc.stages == nil {
			wc.stages = node.NewStageTimings()
		}
		wc.stages.Merge(st)
	}
	if len(wc.byNode) > 0 {
		wc.measured = true
	}
	return wc
}

// fill charges the window to s's operations (its throughput and operation
// counts must be set) and records where the writes' time went.
func (wc *windowCost) fill(s *results.Summary, payload int) {
	// What the attribution could not read makes the cost figures less
	// complete, not the run's verdicts less true: a warning.
	s.Warnings = append(s.Warnings, wc.problems...)
	writesPerSec := 0.0
	if s.Ops > 0 {
		writesPerSec = s.ThroughputOpsPerSec * float64(s.Writes) / float64(s.Ops)
	}
	var allFsyncs uint64
	for _, f := range wc.fsyncs {
		allFsyncs += f
	}
	if wc.measured {
		whole := wc.self
		if len(wc.byNode) > 0 {
			self := results.CostOf(wc.self, 0, s.ThroughputOpsPerSec, writesPerSec, payload)
			s.CostHarness = &self
			s.CostByNode = map[string]results.Cost{}
			for id, pc := range wc.byNode {
				s.CostByNode[fmt.Sprint(id)] = results.CostOf(pc, wc.fsyncs[id], s.ThroughputOpsPerSec, writesPerSec, payload)
				whole = whole.Plus(pc)
			}
		}
		cost := results.CostOf(whole, allFsyncs, s.ThroughputOpsPerSec, writesPerSec, payload)
		s.Cost, s.CPUUSPerOp = &cost, cost.CPUUSPerOp
	}
	if wc.stages == nil {
		return
	}
	s.StagesUS, s.StageDetailUS = map[string]results.StageLatency{}, map[string]results.StageLatency{}
	for st := range node.NumStages {
		t := wc.stages.Stages[st]
		s.StagesUS[st.String()] = results.StageLatencyOf(t.Hist, t.SumNanos)
	}
	total := results.StageLatencyOf(wc.stages.Total.Hist, wc.stages.Total.SumNanos)
	s.StagesTotalUS = &total
	s.StagesWindowSec = wc.span.Seconds()
	for d := range node.NumDetails {
		t := wc.stages.Detail[d]
		s.StageDetailUS[d.String()] = results.StageLatencyOf(t.Hist, t.SumNanos)
	}
}

// hists are the window's stage histograms by file name (results.StagesDir).
func (wc *windowCost) hists() map[string]*hdrhistogram.Histogram {
	if wc.stages == nil {
		return nil
	}
	out := map[string]*hdrhistogram.Histogram{"total": wc.stages.Total.Hist}
	for st := range node.NumStages {
		out[st.String()] = wc.stages.Stages[st].Hist
	}
	for d := range node.NumDetails {
		out[d.String()] = wc.stages.Detail[d].Hist
	}
	return out
}

// attributionFromStats is a node process's NodeAttribution from what its
// admin endpoint's GET /stats answered: what a target of node processes
// returns per node from ReadAttribution (one /stats per running node,
// read at the edge it is asked for). The process's PID and start make the
// incarnation: a restarted node is a new process.
func attributionFromStats(st admin.Stats) NodeAttribution {
	sample := st.Sample
	return NodeAttribution{
		Incarnation: fmt.Sprintf("pid %d started %s", st.Process.PID, st.Process.Started.UTC().Format(time.RFC3339Nano)),
		Stages:      st.Stages, Fsyncs: st.Node.Fsyncs, Process: &sample,
	}
}

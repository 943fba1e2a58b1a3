package bench

import (
	"fmt"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
)

// windowProbe is what the measured window's attribution starts from: the
// process's cost counters and every running node's stage timings and
// fsync count, read when the window opens (openWindow) and differenced
// when it closes (closeWindow).
type windowProbe struct {
	proc  procstat.Sample
	nodes map[uint64]nodeProbe
}

type nodeProbe struct {
	n      *node.Node
	stages *node.StageTimings
	fsyncs uint64
}

// openWindow reads the probe at the window's opening.
func openWindow(c *cluster) *windowProbe {
	// The stage timings first, then the cheap counters and the process
	// last, so that the process's window starts after the copies (tens of
	// milliseconds of histogram cloning under the race detector): what the
	// probe itself costs is not charged to the system measured.
	w := &windowProbe{nodes: map[uint64]nodeProbe{}}
	running := c.running()
	for _, n := range running {
		w.nodes[n.ID()] = nodeProbe{n: n, stages: n.StageTimings()}
	}
	for _, n := range running {
		p := w.nodes[n.ID()]
		p.fsyncs = n.Metrics().Fsyncs
		w.nodes[n.ID()] = p
	}
	w.proc = procstat.Read()
	return w
}

// windowCost is what the window cost and where its writes' time went,
// before it is charged to operations (fill).
type windowCost struct {
	proc     procstat.Cost
	fsyncs   uint64
	stages   *node.StageTimings // nil: no node kept stage timings
	problems []string
}

// closeWindow reads the probe again at the window's close and keeps the
// difference, in openWindow's order reversed: the process and the fsync
// counts first, then the stage timings. A node started (or restarted) in
// the window counts from its start; a node that stopped in the window and
// was not restarted is not counted (what it timed went with it).
func (w *windowProbe) closeWindow(c *cluster) *windowCost {
	end := procstat.Read()
	running := c.running()
	wc := &windowCost{proc: procstat.Between(w.proc, end)}
	fsyncs := make([]uint64, len(running))
	for i, n := range running {
		fsyncs[i] = n.Metrics().Fsyncs
	}
	for i, n := range running {
		st, f := n.StageTimings(), fsyncs[i]
		if was, ok := w.nodes[n.ID()]; ok && was.n == n {
			f -= was.fsyncs
			if st != nil && was.stages != nil {
				var err error
				if st, err = st.Sub(was.stages); err != nil {
					wc.problems = append(wc.problems, fmt.Sprintf("node %d's stage timings: %v", n.ID(), err))
					continue
				}
			}
		}
		wc.fsyncs += f
		if st == nil {
			continue
		}
		if wc.stages == nil {
			wc.stages = node.NewStageTimings()
		}
		wc.stages.Merge(st)
	}
	return wc
}

// fill charges the window to s's operations (its throughput and
// operation counts must be set) and records where the writes' time went.
func (wc *windowCost) fill(s *results.Summary, payload int) {
	writesPerSec := 0.0
	if s.Ops > 0 {
		writesPerSec = s.ThroughputOpsPerSec * float64(s.Writes) / float64(s.Ops)
	}
	cost := results.CostOf(wc.proc, wc.fsyncs, s.ThroughputOpsPerSec, writesPerSec, payload)
	s.Cost, s.CPUUSPerOp = &cost, cost.CPUUSPerOp
	s.Problems = append(s.Problems, wc.problems...)
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

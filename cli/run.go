package cli

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/report"
	"github.com/raftbench/raftbench/bench/results"
)

func newRunCmd() *cobra.Command {
	var set []bench.Assignment
	var verbose bool
	cmd := &cobra.Command{
		Use:   "run [flags]",
		Short: "Run one benchmark and write a result directory",
		Long: `Run starts a cluster, waits for a leader, warms up, drives the workload for
--duration while injecting the --fault schedule, then lifts the faults, checks
that the replicas agree at one applied index and that every acknowledged write
is present on every replica (and, with --check, that the history is
linearizable), and writes a result directory (see results/README.md).

Where the nodes run:
  (default)   every node in this process, on loopback.
  --procs     each node a raftbench node process of its own on this machine,
              started from this executable (or $RAFTBENCH_NODE_BINARY), with
              its own data directory (--dir-template for a device per node),
              driven over the client API; kill9 and pause faults are signals,
              profiles are taken from every node, logs land in DIR/nodes.
              With --netns (Linux, root) each node runs in a network
              namespace of its own, and partitions are real link cuts.
  --cluster   a cluster someone else started (systemd, Kubernetes: see
              deploy/README.md): --cluster 1=HOST:7100,... --admin
              1=HOST:7200,... [--admin-token-file F]; faults go through the
              admin endpoints, process kills stay the orchestrator's, and the
              Raft knobs are the cluster's own.
Every mode writes the same result directory with the same verdicts.

Every flag can also be set in a YAML file given with --config, keyed by the
flag's name (fault takes a list); flags override the file. A run's
config.json is such a file: --config DIR/config.json runs it again.

With --count N the run is repeated N times (seeds --seed, --seed+1, ...) into
DIR/run-01 ... run-NN, and DIR/combined.md and combined.json give the median,
95% confidence interval and range of each headline figure (a 95% interval
needs 6 runs or more).

Ctrl-C stops the load, settles the cluster, checks it and writes the result
directory marked interrupted, with what was measured (exit code 130); a
second Ctrl-C kills the process.

` + faultGrammar,
		Args: exactArgs(0),
	}
	config := addKnobFlags(cmd, &set, nil, bench.Default())
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the nodes' and transports' logs on stderr")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := bench.Merge(*config, set)
		if err != nil {
			return err
		}
		o, err := bench.Run(cmd.Context(), cfg, runOptions(verbose))
		if err != nil {
			return err
		}
		for i, s := range o.Summaries {
			printSummary(cmd.OutOrStdout(), o.RunDirs[i], s)
		}
		if o.Combined != nil {
			fmt.Fprintf(cmd.OutOrStdout(), "\ncombined (%s/%s):\n%s", o.Dir, bench.CombinedMD, o.Combined.Text())
		}
		bad := o.Failed()
		if o.Interrupted {
			if bad != "" {
				bad = "; verdicts failed: " + bad
			}
			return fmt.Errorf("%w: wrote what was measured to %s%s", errInterrupted, o.Dir, bad)
		}
		if bad != "" {
			return fmt.Errorf("verdicts failed: %s", bad)
		}
		return nil
	}
	return cmd
}

// nodeBinaryEnv names the raftbench executable --procs starts its nodes
// from, when it is not this one (a build with other flags, say, or the
// command's own under go test).
const nodeBinaryEnv = "RAFTBENCH_NODE_BINARY"

func runOptions(verbose bool) bench.Options {
	opt := bench.Options{Progress: os.Stderr, Live: bench.IsTerminal(os.Stderr)}
	// --procs runs this very executable as `raftbench node`, unless
	// RAFTBENCH_NODE_BINARY names another build.
	if bin := os.Getenv(nodeBinaryEnv); bin != "" {
		opt.Binary = bin
	} else if bin, err := os.Executable(); err == nil {
		opt.Binary = bin
	}
	if verbose {
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return opt
}

// printSummary prints the end-of-run table.
func printSummary(w io.Writer, dir string, s *results.Summary) {
	fmt.Fprintf(w, "\nresult directory: %s\n", dir)
	if s.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED after %.1f s of the measured window\n", s.DurationSec)
	}
	rows := [][2]string{
		{"throughput", fmt.Sprintf("%.0f ops/s  (%.2f MB/s)", s.ThroughputOpsPerSec, s.ThroughputMBPerSec)},
		{"operations", fmt.Sprintf("%d  (%d writes, %d reads) in %.1f s", s.Ops, s.Writes, s.Reads, s.DurationSec)},
		{"latency p50", report.US(s.LatencyUS.P50)},
		{"latency p90", report.US(s.LatencyUS.P90)},
		{"latency p99", report.US(s.LatencyUS.P99)},
		{"latency p99.9", report.US(s.LatencyUS.P999)},
		{"latency max", report.US(s.LatencyUS.Max)},
		{"errors", report.ErrorsString(s.Errors)},
		{"incomplete ops", fmt.Sprintf("%d  (not completed when the window closed; in the latencies)", s.IncompleteOps)},
		{"leader changes", fmt.Sprint(s.LeaderChanges)},
	}
	for _, f := range s.Failovers {
		rows = append(rows, [2]string{"failover " + f.Fault, fmt.Sprintf("new leader %d after %s, first commit after %s", f.NewLeader, msStr(f.ToLeaderMS), msStr(f.ToCommitMS))})
	}
	for _, m := range s.Membership {
		v := fmt.Sprintf("at %.1f s: in force after %s", m.AtMS/1000, msStr(m.DoneMS))
		if m.Error != "" {
			v = fmt.Sprintf("at %.1f s: failed: %s", m.AtMS/1000, m.Error)
		} else if len(m.Voters) > 0 {
			v += fmt.Sprintf(", voters %v", m.Voters)
		}
		rows = append(rows, [2]string{"membership " + m.Spec, v})
	}
	rows = append(rows, [2]string{"WAL peak", report.WALPeak(s)})
	if c := s.Cost; c != nil {
		whose := "whole process"
		if len(s.CostByNode) > 0 {
			whose = "node processes and harness"
		}
		perOp := fmt.Sprintf("%.1f µs CPU, %.3f fsyncs, %.0f allocations", c.CPUUSPerOp, c.FsyncsPerOp, c.AllocsPerOp)
		if c.PageFaultsMeasured {
			perOp += fmt.Sprintf(", %.3f page faults", c.PageFaultsPerOp)
		}
		rows = append(rows, [2]string{"cost per op", fmt.Sprintf("%s  (%s)", perOp, whose)})
		rows = append(rows, [2]string{"waiting for a CPU", report.SchedWaitString(c.SchedWaitUS)})
	}
	if line := report.StageMeans(s); line != "" {
		rows = append(rows, [2]string{"stages (mean)", line})
	}
	lin := "not checked"
	if s.LinearizabilityCheck != "off" {
		lin = s.LinearizabilityCheck
	}
	agree := fmt.Sprintf("%v  (at applied index %d)", s.ReplicasAgree, s.AppliedIndex)
	acked := fmt.Sprintf("%v  (%d acked, %d lost, on every replica)", s.AckedOpsFound, s.AckedWrites, s.LostWrites)
	if s.ReplicaCheck == bench.ReplicaIncomplete {
		agree, acked = "not compared (harness problem below)", "not checked"
	}
	rows = append(rows,
		[2]string{"linearizable", lin},
		[2]string{"replicas agree", agree},
		[2]string{"acked writes found", acked},
	)
	for _, id := range slices.Sorted(maps.Keys(s.RefusedNodes)) {
		rows = append(rows, [2]string{"node " + id + " refused", s.RefusedNodes[id]})
	}
	for _, p := range s.Problems {
		rows = append(rows, [2]string{"problem", p})
	}
	for _, p := range s.Warnings {
		rows = append(rows, [2]string{"warning", p})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-20s %s\n", r[0], r[1])
	}
}

func msStr(v float64) string {
	if v < 0 {
		return "(none seen)"
	}
	return fmt.Sprintf("%.1f ms", v)
}

func newReportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "report DIR",
		Short: "Rebuild report.md and the plots of a result directory",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, err := results.Read(args[0])
			if err != nil {
				return fmt.Errorf("%w: %s: %v", errUsage, args[0], err)
			}
			if err := report.Write(run); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/%s and %s/%s/\n", args[0], results.ReportFile, args[0], results.PlotsDir)
			return nil
		},
	}
}

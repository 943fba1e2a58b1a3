package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/stats"
)

func newSweepCmd() *cobra.Command {
	var set []bench.Assignment
	var axes []string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "sweep --set KNOB=V1,V2 [--set ...] [run flags]",
		Short: "Run every combination of the swept knobs",
		Long: `Sweep runs every combination of the --set values (each --set names a run flag
and its values), one result directory each under one sweep directory, plus
sweep.md and sweep.csv (one row per combination) and plots: throughput against
each swept knob, and p99 against throughput. Other flags apply to every run.

Example: raftbench sweep --set batch-entries=1,16,64,256 --set payload=128,1024 --duration 5s`,
		Args: exactArgs(0),
	}
	config := addKnobFlags(cmd, &set, nil)
	cmd.Flags().StringArrayVar(&axes, "set", nil, "KNOB=V1,V2,...: a knob to sweep and its values (repeatable)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the nodes' logs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if len(axes) == 0 {
			return fmt.Errorf("%w: sweep needs at least one --set KNOB=V1,V2", errUsage)
		}
		sp := bench.SweepSpec{ConfigPath: *config}
		sp.Flags, sp.Out = splitOut(set)
		for _, a := range axes {
			ax, err := bench.ParseAxis(a)
			if err != nil {
				return err
			}
			sp.Axes = append(sp.Axes, ax)
		}
		dir, pts, err := bench.Sweep(cmd.Context(), sp, runOptions(verbose))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\nsweep directory: %s\n\n%s", dir, bench.SweepTable(sp.Axes, pts))
		return nil
	}
	return cmd
}

// splitOut takes --out out of the flags: sweeps and tunings use it for
// their own directory, not for every run's.
func splitOut(set []bench.Assignment) ([]bench.Assignment, string) {
	var out string
	var rest []bench.Assignment
	for _, a := range set {
		if a.Name == "out" {
			out = a.Value
			continue
		}
		rest = append(rest, a)
	}
	return rest, out
}

func newCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare DIR DIR...",
		Short: "Compare result directories side by side, with deltas and significance",
		Long: `Compare shows the runs' numbers side by side, the first directory being the
base. A directory of repetitions (written by run --count N) is summarised as
its median with a 95% confidence interval, and the change from the base is
tested for significance with the Mann-Whitney U test (as benchstat does).
Single runs get their raw change, without a test.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fmt.Errorf("%w: compare needs at least two directories", errUsage)
			}
			var groups []stats.Group
			for _, d := range args {
				g, err := stats.Load(d)
				if err != nil {
					return fmt.Errorf("%w: %v", errUsage, err)
				}
				groups = append(groups, g)
			}
			fmt.Fprint(cmd.OutOrStdout(), stats.Table(groups))
			return nil
		},
	}
}

func newTuneCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tune", Short: "Recommend batch sizes or election timeouts from measurements"}
	cmd.AddCommand(newTuneBatchCmd(), newTuneElectionCmd())
	return cmd
}

// shortRuns are the defaults tune applies unless the user sets them.
func withDefaults(set []bench.Assignment, defs ...bench.Assignment) []bench.Assignment {
	given := map[string]bool{}
	for _, a := range set {
		given[a.Name] = true
	}
	var out []bench.Assignment
	for _, d := range defs {
		if !given[d.Name] {
			out = append(out, d)
		}
	}
	return append(out, set...)
}

func newTuneBatchCmd() *cobra.Command {
	var set []bench.Assignment
	var slo time.Duration
	var batches, inflights string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "batch [--slo-p99 10ms] [run flags]",
		Short: "Sweep batch size and in-flight window; recommend the fastest setting that meets a p99 SLO",
		Long: `Tune batch sweeps --batch-entries over --batches and --max-inflight over
--inflights (3 s runs after a 1 s warm-up unless --duration/--warmup say
otherwise), and recommends the setting with the highest throughput whose p99
meets --slo-p99, showing the curve (tune.md and plots/ in its directory).`,
		Args: exactArgs(0),
	}
	config := addKnobFlags(cmd, &set, map[string]bool{"batch-entries": true, "max-inflight": true})
	cmd.Flags().DurationVar(&slo, "slo-p99", 10*time.Millisecond, "p99 latency the recommendation must meet")
	cmd.Flags().StringVar(&batches, "batches", "1,16,64,256,1024", "batch-entries values to try")
	cmd.Flags().StringVar(&inflights, "inflights", "1,16,256", "max-inflight values to try")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the nodes' logs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if slo <= 0 {
			return fmt.Errorf("%w: --slo-p99: %v, want a positive duration", bench.ErrBadConfig, slo)
		}
		bs, err := bench.ParseList("batches", batches)
		if err != nil {
			return err
		}
		is, err := bench.ParseList("inflights", inflights)
		if err != nil {
			return err
		}
		sp := bench.SweepSpec{ConfigPath: *config}
		sp.Flags, sp.Out = splitOut(withDefaults(set, bench.Assignment{Name: "duration", Value: "3s"}, bench.Assignment{Name: "warmup", Value: "1s"}))
		t, err := bench.TuneBatch(cmd.Context(), sp, bs, is, slo, runOptions(verbose))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\ntuning directory: %s\n\n%s\n%s\n", t.Dir, bench.SweepTable(t.Axes, t.Points), t.Recommendation())
		return nil
	}
	return cmd
}

func newTuneElectionCmd() *cobra.Command {
	var set []bench.Assignment
	var timeouts, jitter string
	var kills int
	var quiet time.Duration
	var verbose bool
	cmd := &cobra.Command{
		Use:   "election [--timeouts 100ms,300ms,1s] [run flags]",
		Short: "Measure failover and needless elections per election timeout; recommend one",
		Long: `Tune election runs, for each election timeout (heartbeat a tenth of it), one
run that kills the leader --kills times under load (measuring the time to a
new leader and to the first new commit) and one run of --quiet length with
only network delay jitter (--jitter, a delay rule D~J), counting the leader
changes nobody needed. It recommends the smallest timeout with none.`,
		Args: exactArgs(0),
	}
	config := addKnobFlags(cmd, &set, map[string]bool{"election-timeout": true, "heartbeat": true, "tick": true, "duration": true, "fault": true})
	cmd.Flags().StringVar(&timeouts, "timeouts", "100ms,300ms,1s", "election timeouts to try")
	cmd.Flags().IntVar(&kills, "kills", 3, "leader kills per timeout")
	cmd.Flags().StringVar(&jitter, "jitter", "1ms~20ms", "delay rule of the run without kills (D~J: fixed delay D plus jitter up to J)")
	cmd.Flags().DurationVar(&quiet, "quiet", 5*time.Second, "length of the run without kills")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the nodes' logs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ts, err := bench.ParseDurations("timeouts", timeouts)
		if err != nil {
			return err
		}
		es := bench.ElectionSpec{ConfigPath: *config, Timeouts: ts, Kills: kills, Jitter: jitter, Quiet: quiet}
		es.Flags, es.Out = splitOut(withDefaults(set, bench.Assignment{Name: "warmup", Value: "1s"}))
		et, err := bench.TuneElection(cmd.Context(), es, runOptions(verbose))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\ntuning directory: %s\n\n%s\n%s\n", et.Dir, et.ElectionTable(), et.Recommendation())
		return nil
	}
	return cmd
}

package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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

A value given twice on one axis (also as another spelling of it, 4KiB and 4096)
is refused before anything runs. With --count N each point runs N times and
the table shows medians; sweep.md also lists the settings every point shared
and the environment.

Example: raftbench sweep --set batch-entries=1,16,64,256 --set payload=128,1024 --duration 5s`,
		Args: exactArgs(0),
	}
	config := addKnobFlags(cmd, &set, nil, bench.Default())
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
		res, err := bench.Sweep(cmd.Context(), sp, runOptions(verbose))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\nsweep directory: %s\n\n%s", res.Dir, bench.SweepTable(sp.Axes, res.Points))
		if res.Interrupted {
			return fmt.Errorf("%w: wrote the points that ran to %s", errInterrupted, res.Dir)
		}
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
	var force bool
	var format string
	cmd := &cobra.Command{
		Use:   "compare DIR DIR...",
		Short: "Compare result directories side by side, with deltas and significance",
		Long: `Compare shows the runs' numbers side by side, the first directory being the
base. A directory of repetitions (written by run --count N) is summarised as
its median with a 95% confidence interval, and the change from the base is
tested for significance with the Mann-Whitney U test (as benchstat does).
Single runs get their raw change, without a test; a 95% interval needs at
least 6 runs per configuration.

Repetitions are pooled into one sample only when their configurations are the
same (the seed, count, output and profile settings aside): compare refuses a
directory mixing configurations unless --force. It lists the configuration
and environment differences between the directories compared, and marks runs
whose verdicts failed, that were interrupted or had harness problems.`,
	}
	cmd.Flags().BoolVar(&force, "force", false, "pool the runs of a directory into one sample even when their configurations differ")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text (an aligned table), markdown, csv or json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) < 2 {
			return fmt.Errorf("%w: compare needs at least two directories", errUsage)
		}
		if !slices.Contains(stats.Formats, format) && format != "md" {
			return fmt.Errorf("%w: --format %q, want one of %s", errUsage, format, strings.Join(stats.Formats, ", "))
		}
		var groups []stats.Group
		for _, d := range args {
			g, err := stats.Load(d, force)
			if errors.Is(err, stats.ErrMixedConfigs) {
				return err
			}
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			groups = append(groups, g)
		}
		out, err := stats.Compare(groups).Render(format)
		if err != nil {
			return err
		}
		fmt.Fprint(cmd.OutOrStdout(), out)
		return nil
	}
	return cmd
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

// tuneBatchDefaults is the configuration tune batch starts from: short
// runs, each point three times.
func tuneBatchDefaults() bench.Config {
	c := bench.Default()
	c.Duration, c.Warmup, c.Count = bench.Duration(3*time.Second), bench.Duration(time.Second), bench.DefaultTuneCount
	return c
}

// tuneElectionDefaults is the configuration tune election starts from.
func tuneElectionDefaults() bench.Config {
	c := bench.Default()
	c.Warmup = bench.Duration(time.Second)
	return c
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
--inflights, running each point --count times (3 s runs after a 1 s warm-up,
3 times, unless --duration, --warmup or --count say otherwise), and recommends
the setting with the highest median throughput whose median p99 meets
--slo-p99 and whose verdicts held in every run, showing the curve (tune.md and
plots/ in its directory). It says when the winner sits at the edge of the
range tried, where the optimum may lie beyond it.`,
		Args: exactArgs(0),
	}
	config := addKnobFlags(cmd, &set, map[string]bool{"batch-entries": true, "max-inflight": true}, tuneBatchDefaults())
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
		def := tuneBatchDefaults()
		sp.Flags, sp.Out = splitOut(withDefaults(set, bench.Assignment{Name: "duration", Value: def.Duration.D().String()},
			bench.Assignment{Name: "warmup", Value: def.Warmup.D().String()}, bench.Assignment{Name: "count", Value: fmt.Sprint(def.Count)}))
		t, err := bench.TuneBatch(cmd.Context(), sp, bs, is, slo, runOptions(verbose))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\ntuning directory: %s\n\n%s\n%s\n", t.Dir, bench.SweepTable(t.Axes, t.Points), t.Recommendation())
		if t.Interrupted {
			return fmt.Errorf("%w: wrote the points that ran to %s", errInterrupted, t.Dir)
		}
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
	config := addKnobFlags(cmd, &set, map[string]bool{"election-timeout": true, "heartbeat": true, "tick": true, "duration": true, "fault": true}, tuneElectionDefaults())
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
		es.Flags, es.Out = splitOut(withDefaults(set, bench.Assignment{Name: "warmup", Value: tuneElectionDefaults().Warmup.D().String()}))
		et, err := bench.TuneElection(cmd.Context(), es, runOptions(verbose))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\ntuning directory: %s\n\n%s\n%s\n", et.Dir, et.ElectionTable(), et.Recommendation())
		if et.Interrupted {
			return fmt.Errorf("%w: wrote the timeouts measured to %s", errInterrupted, et.Dir)
		}
		return nil
	}
	return cmd
}

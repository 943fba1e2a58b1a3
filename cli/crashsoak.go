package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/crashsoak"
)

const crashSoakLong = `Crash-soak runs a cluster of raftbench node processes on this machine under
closed-loop load through the client API, and round after round SIGKILLs one
node (the leader every other time), a random minority, or every node at once,
restarts them from their directories, and checks: the replicas' state hashes
agree at one applied index, every key each client writes alone holds its last
acknowledged write (read back linearizably), the round's history on shared
keys is linearizable (porcupine), and no node died on its own or refused to
restart. It ends with one line

  crash-soak: R rounds, K kills, A acked, L lost, V violations

and exit code 1 if anything was lost or violated. The nodes' data directories
and logs are kept in --dir when the soak fails (or with --keep).

Every Raft knob of raftbench node is a flag here too and goes to every node.`

func newCrashSoakCmd() *cobra.Command {
	var set []bench.Assignment
	var (
		duration, interval time.Duration
		nodes, clients     int
		dir                string
		keep               bool
	)
	cmd := &cobra.Command{
		Use:   "crash-soak [--duration D] [--nodes N] [flags]",
		Short: "SIGKILL node processes round after round and check that nothing acknowledged is lost",
		Long:  crashSoakLong,
		Args:  exactArgs(0),
	}
	skip := map[string]bool{}
	for _, k := range bench.RunKnobs {
		skip[k] = true
	}
	config := addKnobFlags(cmd, &set, skip, bench.Default())
	fl := cmd.Flags()
	fl.DurationVar(&duration, "duration", 2*time.Minute, "how long rounds keep starting")
	fl.DurationVar(&interval, "interval", 2*time.Second, "mean time the load runs between a round's restart and the next kill")
	fl.IntVar(&nodes, "nodes", 3, "cluster size (3..7)")
	fl.IntVar(&clients, "clients", 8, "closed-loop clients")
	fl.StringVar(&dir, "dir", "", "empty directory for the nodes' data and logs (default: a new temporary one)")
	fl.BoolVar(&keep, "keep", false, "keep --dir even when the soak passes")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		knobs, err := bench.Merge(*config, set)
		if err != nil {
			return err
		}
		if err := knobs.Validate(); err != nil {
			return err
		}
		if knobs.WAL == "memory" {
			return fmt.Errorf("%w: --wal memory: the soak restarts every node from its directory, which a memory WAL does not survive", errUsage)
		}
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("crash-soak: the nodes run this executable: %w", err)
		}
		made := false
		if dir == "" {
			if dir, err = os.MkdirTemp("", "raftbench-crash-soak-"); err != nil {
				return err
			}
			made = true
		}
		cfg := crashsoak.Config{
			Binary: bin, Dir: dir, Nodes: nodes, Duration: duration, Interval: interval, Clients: clients,
			Seed: knobs.Seed, Flags: knobs.NodeFlags(), Out: cmd.OutOrStdout(),
		}
		cfg.EnsureDefaults()
		if err := cfg.Validate(); err != nil {
			if made {
				_ = os.RemoveAll(dir)
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		res, err := crashsoak.Run(cmd.Context(), cfg)
		fmt.Fprintln(cmd.OutOrStdout(), res.Line())
		if err == nil && !res.Failed() && cmd.Context().Err() != nil {
			err = fmt.Errorf("crash-soak: interrupted after %d rounds", res.Rounds)
		}
		if err != nil || res.Failed() {
			fmt.Fprintf(cmd.ErrOrStderr(), "crash-soak: the nodes' directories and logs are in %s\n", dir)
			if err != nil {
				return err
			}
			return fmt.Errorf("crash-soak failed: %d lost, %d violations (the first: %s)", res.Lost, len(res.Violations), res.Violations[0])
		}
		if made && !keep {
			_ = os.RemoveAll(dir)
		}
		return nil
	}
	return cmd
}

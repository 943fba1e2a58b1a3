// Package cli is raftbench's command line: run, sweep, compare, tune,
// report, node, crash-soak. cmd/raftbench is a thin main over it (Main);
// another module's binary reuses it whole, with systems of its own
// registered (bench.RegisterSystem) and commands of its own added
// (Options.Commands), as peers/cmd/raftbench-peers does.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/bench/stats"
)

// Exit codes.
const (
	exitFailed      = 1   // the run failed, or a verdict did
	exitBadInput    = 2   // a bad flag, config key or value, fault spec or output directory
	exitInterrupted = 130 // interrupted (128 + SIGINT); what was measured was written
)

// errInterrupted marks a command cut short by Ctrl-C (exit code 130).
var errInterrupted = errors.New("interrupted")

// errUsage marks errors in how the command was called (exit code 2).
var errUsage = errors.New("usage")

// Options shape a binary's command line.
type Options struct {
	// Name is the binary's name, in help and before every error
	// (default "raftbench").
	Name string
	// Commands are added to the standard ones.
	Commands []*cobra.Command
}

// Run is what a binary's main does: it runs the command line
// (os.Args[1:]) until the end, with the first Ctrl-C (or SIGTERM) stopping
// a run's load so it settles and writes what it measured, and a second
// one killing the process; then it exits with Main's code.
func Run(opt Options) {
	applyGCPercent()
	applyProcs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := Main(ctx, opt, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// DefaultGCPercent is the garbage collector's target (GOGC) the binary runs
// with unless the GOGC environment variable sets one. The live heap of a
// run is small (tens of MB: Pebble's memtables are outside it), so at Go's
// default of 100 the collector ran 12 times a second at 256 clients and its
// marking and assists were 8% of the CPU. Measured with `raftbench run
// --clients 256 --duration 6s --warmup 2s`, GOGC=100 and GOGC=400 rounds
// interleaved ABBA, 4 pairs: 400 used 5–20% less CPU per operation in
// every pair (median ratio 0.92); GOGC=100 ran 76 collections in the
// window and peaked at 255 MB RSS, 400 ran 19 and peaked at 290 MB; 200
// and 800 were within the machine's drift of 400 over 3 rounds (40 and 9
// collections). The value in force is recorded in summary.json
// (env.gc_percent). A process that holds much more live data (large
// payloads, many keys) trades more memory for it: the heap may grow to
// five times the live data; GOGC=100 restores Go's default.
const DefaultGCPercent = 400

// applyGCPercent sets DefaultGCPercent unless GOGC is set.
func applyGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// DefaultProcsPerCPU is how many Go processors (GOMAXPROCS) the binary
// runs per CPU the runtime would use by default (runtime.GOMAXPROCS(0) at
// start: the CPUs, or the container's CPU limit), unless the GOMAXPROCS
// environment variable sets the number.
//
// Why more than one: a goroutine in a blocking system call keeps its
// processor until the runtime's monitor takes it back, and an fdatasync
// takes 0.2–0.5 ms. In a run of three nodes the WAL and marker syncs of
// the nodes overlap, so with one processor per CPU the ready goroutines —
// clients to be answered, the loops that would start the next batch —
// waited for a processor while the CPUs were not all busy. An execution
// trace of `raftbench run --clients 256 --duration 3s --warmup 2s --trace
// trace.out` on 2 CPUs had goroutines ready and none running for 16% of
// the trace, nearly always with two or more in system calls, and a ready
// goroutine waited 0.43 ms on average (p90 1.15 ms) before it ran; with
// two processors per CPU the same trace had 5% and 0.30 ms (p90 0.84 ms).
//
// Measured with `raftbench run --clients C --duration 8s --warmup 2s`
// (at 1 client `--duration 6s --warmup 1s`), GOMAXPROCS 4 and 2
// interleaved ABBA on a 2-CPU machine, every round listed:
//
//	clients  2 per CPU: ops/s      p99.9 ms         1 per CPU: ops/s     p99.9 ms
//	1        2101, 2134            1.6, 1.8         1784, 1726           1.7, 2.2
//	64       37.9k, 36.3k          12.1, 9.4        29.2k, 29.7k         11.3, 11.5
//	256      98.4k, 97.6k, 90.6k   12.5, 12.8, 11.5 89.3k, 89.1k, 58.1k  16.2, 21.8, 37.3
//	1024     143.9k, 134.6k        29.2, 32.1       127.7k, 113.1k       52.1, 49.8
//
// At 1 client p50 was 455 and 448 µs against 536 and 555 µs. The cost is
// CPU: spinning processors look for work on CPUs the syncing threads also
// need, so CPU per operation rose in 8 of the 9 pairs, by up to 25% (at
// 256 clients 15.8, 16.0 and 16.6 µs against 13.3, 12.8 and 16.9 µs; at
// 1024 clients 11.9 and 12.3 against 10.3 and 11.5). Three processors on
// two CPUs were no better and swung more (16.1k and 31.6k ops/s at 64
// clients). Two pairs do not settle whether it moves the peers run by this
// binary: `bin/raftbench-peers run --system dragonboat --clients 256
// --duration 10s --warmup 2s`, GOMAXPROCS 4 then 2, twice, read 48.9k
// against 49.7k and 74.3k against 45.0k ops/s. The value in force is recorded in summary.json
// (env.gomaxprocs); GOMAXPROCS=N in the environment sets any other (Go's
// own default is one per CPU). Setting it turns off the runtime's
// tracking of a container's CPU limit after start.
const DefaultProcsPerCPU = 2

// applyProcs sets DefaultProcsPerCPU processors per CPU unless GOMAXPROCS
// names a number the runtime took (a positive integer; it ignores any
// other value, and so does this).
func applyProcs() {
	// As the runtime reads it: decimal digits (no sign) that fit an int32.
	v := os.Getenv("GOMAXPROCS")
	if n, err := strconv.ParseInt(v, 10, 32); err != nil || n <= 0 || v[0] == '+' {
		runtime.GOMAXPROCS(DefaultProcsPerCPU * runtime.GOMAXPROCS(0))
	}
}

// realMain is Main of the raftbench binary.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Main(ctx, Options{}, args, stdout, stderr)
}

// Main runs the command line args and returns the exit code: 0, or
// exitFailed, or exitBadInput (2: a bad flag, config value, fault or
// directory) with a one-line error on stderr, or exitInterrupted.
func Main(ctx context.Context, opt Options, args []string, stdout, stderr io.Writer) int {
	if opt.Name == "" {
		opt.Name = "raftbench"
	}
	root := newRoot(opt.Name)
	root.AddCommand(opt.Commands...)
	root.SetArgs(joinProfileArgs(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintln(stderr, opt.Name+":", msg)
	switch {
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, bench.ErrBadConfig) || errors.Is(err, errUsage) || errors.Is(err, stats.ErrMixedConfigs) || isCobraUsage(err):
		return exitBadInput
	}
	return exitFailed
}

// joinProfileArgs rewrites "--cpuprofile FILE" as "--cpuprofile=FILE" for
// every profile flag, so both spellings work: a profile flag alone takes
// its default file name (pflag would otherwise read FILE as an argument,
// since the value is optional). The commands that take profile flags take
// no arguments, so a word after one can only be its file. Everything after
// "--" is left alone.
func joinProfileArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if _, ok := bench.ProfileDefaults[strings.TrimPrefix(a, "--")]; ok && strings.HasPrefix(a, "--") &&
			i+1 < len(args) && args[i+1] != "" && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// isCobraUsage recognises cobra's and pflag's own parse errors (unknown
// flag, bad value, wrong argument count), which have no sentinel.
func isCobraUsage(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

// flagError wraps the errors cobra reports while parsing flags.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func newRoot(name string) *cobra.Command {
	root := &cobra.Command{
		Use:   name,
		Short: "Benchmark raftbench's Raft: runs, sweeps, comparisons, tuning",
		Long: `raftbench starts a Raft cluster (in this process by default, its nodes on real
TCP or QUIC on loopback, each with its own WAL; with run --procs each node a
process of its own, optionally in a network namespace; with run --cluster a
cluster someone else runs), drives a key-value workload, injects faults on a
schedule, checks the outcome, and writes a result directory (see
results/README.md). raftbench node serves one node; raftbench-peers (make
build-peers) is this command with etcd, hashicorp/raft and dragonboat as
--system.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       results.Version(),
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unknown command %q (see %s help)", errUsage, args[0], name)
			}
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	root.SetVersionTemplate(name + " {{.Version}}\n")
	root.AddCommand(newRunCmd(), newSweepCmd(), newCompareCmd(), newTuneCmd(), newReportCmd(), newNodeCmd(), newCrashSoakCmd(), faultsHelp())
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, cmd.Name(), n, len(args))
		}
		return nil
	}
}

func faultsHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "faults",
		Short: "The fault grammar of --fault",
		Long:  faultGrammar,
	}
}

const faultGrammar = `A fault is NAME[:NODE][=VALUE][@AT[+FOR]]. AT is when it starts, counted from
the end of the warm-up; FOR is how long it lasts before it is undone (a killed
node restarts, a partition heals, a rule is lifted). Events need @AT; rules
without @AT hold for the whole measured run. --fault is repeatable.

Events:
  kill-leader@AT[+FOR]       stop the current leader (restart it after FOR)
  kill:N@AT[+FOR]            stop node N
  restart[:N]@AT             start node N again (without N: every stopped node)
  partition-leader@AT[+FOR]  cut the current leader off from every other node
  isolate:N@AT[+FOR]         cut node N off from every other node
  heal@AT                    remove every partition
Durability events (the node comes back at once, or after FOR):
  crash-leader@AT[+FOR]      crash the current leader: everything it has not
                             synced is lost, and it restarts from what remains
  crash:N@AT[+FOR]           crash node N
  bitflip-wal:N@AT[+FOR]     stop node N, flip one random bit of its live
                             Pebble WAL file, restart it
  truncate-wal:N@AT[+FOR]    stop node N, cut its live WAL file at a random
                             length, restart it
Membership events (one at a time, in schedule order; each is retried against
whoever leads until it is in force, for up to 30 s):
  add-node@AT                start a new, empty node that joins as a learner,
                             add it, and promote it to voter once caught up
  remove:N@AT                remove node N from the membership, then stop it
  remove-leader@AT           hand leadership to the most caught-up follower,
                             remove the old leader and stop it (the time to
                             the new leader is reported as a failover)
  replace:N@AT               stop node N, start a new node, and swap them in
                             one joint change (add the new voter, remove N);
                             the new node catches up by snapshot once the log
                             has been compacted past its start
New nodes take the IDs after the initial ones in schedule order (with
--nodes 3 the first add-node or replace starts node 4, the next node 5), so
later faults may name them: --fault add-node@2s --fault kill:4@5s+2s.
Rules (on node N's outgoing messages with :N, else on every node's):
  loss=P                     drop each message with probability P (0..1)
  dup=P                      send each message twice with probability P
  reorder=P                  hold each message back a little with probability P
  delay=D[~J]                delay each message by D plus a uniform jitter in [0,J)
  slow-disk=D                sleep D in every WAL save (node N's, or every node's)
Process events (--procs only: each node is a process of its own):
  kill9-leader@AT[+FOR]      SIGKILL the current leader's process (restart it
                             from its directory after FOR, or at the end)
  kill9:N@AT[+FOR]           SIGKILL node N's process
  pause-leader@AT+FOR        SIGSTOP the current leader's process, SIGCONT
                             after FOR
  pause:N@AT+FOR             SIGSTOP node N's process
Under --procs a kill is SIGTERM (a clean stop), crash and the WAL damages
stay in-process (kill9 is a node process's crash), and membership events
are refused. Under --cluster the processes are the orchestrator's: kill,
kill9, pause and restart are refused with how to do them there; partitions,
rules and slow disks go through the nodes' admin endpoints.

Examples:
  --fault kill-leader@5s --fault restart@8s
  --fault kill:2@5s+3s  --fault partition-leader@10s+3s  --fault isolate:3@4s+2s
  --fault loss=0.05 --fault delay=2ms~1ms --fault dup=0.01 --fault reorder=0.1
  --fault slow-disk=5ms@3s+4s
  --fault add-node@2s --fault remove-leader@5s --fault replace:1@8s
  --fault crash-leader@2s --fault crash:2@4s --check
  --fault truncate-wal:2@3s --fault remove:2@4s --fault add-node@5s
  --procs --fault kill9-leader@3s --fault pause:2@5s+2s --check

A kill is a graceful node.Stop (saves already queued complete); a restart
starts a new node on the same WAL directory and address, so --wal memory
refuses faults that restart. The end of isolate:N or partition-leader
reconnects only the node it cut off; heal@AT removes every partition.
Removed nodes are never restarted, and a kill, isolate or restart that
names one is reported as an error. Clients know every node ID the schedule
can create and are redirected to the leader by IDs not (or no longer) in
the cluster. At the end of the run every fault is lifted and every stopped
member restarted; then the current members (as the leader sees them) must
agree, and every acknowledged write must be in their state.

A crash is the in-process equivalent of Jepsen's lazyfs: it needs a
filesystem that knows what was synced, so a run whose faults include a
crash uses --wal crashable (Pebble on an in-memory filesystem per node,
snapshot images still on disk) instead of --wal pebble; config.json records
it as "wal": "crashable", and the numbers are those of a WAL in memory,
with no real fsync. The crash keeps exactly what the node had synced,
drops every message it sends and withholds every answer it gives from the
crash on, and restarts it on that image; it must reopen holding every
entry it reported durable, or the run lists a problem. bitflip-wal and
truncate-wal work on either Pebble WAL. A node that refuses its damaged
WAL (wal.ErrCorrupt) stays down: summary.json lists it under
refused_nodes, and the verdicts cover the members that run; a node that
starts must have lost nothing, or the run lists a problem. README.md says
how an operator replaces such a node (remove:N, then add-node).`

// addKnobFlags adds a flag per knob (but those in skip) to cmd, recording
// each occurrence in set; help shows each flag's type and its default in
// def, the configuration the command really starts from.
func addKnobFlags(cmd *cobra.Command, set *[]bench.Assignment, skip map[string]bool, def bench.Config) *string {
	for i := range bench.Knobs {
		k := &bench.Knobs[i]
		if skip[k.Name] {
			continue
		}
		usage := k.Usage
		if d := k.Show(&def); d != "" && d != "0" && d != "false" && !k.Repeat {
			usage += fmt.Sprintf(" (default %s)", d)
		}
		f := cmd.Flags().VarPF(&knobValue{name: k.Name, set: set, typ: typeOf(k)}, k.Name, "", usage)
		if k.Bool {
			f.NoOptDefVal = "true"
		}
		if p, ok := bench.ProfileDefaults[k.Name]; ok {
			f.NoOptDefVal = p
		}
	}
	var config string
	cmd.Flags().StringVar(&config, "config", "", "YAML file of settings (keys are these flags' names; a run's config.json is one); flags override it")
	return &config
}

// typeOf names a knob's value type in help.
func typeOf(k *bench.Knob) string {
	switch {
	case k.Bool:
		return "bool"
	case bench.IsProfileKnob(k.Name):
		return "file"
	case k.Kind == "string" && strings.HasSuffix(k.Name, "-addr"):
		return "host:port"
	case k.Kind == "string" && (k.Name == "out" || k.Name == "dir"):
		return "dir"
	case k.Kind != "":
		return k.Kind
	default:
		return "value"
	}
}

// knobValue records each occurrence of a knob flag, in order; the values
// are parsed by bench.Merge after the config file.
type knobValue struct {
	name string
	typ  string
	set  *[]bench.Assignment
	last string
}

func (v *knobValue) String() string { return v.last }
func (v *knobValue) Type() string   { return v.typ }
func (v *knobValue) Set(s string) error {
	v.last = s
	*v.set = append(*v.set, bench.Assignment{Name: v.name, Value: s})
	return nil
}

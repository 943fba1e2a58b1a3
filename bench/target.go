package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
	"github.com/raftbench/raftbench/transport/fault"
)

// Target is the system a run drives: a Raft cluster running the kv state
// machine (kv.Store), reached by the workload through kv.Endpoints, faulted
// on the schedule, and checked at the end. The harness drives three kinds
// of its own — raftbench nodes in this process, `raftbench node` processes
// it supervises (--procs), a cluster someone else started (--cluster) — and
// any System registered by another module (RegisterSystem), which is how
// other Raft libraries run under the same workload, faults, result
// directory and verdicts.
//
// A run's verdicts are exactly as good as the target's answers, so what
// each method guarantees is part of what a verdict means:
//
//   - Endpoints are the only way load reaches the cluster, and each follows
//     its node across stops and restarts (see Group.Endpoints).
//   - Leadership polls (Group.Leader, Group.MaxTerm) neither block nor
//     allocate: the harness samples them every 5 ms through the measured
//     window and every millisecond while timing a failover, and a poll
//     that took locks shared with the load, or fed the garbage collector,
//     would slow the run it measures.
//   - Quiescence (Group.Quiescent) is a fact about the whole group at one
//     moment: nothing queued, nothing uncommitted, every member applied the
//     same index. The harness requires it on two consecutive polls.
//   - Replica states (Group.ReplicaState) are read from each replica's own
//     state machine at exactly one applied index, never through the
//     leader, so the harness compares the replicas themselves and checks
//     every acknowledged write on every one of them. A state that has moved
//     past the index is an error, never a silently newer image.
//   - A fault the target cannot inject is refused by CheckFault before the
//     run starts, with an error naming the target and the fault (see
//     UnsupportedFault); the capability interfaces below (Stopper, Killer,
//     Pauser, Partitioner, MessageFaulter, DiskSlower, Crasher, Membership)
//     are how the injector reaches the faults CheckFault accepts.
//
// The harness calls a Target from several goroutines at once (the load's,
// the fault schedule's, the sampler's): every method must be safe for
// concurrent use. It calls Close exactly once, after the end-of-run checks
// or on any failure.
type Target interface {
	// Info describes the target; it is written to summary.json and named
	// in messages.
	Info() TargetInfo
	// Group returns Raft group g, 0 <= g < Info().Groups.
	Group(g int) Group
	// CheckFault reports nil when the target can inject f, or an error
	// (UnsupportedFault) naming the target and the fault, and saying what
	// to do instead when there is something: run it in another mode, or
	// have the orchestrator do it. The harness asks before the load starts,
	// for every fault of the schedule.
	CheckFault(f faultspec.Fault) error
	// Running reports whether node id runs now (a paused process counts
	// as running; a node that was stopped, killed, crashed or removed does
	// not).
	Running(id uint64) bool
	// Stopped lists the nodes the end of the run must bring back: stopped
	// or killed, not removed from the membership, and not down for good (a
	// node that refused a damaged log), in ID order.
	Stopped() []uint64
	// Restart starts stopped node id again from its data, on the same
	// address, with the message faults and slow disk that were set for it
	// still in force. The harness restarts nodes as faults end and, once
	// the load has stopped, every node Stopped lists.
	Restart(ctx context.Context, id uint64) error
	// Heal lifts every fault in force — partitions, message faults, slow
	// disks — and resumes paused nodes. The harness calls it when the load
	// has stopped, before the checks.
	Heal(ctx context.Context) error
	// NodeStats reports each running node's counters after the checks
	// (proposals, batches, fsyncs, elections, restarts; for node processes
	// also their CPU time and memory), in ID order.
	NodeStats(ctx context.Context) []results.NodeStats
	// Close stops every node the target started and releases everything it
	// made (processes, network namespaces, directories it created); for a
	// cluster someone else runs, it lifts the faults it set and closes its
	// connections.
	Close() error
}

// TargetInfo describes a target.
type TargetInfo struct {
	// Mode is how the nodes run: ModeInProcess, ModeProcs or ModeCluster.
	Mode string
	// System is the Raft implementation ("raftbench", or a registered
	// System's name); Version its version ("" when unknown).
	System, Version string
	// Nodes are the initial nodes' IDs, in order.
	Nodes []uint64
	// Groups is the number of Raft groups (1 for every target but a
	// multi-group system's).
	Groups int
	// Where says in one line where the nodes run, for the progress log
	// ("3 raftbench node processes on loopback, logs in DIR/nodes").
	Where string
	// NodeKnobs, with --cluster, are the node knobs (NodeKnobs) every node
	// reported running with, by name; the run records them in config.json
	// instead of its own, which it never gave the nodes. Nil when some
	// node reported none.
	NodeKnobs map[string]string
}

// Modes (TargetInfo.Mode, summary.json's mode).
const (
	// ModeInProcess: every node runs in the harness's process.
	ModeInProcess = "in-process"
	// ModeProcs: each node is a `raftbench node` process the harness
	// started on this machine (--procs).
	ModeProcs = "procs"
	// ModeCluster: the nodes run somewhere else, started by someone else
	// (--cluster).
	ModeCluster = "cluster"
)

// Group is one Raft group of a Target: its endpoints, its leadership, and
// its replicas' states.
type Group interface {
	// Endpoints are the group's nodes as kv.Client endpoints, one per node
	// ID the run may see (including nodes the schedule adds later), in ID
	// order. Each follows its node across stops, kills and restarts; while
	// its node is down a call fails at once with node.ErrStopped or an
	// error wrapping kv.ErrNotSent, a node not yet started or removed
	// answers *node.NotLeaderError, and an answer the node gave but whose
	// effect a crash may have lost is withheld (node.ErrStopped). kv.Client
	// treats every other error as the node's own answer.
	Endpoints() []kv.Endpoint
	// Leader returns the node that says it leads in the highest term, and
	// that term; 0, 0 when none does (or none is known yet). It must not
	// block or allocate (see Target): a target that learns leadership
	// remotely polls in the background and answers from what it last saw.
	Leader() (id, term uint64)
	// MaxTerm is the highest term any running node was last seen in. Like
	// Leader it must not block or allocate.
	MaxTerm() uint64
	// WaitLeader waits, for at most timeout, until a node leads and every
	// running node it can see follows it, and returns the leader.
	WaitLeader(ctx context.Context, timeout time.Duration) (uint64, error)
	// Quiescent checks once whether the group is quiescent and returns
	// where it is: the leader, its term, its commit index and the members
	// as the leader sees them. It is quiescent when the leader holds no
	// queued proposals and its last log index is its commit index (nothing
	// more is on its way), no running node holds queued proposals, and
	// every member runs and has applied exactly that commit index. When it
	// is not, why says what is still moving ("member 3 applied 812 of
	// 815"). Members that are down for good (a refused log) are left out of
	// Members, and reported by the target's own durability checks.
	Quiescent(ctx context.Context) (q Quiescence, why string)
	// ReplicaState reads member id's state machine at exactly index: the
	// kv.Store image (kv.Store.Snapshot's encoding) holding every command
	// up to index and none after. It reads the replica's own state (not the
	// leader's, and not a read through Raft). When the state holds a
	// command after index it fails with an error wrapping ErrStateMoved;
	// when the replica has not applied index yet, ErrStateBehind.
	ReplicaState(ctx context.Context, id, index uint64) (ReplicaState, error)
}

// Quiescence is where a quiescent group stands.
type Quiescence struct {
	Leader, Term, Index uint64
	// Members are the voters and learners the leader tracks, in order.
	Members []uint64
}

// ReplicaState is one replica's state at one index.
type ReplicaState struct {
	ID uint64
	// Index is the index the state is exactly at; Applied the replica's
	// applied index when it was read (at least Index; past it only by
	// entries that are not commands, such as a leader's empty entry).
	Index, Applied uint64
	// Image is the state machine's state (kv.Store.Snapshot's encoding).
	Image []byte
}

// Errors of Group.ReplicaState.
var (
	// ErrStateMoved: the replica's state holds a command after the index
	// asked for; the state cannot go back.
	ErrStateMoved = errors.New("bench: replica state moved past the index")
	// ErrStateBehind: the replica has not applied the index yet.
	ErrStateBehind = errors.New("bench: replica has not applied the index")
)

// The capability interfaces: what the fault injector needs of a target for
// each kind of fault. A target implements those of the faults its
// CheckFault accepts; the harness refuses a fault whose interface is
// missing even if CheckFault let it through.

// Stopper stops nodes gracefully (kill:N, kill-leader): saves already
// queued complete, the rest is lost with the node.
type Stopper interface {
	Stop(ctx context.Context, id uint64) error
}

// Killer kills nodes' processes without warning (kill9:N, kill9-leader):
// SIGKILL, so whatever the node wrote but did not fsync may be gone.
type Killer interface {
	Kill9(ctx context.Context, id uint64) error
}

// Pauser freezes and thaws nodes (pause:N, pause-leader): SIGSTOP and
// SIGCONT, the process keeping its sockets and state.
type Pauser interface {
	Pause(ctx context.Context, id uint64) error
	Resume(ctx context.Context, id uint64) error
}

// Partitioner cuts nodes off from their peers (isolate:N,
// partition-leader, heal). Isolate cuts node id off from every other node
// of the cluster, both ways, until Unisolate of id or HealNetwork; clients
// still reach it. Each isolation is independent: Unisolate of one node
// leaves another's in force. A node restarted while isolated stays
// isolated.
type Partitioner interface {
	Isolate(ctx context.Context, id uint64) error
	Unisolate(ctx context.Context, id uint64) error
	HealNetwork(ctx context.Context) error
}

// MessageFaulter sets the message faults on node id's outgoing messages
// (loss, dup, reorder, delay); the zero Rules lift them. They stay in force
// across the node's restarts.
type MessageFaulter interface {
	SetRules(ctx context.Context, id uint64, r fault.Rules) error
}

// DiskSlower makes node id's every log save sleep d first (slow-disk; 0
// lifts it). It stays in force across the node's restarts.
type DiskSlower interface {
	SetDiskDelay(ctx context.Context, id uint64, d time.Duration) error
}

// Crasher injects the durability faults (crash:N, crash-leader,
// bitflip-wal:N, truncate-wal:N) and reports what they showed.
type Crasher interface {
	// Crash crashes running node id: from this instant nothing it does
	// counts (answers in flight are withheld, messages dropped), and its
	// log keeps exactly what it had synced. It returns the last log index
	// the node had reported durable, which the log must still hold when it
	// restarts (Restart checks, and DurabilityReport says when not).
	Crash(ctx context.Context, id uint64, spec string) (durable uint64, err error)
	// DamageWAL damages the log of stopped node id, kind BitflipWAL or
	// TruncateWAL, choosing where from rng, and says what it did.
	DamageWAL(ctx context.Context, id uint64, kind faultspec.Kind, spec string, rng *rand.Rand) (what string, err error)
	// Refused reports whether node id refused to start on its log
	// (corrupt), and so stays down.
	Refused(id uint64) bool
	// DurabilityReport lists the nodes that refused their logs (by ID)
	// and the durability failures seen: a log silently shorter than it
	// must be, a crash that left a log that does not open.
	DurabilityReport() (refused map[string]string, problems []string)
}

// Membership changes the membership (add-node, remove:N, remove-leader,
// replace:N). Changes go to the current leader; the node's errors come
// back unchanged, and the harness retries those a membership change meets
// while the cluster moves (core.ErrConfChangePending, node.ErrNotLeader,
// node.ErrLeadershipLost, node.ErrTimeout, node.ErrStopped).
type Membership interface {
	// Members returns the voters and learners as the current leader sees
	// them, waiting up to timeout for a leader.
	Members(ctx context.Context, timeout time.Duration) (voters, learners []uint64, err error)
	// StartNode starts the next new node (IDs after the initial ones, in
	// order), empty, as a learner joining the cluster, and returns its ID
	// and Raft address; the leader must then add it.
	StartNode(ctx context.Context) (id uint64, addr string, err error)
	// ChangeMembers runs one change on the current leader.
	ChangeMembers(ctx context.Context, c MemberChange) error
	// HandOff hands leadership from leader to the running voter whose log
	// matches most of the leader's, and returns it.
	HandOff(ctx context.Context, leader uint64) (to uint64, err error)
	// LeaderCommit is the current leader's commit index.
	LeaderCommit(ctx context.Context) (uint64, error)
	// NodeLog returns running node id's applied index and the first index
	// of its log (past 1: it was brought up by a snapshot); ok is false
	// when it does not run.
	NodeLog(ctx context.Context, id uint64) (applied, first uint64, ok bool)
	// MarkRemoved records that id left the membership: it is not
	// restarted, compared or counted any more, and its endpoint redirects.
	MarkRemoved(id uint64)
}

// MemberChange is one membership change.
type MemberChange struct {
	Op MemberOp
	// ID is the node added, promoted or removed; with Replace, the new
	// voter.
	ID uint64
	// Addr is the added node's Raft address (AddLearner, Replace).
	Addr string
	// Old is the node Replace removes, in the same joint change that adds
	// ID.
	Old uint64
}

// MemberOp names a membership change.
type MemberOp int

// Membership changes.
const (
	AddLearner MemberOp = iota + 1
	Promote
	RemoveMember
	Replace
)

// The optional reports: a target that implements them adds what they say
// to the result directory.

// FaultCounter sums what the message fault injectors did.
type FaultCounter interface {
	FaultCounters() fault.Counters
}

// FaultCountGapper names the nodes whose counts the last FaultCounters
// could not include in full (a node process restarted, or down at the
// end), making them a lower bound.
type FaultCountGapper interface {
	FaultCountGaps() []uint64
}

// DiskSampler measures the nodes' data directories; the harness samples
// every second of the measured window.
type DiskSampler interface {
	SampleDisk()
	DiskPeaks() map[uint64]int64
}

// Profiler takes the profiles a run asks for (--cpuprofile, ...) from the
// nodes themselves, when they do not run in the harness's process: Start
// begins the windowed ones (CPU profile, trace) for window, Finish takes
// the instant ones (heap, mutex, block) and waits for the windowed ones;
// every file goes into dir, named node<ID>-<the file asked for>, and
// Finish returns the files written.
type Profiler interface {
	StartProfiles(ctx context.Context, cfg *Config, dir string, window time.Duration) error
	FinishProfiles(ctx context.Context) ([]string, error)
}

// ProblemReporter reports what went wrong in the target during the run
// that the verdicts do not show (a node process that died on its own);
// each becomes a line of summary.json's problems.
type ProblemReporter interface {
	Problems() []string
}

// ErrUnsupportedFault is wrapped by UnsupportedFault's errors. They also
// match ErrBadConfig: the run was asked for something its target cannot
// do.
var ErrUnsupportedFault = errors.New("fault not supported")

// UnsupportedFault is the error CheckFault returns for fault spec on
// target, with what to do instead (hint, "" when nothing).
func UnsupportedFault(target, spec, hint string) error {
	msg := fmt.Sprintf("%s: %s cannot inject it", spec, target)
	if hint != "" {
		msg += ": " + hint
	}
	return &unsupportedError{msg: msg}
}

type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

func (e *unsupportedError) Is(target error) bool {
	return target == ErrUnsupportedFault || target == ErrBadConfig
}

// Env is what a System gets to start a target with.
type Env struct {
	// Dir is the repetition's result directory: node logs and profiles go
	// here (nothing large: data directories go under Config.Dir).
	Dir string
	// Logger receives the nodes' and transports' logs (discarding, unless
	// the run is verbose).
	Logger *slog.Logger
	// Binary is the raftbench executable `raftbench node` processes run
	// (--procs).
	Binary string
	// Logf prints one progress line.
	Logf func(format string, args ...any)
}

// System is a Raft implementation the harness can run. raftbench itself is
// one ("raftbench"); another module registers its own (RegisterSystem) to
// run another library under the same workload, faults and verdicts: the
// main module never imports it.
type System struct {
	// Name is what --system selects.
	Name string
	// Doc is one line for --help.
	Doc string
	// Check reports, before anything starts, every knob of cfg the system
	// cannot honour (as errors wrapping ErrBadConfig naming the flag and
	// the system). nil accepts everything.
	Check func(cfg *Config) error
	// Start starts a cluster for one repetition of cfg (validated) and
	// returns it; the harness waits for a leader itself.
	Start func(ctx context.Context, cfg *Config, env Env) (Target, error)
}

// Attributor is the optional capability behind latency attribution and
// the cost per operation (summary.json's stages_us, stage_detail_us,
// cpu_us_per_op, cost, cost_by_node). ReadAttribution returns what the
// target's nodes have accumulated so far, all cumulative: the harness reads
// it once when the measured window opens and once when it closes and keeps
// the differences, so a target only reports counters and histograms it
// already keeps, and nothing runs per operation on the harness's behalf.
//
// A target without it still gets the harness's own process charged when
// its nodes run in the harness's process (ModeInProcess): CPU and
// allocations per operation, without stages or fsyncs.
type Attributor interface {
	// ReadAttribution reads every running node. edge says which end of the
	// window the reading is for: a target that copies something costly
	// (the stage histograms) copies it first at WindowOpens and last at
	// WindowCloses, and reads its cheap counters nearest the edge, so the
	// copying falls outside the window it charges.
	ReadAttribution(ctx context.Context, edge WindowEdge) (AttributionReading, error)
}

// WindowEdge is which end of the measured window a reading is for.
type WindowEdge int

// The window's edges.
const (
	WindowOpens WindowEdge = iota + 1
	WindowCloses
)

// AttributionReading is one ReadAttribution: each running node's
// cumulative readings, by node ID. A node missing from one of the two
// readings of a window (stopped, or not started yet) is charged what it
// did while it was there: from its start when it started in the window,
// nothing when it stopped in it (its counters went with it).
type AttributionReading struct {
	Nodes map[uint64]NodeAttribution
}

// NodeAttribution is one node's cumulative readings.
type NodeAttribution struct {
	// Incarnation identifies the node's current run: it changes whenever
	// the node (re)starts, since its counters then start again from zero.
	// Two readings of a node are differenced only when their incarnations
	// are equal; otherwise the later counts from zero. A node process can
	// use its PID and start time.
	Incarnation string
	// Stages is the node's latency attribution (node.Node.StageTimings;
	// admin's /stats serves it as exact JSON); nil when the node keeps
	// none (node.Config.NoStageTiming, or another Raft library).
	Stages *node.StageTimings
	// Fsyncs counts the node's synced WAL saves (node.Metrics.Fsyncs).
	Fsyncs uint64
	// Process is the node's own process (procstat.Read in it; /stats
	// serves it), when the node runs in a process of its own; nil when
	// it runs in the harness's process, whose cost the harness samples
	// itself.
	Process *procstat.Sample
}

// Package results defines raftbench's result directory — the files a run
// leaves behind, which results/README.md documents as a contract — and
// writes and reads it.
package results

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/raftbench/raftbench/procstat"
)

// File names inside a result directory.
const (
	ConfigFile   = "config.json"
	SummaryFile  = "summary.json"
	HgrmFile     = "latency.hgrm"
	HlogFile     = "latency.hlog"
	TimelineFile = "timeline.csv"
	ReportFile   = "report.md"
	PlotsDir     = "plots"
	HistoryFile  = "linearizability.html"
	// StagesDir holds one .hgrm per write stage and detail (StagesUS,
	// StageDetailUS), named after it ("stages/queue.hgrm"), and
	// stages/total.hgrm (StagesTotalUS).
	StagesDir = "stages"
)

// Summary is summary.json: the numbers of one run.
type Summary struct {
	// Started is when the measured part began (UTC).
	Started time.Time `json:"started"`
	// DurationSec is the measured time; WarmupSec the unmeasured time
	// before it.
	DurationSec float64 `json:"duration_sec"`
	WarmupSec   float64 `json:"warmup_sec"`

	ThroughputOpsPerSec float64 `json:"throughput_ops_per_sec"`
	// ThroughputMBPerSec counts payload bytes (10^6 bytes per MB).
	ThroughputMBPerSec float64 `json:"throughput_mb_per_sec"`
	// Ops is the operations completed successfully in the measured time;
	// Reads and Writes split them.
	Ops    int64 `json:"ops"`
	Reads  int64 `json:"reads"`
	Writes int64 `json:"writes"`
	// Errors counts failed operations in the measured time by kind.
	Errors map[string]int64 `json:"errors"`
	// IncompleteOps counts the operations of the window (intended to start
	// in it) that had not completed when it closed: each is in LatencyUS
	// with latency (close − intended start), a lower bound, so an outage at
	// the end of the run shows in the tail instead of vanishing.
	IncompleteOps int64 `json:"incomplete_ops"`
	// LatencyUS is the latency in microseconds of the window's successful
	// and incomplete operations, from intended start (open loop) or from
	// the call (closed loop).
	LatencyUS Latency `json:"latency_us"`

	// LeaderChanges counts new leaders seen during the measured time.
	LeaderChanges int `json:"leader_changes"`
	// Elections sums the elections the nodes started (node metrics).
	Elections uint64 `json:"elections"`
	// Failovers has one entry per killed, partitioned or removed leader.
	Failovers []Failover `json:"failovers"`
	// Faults lists what the fault schedule did, when.
	Faults []AppliedFault `json:"faults"`
	// MessageFaults counts what the fault-injecting transports did to
	// messages (dropped, partitioned_send, duplicated, delayed, ...),
	// summed over the nodes running at the end.
	MessageFaults map[string]uint64 `json:"message_faults,omitempty"`
	// MessageFaultsIncomplete names the nodes (--procs, --cluster) whose
	// counts MessageFaults misses in part: a process that restarted during
	// the run (what its earlier process counted died with it), or a node
	// down at the end. With any named, MessageFaults is a lower bound.
	MessageFaultsIncomplete []uint64 `json:"message_faults_incomplete,omitempty"`
	// Membership lists the membership changes the schedule made (add-node,
	// remove, remove-leader, replace), in the order they started.
	Membership []MembershipChange `json:"membership,omitempty"`

	// WALPeakBytes is the largest size any node's data directory (its WAL
	// and snapshot images) reached, sampled every second from the start
	// of the cluster to the end of the measured run; WALPeakBytesByNode
	// has every node's peak, keyed by node ID. With --wal memory only the
	// snapshot images are on disk.
	WALPeakBytes       int64            `json:"wal_peak_bytes"`
	WALPeakBytesByNode map[string]int64 `json:"wal_peak_bytes_by_node,omitempty"`

	// Linearizable is the porcupine verdict with --check (nil without, or
	// when the check timed out; see LinearizabilityCheck).
	Linearizable *bool `json:"linearizable,omitempty"`
	// LinearizabilityCheck is "ok", "violation", "timeout" or "off".
	LinearizabilityCheck string `json:"linearizability_check"`
	// HistoryOps is the number of operations in the checked history.
	HistoryOps int `json:"history_ops,omitempty"`

	// ReplicaCheck is how the end-of-run comparison of the replicas went:
	// "agree" (every current member applied AppliedIndex and their state
	// hashes are equal), "disagree" (they applied the same index and their
	// states differ), or "incomplete" (the harness could not bring the
	// cluster to one applied index — see Problems — so nothing was
	// compared). ReplicasAgree is ReplicaCheck == "agree". Removed nodes
	// are not compared.
	ReplicaCheck  string `json:"replica_check"`
	ReplicasAgree bool   `json:"replicas_agree"`
	// ReplicaHashes and ReplicaApplied are each member's state hash and
	// the applied index it was read at, keyed by node ID.
	ReplicaHashes  map[string]string `json:"replica_hashes"`
	ReplicaApplied map[string]uint64 `json:"replica_applied"`
	AppliedIndex   uint64            `json:"applied_index"`
	// AckedOpsFound: on every member, every acknowledged write is in the
	// final state or was overwritten by a write that may have come after
	// it.
	AckedOpsFound bool  `json:"acked_ops_found"`
	AckedWrites   int64 `json:"acked_writes"`
	// LostWrites counts the keys whose acknowledged write is missing on
	// some member; LostWritesByNode counts them per member.
	LostWrites       int64            `json:"lost_writes"`
	LostWritesByNode map[string]int64 `json:"lost_writes_by_node,omitempty"`
	// LostKeys names up to 10 keys whose acknowledged write is missing.
	LostKeys []string `json:"lost_keys,omitempty"`

	// RefusedNodes names, by node ID, each node that refused to start
	// because its WAL was damaged (bitflip-wal, truncate-wal: wal.ErrCorrupt),
	// with the error. Such a node stays down; the verdicts cover the members
	// that ran. Absent when none did.
	RefusedNodes map[string]string `json:"refused_nodes,omitempty"`

	// StagesUS is where the window's committed writes spent their time on
	// their leader, stage by stage along the critical path — "queue",
	// "leader_append", "replication", "apply", "answer" (results/README.md
	// defines each) — in microseconds. The stages of each write add up to
	// its latency as its leader measured it (StagesTotalUS), so their
	// sum_us add up to StagesTotalUS.SumUS and their means to its mean;
	// their percentiles do not add up. Absent when the nodes keep no stage
	// timings.
	StagesUS map[string]StageLatency `json:"stages_us,omitempty"`
	// StagesTotalUS is those writes from the leader's Propose call to its
	// answer; LatencyUS adds the client's side (and counts reads too).
	StagesTotalUS *StageLatency `json:"stages_total_us,omitempty"`
	// StagesWindowSec bounds when the writes of StagesUS were answered:
	// from the start of the harness's opening reading of the nodes to the
	// end of its closing one. It holds Cost.WindowSec, and exceeds
	// DurationSec by what the readings took (the load runs on meanwhile),
	// so StagesTotalUS.Count and Writes differ by about the write rate
	// times that, plus the operations in flight at the edges.
	StagesWindowSec float64 `json:"stages_window_sec,omitempty"`
	// StageDetailUS are the timings beside the stages, which overlap them:
	// "to_commit" per write, "append_rtt", "network", "follower_hold" and
	// "follower_fsync" per follower acknowledgement, "wal_fsync" per synced
	// WAL save of any node.
	StageDetailUS map[string]StageLatency `json:"stage_detail_us,omitempty"`

	// CPUUSPerOp is the system's CPU time (user + system: the nodes, the
	// clients and the harness) over the measured window, per operation
	// completed in it (Cost.CPUUSPerOp); 0 when Cost is absent.
	CPUUSPerOp float64 `json:"cpu_us_per_op"`
	// Cost is what the measured window cost the whole system (see Cost):
	// with the nodes in the harness's process, that process; with node
	// processes (--procs), their sum plus the harness's own (CostHarness,
	// which holds the clients). Absent when the target's nodes run
	// elsewhere and report nothing. CostByNode is each node process's
	// share, keyed by node ID, its figures per operation of the whole run
	// (so they add up to Cost's); absent in one process.
	Cost        *Cost           `json:"cost,omitempty"`
	CostByNode  map[string]Cost `json:"cost_by_node,omitempty"`
	CostHarness *Cost           `json:"cost_harness,omitempty"`

	// Nodes are per-node counters at the end of the run.
	Nodes []NodeStats `json:"nodes"`
	// Mode is where the nodes ran: "in-process", "procs" (each a `raftbench
	// node` process the run started) or "cluster" (a cluster someone else
	// runs); System and SystemVersion are the Raft implementation.
	Mode          string `json:"mode"`
	System        string `json:"system"`
	SystemVersion string `json:"system_version,omitempty"`
	// NodeProfiles are the profiles taken from the node processes (with
	// --procs or --cluster), files of the result directory.
	NodeProfiles []string `json:"node_profiles,omitempty"`
	Env          Env      `json:"env"`
	// Problems lists what went wrong in the harness itself (e.g. replicas
	// that never converged); empty on a clean run.
	Problems []string `json:"problems,omitempty"`
	// Warnings say what about the configuration and machine makes the
	// numbers less telling (say, more nodes than the machine has CPUs for).
	Warnings []string `json:"warnings,omitempty"`
	// Interrupted marks a run cut short (Ctrl-C): it holds what was
	// measured until then, and its verdicts are as checked after it.
	Interrupted bool `json:"interrupted,omitempty"`
}

// FailedVerdicts says which verdicts of s failed, or "" when all hold. A
// replica comparison the harness could not make is reported as that, not
// as a disagreement; any problem fails the run.
func FailedVerdicts(s *Summary) string {
	var v []string
	if s.Linearizable != nil && !*s.Linearizable {
		v = append(v, "not linearizable")
	}
	switch {
	case s.ReplicaCheck == "incomplete" || (s.ReplicaCheck == "" && !s.ReplicasAgree && len(s.Problems) > 0):
		v = append(v, "replicas not compared (harness problem: see problems)")
	case !s.ReplicasAgree:
		v = append(v, "replicas disagree")
	default:
		// A durability failure (a log reopened shorter than it was
		// reported durable), a node process that died on its own, a
		// cluster that would not stop: each is a failed run, whatever the
		// other verdicts say.
		if len(s.Problems) > 0 {
			v = append(v, fmt.Sprintf("%d problem(s): %s", len(s.Problems), strings.Join(s.Problems, "; ")))
		}
	}
	// Lost writes found on the members that could be read are reported
	// even when another group's comparison was incomplete.
	if (!s.AckedOpsFound && s.ReplicaCheck != "incomplete") || s.LostWrites > 0 {
		v = append(v, fmt.Sprintf("%d acknowledged writes lost", s.LostWrites))
	}
	return strings.Join(v, ", ")
}

// Latency holds percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// StageOrder names the write stages of StagesUS in the order a write
// passes them, StageDetailOrder the details of StageDetailUS (package node
// defines them: node.Stage, node.Detail).
var (
	StageOrder       = []string{"queue", "leader_append", "replication", "apply", "answer"}
	StageDetailOrder = []string{"to_commit", "append_rtt", "network", "follower_hold", "follower_fsync", "wal_fsync"}
)

// StageLatency is one stage's (or detail's) distribution over the window,
// in microseconds: percentiles from its HDR histogram (1% resolution),
// Mean and SumUS exact.
type StageLatency struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
	SumUS float64 `json:"sum_us"`
	Count int64   `json:"count"`
}

// StageLatencyOf summarises a stage's histogram (microseconds) and the
// exact sum of its durations.
func StageLatencyOf(h *hdrhistogram.Histogram, sumNanos int64) StageLatency {
	l := StageLatency{Count: h.TotalCount(), SumUS: float64(sumNanos) / 1e3}
	if l.Count == 0 {
		return l
	}
	l.P50, l.P90, l.P99 = float64(h.ValueAtQuantile(50)), float64(h.ValueAtQuantile(90)), float64(h.ValueAtQuantile(99))
	l.P999, l.Max = float64(h.ValueAtQuantile(99.9)), float64(h.Max())
	l.Mean = l.SumUS / float64(l.Count)
	return l
}

// Cost is what a measured window cost, whole and per operation. The
// process's counters are read when the window opens and when it closes,
// WindowSec apart: close to the measured duration but not equal to it
// (the harness copies the nodes' stage timings just outside it, so that
// the copying is not charged to the system, and its close is polled). A
// figure per operation is therefore its rate over WindowSec divided by
// the run's throughput: the edges of the two counts do not matter for a
// steady load. Payload bytes are those of the
// writes in WindowSec at the run's write rate.
type Cost struct {
	WindowSec float64 `json:"window_sec"`
	// CPUUserSec and CPUSystemSec are the process's CPU time (getrusage);
	// CPUUSPerOp is their sum per operation.
	CPUUserSec   float64 `json:"cpu_user_sec"`
	CPUSystemSec float64 `json:"cpu_system_sec"`
	CPUUSPerOp   float64 `json:"cpu_us_per_op"`
	// Fsyncs counts the synced WAL saves of the nodes covered.
	Fsyncs       uint64  `json:"fsyncs"`
	FsyncsPerSec float64 `json:"fsyncs_per_sec"`
	FsyncsPerOp  float64 `json:"fsyncs_per_op"`
	// StorageWriteBytes is what the process made the kernel write to
	// storage (/proc/self/io write_bytes less cancelled_write_bytes): the
	// WALs' Pebble log files, memtable flushes and compactions, and
	// snapshot images, counted in whole pages as they were dirtied, which
	// is what the disk is asked to write. WriteAmplification divides it by
	// the payload bytes committed. StorageWriteMeasured is false where the
	// kernel does not say (then both are 0).
	StorageWriteBytes      int64   `json:"storage_write_bytes"`
	StorageWriteBytesPerOp float64 `json:"storage_write_bytes_per_op"`
	PayloadBytes           int64   `json:"payload_bytes"`
	WriteAmplification     float64 `json:"write_amplification"`
	StorageWriteMeasured   bool    `json:"storage_write_measured"`
	// Allocs and AllocBytes are the heap allocations made (objects, tiny
	// ones included, and bytes), also per operation.
	Allocs          uint64  `json:"allocs"`
	AllocsPerOp     float64 `json:"allocs_per_op"`
	AllocBytesPerOp float64 `json:"alloc_bytes_per_op"`
	// GCCycles completed in the window; GCPauseTotalMS their
	// stop-the-world pauses in all; GCPauseMaxMS the longest cycle's,
	// exact unless GCPauseMaxExact is false (more than 256 cycles: the
	// longest of the last 256).
	GCCycles        uint32  `json:"gc_cycles"`
	GCPauseTotalMS  float64 `json:"gc_pause_total_ms"`
	GCPauseMaxMS    float64 `json:"gc_pause_max_ms"`
	GCPauseMaxExact bool    `json:"gc_pause_max_exact"`
	// SchedWaitUS is how long goroutines waited, runnable, for a CPU in
	// the window: the Go runtime's scheduling latency, sampled (absent
	// when no wait was sampled). It is the part of a stage's time spent
	// ready but not running — on a loaded 2-core machine most of the
	// answer stage and much of the network detail.
	SchedWaitUS *SchedWait `json:"sched_wait_us,omitempty"`
	// MinorFaults and MajorFaults are the page faults taken in the window
	// (getrusage), PageFaultsPerOp both together per operation;
	// PageFaultsMeasured is false where the kernel does not say (then all
	// are 0). A minor fault is mostly a first touch of memory fresh from
	// the kernel (a Go heap that grows, a new Pebble memtable arena): it
	// is CPU time spent in the kernel, 10 µs a page on some virtual
	// machines, so a run that faults a lot is charged for memory it is
	// still acquiring rather than for its steady state.
	MinorFaults        uint64  `json:"minor_faults"`
	MajorFaults        uint64  `json:"major_faults"`
	PageFaultsPerOp    float64 `json:"page_faults_per_op"`
	PageFaultsMeasured bool    `json:"page_faults_measured"`
}

// SchedWait summarises a window's scheduling waits. Each percentile is the
// upper bound of the runtime's histogram bucket it falls in (buckets are a
// quarter of a power of two wide, so a figure is known to about 25%); Max
// is the upper bound of the highest nonempty bucket, or -1 when that bucket
// is unbounded. Samples is how many waits the runtime timed: one
// scheduling in eight of each goroutine.
type SchedWait struct {
	Samples uint64  `json:"samples"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
}

// SchedWaitOf summarises a scheduling-wait histogram in microseconds; nil
// when it holds no wait.
func SchedWaitOf(h []procstat.WaitBucket) *SchedWait {
	n := procstat.WaitSamples(h)
	if n == 0 {
		return nil
	}
	us := func(d time.Duration) float64 {
		if d == math.MaxInt64 {
			return -1
		}
		return float64(d) / 1e3
	}
	return &SchedWait{Samples: n,
		P50: us(procstat.WaitQuantile(h, 0.5)), P90: us(procstat.WaitQuantile(h, 0.9)),
		P99: us(procstat.WaitQuantile(h, 0.99)), P999: us(procstat.WaitQuantile(h, 0.999)),
		Max: us(procstat.WaitQuantile(h, 1))}
}

// CostOf charges a window: pc is what the process spent in it (procstat
// samples at the window's edges), fsyncs the synced WAL saves of its
// nodes in it, opsPerSec and writesPerSec the run's throughput (all
// operations, and writes), payload the size of each write's value.
func CostOf(pc procstat.Cost, fsyncs uint64, opsPerSec, writesPerSec float64, payload int) Cost {
	c := Cost{
		WindowSec: pc.Wall.Seconds(), CPUUserSec: pc.UserCPU.Seconds(), CPUSystemSec: pc.SystemCPU.Seconds(),
		Fsyncs: fsyncs, StorageWriteMeasured: pc.HasIO,
		Allocs: pc.Mallocs, GCCycles: pc.GCCycles, GCPauseMaxExact: pc.GCPauseMaxExact,
		GCPauseTotalMS: float64(pc.GCPauseTotal) / 1e6, GCPauseMaxMS: float64(pc.GCPauseMax) / 1e6,
		SchedWaitUS:        SchedWaitOf(pc.SchedWait),
		PageFaultsMeasured: pc.HasFaults,
	}
	if pc.HasFaults {
		c.MinorFaults, c.MajorFaults = pc.MinorFaults, pc.MajorFaults
	}
	if pc.HasIO {
		c.StorageWriteBytes = pc.WriteBytes
	}
	if c.WindowSec <= 0 {
		return c
	}
	c.FsyncsPerSec = float64(fsyncs) / c.WindowSec
	c.PayloadBytes = int64(writesPerSec * c.WindowSec * float64(payload))
	if ops := opsPerSec * c.WindowSec; ops > 0 {
		c.CPUUSPerOp = float64(pc.CPU()) / 1e3 / ops
		c.FsyncsPerOp = float64(fsyncs) / ops
		c.StorageWriteBytesPerOp = float64(c.StorageWriteBytes) / ops
		c.AllocsPerOp = float64(pc.Mallocs) / ops
		c.AllocBytesPerOp = float64(pc.AllocBytes) / ops
		c.PageFaultsPerOp = float64(c.MinorFaults+c.MajorFaults) / ops
	}
	if c.PayloadBytes > 0 {
		c.WriteAmplification = float64(c.StorageWriteBytes) / float64(c.PayloadBytes)
	}
	return c
}

// Failover is what one leader loss cost.
type Failover struct {
	// Fault is the spec that caused it; OldLeader the node it removed.
	Fault     string `json:"fault"`
	OldLeader uint64 `json:"old_leader"`
	NewLeader uint64 `json:"new_leader"`
	// AtMS is when it happened, from the start of the measured run.
	AtMS float64 `json:"at_ms"`
	// ToLeaderMS is the time to a new leader (-1: none seen); ToCommitMS
	// the time to the first write acknowledged after it (-1: none).
	ToLeaderMS float64 `json:"to_leader_ms"`
	ToCommitMS float64 `json:"to_commit_ms"`
}

// MembershipChange is one membership event of the fault schedule.
type MembershipChange struct {
	// AtMS is when it started, from the start of the measured run; Spec
	// the fault that asked for it.
	AtMS float64 `json:"at_ms"`
	Spec string  `json:"spec"`
	// Added is the node it added (0: none), Removed the node it removed
	// (0: none).
	Added   uint64 `json:"added,omitempty"`
	Removed uint64 `json:"removed,omitempty"`
	// DoneMS is the time from AtMS until the change was in force (for
	// add-node: the new node promoted to voter); -1 when it never was.
	DoneMS float64 `json:"done_ms"`
	// CaughtUpMS is, for a new node, the time from AtMS until it had
	// applied everything committed when the change was in force (-1: not
	// before the run ended); SnapshotIndex is the index of the snapshot it
	// was brought up with (0: it caught up from the log alone).
	CaughtUpMS    float64 `json:"caught_up_ms,omitempty"`
	SnapshotIndex uint64  `json:"snapshot_index,omitempty"`
	// Voters are the voters once the change was in force.
	Voters []uint64 `json:"voters,omitempty"`
	// Error says why it failed.
	Error string `json:"error,omitempty"`
}

// AppliedFault is one thing the fault schedule did.
type AppliedFault struct {
	AtMS float64 `json:"at_ms"`
	Spec string  `json:"spec"`
	// What says what happened ("killed node 2", "healed", "lifted", ...).
	What string `json:"what"`
	// Error is set when it could not be done (say, no leader to kill).
	Error string `json:"error,omitempty"`
}

// NodeStats are one node's counters at the end.
type NodeStats struct {
	ID             uint64  `json:"id"`
	Proposals      uint64  `json:"proposals"`
	Batches        uint64  `json:"batches"`
	Fsyncs         uint64  `json:"fsyncs"`
	FsyncMeanUS    float64 `json:"fsync_mean_us"`
	FsyncMaxUS     float64 `json:"fsync_max_us"`
	Elections      uint64  `json:"elections"`
	LoopSaturation float64 `json:"loop_saturation"`
	Restarts       int     `json:"restarts"`
	// Snapshots and Compactions are the node's snapshot counters.
	Snapshots   uint64 `json:"snapshots"`
	Compactions uint64 `json:"compactions"`
	// WALPeakBytes is the node's data directory's peak size (see
	// Summary.WALPeakBytes).
	WALPeakBytes int64 `json:"wal_peak_bytes"`
	// Process is the node's process, when it runs in one of its own
	// (--procs, --cluster).
	Process *ProcessStats `json:"process,omitempty"`
}

// ProcessStats describe a node's own process at the end of the run.
type ProcessStats struct {
	PID int `json:"pid"`
	// CPUSeconds is the user and system CPU time the process used since
	// it started (since its last restart, for a restarted node).
	CPUSeconds float64 `json:"cpu_seconds"`
	// MaxRSSBytes is the peak resident set size; HeapBytes the Go heap in
	// use at the end; Goroutines the goroutines at the end; GCCycles the
	// garbage collections since it started.
	MaxRSSBytes int64  `json:"max_rss_bytes"`
	HeapBytes   int64  `json:"heap_bytes"`
	Goroutines  int    `json:"goroutines"`
	GCCycles    uint32 `json:"gc_cycles"`
	// UptimeSec is how long the process had run.
	UptimeSec float64 `json:"uptime_sec"`
}

// Env describes where a run ran.
type Env struct {
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	CPUModel   string `json:"cpu_model"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Commit     string `json:"commit"`
	Hostname   string `json:"hostname,omitempty"`
	// GCPercent is the harness process's garbage-collector target (GOGC;
	// -1 for off): it moves CPU per operation, so runs that differ in it
	// are not alike. Nodes of a --procs run started from this executable
	// (the default) inherit its environment, so theirs is the same; nodes
	// started from another build (RAFTBENCH_NODE_BINARY) run at that
	// build's default, and a --cluster run's nodes are not measured. Nil in
	// results written before it was recorded, or when the runtime does not
	// report it.
	GCPercent *int `json:"gc_percent,omitempty"`
}

// GOGC is GCPercent as the GOGC variable would be written ("400", "off"),
// or "" when the run did not record it.
func (e Env) GOGC() string {
	switch {
	case e.GCPercent == nil:
		return ""
	case *e.GCPercent < 0:
		return "off"
	}
	return strconv.Itoa(*e.GCPercent)
}

// TimelineRow is one second of timeline.csv.
type TimelineRow struct {
	// Second is the second of the measured run (0-based) the row covers:
	// its operations are those intended to start in it.
	Second int
	// Ops succeeded, Errors failed, Incomplete had not completed when the
	// window closed.
	Ops        int64
	Errors     int64
	Incomplete int64
	// P50US, P99US and MaxUS are the second's latencies (successful and
	// incomplete operations).
	P50US float64
	P99US float64
	MaxUS float64
	// Leader is the leader at the end of the second (0: none), Term its
	// term.
	Leader uint64
	Term   uint64
	// Faults are the fault events in this second, separated by "; ".
	Faults string
}

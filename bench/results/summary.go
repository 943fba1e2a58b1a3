// Package results defines raftbench's result directory — the files a run
// leaves behind, which results/README.md documents as a contract — and
// writes and reads it.
package results

import (
	"fmt"
	"strings"
	"time"
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
// as a disagreement.
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
	}
	if !s.AckedOpsFound && s.ReplicaCheck != "incomplete" {
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

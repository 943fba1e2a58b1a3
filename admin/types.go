package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
	"github.com/raftbench/raftbench/transport/fault"
)

// Status is what GET /status answers: the node's Raft state (node.Status
// and the log's bounds) and where it serves.
type Status struct {
	ID        uint64 `json:"id"`
	ClusterID uint64 `json:"cluster_id"`
	// Role is "Follower", "PreCandidate", "Candidate" or "Leader".
	Role    string `json:"role"`
	Term    uint64 `json:"term"`
	Leader  uint64 `json:"leader"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	// LogEnd is the index of the last entry in the node's log, durable or
	// not (node.Status.LastIndex): on a leader, LogEnd past Commit means
	// entries are still on their way to a quorum.
	LogEnd uint64 `json:"log_end"`
	// QueuedProposals counts proposals waiting to be folded into the next
	// batch (node.Status.QueuedProposals).
	QueuedProposals int `json:"queued_proposals"`
	// FirstIndex and LastIndex bound the entries the WAL holds durably.
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	// Voters, VotersOutgoing (joint consensus) and Learners are the
	// membership this node has applied.
	Voters         []uint64 `json:"voters"`
	VotersOutgoing []uint64 `json:"voters_outgoing,omitempty"`
	Learners       []uint64 `json:"learners,omitempty"`
	// Progress is the leader's view of every member (leader only).
	Progress map[uint64]Progress `json:"progress,omitempty"`
	// Ready: the node runs and knows a leader (what a readiness probe asks).
	Ready bool `json:"ready"`
	// Err is the fatal error that stopped the node, if any.
	Err string `json:"error,omitempty"`

	// Knobs are the settings the node runs with, by raftbench knob name
	// ("batch-entries": "4096", as its flags take them), so a harness
	// driving a cluster someone else started can record what ran. Absent
	// when whoever started the node gave none (admin.Config.Knobs).
	Knobs map[string]string `json:"knobs,omitempty"`

	RaftAddr   string    `json:"raft_addr,omitempty"`
	ClientAddr string    `json:"client_addr,omitempty"`
	Dir        string    `json:"dir,omitempty"`
	PID        int       `json:"pid"`
	Version    string    `json:"version,omitempty"`
	Started    time.Time `json:"started"`
}

// Leadership is what GET /leadership answers: the node's role, term and
// leader as of its Raft loop's last round (node.Leadership), read without
// waiting on the loop, so a harness can poll it often.
type Leadership struct {
	ID     uint64 `json:"id"`
	Role   string `json:"role"`
	Term   uint64 `json:"term"`
	Leader uint64 `json:"leader"`
}

// Stats is what GET /stats answers: the node's counters and its process's.
// Everything in it is cumulative since the node (or its process) started,
// so a harness charging a measured window reads it when the window opens
// and when it closes and keeps the difference: node.StageTimings.Sub for
// Stages and procstat.Between for Sample, both exact — every stage
// percentile and the longest GC pause included, which Prometheus counters
// and buckets cannot give.
type Stats struct {
	// Node is the node's metrics (node.Metrics; durations in
	// nanoseconds).
	Node node.Metrics `json:"node"`
	// Process describes the process serving the node.
	Process ProcessStats `json:"process"`
	// Stages is the node's latency attribution (node.Node.StageTimings,
	// its histograms compressed); nil when the node runs with
	// node.Config.NoStageTiming.
	Stages *node.StageTimings `json:"stages"`
	// Sample is the process's cost counters: CPU, storage writes,
	// allocations, GC pauses (procstat.Read).
	Sample procstat.Sample `json:"sample"`
}

// ProcessStats describe the process serving a node.
type ProcessStats struct {
	PID int `json:"pid"`
	// CPUSeconds is the user and system CPU time the process has used.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MaxRSSBytes is its peak resident set size (0 where the system does
	// not say).
	MaxRSSBytes int64 `json:"max_rss_bytes"`
	// HeapBytes is the Go heap in use; Goroutines the goroutines running;
	// GCCycles the garbage collections so far.
	HeapBytes  int64  `json:"heap_bytes"`
	Goroutines int    `json:"goroutines"`
	GCCycles   uint32 `json:"gc_cycles"`
	// Started is when the admin endpoint started (with the node).
	Started time.Time `json:"started"`
}

// StateInfo is where a GET /state answer stands (its headers): the state
// is exactly the state at Index; Applied is the node's applied index when
// it was read (at least Index), StateIndex the index of the last command
// it holds (at most Index).
type StateInfo struct {
	Index, Applied, StateIndex uint64
}

// Progress is one member as the leader tracks it.
type Progress struct {
	Match    uint64 `json:"match"`
	Next     uint64 `json:"next"`
	State    string `json:"state"`
	Inflight int    `json:"inflight"`
	Learner  bool   `json:"learner,omitempty"`
}

// Hash is what GET /hash answers: the digest of the replicated state at
// exactly Index.
type Hash struct {
	// Index is the log index the state is at. Every command up to it is
	// in the state and none after it.
	Index uint64 `json:"index"`
	// Hash is the state machine's digest, hex.
	Hash string `json:"hash"`
	// Applied is the node's applied index when it was taken (at least
	// Index); StateIndex the index of the last command the state reflects
	// (at most Index).
	Applied    uint64 `json:"applied"`
	StateIndex uint64 `json:"state_index"`
}

// Faults is what GET /faults answers: the faults in force on this node.
type Faults struct {
	Network   fault.NetworkState `json:"network"`
	Rules     Rules              `json:"rules"`
	DiskDelay Duration           `json:"disk_delay"`
}

// Rules are fault.Rules as JSON (durations as text like "2ms").
type Rules struct {
	Loss          float64  `json:"loss,omitempty"`
	Dup           float64  `json:"dup,omitempty"`
	Reorder       float64  `json:"reorder,omitempty"`
	ReorderWindow Duration `json:"reorder_window,omitempty"`
	Delay         Duration `json:"delay,omitempty"`
	Jitter        Duration `json:"jitter,omitempty"`
}

// RulesOf converts fault.Rules.
func RulesOf(r fault.Rules) Rules {
	return Rules{Loss: r.DropRate, Dup: r.DuplicateRate, Reorder: r.ReorderRate, ReorderWindow: Duration(r.ReorderWindow),
		Delay: Duration(r.Delay), Jitter: Duration(r.Jitter)}
}

// Fault converts back to fault.Rules.
func (r Rules) Fault() fault.Rules {
	return fault.Rules{DropRate: r.Loss, DuplicateRate: r.Dup, ReorderRate: r.Reorder, ReorderWindow: time.Duration(r.ReorderWindow),
		Delay: time.Duration(r.Delay), Jitter: time.Duration(r.Jitter)}
}

// NetworkOp is the body of POST /faults/network: one change to the node's
// partitions. Op is "isolate" or "unisolate" (Node), "cut" or "uncut"
// (From, To: one way), "split" (Groups) or "heal".
//
// A node in a process of its own has a network of its own: a cut is
// enforced where its sender or receiver sees it, so isolating node 2
// needs only node 2's endpoint, a one-way cut only the sender's or the
// receiver's. A harness that sends every op to every node keeps all their
// networks equal, which is what an in-process cluster's shared network is.
type NetworkOp struct {
	Op     string     `json:"op"`
	Node   uint64     `json:"node,omitempty"`
	From   uint64     `json:"from,omitempty"`
	To     uint64     `json:"to,omitempty"`
	Groups [][]uint64 `json:"groups,omitempty"`
}

// apply carries the op out on n.
func (op NetworkOp) apply(n *fault.Network) error {
	switch op.Op {
	case "isolate", "unisolate":
		if op.Node == 0 {
			return fmt.Errorf("%s needs a node", op.Op)
		}
		if op.Op == "isolate" {
			n.Isolate(op.Node)
		} else {
			n.Unisolate(op.Node)
		}
	case "cut", "uncut":
		if op.From == 0 || op.To == 0 || op.From == op.To {
			return fmt.Errorf("%s needs two different nodes from and to, got %d and %d", op.Op, op.From, op.To)
		}
		if op.Op == "cut" {
			n.Cut(op.From, op.To)
		} else {
			n.Uncut(op.From, op.To)
		}
	case "split":
		if len(op.Groups) < 2 {
			return fmt.Errorf("split needs at least two groups, got %d", len(op.Groups))
		}
		seen := map[uint64]bool{}
		for _, g := range op.Groups {
			for _, id := range g {
				if id == 0 || seen[id] {
					return fmt.Errorf("split: node %d is zero or in two groups", id)
				}
				seen[id] = true
			}
		}
		n.Split(op.Groups...)
	case "heal":
		n.Heal()
	default:
		return fmt.Errorf("unknown network op %q, want isolate, unisolate, cut, uncut, split or heal", op.Op)
	}
	return nil
}

// DiskFault is the body of PUT /faults/disk.
type DiskFault struct {
	Delay Duration `json:"delay"`
}

// Transfer is the body of POST /transfer-leadership.
type Transfer struct {
	To uint64 `json:"to"`
}

// MemberOp is the body of POST /members: Op is "add-learner", "add-voter"
// (ID, Addr: its transport address), "promote" or "remove" (ID). Send it to
// the leader.
type MemberOp struct {
	Op   string `json:"op"`
	ID   uint64 `json:"id"`
	Addr string `json:"addr,omitempty"`
}

// Duration is a time.Duration that is text in JSON ("2ms").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration as text ("2ms") or as nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 2ms", s)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a duration like \"2ms\" or nanoseconds")
	}
	*d = Duration(n)
	return nil
}

// errorBody is every error answer's body. Reason is one of the reason
// constants, so a client can tell errors apart without reading Message.
type errorBody struct {
	Reason  string `json:"reason"`
	Message string `json:"error"`
	// Leader, for reason not-leader, is who leads (0: unknown).
	Leader uint64 `json:"leader,omitempty"`
	// Applied and StateIndex, for the hash reasons, say where the node is.
	Applied    uint64 `json:"applied,omitempty"`
	StateIndex uint64 `json:"state_index,omitempty"`
}

// Reasons of error answers.
const (
	reasonUnauthorized = "unauthorized"
	reasonBadRequest   = "bad-request"
	reasonBehind       = "behind"     // applied < the index asked for
	reasonMovedPast    = "moved-past" // the state holds a command after the index
	reasonNoHasher     = "no-hasher"  // the state machine cannot hash its state
	reasonNotLeader    = "not-leader"
	reasonStopped      = "stopped"
	reasonFailed       = "failed"
)

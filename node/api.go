package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/wal"
)

var (
	// ErrNotLeader is matched (errors.Is) by every *NotLeaderError.
	ErrNotLeader = errors.New("node: not the leader")
	// ErrStopped is returned by every call on a stopped node, and to calls
	// in flight when it stops.
	ErrStopped = errors.New("node: stopped")
	// ErrTimeout is returned when the caller's context ends first. The
	// command may still be applied later: retry it with the same client
	// session so the state machine applies it once.
	ErrTimeout = errors.New("node: timed out")
	// ErrProposalTooLarge is returned for a command larger than
	// Config.MaxBatchBytes (it could never be batched) or than
	// Config.MaxSizePerMsg (it could never be replicated).
	ErrProposalTooLarge = errors.New("node: proposal too large")
	// ErrLeadershipLost is returned for commands accepted by a leader that
	// lost its leadership before they were applied. Their outcome is
	// unknown: the new leader may or may not have them. Retry with the same
	// client session.
	ErrLeadershipLost = errors.New("node: leadership lost; outcome unknown")
	// ErrOverloaded is returned for a proposal refused because the leader
	// already holds Config.MaxUncommittedBytes of proposals it has not
	// committed (or queued for its next batch): its quorum is not keeping
	// up. Nothing of the proposal was taken; retry after a pause. It also
	// matches core.ErrUncommittedLimit when core refused it.
	ErrOverloaded = errors.New("node: overloaded: too many uncommitted bytes")
	// ErrInvalidConfig is wrapped by every error Config.Validate returns.
	ErrInvalidConfig = errors.New("node: invalid config")
)

// NotLeaderError says this node is not the leader, and who is when known.
type NotLeaderError struct {
	// Leader is the current leader's ID, or core.None when unknown (say,
	// during an election) or when this node has not heard from its leader
	// within the election timeout (core.Raft.LeaderHint): a hint to a
	// leader that may be gone would cost the caller a whole attempt.
	Leader uint64
}

// Error says who leads, when known, so a caller can go there.
func (e *NotLeaderError) Error() string {
	if e.Leader == core.None {
		return "node: not the leader (leader unknown)"
	}
	return fmt.Sprintf("node: not the leader (leader is %d)", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// StateMachine is what the replicated log drives. Apply and Read are called
// from one goroutine, never concurrently, so an implementation needs no
// locks of its own for them.
type StateMachine interface {
	// Apply applies committed commands in log order and returns one result
	// per command; results[i] answers cmds[i]. It must be deterministic:
	// every replica applies the same commands and must reach the same
	// state. Neither cmds nor its Data slices may be retained past the
	// call unless copied: the node reuses cmds for the next call, and the
	// Data may alias the log.
	Apply(cmds []Command) []any
	// Read answers a read-only query against the state as of the last
	// Apply. Node.Read calls it once the state machine has caught up with a
	// linearizable read point.
	Read(query []byte) (any, error)
}

// Command is one committed command.
type Command struct {
	Index uint64
	Term  uint64
	Data  []byte
}

// Config configures a node. Zero-valued fields marked "default" take the
// default named (EnsureDefaults, which Start applies); everything else must
// be set. Validate names every problem.
type Config struct {
	// ID is this node's ID (non-zero).
	ID uint64
	// Peers maps every voter's ID (this node's included) to its transport
	// address. The node adds the others to Transport.
	Peers map[uint64]string
	// Transport carries messages. The node starts it and owns it: Stop
	// closes it. Its MaxFrameSize must hold the largest append
	// MaxSizePerMsg allows (see Validate); cluster.FrameSize gives a frame
	// size that does.
	Transport transport.Transport
	// Log is the durable Raft log. The node owns it: Stop closes it.
	Log wal.Log
	// StateMachine is what committed commands are applied to.
	StateMachine StateMachine

	// TickInterval is the length of one core tick. Default 10ms.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks. Default 100 (1 s at
	// the default tick): long enough that a loaded 2-core machine's GC
	// pauses and fsync stalls do not trigger needless elections.
	ElectionTicks int
	// HeartbeatTicks is the heartbeat interval in ticks. Default 10.
	HeartbeatTicks int

	// MaxBatchEntries and MaxBatchBytes bound how many pending proposals one
	// round of the Raft loop folds into one core Propose (and so one log
	// append and one fsync). Defaults 4096 and 4 MiB.
	MaxBatchEntries int
	MaxBatchBytes   int
	// MaxProposalPipeline is how many proposal batches the leader lets be
	// uncommitted at once; further proposals wait and join the next batch.
	// Small values make batches grow with load (fewer messages and fsyncs
	// per command); large ones start every batch at once. Default 1 (see
	// DefaultMaxProposalPipeline for the measurements); raise it when the
	// round trip to a quorum is long next to the time to fill a batch.
	MaxProposalPipeline int
	// MaxInflight is the pipeline window per follower. Default 256.
	MaxInflight int
	// MaxInflightBytes bounds the same window in entry bytes. Default
	// 32 MiB (see DefaultMaxInflightBytes for the arithmetic).
	MaxInflightBytes uint64
	// MaxUncommittedBytes caps what a leader holds of proposals it has not
	// committed, and separately of proposals queued for its next batch;
	// beyond it Propose returns ErrOverloaded. Default 64 MiB (see
	// DefaultMaxUncommittedBytes).
	MaxUncommittedBytes uint64
	// MaxSizePerMsg bounds the entry bytes of one AppendEntries, and so the
	// size of one command (Propose refuses a longer one). Default 1 MiB.
	// Validate refuses a value whose appends would not fit the Transport's
	// frames.
	MaxSizePerMsg uint64

	// DisablePreVote and DisableCheckQuorum turn those off (both are on by
	// default; see core.Config).
	DisablePreVote     bool
	DisableCheckQuorum bool
	// ReadMode chooses how Read confirms leadership: ReadModeIndex (the
	// default, a heartbeat round) or ReadModeLease (no round trip while the
	// leader's lease holds; assumes bounded clock drift, see ReadModeLease).
	ReadMode ReadMode
	// LeaseDriftTicks is ReadModeLease's clock-drift margin in ticks (core
	// Config.LeaseDriftTicks). Default: a tenth of ElectionTicks, at least
	// one (see defaultLeaseDriftTicks for the arithmetic).
	LeaseDriftTicks int
	// NoSync saves the log without fsync: faster, but a machine crash can
	// lose acknowledged writes. For benchmarks that measure everything but
	// the disk.
	NoSync bool
	// NoStageTiming turns latency attribution off (Node.StageTimings):
	// the per-write and per-batch clock reads and histogram updates, and
	// the timing reports this node adds to its append acknowledgements as
	// a follower. It is on by default (see the package's latency
	// attribution for what it costs).
	NoStageTiming bool

	// SnapshotDir is where state-machine images (and the member address
	// book) are kept. Without it the node neither takes nor accepts
	// snapshots, and its log grows without bound. The StateMachine must
	// implement Snapshotter to use it.
	SnapshotDir string
	// SnapshotEntries takes a snapshot every this many applied entries;
	// SnapshotBytes after this many bytes of applied log. Zero disables
	// that trigger; Node.Snapshot takes one on demand either way.
	SnapshotEntries uint64
	SnapshotBytes   uint64
	// SnapshotTrailing is how many entries the log keeps behind a snapshot,
	// so a follower slightly behind catches up from the log instead of
	// being sent a whole snapshot. Zero means the default, 4096 (when
	// snapshots are on); keeping no tail at all would send every follower
	// that misses one append a whole snapshot, so it is not offered.
	SnapshotTrailing uint64
	// JoinAsLearner starts a node that is being added to a running cluster
	// as a learner: Peers lists the current voters and this node, and this
	// node waits for the leader's log instead of campaigning.
	JoinAsLearner bool

	// Seed seeds the election-timeout randomness. Default: derived from ID
	// alone, never from the clock, so runs repeat (see EnsureDefaults).
	Seed uint64
	// Logger receives the node's log lines. Default: slog.Default().
	Logger Logger
}

// Logger is the logging the node needs; *slog.Logger satisfies it.
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// Status is a node's state, read on its Raft loop between two rounds, so
// every field is from the same moment.
type Status struct {
	ID      uint64
	Role    core.Role
	Term    uint64
	Leader  uint64
	Commit  uint64
	Applied uint64
	// LastIndex is the index of the last entry in this node's log, durable
	// or not. On a leader, LastIndex > Commit means entries are still on
	// their way to a quorum.
	LastIndex uint64
	// QueuedProposals counts Propose calls waiting to be folded into the
	// next batch (the leader holds them while MaxProposalPipeline batches
	// are uncommitted; elsewhere they are refused at the next round). A
	// call whose context ended stays queued, and may still be committed.
	QueuedProposals int
	// Conf is the membership this node has applied (joint while
	// VotersOutgoing is not empty).
	Conf core.ConfState
	// Progress is the leader's view of every member (leader only).
	Progress map[uint64]core.ProgressStatus
}

// Leadership is the part of a node's state that changes only with
// elections: who it believes leads, in which term, and its own role.
// Node.Leadership reads it at any rate without waiting for the Raft loop or
// allocating, so an observer can poll it without disturbing what it
// observes.
type Leadership struct {
	Role   core.Role
	Term   uint64
	Leader uint64
}

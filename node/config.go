package node

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// Defaults for the zero-valued fields of Config. The tick and election
// timeout are sized for a loaded 2-core machine: an election needs
// ElectionTicks·TickInterval of silence, and GC pauses plus fsync stalls
// under load reach tens of milliseconds.
//
// ElectionTicks, HeartbeatTicks, MaxInflight and MaxSizePerMsg default to
// core's defaults, which are sized for this tick.
const (
	DefaultTickInterval    = 10 * time.Millisecond
	DefaultElectionTicks   = core.DefaultElectionTicks
	DefaultHeartbeatTicks  = core.DefaultHeartbeatTicks
	DefaultMaxBatchEntries = 4096
	DefaultMaxBatchBytes   = 4 << 20
	DefaultMaxInflight     = core.DefaultMaxInflight
	// DefaultMaxProposalPipeline is 1: one uncommitted batch at a time, with
	// everything proposed meanwhile joining the next. Measured on 3 nodes
	// with fsync on 2 cores (BenchmarkCluster, 256 clients): depth 1 gave
	// 113k ops/s, 2 gave 98k, 4 gave 84k and unbounded 73k, with p99 lowest
	// at 1 too; a single client sees no difference.
	DefaultMaxProposalPipeline = 1
	DefaultMaxSizePerMsg       = core.DefaultMaxSizePerMsg
	// DefaultMaxInflightBytes is 32 MiB per follower. One follower's
	// replication is bounded by MaxInflightBytes/RTT: 32 GiB/s at a 1 ms
	// round trip and 640 MiB/s at 50 ms, above a 1 Gbit/s link (120 MiB/s)
	// even across a continent, so it does not limit throughput; what it
	// limits is memory: a follower that is slow or unreachable can hold
	// 32 MiB of appends queued at the leader instead of MaxInflight ×
	// MaxSizePerMsg = 256 MiB (128 MiB instead of 1 GiB for the four
	// followers of a 5-node cluster).
	DefaultMaxInflightBytes = 32 << 20
	// DefaultMaxUncommittedBytes is 64 MiB: 16 full proposal batches
	// (DefaultMaxBatchBytes). A leader that keeps up holds one batch
	// uncommitted at the default pipeline depth and commits it within a
	// round trip and an fsync (about a millisecond here), so the cap is
	// never reached while a quorum answers. When the quorum stalls it is
	// what the leader keeps for it — its uncommitted log tail, and
	// separately the proposals queued for the next batch — before refusing
	// proposals with ErrOverloaded: about 400,000 commands of 128 bytes,
	// some three seconds of the load measured in README.md.
	DefaultMaxUncommittedBytes = 64 << 20
	// DefaultSnapshotTrailing keeps a few seconds of a slow follower's
	// backlog in the log at moderate load.
	DefaultSnapshotTrailing = 4096
)

// defaultLeaseDriftTicks is LeaseDriftTicks' default: a tenth of the
// election timeout, at least one tick. At the defaults that is 10 ticks
// (100 ms), so the lease lasts 100-1-10 = 89 ticks (890 ms) and is renewed
// by every heartbeat (100 ms): it lapses only when a quorum has missed
// about eight heartbeats. 100 ms is far more than two quartz clocks drift
// apart in a second (10-100 µs at 10-100 ppm); what it has to cover is the
// leader's own lag — a tick the loop counts late (it catches up from the
// monotonic clock before every read, so this is one loop round), plus a
// follower's tick that fires early relative to the leader's, plus pauses
// of the leader's process shorter than the margin (GC assists, a busy
// core). Longer pauses (a stopped VM) are outside what a lease survives.
func defaultLeaseDriftTicks(electionTicks int) int { return max(1, electionTicks/10) }

// ReadMode says how the leader confirms a linearizable read (core's
// ReadOnlyOption).
type ReadMode uint8

const (
	// ReadModeIndex confirms every read point with a heartbeat round to a
	// quorum (ReadIndex): a round trip per batch of reads, no assumption
	// about clocks. The default.
	ReadModeIndex ReadMode = iota
	// ReadModeLease answers read points at once while the leader's lease
	// holds (core.ReadOnlyLeaseBased: read its doc for the bounded clock
	// drift it assumes). It requires check-quorum, and every node of the
	// cluster should use it: the followers' side of the lease is theirs to
	// keep. The node then ticks core by the monotonic clock, catching up
	// ticks the ticker dropped while the loop was busy, because a leader
	// whose tick count falls behind real time would stretch its lease.
	ReadModeLease
)

// String names the mode as raftbench's --read-mode does.
func (m ReadMode) String() string {
	switch m {
	case ReadModeIndex:
		return "index"
	case ReadModeLease:
		return "lease"
	}
	return fmt.Sprintf("ReadMode(%d)", uint8(m))
}

// EnsureDefaults sets every zero field that has a default (the fields'
// comments name them) to it. It never validates — a value already set
// stays, however wrong — and calling it again changes nothing. Start calls
// it before Validate.
//
// A zero Seed becomes one derived from ID alone (seedFromID), never from
// the clock: a node's election timeouts then repeat from run to run, so a
// run can be reproduced from its configuration. IDs differ within a
// cluster, so its nodes still draw different timeouts. Set Seed to vary
// the draws between runs or restarts (cluster.NodeSeed does).
func (c *Config) EnsureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.MaxBatchEntries == 0 {
		c.MaxBatchEntries = DefaultMaxBatchEntries
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxProposalPipeline == 0 {
		c.MaxProposalPipeline = DefaultMaxProposalPipeline
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = DefaultMaxUncommittedBytes
	}
	if c.ReadMode == ReadModeLease && c.LeaseDriftTicks == 0 {
		c.LeaseDriftTicks = defaultLeaseDriftTicks(c.ElectionTicks)
	}
	if c.SnapshotTrailing == 0 && (c.SnapshotEntries > 0 || c.SnapshotBytes > 0) {
		c.SnapshotTrailing = DefaultSnapshotTrailing
	}
	if c.Seed == 0 {
		c.Seed = seedFromID(c.ID)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// seedFromID is Seed's default: ID through SplitMix64's finaliser, so
// nearby IDs get unrelated seeds (core mixes the ID in again as the
// stream, rand.NewPCG(Seed, ID)). The finaliser is a bijection, so only
// one ID maps to 0; it gets 1, keeping the default non-zero.
func seedFromID(id uint64) uint64 {
	z := id + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return max(z, 1)
}

// appendOverhead is what an append can carry beyond MaxSizePerMsg entry
// bytes: core fills a message up to MaxSizePerMsg but lets one larger entry
// travel alone, and Propose refuses a command longer than MaxSizePerMsg,
// so the largest such entry is MaxSizePerMsg of data plus one entry's
// fixed charge (core.Entry.Size of an empty entry).
var appendOverhead = (&core.Entry{}).Size()

// Validate reports every invalid field with its value and the limit it
// breaks, joined into one error wrapping ErrInvalidConfig. It expects
// defaults applied (EnsureDefaults; a zero TickInterval is an error) and
// changes nothing: not c, and not the transport, which it only asks for its
// frame limit.
//
// That limit is checked here because an append larger than the
// transport's frames is dropped on every send (DropTooLarge) and the
// follower never catches up: with MaxSizePerMsg m, an append's frame body
// can reach transport.MaxMessageSize(m + appendOverhead), and that must
// not exceed Transport.MaxFrameSize().
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.ID == core.None {
		bad("ID is 0; node IDs must be non-zero")
	}
	if _, ok := c.Peers[c.ID]; !ok && c.ID != core.None {
		bad("Peers %v does not include this node's ID %d", peerIDs(c.Peers), c.ID)
	}
	for _, id := range peerIDs(c.Peers) { // sorted, so the report is stable
		addr := c.Peers[id]
		if id == core.None {
			bad("Peers lists node ID 0")
		}
		if addr == "" && id != c.ID {
			bad("Peers gives node %d no address", id)
		}
	}
	if c.Transport == nil {
		bad("Transport is nil")
	}
	if c.Log == nil {
		bad("Log is nil")
	}
	if c.StateMachine == nil {
		bad("StateMachine is nil")
	}
	if c.TickInterval < time.Millisecond {
		bad("TickInterval %v is below the minimum 1ms", c.TickInterval)
	}
	if c.ElectionTicks < 2 {
		bad("ElectionTicks %d is below the minimum 2", c.ElectionTicks)
	}
	if c.HeartbeatTicks < 1 || c.HeartbeatTicks >= c.ElectionTicks {
		bad("HeartbeatTicks %d must be in [1, ElectionTicks %d)", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.MaxBatchEntries < 1 {
		bad("MaxBatchEntries %d is below the minimum 1", c.MaxBatchEntries)
	}
	if c.MaxBatchBytes < 1 {
		bad("MaxBatchBytes %d is below the minimum 1", c.MaxBatchBytes)
	}
	if c.MaxProposalPipeline < 1 {
		bad("MaxProposalPipeline %d is below the minimum 1", c.MaxProposalPipeline)
	}
	if c.MaxInflight < 1 {
		bad("MaxInflight %d is below the minimum 1", c.MaxInflight)
	}
	if c.MaxSizePerMsg < 1 {
		bad("MaxSizePerMsg %d is below the minimum 1", c.MaxSizePerMsg)
	} else if c.Transport != nil {
		frame := uint64(max(c.Transport.MaxFrameSize(), 0))
		need := transport.MaxMessageSize(c.MaxSizePerMsg + appendOverhead)
		if need < c.MaxSizePerMsg { // wrapped around
			need = math.MaxUint64
		}
		if need > frame {
			fit := frame - min(frame, transport.MaxMessageSize(appendOverhead))
			bad("MaxSizePerMsg %d makes appends of up to %d bytes, above the transport's MaxFrameSize %d: "+
				"raise the transport's MaxFrameSize to at least %d or lower MaxSizePerMsg to at most %d",
				c.MaxSizePerMsg, need, frame, need, fit)
		}
	}
	switch c.ReadMode {
	case ReadModeIndex:
	case ReadModeLease:
		if c.DisableCheckQuorum {
			bad("ReadMode lease requires check-quorum, but DisableCheckQuorum is set")
		}
		if c.LeaseDriftTicks < 0 {
			bad("LeaseDriftTicks %d is below the minimum 0", c.LeaseDriftTicks)
		} else if lease := c.ElectionTicks - 1 - c.LeaseDriftTicks; lease <= c.HeartbeatTicks {
			bad("the lease (ElectionTicks %d - 1 - LeaseDriftTicks %d = %d ticks) must be longer than HeartbeatTicks %d", c.ElectionTicks, c.LeaseDriftTicks, lease, c.HeartbeatTicks)
		}
	default:
		bad("ReadMode %d is unknown; want ReadModeIndex or ReadModeLease", uint8(c.ReadMode))
	}
	if (c.SnapshotEntries > 0 || c.SnapshotBytes > 0) && c.SnapshotDir == "" {
		bad("SnapshotEntries %d / SnapshotBytes %d ask for snapshots but SnapshotDir is empty", c.SnapshotEntries, c.SnapshotBytes)
	}
	if c.SnapshotDir != "" && c.StateMachine != nil {
		if _, ok := c.StateMachine.(Snapshotter); !ok {
			bad("SnapshotDir is set but the StateMachine (%T) does not implement Snapshotter", c.StateMachine)
		}
	}
	return errors.Join(errs...)
}

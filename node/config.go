package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/raftbench/raftbench/core"
)

// Defaults for the zero-valued fields of Config. The tick and election
// timeout are sized for a loaded 2-core machine: an election needs
// ElectionTicks·TickInterval of silence, and GC pauses plus fsync stalls
// under load reach tens of milliseconds.
const (
	DefaultTickInterval    = 10 * time.Millisecond
	DefaultElectionTicks   = 100
	DefaultHeartbeatTicks  = 10
	DefaultMaxBatchEntries = 4096
	DefaultMaxBatchBytes   = 4 << 20
	DefaultMaxInflight     = 256
	// DefaultMaxProposalPipeline is 1: one uncommitted batch at a time, with
	// everything proposed meanwhile joining the next. Measured on 3 nodes
	// with fsync on 2 cores (BenchmarkCluster, 256 clients): depth 1 gave
	// 113k ops/s, 2 gave 98k, 4 gave 84k and unbounded 73k, with p99 lowest
	// at 1 too; a single client sees no difference.
	DefaultMaxProposalPipeline = 1
	DefaultMaxSizePerMsg       = 1 << 20
	// DefaultSnapshotTrailing keeps a few seconds of a slow follower's
	// backlog in the log at moderate load.
	DefaultSnapshotTrailing = 4096
)

// setDefaults fills every zero field that has a default.
func (c *Config) setDefaults() {
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
	if c.SnapshotTrailing == 0 && (c.SnapshotEntries > 0 || c.SnapshotBytes > 0) {
		c.SnapshotTrailing = DefaultSnapshotTrailing
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano()) ^ c.ID
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate fills defaults, then reports every invalid field with its value
// and the limit it breaks, joined into one error wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	c.setDefaults()
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
	for id, addr := range c.Peers {
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

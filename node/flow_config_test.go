package node_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
)

// The read mode's settings are defaulted and checked with the rest.
func TestConfig_ReadMode(t *testing.T) {
	base := func() node.Config { return node.Config{ID: 1, Peers: map[uint64]string{1: "a"}} }
	cfg := base()
	cfg.ReadMode = node.ReadModeLease
	cfg.EnsureDefaults()
	if cfg.LeaseDriftTicks != node.DefaultElectionTicks/10 {
		t.Errorf("default LeaseDriftTicks %d, want ElectionTicks/10 = %d", cfg.LeaseDriftTicks, node.DefaultElectionTicks/10)
	}
	for _, tc := range []struct {
		mod  func(*node.Config)
		want string
	}{
		{func(c *node.Config) { c.ReadMode, c.DisableCheckQuorum = node.ReadModeLease, true }, "requires check-quorum"},
		{func(c *node.Config) { c.ReadMode, c.LeaseDriftTicks = node.ReadModeLease, 95 }, "must be longer than HeartbeatTicks 10"},
		{func(c *node.Config) { c.ReadMode, c.LeaseDriftTicks = node.ReadModeLease, -2 }, "LeaseDriftTicks -2"},
		{func(c *node.Config) { c.ReadMode = 5 }, "ReadMode 5 is unknown"},
	} {
		cfg := base()
		tc.mod(&cfg)
		cfg.EnsureDefaults()
		if err := cfg.Validate(); !errors.Is(err, node.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	for _, m := range []node.ReadMode{node.ReadModeIndex, node.ReadModeLease, 7} {
		if m.String() == "" {
			t.Errorf("mode %d has no name", m)
		}
	}
}

// A leader cut off from its quorum takes proposals only up to
// MaxUncommittedBytes and refuses the rest at once with ErrOverloaded:
// through core's cap when every proposal is its own batch and the pipeline
// lets them all into the log, and through the node's own queue when the
// pipeline holds them back.
func TestPropose_OverloadedWhenTheQuorumStalls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pipeline int
		viaCore  bool
	}{
		{"core-cap", 64, true},
		{"queue-cap", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := recorderCluster(t, 3, "tcp", func(cfg *node.Config) {
				cfg.MaxUncommittedBytes = 4 << 10
				cfg.MaxBatchEntries = 1
				cfg.MaxProposalPipeline = tc.pipeline
				// Keep the cut-off leader leading long enough to fill up.
				cfg.ElectionTicks = 100
			})
			lead := c.WaitLeader(10 * time.Second)
			var l *node.Node
			for _, n := range c.Nodes() {
				if n.ID() == lead {
					l = n
				}
			}
			c.Net.Isolate(lead)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			var mu sync.Mutex
			var overloaded, fromCore int
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Add(1)
				done := make(chan struct{})
				before := l.Metrics().Proposals
				go func() {
					defer wg.Done()
					defer close(done)
					_, err := l.Propose(ctx, append(cmd(i), make([]byte, 1<<10)...))
					mu.Lock()
					defer mu.Unlock()
					if errors.Is(err, node.ErrOverloaded) {
						overloaded++
						if errors.Is(err, core.ErrUncommittedLimit) {
							fromCore++
						}
					}
				}()
				if tc.viaCore {
					// One at a time, so each reaches core on its own
					// rather than waiting in the node's queue.
					nodetest.WaitFor(t, 5*time.Second, "the proposal taken or refused", func() bool {
						select {
						case <-done:
							return true
						default:
							return l.Metrics().Proposals > before
						}
					})
				}
			}
			wg.Wait()
			// 32 KiB offered, 4 KiB taken: most must have been refused.
			if overloaded < 20 {
				t.Fatalf("%d of 32 proposals of 1 KiB were refused with ErrOverloaded against a 4 KiB cap", overloaded)
			}
			if tc.viaCore != (fromCore > 0) {
				t.Fatalf("%d refusals came from core's cap; want them to %v", fromCore, tc.viaCore)
			}
			c.Net.Heal()
		})
	}
}

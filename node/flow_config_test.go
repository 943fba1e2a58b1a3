package node_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/node"
)

// The read mode's settings are defaulted and checked with the rest.
func TestConfig_ReadMode(t *testing.T) {
	base := func() node.Config { return node.Config{ID: 1, Peers: map[uint64]string{1: "a"}} }
	cfg := base()
	cfg.ReadMode = node.ReadModeLease
	_ = cfg.Validate()
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

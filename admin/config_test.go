package admin_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/internal/configtest"
	"github.com/raftbench/raftbench/node"
)

// Config follows the config contract (internal/configtest).
func TestConfig_ConfigShape(t *testing.T) {
	collector := prometheus.NewCounter(prometheus.CounterOpts{Name: "probe"})
	// Validate only checks that a node is there; a zero Node is one.
	replica := func() *cluster.Replica { return &cluster.Replica{Node: &node.Node{}} }
	configtest.Check(t, configtest.Case[admin.Config]{
		Sentinel:       admin.ErrInvalidConfig,
		EnsureDefaults: (*admin.Config).EnsureDefaults,
		Validate:       (*admin.Config).Validate,
		Required:       func() admin.Config { return admin.Config{Replica: replica()} },
		Set: func() admin.Config {
			return admin.Config{Replica: replica(), ClusterID: 1, RaftAddr: "r:1", ClientAddr: "c:1", Dir: "d", Knobs: map[string]string{"tick": "5ms"},
				Token: "t", Collectors: []prometheus.Collector{collector}, MaxHashWait: time.Second}
		},
		Bad:  func() admin.Config { return admin.Config{MaxHashWait: -1} },
		Want: []string{"Replica is nil", "MaxHashWait is -1ns"},
	})
}

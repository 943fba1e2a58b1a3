package hashicorp_test

import (
	"testing"
	"time"

	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/peers/hashicorp"
	"github.com/raftbench/raftbench/peers/peertest"
	"github.com/raftbench/raftbench/transport/fault"
)

func TestSuite(t *testing.T) {
	peertest.Run(t, hashicorp.Library, peertest.Options{
		Knobs:       peers.Knobs{ElectionTimeout: 300 * time.Millisecond},
		Unsupported: peers.Knobs{Heartbeat: 50 * time.Millisecond},
		Rules:       fault.Rules{DropRate: 0.05, Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond},
		Refused:     fault.Rules{DuplicateRate: 0.1},
		Snapshots:   peers.Knobs{SnapshotEntries: 100, SnapshotTrailing: 20},
		// raft.FileSnapshotStore keeps each snapshot as <id>/state.bin.
		SnapshotTaken: func(dir string) bool { return peertest.HasFile(dir, "state.bin") },
	})
}

// TestSmoke logs a quick throughput number: go test -run TestSmoke -peers.smoke=3s
func TestSmoke(t *testing.T) { peertest.Smoke(t, hashicorp.Library, peers.Knobs{}) }

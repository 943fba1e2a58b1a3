package etcd_test

import (
	"testing"
	"time"

	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/peers/etcd"
	"github.com/raftbench/raftbench/peers/peertest"
	"github.com/raftbench/raftbench/transport/fault"
)

// testKnobs keep failovers short: a 300 ms election timeout.
var testKnobs = peers.Knobs{Tick: 10 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, Heartbeat: 30 * time.Millisecond}

// faults are every message fault the fault package has: etcd's transport
// is ours, so all of them apply.
var faults = fault.Rules{DropRate: 0.05, DuplicateRate: 0.05, ReorderRate: 0.05, Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}

func TestSuite(t *testing.T) {
	peertest.Run(t, etcd.Library, peertest.Options{Knobs: testKnobs, Unsupported: peers.Knobs{BatchEntries: 64}, Rules: faults})
}

func TestSuiteAsyncStorageWrites(t *testing.T) {
	k := testKnobs
	k.AsyncStorageWrites = true
	peertest.Run(t, etcd.Library, peertest.Options{Knobs: k, Unsupported: peers.Knobs{SnapshotEntries: 1000}, Rules: faults})
}

// TestSmoke logs a quick throughput number: go test -run TestSmoke -peers.smoke=3s
func TestSmoke(t *testing.T) { peertest.Smoke(t, etcd.Library, peers.Knobs{}) }

// TestSmokeAsync is TestSmoke with AsyncStorageWrites.
func TestSmokeAsync(t *testing.T) {
	peertest.Smoke(t, etcd.Library, peers.Knobs{AsyncStorageWrites: true})
}

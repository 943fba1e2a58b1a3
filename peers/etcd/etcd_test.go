package etcd_test

import (
	"testing"
	"time"

	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/peers/etcd"
	"github.com/raftbench/raftbench/peers/peertest"
)

// testKnobs keep failovers short: a 300 ms election timeout.
var testKnobs = peers.Knobs{Tick: 10 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, Heartbeat: 30 * time.Millisecond}

func TestSuite(t *testing.T) {
	peertest.Run(t, etcd.Library, peertest.Options{Knobs: testKnobs, Unsupported: peers.Knobs{BatchEntries: 64}})
}

func TestSuiteAsyncStorageWrites(t *testing.T) {
	k := testKnobs
	k.AsyncStorageWrites = true
	peertest.Run(t, etcd.Library, peertest.Options{Knobs: k, Unsupported: peers.Knobs{SnapshotEntries: 1000}})
}

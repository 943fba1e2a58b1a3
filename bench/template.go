package bench

import (
	"fmt"
	"log/slog"

	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/wal"
)

// NodeKnobs are the knobs that configure a node (the rest shape a run: its
// size, workload, faults, profiles and output, RunKnobs). `raftbench node`
// takes them as flags of the same name and meaning, and a run with --procs
// passes them to every node process (NodeFlags). A test keeps the two lists
// covering Knobs, so a new knob must be classified.
var NodeKnobs = []string{
	"transport", "wal", "sync", "seed",
	"batch-entries", "batch-bytes", "max-inflight", "max-msg-bytes",
	"tick", "election-timeout", "heartbeat", "prevote", "checkquorum",
	"snapshot-every", "snapshot-trailing", "wal-memtable", "wal-spare", "wal-marker-lag",
	"max-inflight-bytes", "max-uncommitted-bytes", "read-mode", "proposal-pipeline",
}

// RunKnobs are the knobs that shape a run, not a node.
var RunKnobs = []string{
	"nodes", "dir", "payload", "clients", "rate", "duration", "warmup", "read-ratio", "keys", "op-timeout",
	"count", "fault", "cpuprofile", "memprofile", "mutexprofile", "blockprofile", "trace", "pprof-addr",
	"check", "out", "attempt-timeout", "metrics-addr",
	"system", "groups", "procs", "netns", "dir-template", "cluster", "admin", "admin-token", "admin-token-file",
}

// NodeKnobValues are c's node knobs by name, each as its flag takes it
// (what a `raftbench node` reports on its admin endpoint's /status, and
// what a --cluster run records in config.json).
func (c *Config) NodeKnobValues() map[string]string {
	out := make(map[string]string, len(NodeKnobs))
	for _, name := range NodeKnobs {
		if k, ok := KnobByName(name); ok {
			out[name] = k.Get(c)
		}
	}
	return out
}

// NodeFlags are c's node knobs as `raftbench node` flags ("--tick=1ms",
// ...), every one of them, so a node process runs exactly the knobs of the
// run whatever its own defaults.
func (c *Config) NodeFlags() []string {
	vals := c.NodeKnobValues()
	var flags []string
	for _, name := range NodeKnobs {
		if v, ok := vals[name]; ok { // the classification test keeps the list true
			flags = append(flags, fmt.Sprintf("--%s=%s", name, v))
		}
	}
	return flags
}

// Template is the one mapping of c's node knobs onto a node: the cluster
// template every raftbench node of a run is built from, in this process
// (the in-process target) or in a `raftbench node` process (which builds
// its template here from the same knobs, given as its flags). The WAL
// "crashable" is Pebble to the template: the in-process target opens it on
// its crashable filesystem through Template.OpenWAL.
//
// Every node gets a snapshot directory: a node that falls behind a
// compacted leader catches up by snapshot, which needs somewhere to keep
// it.
func (c *Config) Template(clusterID uint64, logger *slog.Logger) cluster.Template {
	walName := c.WAL
	if walName == WALCrashable {
		walName = cluster.WALPebble
	}
	tick := c.Tick.D()
	return cluster.Template{
		ClusterID: clusterID, Transport: c.Transport, WAL: walName,
		Pebble: wal.PebbleOptions{MemTableSize: uint64(c.WALMemtable), SpareWAL: uint64(c.WALSpare),
			MarkerLag: c.WALMarkerLag.D(), ExactMarker: c.WALMarkerLag == 0},
		Snapshots: true,
		Logger:    logger,
		Node: node.Config{
			TickInterval:        tick,
			ElectionTicks:       int(c.ElectionTimeout.D() / tick),
			HeartbeatTicks:      int(c.Heartbeat.D() / tick),
			MaxBatchEntries:     c.BatchEntries,
			MaxBatchBytes:       c.BatchBytes,
			MaxProposalPipeline: c.ProposalPipeline,
			MaxInflight:         c.MaxInflight,
			MaxSizePerMsg:       uint64(c.MaxMsgBytes),
			MaxInflightBytes:    uint64(c.MaxInflightBytes),
			MaxUncommittedBytes: uint64(c.MaxUncommittedBytes),
			DisablePreVote:      !c.PreVote,
			DisableCheckQuorum:  !c.CheckQuorum,
			ReadMode:            readMode(c.ReadMode),
			NoSync:              !c.Sync,
			SnapshotEntries:     uint64(c.SnapshotEvery),
			SnapshotTrailing:    uint64(c.SnapshotTrailing),
			// The cluster's seed: each node's is derived from it, its ID
			// and its incarnation (cluster.NodeSeed).
			Seed:   c.Seed,
			Logger: logger,
		},
	}
}

// readMode maps --read-mode (validated to index or lease) to node's.
func readMode(s string) node.ReadMode {
	if s == "lease" {
		return node.ReadModeLease
	}
	return node.ReadModeIndex
}

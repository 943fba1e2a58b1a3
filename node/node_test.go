package node_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/wal"
)

// Validate names every bad field; EnsureDefaults fills the defaults.
func TestConfig_Validate(t *testing.T) {
	cfg := node.Config{ID: 0, Peers: map[uint64]string{0: "", 2: ""}, TickInterval: time.Microsecond, ElectionTicks: 1, HeartbeatTicks: 5,
		MaxBatchEntries: -1, MaxBatchBytes: -1, MaxInflight: -1, MaxProposalPipeline: -1, SnapshotEntries: 5}
	err := cfg.Validate()
	if !errors.Is(err, node.ErrInvalidConfig) {
		t.Fatalf("Validate: %v", err)
	}
	for _, want := range []string{"ID is 0", "Peers lists node ID 0", "node 2 no address", "Transport is nil", "Log is nil",
		"StateMachine is nil", "TickInterval 1µs", "ElectionTicks 1", "HeartbeatTicks 5", "MaxBatchEntries -1", "MaxBatchBytes -1",
		"MaxInflight -1", "MaxProposalPipeline -1", "SnapshotDir is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	cfg = node.Config{ID: 3, Peers: map[uint64]string{1: "a", 2: "b"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "does not include this node's ID 3") {
		t.Errorf("self missing from peers: %v", err)
	}
	cfg = node.Config{ID: 1, Peers: map[uint64]string{1: "a"}, StateMachine: &recorder{}, SnapshotDir: t.TempDir()}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "does not implement Snapshotter") {
		t.Errorf("snapshots without a Snapshotter: %v", err)
	}
	cfg = node.Config{}
	cfg.EnsureDefaults()
	if cfg.TickInterval != node.DefaultTickInterval || cfg.ElectionTicks != node.DefaultElectionTicks || cfg.MaxInflight != node.DefaultMaxInflight ||
		cfg.MaxProposalPipeline != node.DefaultMaxProposalPipeline || cfg.Logger == nil {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	if _, err := node.Start(node.Config{}); !errors.Is(err, node.ErrInvalidConfig) {
		t.Errorf("Start(Config{}) = %v", err)
	}
}

func TestErrors_TypedAndMatchable(t *testing.T) {
	c := recorderCluster(t, 3, "tcp", nil)
	lead := c.WaitLeader(10 * time.Second)
	var follower *node.Node
	for _, n := range c.Nodes() {
		if n.ID() != lead {
			follower = n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := follower.Propose(ctx, []byte("x"))
	var nl *node.NotLeaderError
	if !errors.Is(err, node.ErrNotLeader) || !errors.As(err, &nl) || nl.Leader != lead {
		t.Fatalf("Propose on a follower: %v, want NotLeaderError naming leader %d", err, lead)
	}
	if _, err := follower.Read(ctx, nil); !errors.Is(err, node.ErrNotLeader) {
		t.Fatalf("Read on a follower: %v", err)
	}
	leader := c.Node(lead)
	if _, err := leader.Propose(ctx, make([]byte, node.DefaultMaxSizePerMsg+1)); !errors.Is(err, node.ErrProposalTooLarge) {
		t.Fatalf("oversized proposal: %v", err)
	}
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := leader.Propose(expired, []byte("y")); !errors.Is(err, node.ErrTimeout) {
		t.Fatalf("Propose with a done context: %v", err)
	}
	// A linearizable read through ReadIndex sees the applied command.
	if _, err := leader.Propose(ctx, []byte("z")); err != nil {
		t.Fatal(err)
	}
	v, err := leader.Read(ctx, nil)
	if err != nil || v.(int) < 1 {
		t.Fatalf("Read: %v, %v", v, err)
	}
	s := leader.Status()
	if s.Role != core.Leader || s.Leader != lead || s.Commit < 2 || len(s.Progress) != 3 || s.Applied < 2 {
		t.Fatalf("status %+v", s)
	}
	if m := leader.Metrics(); m.Proposals < 1 || m.Fsyncs < 1 || m.MessagesSent == 0 {
		t.Fatalf("metrics %+v", m)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(leader.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) < 10 {
		t.Fatalf("gathered %d metric families (%v)", len(mfs), err)
	}
	// Snapshots are refused without a SnapshotDir.
	if err := leader.Snapshot(ctx); !errors.Is(err, node.ErrNoSnapshots) {
		t.Fatalf("Snapshot without SnapshotDir: %v", err)
	}
	// Transfer, then a stopped node refuses everything.
	var to uint64
	for _, id := range c.IDs() {
		if id != lead {
			to = id
			break
		}
	}
	if err := leader.TransferLeadership(ctx, to); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if got := c.Node(to).Status(); got.Role != core.Leader {
		t.Fatalf("transfer target is %s", got.Role)
	}
	if err := leader.TransferLeadership(ctx, 99); !errors.Is(err, node.ErrNotLeader) {
		t.Fatalf("transfer from a non-leader: %v", err)
	}
	c.Stop(lead)
	if _, err := leader.Propose(ctx, []byte("w")); !errors.Is(err, node.ErrStopped) {
		t.Fatalf("Propose after Stop: %v", err)
	}
	if err := leader.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// A storage failure stops the node with the error instead of corrupting
// anything: the writer's failed save is fatal.
func TestFatal_WALFailureStopsNode(t *testing.T) {
	var failing *failingLog
	c := recorderCluster(t, 1, "tcp", func(cfg *node.Config) {
		failing = &failingLog{Log: cfg.Log}
		cfg.Log = failing
	})
	n := c.Node(c.WaitLeader(10 * time.Second))
	failing.fail.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Propose(ctx, []byte("x")); !errors.Is(err, node.ErrStopped) {
		t.Fatalf("Propose over a failing WAL: %v, want ErrStopped", err)
	}
	select {
	case <-n.Done():
	case <-ctx.Done():
		t.Fatal("node did not stop")
	}
	if !errors.Is(n.Err(), errWALBroken) {
		t.Fatalf("Err() = %v", n.Err())
	}
}

var errWALBroken = errors.New("disk gone")

type failingLog struct {
	wal.Log
	fail atomic.Bool
}

func (f *failingLog) Save(hs core.HardState, ents []core.Entry, sync bool) error {
	if f.fail.Load() {
		return errWALBroken
	}
	return f.Log.Save(hs, ents, sync)
}

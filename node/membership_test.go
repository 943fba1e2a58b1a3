package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
)

// snapConfig turns on frequent snapshots with a short trailing log.
func snapConfig(cfg *node.Config) {
	cfg.SnapshotEntries = 300
	cfg.SnapshotTrailing = 50
}

// changeOnLeader retries a membership change against the current leader
// until done reports it in force (another change may be settling, and an
// attempt whose outcome was unknown may have gone through after all).
func changeOnLeader(t *testing.T, c *nodetest.Cluster, done func() bool, f func(ctx context.Context, l *node.Node) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		l := c.LeaderNode()
		var err error
		if done != nil && done() {
			return
		}
		if l != nil {
			err = f(ctx, l)
			if err == nil {
				return
			}
			if !errors.Is(err, core.ErrConfChangePending) && !errors.Is(err, node.ErrNotLeader) &&
				!errors.Is(err, node.ErrLeadershipLost) && !errors.Is(err, node.ErrTimeout) && !errors.Is(err, node.ErrStopped) {
				t.Fatalf("membership change: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("membership change did not go through: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// isMember reports whether the leader has id in its membership (a leader
// that has just removed itself no longer leads, so this asks the current
// one).
func isMember(c *nodetest.Cluster, id uint64) bool {
	l := c.LeaderNode()
	if l == nil {
		return false
	}
	_, ok := l.Status().Progress[id]
	return ok
}

func voters(c *nodetest.Cluster) []uint64 {
	if l := c.LeaderNode(); l != nil {
		var ids []uint64
		for id, p := range l.Status().Progress {
			if !p.Learner {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	return nil
}

func TestMembership_GrowShrinkReplaceUnderLoad(t *testing.T) {
	for _, kind := range []string{"tcp", "quic"} {
		t.Run(kind, func(t *testing.T) {
			c := kvCluster(t, 3, kind, true, snapConfig)
			c.WaitLeader(10 * time.Second)
			eps := endpoints(c, 1, 2, 3, 4, 5, 6)
			w := startWorkload(t, eps, 6)
			w.waitOps(t, 400, 30*time.Second) // enough to snapshot and compact

			// Grow 3 → 5: start empty nodes, add them as learners (they
			// catch up by snapshot, the log being compacted), promote.
			for _, id := range []uint64{4, 5} {
				addr := c.AddNode(id)
				changeOnLeader(t, c, func() bool { return isMember(c, id) }, func(ctx context.Context, l *node.Node) error { return l.AddLearner(ctx, id, addr) })
				changeOnLeader(t, c, func() bool { return slices.Contains(voters(c), id) }, func(ctx context.Context, l *node.Node) error { return l.PromoteLearner(ctx, id) })
			}
			nodetest.WaitFor(t, 10*time.Second, "five voters", func() bool { return slices.Equal(voters(c), []uint64{1, 2, 3, 4, 5}) })
			w.waitOps(t, 100, 20*time.Second)

			// Shrink 5 → 3, the leader first.
			lead := c.WaitLeader(10 * time.Second)
			changeOnLeader(t, c, func() bool { return !isMember(c, lead) }, func(ctx context.Context, l *node.Node) error { return l.RemoveNode(ctx, lead) })
			nodetest.WaitFor(t, 20*time.Second, "a new leader after removing the old one", func() bool {
				l := c.LeaderNode()
				return l != nil && l.ID() != lead
			})
			c.Stop(lead)
			var other uint64
			for _, id := range voters(c) {
				if id != lead && id != c.LeaderNode().ID() {
					other = id
					break
				}
			}
			changeOnLeader(t, c, func() bool { return !isMember(c, other) }, func(ctx context.Context, l *node.Node) error { return l.RemoveNode(ctx, other) })
			c.Stop(other)
			nodetest.WaitFor(t, 10*time.Second, "three voters", func() bool { return len(voters(c)) == 3 })
			w.waitOps(t, 100, 20*time.Second)

			// Replace a crashed node by a new one that catches up by
			// snapshot (joint consensus: add and remove at once).
			victim := voters(c)[0]
			if victim == c.LeaderNode().ID() {
				victim = voters(c)[1]
			}
			c.Stop(victim)
			w.waitOps(t, 300, 20*time.Second) // the log moves past the victim
			addr := c.AddNode(6)
			changeOnLeader(t, c, func() bool { return isMember(c, 6) && !isMember(c, victim) }, func(ctx context.Context, l *node.Node) error {
				return l.ChangeMembership(ctx, core.ConfChange{Changes: []core.ConfChangeSingle{
					{Type: core.AddVoter, NodeID: 6, Context: []byte(addr)},
					{Type: core.RemoveNode, NodeID: victim},
				}})
			})
			nodetest.WaitFor(t, 20*time.Second, "the replacement to join", func() bool {
				v := voters(c)
				return len(v) == 3 && slices.Contains(v, 6) && !slices.Contains(v, victim)
			})
			w.waitOps(t, 100, 20*time.Second)
			w.stopAndCheck(t)
			checkReplicasAgree(t, c)
			// The new node was brought up by a snapshot, not the whole log.
			if first, err := c.Node(6).LogFirstIndex(); err != nil || first <= 1 {
				t.Fatalf("node 6's log starts at %d (%v): it did not catch up by snapshot", first, err)
			}
			if keys, _ := c.SM(6).(*kv.Store).Len(); keys == 0 {
				t.Fatal("node 6 holds no data")
			}
			var snapshots uint64
			for _, n := range c.Nodes() {
				snapshots += n.Metrics().Snapshots
			}
			if snapshots == 0 {
				t.Fatal("no snapshot was taken: the log was never compacted")
			}
		})
	}
}

// A node restarted after compaction loads its snapshot and its log tail,
// and the WAL stays bounded while the cluster keeps writing.
func TestSnapshot_RestartAfterCompactionAndBoundedWAL(t *testing.T) {
	c := kvCluster(t, 3, "tcp", true, snapConfig)
	c.WaitLeader(10 * time.Second)
	w := startWorkload(t, endpoints(c, 1, 2, 3), 6)
	w.waitOps(t, 1500, 60*time.Second)
	var follower uint64
	for _, id := range c.IDs() {
		if id != c.LeaderNode().ID() {
			follower = id
		}
	}
	var before [32]byte
	c.Stop(follower)
	first, _ := walFirstIndex(t, c, follower)
	if first <= 1 {
		t.Fatalf("node %d's log starts at %d: it was never compacted", follower, first)
	}
	c.Restart(follower)
	w.waitOps(t, 300, 30*time.Second)
	w.stopAndCheck(t)
	checkReplicasAgree(t, c)
	before = c.SM(follower).(*kv.Store).Hash()
	if before == ([32]byte{}) {
		t.Fatal("restarted node has an empty state")
	}
	// Bounded: the trailing log plus what accumulates between snapshots,
	// not the whole history.
	for _, id := range c.IDs() {
		n := c.Node(id)
		applied := n.Metrics().Applied
		lo, err := walFirstIndexRunning(c, id)
		if err != nil {
			t.Fatal(err)
		}
		if applied-lo > 2000 {
			t.Errorf("node %d keeps %d entries of log (first %d, applied %d): compaction is not bounding it", id, applied-lo, lo, applied)
		}
	}
}

// walFirstIndex reads a stopped node's snapshot dir to find where its log
// starts: the newest image's index.
func walFirstIndex(t *testing.T, c *nodetest.Cluster, id uint64) (uint64, error) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.Dir(id), "snap"))
	if err != nil {
		t.Fatalf("snapshot dir of %d: %v", id, err)
	}
	var idx uint64
	for _, e := range ents {
		var i uint64
		if n, _ := fmtSscanf(e.Name(), &i); n == 1 && i > idx {
			idx = i
		}
	}
	return idx, nil
}

// walFirstIndexRunning is the compaction point of a running node, read from
// the node's status: the lowest index it could still send from the log.
func walFirstIndexRunning(c *nodetest.Cluster, id uint64) (uint64, error) {
	n := c.Node(id)
	if n == nil {
		return 0, errors.New("node not running")
	}
	return n.LogFirstIndex()
}

// A node without a SnapshotDir that falls behind a compacted log cannot
// keep the snapshot it would need: it stops with ErrNoSnapshots instead of
// running on a state it could not persist.
func TestSnapshot_WithoutSnapshotDirStopsClearly(t *testing.T) {
	c := kvCluster(t, 3, "tcp", true, func(cfg *node.Config) {
		snapConfig(cfg)
		if cfg.ID == 3 {
			cfg.SnapshotDir, cfg.SnapshotEntries, cfg.SnapshotTrailing = "", 0, 0
		}
	})
	c.WaitLeader(10 * time.Second)
	if c.LeaderNode().ID() == 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.Node(3).TransferLeadership(ctx, 1); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	c.Stop(3)
	w := startWorkload(t, endpoints(c, 1, 2), 6)
	w.waitOps(t, 1500, 60*time.Second) // several snapshots and compactions
	w.stopAndCheck(t)
	c.Restart(3)
	n := c.Node(3)
	select {
	case <-n.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("node 3 kept running without being able to keep a snapshot")
	}
	if !errors.Is(n.Err(), node.ErrNoSnapshots) {
		t.Fatalf("node 3 stopped with %v, want ErrNoSnapshots", n.Err())
	}
}

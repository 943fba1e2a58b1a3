package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/wal"
)

// fastNode is a node template quick enough for tests on a loaded machine.
func fastNode() node.Config {
	return node.Config{
		TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4,
		Logger: slog.New(slog.DiscardHandler),
	}
}

func startCluster(t *testing.T, o Options) *Cluster {
	t.Helper()
	c, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// waitApplied waits until every running node applied at least index.
func waitApplied(t *testing.T, c *Cluster, index uint64) {
	t.Helper()
	err := waitFor(context.Background(), 10*time.Second, fmt.Sprintf("every node at index %d", index), func() bool {
		for _, n := range c.Running() {
			if n.Status().Applied < index {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClusterRestart writes through kv.Client while the leader is stopped
// and restarted: the endpoints follow it, rules and slow disk outlive the
// restart, the restarted node catches up on its old directory and address,
// and every replica ends with the same state.
func TestClusterRestart(t *testing.T) {
	c := startCluster(t, Options{Nodes: 3, MaxID: 4, Template: Template{ClusterID: 9, Snapshots: true, Node: fastNode()}})
	ctx := context.Background()
	lead, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kv.NewClient(c.Endpoints(), kv.ClientOptions{AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		t.Helper()
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := cl.Put(octx, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for i := range 10 {
		put(i)
	}
	rules := fault.Rules{Delay: time.Millisecond}
	if err := c.SetRules(lead, rules); err != nil {
		t.Fatal(err)
	}
	c.SetDiskDelay(lead, time.Millisecond)
	addr, dir := c.Addr(lead), c.NodeDir(lead)
	if err := c.Stop(lead); err != nil {
		t.Fatal(err)
	}
	if got := c.Stopped(); len(got) != 1 || got[0] != lead {
		t.Errorf("Stopped = %v, want [%d]", got, lead)
	}
	if _, err := c.Endpoint(lead).Propose(ctx, nil); !errors.Is(err, node.ErrStopped) {
		t.Errorf("endpoint of a stopped node = %v, want ErrStopped", err)
	}
	for i := 10; i < 20; i++ {
		put(i) // the client moves to the new leader
	}
	if err := c.Restart(lead); err != nil {
		t.Fatal(err)
	}
	if c.Addr(lead) != addr || c.NodeDir(lead) != dir || c.Restarts(lead) != 1 {
		t.Errorf("restarted node moved: %s %s (restarts %d), was %s %s", c.Addr(lead), c.NodeDir(lead), c.Restarts(lead), addr, dir)
	}
	if got := c.Fault(lead).Rules(); got != rules {
		t.Errorf("rules after restart = %+v, want %+v", got, rules)
	}
	if c.DiskDelay(lead) != time.Millisecond || c.Replica(lead).Disk.Delay() != time.Millisecond {
		t.Errorf("slow disk lost across the restart")
	}
	c.HealAll()
	if c.Fault(lead).Rules() != (fault.Rules{}) || c.DiskDelay(lead) != 0 {
		t.Errorf("HealAll left faults in force")
	}
	put(20)
	l, _ := c.Leader()
	waitApplied(t, c, c.Node(l).Status().Commit)
	var ref [32]byte
	for i, id := range c.IDs() {
		h := c.Store(id).Hash()
		if i == 0 {
			ref = h
		} else if h != ref {
			t.Errorf("node %d's state differs", id)
		}
		if v, ok := c.Store(id).Get([]byte("k15")); !ok || string(v) != "v15" {
			t.Errorf("node %d: k15 = %q, %v", id, v, ok)
		}
	}
	// Node 4 has no node yet: its endpoint redirects to the leader.
	var nle *node.NotLeaderError
	if _, err := c.Endpoint(4).Propose(ctx, nil); !errors.As(err, &nle) || nle.Leader == 0 {
		t.Errorf("endpoint of an unstarted node = %v, want a redirect to the leader", err)
	}
	c.SampleDisk()
	if peaks := c.DiskPeaks(); len(peaks) != 3 || peaks[1] == 0 {
		t.Errorf("DiskPeaks = %v, want a size per node", peaks)
	}
}

// TestClusterJoin starts a fourth node as a learner, adds it, and sees it
// catch up; a fifth has no ID left.
func TestClusterJoin(t *testing.T) {
	c := startCluster(t, Options{Nodes: 3, MaxID: 4, Template: Template{Transport: "quic", WAL: "memory", Node: fastNode()}})
	ctx := context.Background()
	lead, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A first commit of the leader's term, which a membership change needs.
	if _, err := c.Node(lead).Propose(actx, []byte("not a kv command: applied as a bad one")); err != nil {
		t.Fatal(err)
	}
	id, addr, err := c.StartNew(ctx)
	if err != nil || id != 4 || addr == "" {
		t.Fatalf("StartNew = %d, %q, %v", id, addr, err)
	}
	if err := c.Node(lead).AddLearner(actx, id, addr); err != nil {
		t.Fatal(err)
	}
	if !c.IsMember(id, true) || c.IsMember(id, false) {
		t.Errorf("node 4 should be a learner")
	}
	waitApplied(t, c, c.Node(lead).Status().Commit)
	if _, _, err := c.StartNew(ctx); err == nil {
		t.Error("StartNew past MaxID succeeded")
	}
	if err := c.Restart(2); err == nil {
		t.Error("Restart of a running node succeeded")
	}
	if err := c.Stop(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(2); err == nil {
		t.Error("Restart on a memory WAL succeeded")
	}
}

// TestStartCleansUp: a node that cannot start leaves nothing behind — its
// transport's port is free again and its directory unlocked.
func TestStartCleansUp(t *testing.T) {
	tmpl := Template{ClusterID: 1, Node: fastNode()}
	dir := t.TempDir()
	held, err := OpenDataDir(dir, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tmpl.Listen(1, "127.0.0.1:0", Faults{})
	if err != nil {
		t.Fatal(err)
	}
	addr := tr.Addr()
	_, err = tmpl.Start(NodeSpec{ID: 1, Peers: map[uint64]string{1: addr}, Transport: tr, Dir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Start on a held directory = %v, want ErrLocked", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the failed start kept its port: %v", err)
	}
	_ = ln.Close()
	_ = held.Close()

	tr, err = tmpl.Listen(1, addr, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Start(NodeSpec{ID: 1, Peers: map[uint64]string{2: "x:1"}, Transport: tr})
	if !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("Start with a bad spec = %v, want ErrInvalidSpec", err)
	}
	for _, want := range []string{"does not include the node itself", "no data directory"} {
		if !containsErr(err, want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	rep, err := tmpl.Start(NodeSpec{ID: 1, Peers: map[uint64]string{1: addr}, Transport: mustListen(t, tmpl, addr), Dir: dir})
	if err != nil {
		t.Fatalf("Start after the failures: %v", err)
	}
	if err := waitFor(context.Background(), 10*time.Second, "a leader", func() bool { return rep.Node.Status().Role == core.Leader }); err != nil {
		t.Fatal(err)
	}
	if err := rep.Stop(); err != nil {
		t.Fatal(err)
	}
	// The other cluster's node refuses the directory.
	other := Template{ClusterID: 2, Node: fastNode()}
	if _, err := other.Start(NodeSpec{ID: 1, Peers: map[uint64]string{1: addr}, Transport: mustListen(t, other, addr), Dir: dir}); !errors.Is(err, ErrWrongCluster) {
		t.Errorf("Start of another cluster's node = %v, want ErrWrongCluster", err)
	}
}

func mustListen(t *testing.T, tmpl Template, addr string) *fault.Transport {
	t.Helper()
	var tr *fault.Transport
	err := waitFor(context.Background(), 2*time.Second, "the port", func() bool {
		var err error
		tr, err = tmpl.Listen(1, addr, Faults{})
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func containsErr(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// TestOpenWAL: a template's own opener opens every incarnation's log, in
// the node's wal/ directory, across restarts.
func TestOpenWAL(t *testing.T) {
	var mu sync.Mutex
	opened := map[uint64][]string{}
	tmpl := Template{Node: fastNode(), OpenWAL: func(id uint64, dir string) (wal.Log, error) {
		mu.Lock()
		opened[id] = append(opened[id], dir)
		mu.Unlock()
		return wal.OpenPebble(dir, wal.PebbleOptions{})
	}}
	c := startCluster(t, Options{Nodes: 1, Template: tmpl})
	if _, err := c.WaitLeader(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := filepath.Join(c.NodeDir(1), "wal")
	if len(opened[1]) != 2 || opened[1][0] != want || opened[1][1] != want {
		t.Errorf("OpenWAL calls %v, want two in %s", opened[1], want)
	}
}

// TestClusterCrash: a crash takes the node out at once — its endpoint
// answers ErrStopped, the image callback sees it cut off — and a restart
// brings it back on its directory; an answer a crash overtook is withheld;
// DiskUsage adds to the sampled size.
func TestClusterCrash(t *testing.T) {
	c := startCluster(t, Options{Nodes: 3, Template: Template{Node: fastNode()},
		DiskUsage: func(id uint64) int64 { return int64(id) << 40 }})
	ctx := context.Background()
	lead, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	victim := lead%3 + 1
	var imaged *Replica
	if err := c.Crash(victim, func(r *Replica) {
		imaged = r
		if got := r.Fault.Rules(); got.DropRate != 1 {
			t.Errorf("at the image the crashed node's rules are %+v, want every message dropped", got)
		}
		if c.Replica(victim) != nil {
			t.Error("at the image the crashed node still counts as running")
		}
	}); err != nil {
		t.Logf("stop after the crash: %v", err)
	}
	if imaged == nil || imaged.Node.ID() != victim {
		t.Fatalf("image callback got %v, want node %d's replica", imaged, victim)
	}
	if _, err := c.Endpoint(victim).Propose(ctx, nil); !errors.Is(err, node.ErrStopped) {
		t.Errorf("endpoint of a crashed node = %v, want ErrStopped", err)
	}
	if err := c.Crash(victim, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("crash of a crashed node = %v, want ErrNotRunning", err)
	}
	if got := c.Stopped(); len(got) != 1 || got[0] != victim {
		t.Errorf("Stopped = %v, want [%d]", got, victim)
	}
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	if c.Fault(victim).Rules() != (fault.Rules{}) {
		t.Errorf("the restarted node kept the crash's drop rule: %+v", c.Fault(victim).Rules())
	}
	// An answer from before the crash count moved is withheld.
	e := c.Endpoint(victim)
	_, crashes, err := e.current()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.answer(crashes, "ok", nil); err != nil || v != "ok" {
		t.Errorf("answer without a crash = %v, %v", v, err)
	}
	c.slots[victim].crashes.Add(1)
	if _, err := e.answer(crashes, "ok", nil); !errors.Is(err, node.ErrStopped) {
		t.Errorf("answer overtaken by a crash = %v, want ErrStopped", err)
	}
	c.SampleDisk()
	if p := c.DiskPeaks(); p[2] < 2<<40 {
		t.Errorf("DiskPeaks %v do not include DiskUsage", p)
	}
}

// TestLockFreePolls: the reads every client operation and every leadership
// poll make allocate nothing.
func TestLockFreePolls(t *testing.T) {
	c := startCluster(t, Options{Nodes: 3, MaxID: 5, Template: Template{WAL: WALMemory, Node: fastNode()}})
	if _, err := c.WaitLeader(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { c.Leader(); c.MaxTerm() }); a != 0 {
		t.Errorf("Leader and MaxTerm allocate %v times a call", a)
	}
	e := c.Endpoint(2)
	if a := testing.AllocsPerRun(100, func() { _, _, _ = e.current() }); a != 0 {
		t.Errorf("an endpoint's lookup of its node allocates %v times a call", a)
	}
}

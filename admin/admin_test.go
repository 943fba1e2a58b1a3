package admin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
	"github.com/raftbench/raftbench/transport/fault"
)

const token = "s3cret"

// testCluster is a 3-node in-process cluster with an admin endpoint per
// node.
type testCluster struct {
	c       *cluster.Cluster
	clients map[uint64]*admin.Client
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	c, err := cluster.Start(cluster.Options{Nodes: 3, Template: cluster.Template{ClusterID: 5, WAL: "memory", Snapshots: true, Node: node.Config{
		TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4, Logger: slog.New(slog.DiscardHandler),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	tc := &testCluster{c: c, clients: map[uint64]*admin.Client{}}
	for id := uint64(1); id <= 3; id++ {
		h, err := admin.NewHandler(admin.Config{Replica: c.Replica(id), ClusterID: 5, RaftAddr: c.Addr(id), Token: token,
			Knobs: map[string]string{"tick": "5ms"}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		if tc.clients[id], err = admin.NewClient(srv.URL, token, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitLeader(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return tc
}

// quiesce waits until every node applied what the leader committed and
// returns that index.
func (tc *testCluster) quiesce(t *testing.T) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lead, _ := tc.c.Leader()
		if lead != 0 {
			commit := tc.c.Node(lead).Status().Commit
			all := true
			for _, n := range tc.c.Running() {
				if st := n.Status(); st.Applied != commit || st.Commit != commit {
					all = false
				}
			}
			if all {
				return commit
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("cluster did not quiesce")
	return 0
}

func TestStatusAndAuth(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	lead, _ := tc.c.Leader()
	st, err := tc.clients[lead].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != lead || st.Role != "Leader" || st.Leader != lead || !st.Ready || st.ClusterID != 5 ||
		!reflect.DeepEqual(st.Voters, []uint64{1, 2, 3}) || len(st.Progress) != 3 || st.LastIndex < st.Commit || st.PID == 0 {
		t.Errorf("leader status %+v", st)
	}
	// /status is open; everything else needs the token.
	anon := tc.anonymous(t, 1, "")
	if _, err := anon.Status(ctx); err != nil {
		t.Errorf("status without a token: %v", err)
	}
	for _, cl := range []*admin.Client{anon, tc.anonymous(t, 1, "wrong")} {
		if _, err := cl.Hash(ctx, 0, 0); !errors.Is(err, admin.ErrUnauthorized) {
			t.Errorf("hash with a bad token = %v, want ErrUnauthorized", err)
		}
		if err := cl.Heal(ctx); !errors.Is(err, admin.ErrUnauthorized) {
			t.Errorf("heal with a bad token = %v, want ErrUnauthorized", err)
		}
	}
	m, err := tc.clients[lead].Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"raftbench_proposals_total", "raftbench_transport_messages_total{direction=\"sent\"}", "raftbench_fault_messages_total", "go_goroutines"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var prof bytes.Buffer
	if err := tc.clients[lead].Profile(ctx, "heap", 0, &prof); err != nil || prof.Len() == 0 {
		t.Errorf("heap profile: %d bytes, %v", prof.Len(), err)
	}
	// A stopped node is not ready.
	follower := lead%3 + 1
	if err := tc.c.Stop(follower); err != nil {
		t.Fatal(err)
	}
	if st, err := tc.clients[follower].Status(ctx); err != nil || st.Ready || st.Err == "" {
		t.Errorf("stopped node's status %+v, %v", st, err)
	}
}

// anonymous is a client of node id's endpoint with another token.
func (tc *testCluster) anonymous(t *testing.T, id uint64, tok string) *admin.Client {
	t.Helper()
	h, err := admin.NewHandler(admin.Config{Replica: tc.c.Replica(id), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cl, err := admin.NewClient(srv.URL, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestHashAtIndex: after the load stops, every replica answers the same
// hash at the index all have applied; an index the state has moved past is
// refused, one not reached yet is waited for and then refused as behind.
func TestHashAtIndex(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	cl, err := kv.NewClient(tc.c.Endpoints(), kv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.Put(ctx, fmt.Appendf(nil, "k%d", i%5), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	index := tc.quiesce(t)
	var ref string
	for id, c := range tc.clients {
		h, err := c.Hash(ctx, index, time.Second)
		if err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		if h.Index != index || h.StateIndex > index || h.Applied < index || len(h.Hash) != 64 {
			t.Errorf("node %d: %+v at %d", id, h, index)
		}
		if ref == "" {
			ref = h.Hash
		} else if h.Hash != ref {
			t.Errorf("node %d's hash %s differs from %s", id, h.Hash, ref)
		}
		want := tc.c.Store(id).Hash()
		if h.Hash != fmt.Sprintf("%x", want[:]) {
			t.Errorf("node %d: hash is not the store's", id)
		}
	}
	_, err = tc.clients[1].Hash(ctx, 2, 0)
	var ae *admin.Error
	if !errors.Is(err, admin.ErrMovedPast) || !errors.As(err, &ae) || ae.StateIndex <= 2 {
		t.Errorf("hash at an index passed = %v", err)
	}
	start := time.Now()
	_, err = tc.clients[1].Hash(ctx, index+1000, 100*time.Millisecond)
	if !errors.Is(err, admin.ErrBehind) || !errors.As(err, &ae) || ae.Applied < index {
		t.Errorf("hash at a future index = %v", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("hash did not wait")
	}
	// The wait ends as soon as the index is applied.
	done := make(chan error, 1)
	go func() {
		_, err := tc.clients[2].Hash(ctx, index+1, 10*time.Second)
		done <- err
	}()
	if err := cl.Put(ctx, []byte("later"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, admin.ErrMovedPast) {
		t.Errorf("waited hash = %v", err)
	}
}

func TestFaultControls(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	c := tc.clients[2]
	if err := c.Isolate(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.Cut(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	rules := fault.Rules{DropRate: 0.1, Delay: 2 * time.Millisecond, Jitter: time.Millisecond}
	if err := c.SetRules(ctx, rules); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDiskDelay(ctx, 3*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	f, err := c.Faults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Network.Isolated, []uint64{3}) || !reflect.DeepEqual(f.Network.Cuts, [][2]uint64{{1, 2}}) ||
		f.Rules.Fault() != rules || time.Duration(f.DiskDelay) != 3*time.Millisecond {
		t.Errorf("faults %+v", f)
	}
	if got := tc.c.Fault(2).Rules(); got != rules {
		t.Errorf("node 2's wrapper has rules %+v", got)
	}
	if !tc.c.Network().Blocked(3, 1) || !tc.c.Network().Blocked(1, 2) || tc.c.Network().Blocked(2, 1) {
		t.Errorf("partitions not in force")
	}
	if tc.c.DiskDelay(2) != 3*time.Millisecond {
		t.Errorf("slow disk not in force")
	}
	if err := c.Split(ctx, []uint64{1}, []uint64{2, 3}); err != nil {
		t.Fatal(err)
	}
	if !tc.c.Network().Blocked(1, 3) {
		t.Errorf("split not in force")
	}
	if err := c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.Faults(ctx); f.Network.Isolated != nil || f.Network.Cuts != nil || f.Network.Groups != nil ||
		f.Rules != (admin.Rules{}) || f.DiskDelay != 0 {
		t.Errorf("after heal: %+v", f)
	}
	for _, op := range []admin.NetworkOp{{Op: "explode"}, {Op: "cut", From: 1, To: 1}, {Op: "isolate"}, {Op: "split", Groups: [][]uint64{{1, 2}, {2}}}} {
		if err := c.Network(ctx, op); !errors.Is(err, admin.ErrBadRequest) {
			t.Errorf("op %+v = %v, want ErrBadRequest", op, err)
		}
	}
	if err := c.SetRules(ctx, fault.Rules{DropRate: 2}); !errors.Is(err, admin.ErrBadRequest) || !strings.Contains(err.Error(), "DropRate = 2") {
		t.Errorf("bad rules = %v", err)
	}
	if err := c.SetDiskDelay(ctx, -time.Second); !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("negative disk delay = %v", err)
	}
}

func TestLeadershipAndMembership(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	lead, _ := tc.c.Leader()
	follower := lead%3 + 1
	var ae *admin.Error
	if err := tc.clients[follower].TransferLeadership(ctx, follower); !errors.Is(err, admin.ErrNotLeader) || !errors.As(err, &ae) || ae.Leader != lead {
		t.Errorf("transfer on a follower = %v, want ErrNotLeader naming %d", err, lead)
	}
	if err := tc.clients[lead].TransferLeadership(ctx, follower); err != nil {
		t.Fatal(err)
	}
	// A membership change needs a commit of the leader's term first: a
	// write acknowledged after the transfer was committed in the new term
	// (one acknowledged before it left the new leader with none, and the
	// removal below could be refused as pending instead of as a stranger).
	cl, _ := kv.NewClient(tc.c.Endpoints(), kv.ClientOptions{})
	if err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if st, _ := tc.clients[follower].Status(ctx); st.Role != "Leader" {
		t.Errorf("after transfer node %d is %s", follower, st.Role)
	}
	if err := tc.clients[follower].Members(ctx, admin.MemberOp{Op: "remove", ID: 42}); !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("removing a stranger = %v, want ErrBadRequest", err)
	}
	if err := tc.clients[follower].Members(ctx, admin.MemberOp{Op: "add-learner", ID: 4}); !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("add without an address = %v", err)
	}
	if err := tc.clients[follower].Snapshot(ctx); err != nil {
		t.Errorf("snapshot: %v", err)
	}
}

func TestExposure(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:7200", "", true}, {"localhost:7200", "", true}, {"[::1]:7200", "", true}, {"127.9.9.9:1", "", true},
		{":7200", "", false}, {"0.0.0.0:7200", "", false}, {"10.0.0.5:7200", "", false}, {"node1:7200", "", false},
		{":7200", "t", true},
	} {
		err := admin.CheckExposure(tc.addr, tc.token)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, admin.ErrExposed)) {
			t.Errorf("CheckExposure(%q, %q) = %v", tc.addr, tc.token, err)
		}
	}
}

// TestStateAtIndex: /state answers each replica's own state at exactly the
// index every replica applied, by /hash's rule; the image restores into a
// store equal to the node's.
func TestStateAtIndex(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	cl, err := kv.NewClient(tc.c.Endpoints(), kv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.Put(ctx, fmt.Appendf(nil, "k%d", i%5), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	index := tc.quiesce(t)
	for id, c := range tc.clients {
		img, info, err := c.State(ctx, index, time.Second)
		if err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		if info.Index != index || info.StateIndex > index || info.Applied < index {
			t.Errorf("node %d: %+v at %d", id, info, index)
		}
		st, err := kv.NewStore(kv.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Restore(img); err != nil {
			t.Fatalf("node %d's image does not restore: %v", id, err)
		}
		if st.Hash() != tc.c.Store(id).Hash() {
			t.Errorf("node %d's image is not its store's state", id)
		}
		if v, ok := st.Get([]byte("k4")); !ok || string(v) != "v19" {
			t.Errorf("node %d's image: k4 = %q, %v", id, v, ok)
		}
	}
	if _, _, err := tc.clients[1].State(ctx, 2, 0); !errors.Is(err, admin.ErrMovedPast) {
		t.Errorf("state at an index passed = %v, want ErrMovedPast", err)
	}
	if _, _, err := tc.clients[1].State(ctx, index+1000, 20*time.Millisecond); !errors.Is(err, admin.ErrBehind) {
		t.Errorf("state at a future index = %v, want ErrBehind", err)
	}
	if _, _, err := tc.anonymous(t, 1, "").State(ctx, index, 0); !errors.Is(err, admin.ErrUnauthorized) {
		t.Errorf("state without the token = %v, want ErrUnauthorized", err)
	}
}

// TestLeadershipAndStats: /leadership needs no token and says what the
// node says; /stats carries the node's counters and its process's;
// /status has what a harness needs to tell quiescence.
func TestLeadershipAndStats(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	lead, term := tc.c.Leader()
	for id := uint64(1); id <= 3; id++ {
		l, err := tc.anonymous(t, id, "").Leadership(ctx)
		if err != nil {
			t.Fatalf("leadership of node %d without a token: %v", id, err)
		}
		if l.ID != id || l.Leader != lead || l.Term != term || (id == lead) != (l.Role == "Leader") {
			t.Errorf("node %d's leadership %+v, leader %d in term %d", id, l, lead, term)
		}
	}
	cl, err := kv.NewClient(tc.c.Endpoints(), kv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	s, err := tc.clients[lead].Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Node.Proposals == 0 || s.Node.Fsyncs == 0 && s.Node.Saves == 0 || s.Process.PID == 0 || s.Process.Goroutines == 0 || s.Process.HeapBytes == 0 {
		t.Errorf("leader's stats %+v", s)
	}
	if _, err := tc.anonymous(t, lead, "").Stats(ctx); !errors.Is(err, admin.ErrUnauthorized) {
		t.Errorf("stats without the token = %v, want ErrUnauthorized", err)
	}
	index := tc.quiesce(t)
	st, err := tc.clients[lead].Status(ctx)
	if err == nil && st.Knobs["tick"] != "5ms" {
		t.Errorf("status knobs %v, want the handler's tick=5ms", st.Knobs)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.LogEnd != index || st.QueuedProposals != 0 {
		t.Errorf("quiescent leader's status: log end %d (commit %d), %d queued", st.LogEnd, index, st.QueuedProposals)
	}
}

// GET /stats gives a harness what it needs to charge a window: the
// leader's stage timings (exact, through JSON) and the process's counters,
// both cumulative, so two reads difference to the window between them.
func TestStatsChargeAWindow(t *testing.T) {
	tc := newTestCluster(t)
	ctx := context.Background()
	lead, _ := tc.c.Leader()
	before, err := tc.clients[lead].Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kv.NewClient(tc.c.Endpoints(), kv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const writes = 30
	for i := range writes {
		if err := cl.Put(ctx, fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	after, err := tc.clients[lead].Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := tc.c.Leader(); now != lead {
		t.Skipf("leadership moved from %d to %d during the writes", lead, now)
	}
	if after.Stages == nil || before.Stages == nil {
		t.Fatalf("stats of node %d: stages %v / %v", lead, before.Stages, after.Stages)
	}
	win, err := after.Stages.Sub(before.Stages)
	if err != nil {
		t.Fatal(err)
	}
	// The kv client's session registration is a write of its own.
	proposed := int64(after.Node.Proposals - before.Node.Proposals)
	if got := win.Total.Count(); got != proposed || got < writes {
		t.Errorf("window timed %d writes; the leader accepted %d, %d puts were made", got, proposed, writes)
	}
	var sum int64
	for s := range node.NumStages {
		sum += win.Stages[s].SumNanos
	}
	if sum != win.Total.SumNanos {
		t.Errorf("stages sum to %d ns after JSON, the writes to %d", sum, win.Total.SumNanos)
	}
	if after.Node.Saves <= before.Node.Saves {
		t.Errorf("saves %d → %d over %d writes", before.Node.Saves, after.Node.Saves, writes)
	}
	cost := procstat.Between(before.Sample, after.Sample)
	if cost.Wall <= 0 || cost.CPU() <= 0 || cost.Mallocs == 0 {
		t.Errorf("process cost over the window %+v", cost)
	}
	m, err := tc.clients[lead].Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`raftbench_write_stage_seconds_count{node="`, `stage="total"`, `raftbench_process_cpu_seconds_total{mode="user"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

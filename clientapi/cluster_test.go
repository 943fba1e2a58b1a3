package clientapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// TestKVClientOverTheWire: kv.Client drives a 3-node cluster through the
// client API only — finding the leader by redirects, carrying results
// across, riding out the leader's stop and restart — and every replica
// ends with every acknowledged write.
func TestKVClientOverTheWire(t *testing.T) {
	c, err := cluster.Start(cluster.Options{Nodes: 3, Template: cluster.Template{ClusterID: 77, Snapshots: true, Node: node.Config{
		TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4, Logger: slog.New(slog.DiscardHandler),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	addrs := map[uint64]string{}
	lns := map[uint64]net.Listener{}
	for id := uint64(1); id <= 3; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id], addrs[id] = ln, ln.Addr().String()
	}
	for id, ln := range lns {
		srv, err := clientapi.NewServer(clientapi.ServerConfig{ClusterID: 77, NodeID: id, Backend: c.Endpoint(id),
			ClientAddrs: func() map[uint64]string { return addrs }})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	found, err := clientapi.Discover(ctx, addrs[2], clientapi.Options{ClusterID: 77})
	if err != nil || len(found) != 3 {
		t.Fatalf("Discover = %v, %v", found, err)
	}
	eps, err := clientapi.Endpoints(found, clientapi.Options{ClusterID: 77})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kv.NewClient(eps, kv.ClientOptions{AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.Put(ctx, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if ok, err := cl.CAS(ctx, []byte("k1"), []byte("v1"), []byte("w1")); !ok || err != nil {
		t.Errorf("CAS = %v, %v", ok, err)
	}
	if ok, err := cl.CAS(ctx, []byte("k1"), []byte("v1"), []byte("x")); ok || err != nil {
		t.Errorf("stale CAS = %v, %v", ok, err)
	}
	if existed, err := cl.Delete(ctx, []byte("k2")); !existed || err != nil {
		t.Errorf("Delete = %v, %v", existed, err)
	}
	lead, _ := c.Leader()
	if err := c.Stop(lead); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 30; i++ {
		if err := cl.Put(ctx, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatalf("put %d with the leader down: %v", i, err)
		}
	}
	if err := c.Restart(lead); err != nil {
		t.Fatal(err)
	}
	v, ok, err := cl.Get(ctx, []byte("k1"))
	if err != nil || !ok || string(v) != "w1" {
		t.Errorf("Get k1 = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := cl.Get(ctx, []byte("k2")); ok || err != nil {
		t.Errorf("Get of a deleted key = %v, %v", ok, err)
	}
	l, _ := c.Leader()
	commit := c.Node(l).Status().Commit
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range []uint64{1, 2, 3} {
		for c.Node(id) == nil || c.Node(id).Status().Applied < commit {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not catch up", id)
			}
			time.Sleep(2 * time.Millisecond)
		}
		for i := 20; i < 30; i++ {
			if v, ok := c.Store(id).Get(fmt.Appendf(nil, "k%d", i)); !ok || string(v) != fmt.Sprintf("v%d", i) {
				t.Errorf("node %d: k%d = %q, %v", id, i, v, ok)
			}
		}
	}
}

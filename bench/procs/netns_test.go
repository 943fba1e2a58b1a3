package procs

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench/netns"
	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/kv"
)

// TestNetns runs three nodes each in its own network namespace (bench/netns)
// and drives them from the hub: the admin endpoints (beyond loopback, so
// behind the token) and a kv.Client over the client API both dial through
// the hub. Isolating the leader's link makes the other two elect a new
// one; after the heal the old leader follows, and a write made while it
// was cut off is readable. Close leaves no namespace behind.
func TestNetns(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}
	ids := []uint64{1, 2, 3}
	nw, err := netns.New(netns.Config{Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := nw.Close(); err != nil {
			t.Errorf("netns Close: %v", err)
		}
	}()
	var specs []NodeSpec
	for _, id := range ids {
		addr, _ := nw.Addr(id)
		ns, _ := nw.Namespace(id)
		at := func(port int) string { return net.JoinHostPort(addr.String(), fmt.Sprint(port)) }
		specs = append(specs, NodeSpec{ID: id, RaftAddr: at(7001), ClientAddr: at(7100), AdminAddr: at(7200), Netns: ns})
	}
	ctx := context.Background()
	s, _ := newTestSupervisor(t, ctx, 0, func(c *Config) { c.Nodes, c.Dial = specs, nw.DialContext })
	defer s.Close() // before the namespaces go (deferred calls run in reverse)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eps, err := clientapi.Endpoints(s.ClientAddrs(), clientapi.Options{ClusterID: testClusterID,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) { return nw.DialContext(ctx, "tcp", addr) }})
	if err != nil {
		t.Fatal(err)
	}
	closeEndpoints := func() {
		for _, ep := range eps {
			ep.(*clientapi.Endpoint).Close()
		}
	}
	defer closeEndpoints()
	cl, err := kv.NewClient(eps, kv.ClientOptions{AttemptTimeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, val string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := cl.Put(ctx, []byte(key), []byte(val)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	put("before", "1")

	lead := waitLeader(t, s)
	if err := nw.Isolate(lead); err != nil {
		t.Fatal(err)
	}
	lead2 := waitLeader(t, s, lead)
	put("during", "2")
	if err := nw.Heal(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := s.status(ctx, lead)
		if err == nil && st.Role != "Leader" && st.Leader != 0 && st.Leader != lead {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the isolated leader %d did not follow after the heal (last: %+v, %v)", lead, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, found, err := cl.Get(rctx, []byte("during"))
	if err != nil || !found || string(v) != "2" {
		t.Errorf("get during = %q, %v, %v; want the write made under leader %d", v, found, err, lead2)
	}
	t.Logf("leader %d isolated, %d took over; subnet %s", lead, lead2, nw.Subnet())
	// Close the connections first, or each node's clean shutdown waits
	// for them (up to 5 s) before it stops.
	closeEndpoints()
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
}

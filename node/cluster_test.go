package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/wal"
)

// recorder is a state machine that records every command it applies.
type recorder struct {
	mu   sync.Mutex
	cmds []Command
}

func (r *recorder) Apply(cmds []Command) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]any, len(cmds))
	for i, c := range cmds {
		r.cmds = append(r.cmds, Command{Index: c.Index, Term: c.Term, Data: slices.Clone(c.Data)})
		out[i] = c.Index
	}
	return out
}

func (r *recorder) Read([]byte) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cmds), nil
}

func (r *recorder) snapshot() []Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

// testCluster runs n nodes in this process on a real transport, each with
// its own Pebble WAL in a temp dir.
type testCluster struct {
	t         *testing.T
	tb        testing.TB
	kind      string // "tcp" or "quic"
	clusterID uint64
	addrs     map[uint64]string
	dirs      map[uint64]string
	nodes     map[uint64]*Node
	sms       map[uint64]StateMachine
	newSM     func() StateMachine
	net       *fault.Network
	faults    map[uint64]*fault.Transport
	mod       func(*Config)
	mu        sync.Mutex // guards nodes and sms against load goroutines
}

func newTestCluster(t *testing.T, n int, kind string, newSM func() StateMachine, mod func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{
		t: t, tb: t, kind: kind, clusterID: 7,
		addrs: map[uint64]string{}, dirs: map[uint64]string{}, nodes: map[uint64]*Node{},
		sms: map[uint64]StateMachine{}, newSM: newSM, net: fault.NewNetwork(), faults: map[uint64]*fault.Transport{},
		mod: mod,
	}
	trs := map[uint64]transport.Transport{}
	for id := uint64(1); id <= uint64(n); id++ {
		c.dirs[id] = filepath.Join(t.TempDir(), fmt.Sprintf("node%d", id))
		tr := c.newTransport(id, "127.0.0.1:0")
		trs[id] = tr
		c.addrs[id] = tr.Addr()
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.start(id, trs[id])
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *testCluster) newTransport(id uint64, addr string) transport.Transport {
	c.tb.Helper()
	opts := transport.Options{ID: id, ClusterID: c.clusterID, Logger: slog.New(slog.DiscardHandler)}
	var inner transport.Transport
	var err error
	switch c.kind {
	case "quic":
		inner, err = quic.New(quic.Config{Options: opts, ListenAddr: addr})
	default:
		inner, err = tcp.New(tcp.Config{Options: opts, ListenAddr: addr})
	}
	if err != nil {
		c.tb.Fatalf("transport for %d: %v", id, err)
	}
	ft, err := fault.Wrap(inner, fault.Config{ID: id, Network: c.net, Seed: id})
	if err != nil {
		c.tb.Fatalf("fault wrapper for %d: %v", id, err)
	}
	c.faults[id] = ft
	return ft
}

func (c *testCluster) start(id uint64, tr transport.Transport) {
	c.tb.Helper()
	lg, err := wal.OpenPebble(c.dirs[id], wal.PebbleOptions{})
	if err != nil {
		c.tb.Fatalf("open wal of %d: %v", id, err)
	}
	sm := c.newSM()
	cfg := Config{
		ID: id, Peers: c.addrs, Transport: tr, Log: lg, StateMachine: sm,
		TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4,
		Seed:   id,
		Logger: slog.New(slog.DiscardHandler),
	}
	cfg.NoSync = noSync
	if v, err := strconv.Atoi(os.Getenv("RAFTBENCH_PIPELINE")); err == nil {
		cfg.MaxProposalPipeline = v // benchmark knob: see BenchmarkCluster
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		c.tb.Fatalf("start node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = n, sm
	c.mu.Unlock()
}

// stop stops a node (its saves complete; what it has not saved is lost).
func (c *testCluster) stop(id uint64) {
	c.tb.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		if err := n.Stop(); err != nil {
			c.tb.Errorf("stop %d: %v", id, err)
		}
	}
}

// restart starts a stopped node again on its WAL directory and address.
func (c *testCluster) restart(id uint64) {
	c.tb.Helper()
	c.start(id, c.newTransport(id, c.addrs[id]))
}

func (c *testCluster) stopAll() {
	c.mu.Lock()
	var ids []uint64
	for id := range c.nodes {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.stop(id)
	}
}

// waitLeader waits for one leader that every running node agrees on.
func (c *testCluster) waitLeader(timeout time.Duration) uint64 {
	c.t.Helper()
	var lead uint64
	waitFor(c.t, timeout, "a leader every running node agrees on", func() bool {
		lead = 0
		for _, n := range c.nodes {
			s := n.Status()
			if s.Leader == core.None || (lead != 0 && s.Leader != lead) {
				return false
			}
			lead = s.Leader
		}
		l, ok := c.nodes[lead]
		return ok && l.Status().Role == core.Leader
	})
	return lead
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func cmd(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// proposeAll proposes count commands from `clients` goroutines, retrying
// against the current leader, and returns once every one is acknowledged.
func (c *testCluster) proposeAll(count, clients int, timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += clients {
				if err := c.proposeOne(ctx, cmd(i)); err != nil {
					errc <- fmt.Errorf("command %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		c.t.Fatal(err)
	}
}

func (c *testCluster) proposeOne(ctx context.Context, data []byte) error {
	for {
		var lead uint64
		for _, n := range c.nodes {
			if s := n.Status(); s.Role == core.Leader {
				lead = s.ID
			}
		}
		if n := c.nodes[lead]; n != nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := n.Propose(pctx, data)
			cancel()
			if err == nil {
				return nil
			}
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrStopped) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitApplied waits until every running node has applied the same commands
// and at least want of them, and returns that sequence.
func (c *testCluster) waitApplied(want int, timeout time.Duration) []Command {
	c.t.Helper()
	var seq []Command
	waitFor(c.t, timeout, fmt.Sprintf("every node to apply %d commands", want), func() bool {
		seq = nil
		for _, sm := range c.sms {
			if _, ok := sm.(*recorder); !ok {
				return true
			}
		}
		for id := range c.nodes {
			got := c.sms[id].(*recorder).snapshot()
			if len(got) < want {
				return false
			}
			if seq == nil {
				seq = got
			} else if len(got) != len(seq) {
				return false
			}
		}
		return true
	})
	for id := range c.nodes {
		got := c.sms[id].(*recorder).snapshot()
		for i := range got {
			if got[i].Index != seq[i].Index || string(got[i].Data) != string(seq[i].Data) {
				c.t.Fatalf("node %d applied %x at %d; another node applied %x there", id, got[i].Data, got[i].Index, seq[i].Data)
			}
		}
	}
	return seq
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

func TestCluster_ReplicatesAndAgrees(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		nodes int
	}{{"tcp", 3}, {"tcp", 5}, {"quic", 3}, {"quic", 5}} {
		t.Run(fmt.Sprintf("%s/%d", tc.kind, tc.nodes), func(t *testing.T) {
			c := newTestCluster(t, tc.nodes, tc.kind, func() StateMachine { return &recorder{} }, nil)
			c.waitLeader(10 * time.Second)
			const count = 10000
			c.proposeAll(count, 64, 60*time.Second)
			seq := c.waitApplied(count, 30*time.Second)
			seen := map[string]bool{}
			for _, cm := range seq {
				seen[string(cm.Data)] = true
			}
			for i := range count {
				if !seen[string(cmd(i))] {
					t.Fatalf("acknowledged command %d was not applied", i)
				}
			}
		})
	}
}

// noSync makes benchmark clusters skip fsync (see benchCluster).
var noSync bool

// benchCluster is testCluster for benchmarks (testing.B instead of T).
type benchClusterT struct {
	*testCluster
	b *testing.B
}

func newBenchCluster(b *testing.B, kind string) *benchClusterT {
	c := &testCluster{
		kind: kind, clusterID: 7,
		addrs: map[uint64]string{}, dirs: map[uint64]string{}, nodes: map[uint64]*Node{},
		sms: map[uint64]StateMachine{}, newSM: func() StateMachine { return &nopSM{} },
		net: fault.NewNetwork(), faults: map[uint64]*fault.Transport{},
	}
	c.tb = b
	trs := map[uint64]transport.Transport{}
	for id := uint64(1); id <= 3; id++ {
		c.dirs[id] = filepath.Join(b.TempDir(), fmt.Sprintf("node%d", id))
		tr := c.newTransport(id, "127.0.0.1:0")
		trs[id] = tr
		c.addrs[id] = tr.Addr()
	}
	for id := uint64(1); id <= 3; id++ {
		c.start(id, trs[id])
	}
	b.Cleanup(c.stopAll)
	return &benchClusterT{c, b}
}

func (c *benchClusterT) waitLeaderB() uint64 {
	var lead uint64
	waitFor(c.b, 10*time.Second, "a leader", func() bool {
		for id, n := range c.nodes {
			if n.Status().Role == core.Leader {
				lead = id
				return true
			}
		}
		return false
	})
	return lead
}

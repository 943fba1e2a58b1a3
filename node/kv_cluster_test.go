package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
	"github.com/raftbench/raftbench/transport/fault"
)

func kvCluster(t *testing.T, n int, kind string, snapshots bool, configure func(*node.Config)) *nodetest.Cluster {
	return nodetest.New(t, nodetest.Options{
		Nodes: n, Transport: kind, Snapshots: snapshots, Configure: configure,
		NewSM: func(uint64) node.StateMachine {
			s, err := kv.NewStore(kv.StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// endpoints lists ids as client endpoints that follow restarts.
func endpoints(c *nodetest.Cluster, ids ...uint64) []kv.Endpoint {
	var eps []kv.Endpoint
	for _, id := range ids {
		eps = append(eps, nodetest.Endpoint{C: c, Id: id})
	}
	return eps
}

// workload runs concurrent recorded KV clients over a few keys until
// stopped: puts, gets and compare-and-swaps, so histories have real
// contention for porcupine to check.
type workload struct {
	rec    *kv.Recorder
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	ops    int
	errs   []error
}

func startWorkload(t *testing.T, eps []kv.Endpoint, clients int) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{rec: kv.NewRecorder(), cancel: cancel}
	for i := range clients {
		cl, err := kv.NewClient(eps, kv.ClientOptions{AttemptTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rc := w.rec.NewRecordingClient(cl)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for n := 0; ctx.Err() == nil; n++ {
				key := []byte(fmt.Sprintf("k%d", rng.IntN(4)))
				val := []byte(fmt.Sprintf("c%d-%d", i, n))
				opCtx, opCancel := context.WithTimeout(ctx, 3*time.Second)
				var err error
				switch rng.IntN(4) {
				case 0, 1:
					err = rc.Put(opCtx, key, val)
				case 2:
					_, _, err = rc.Get(opCtx, key)
				default:
					cur, _, gerr := rc.Get(opCtx, key)
					if gerr == nil {
						_, err = rc.CAS(opCtx, key, cur, val)
					}
				}
				opCancel()
				w.mu.Lock()
				if err == nil {
					w.ops++
				} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, kv.ErrOutcomeUnknown) && !errors.Is(err, node.ErrTimeout) {
					w.errs = append(w.errs, err)
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *workload) completed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ops
}

// waitOps waits for n more completed operations.
func (w *workload) waitOps(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	want := w.completed() + n
	nodetest.WaitFor(t, timeout, fmt.Sprintf("%d completed operations", want), func() bool { return w.completed() >= want })
}

// stopAndCheck stops the clients and checks the history: it must be
// linearizable, and the check must reach a verdict.
func (w *workload) stopAndCheck(t *testing.T) {
	t.Helper()
	w.cancel()
	w.wg.Wait()
	for _, err := range w.errs {
		t.Errorf("client error: %v", err)
	}
	res, info := w.rec.Check(60 * time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path, err := kv.Visualize(info, filepath.Join(t.TempDir(), "history.html"))
		t.Fatalf("history of %d operations is NOT linearizable; visualisation: %s (%v)", len(w.rec.Operations()), path, err)
	default:
		t.Fatalf("linearizability check of %d operations did not finish: size the history down", len(w.rec.Operations()))
	}
	if w.completed() == 0 {
		t.Fatal("no operation completed: the test exercised nothing")
	}
}

// checkReplicasAgree waits until every running replica holds the same state.
func checkReplicasAgree(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	nodetest.WaitFor(t, 20*time.Second, "every replica to reach the same state", func() bool {
		var first [32]byte
		for i, id := range c.IDs() {
			h := c.SM(id).(*kv.Store).Hash()
			if i == 0 {
				first = h
			} else if h != first {
				return false
			}
		}
		return true
	})
}

func TestKV_LinearizableUnderFaults(t *testing.T) {
	scenarios := []struct {
		name  string
		nodes int
		kind  string
		fault func(t *testing.T, c *nodetest.Cluster, w *workload)
	}{
		{"leader-crash-restart/tcp", 3, "tcp", func(t *testing.T, c *nodetest.Cluster, w *workload) {
			old := c.WaitLeader(10 * time.Second)
			c.Stop(old)
			w.waitOps(t, 100, 20*time.Second)
			c.Restart(old)
		}},
		{"leader-crash-restart/quic", 3, "quic", func(t *testing.T, c *nodetest.Cluster, w *workload) {
			old := c.WaitLeader(10 * time.Second)
			c.Stop(old)
			w.waitOps(t, 100, 20*time.Second)
			c.Restart(old)
		}},
		{"leader-partitioned/tcp", 5, "tcp", func(t *testing.T, c *nodetest.Cluster, w *workload) {
			c.Net.Isolate(c.WaitLeader(10 * time.Second))
			w.waitOps(t, 100, 20*time.Second)
			c.Net.Heal()
		}},
		{"minority-partitioned/quic", 5, "quic", func(t *testing.T, c *nodetest.Cluster, w *workload) {
			lead := c.WaitLeader(10 * time.Second)
			var minority, majority []uint64
			for _, id := range c.IDs() {
				if id != lead && len(minority) < 2 {
					minority = append(minority, id)
				} else {
					majority = append(majority, id)
				}
			}
			c.Net.Split(minority, majority)
			w.waitOps(t, 100, 20*time.Second)
			c.Net.Heal()
		}},
		{"loss-reorder-dup/tcp", 3, "tcp", func(t *testing.T, c *nodetest.Cluster, w *workload) {
			for _, id := range c.IDs() {
				if err := c.Fault(id).SetRules(fault.Rules{DropRate: 0.05, DuplicateRate: 0.02, ReorderRate: 0.1, Jitter: time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			}
			w.waitOps(t, 200, 30*time.Second)
			for _, id := range c.IDs() {
				if err := c.Fault(id).SetRules(fault.Rules{}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"full-restart/tcp", 3, "tcp", func(t *testing.T, c *nodetest.Cluster, w *workload) {
			ids := c.IDs()
			for _, id := range ids {
				c.Stop(id)
			}
			for _, id := range ids {
				c.Restart(id)
			}
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			c := kvCluster(t, sc.nodes, sc.kind, false, nil)
			c.WaitLeader(10 * time.Second)
			w := startWorkload(t, endpoints(c, c.IDs()...), 6)
			w.waitOps(t, 100, 20*time.Second)
			sc.fault(t, c, w)
			c.WaitLeader(20 * time.Second)
			w.waitOps(t, 100, 20*time.Second)
			w.stopAndCheck(t)
			checkReplicasAgree(t, c)
		})
	}
}

// Reads stay linearizable in both read modes while leaders are cut off —
// isolated, then stuck in a minority with one follower — and the majority
// elects a successor. With leases the cut-off leader goes on answering
// reads from its lease, which must run out before a successor can exist.
func TestKV_LinearizableReadsInBothModes(t *testing.T) {
	for _, mode := range []node.ReadMode{node.ReadModeIndex, node.ReadModeLease} {
		t.Run(mode.String(), func(t *testing.T) {
			c := kvCluster(t, 5, "tcp", false, func(cfg *node.Config) { cfg.ReadMode = mode })
			c.WaitLeader(10 * time.Second)
			w := startWorkload(t, endpoints(c, c.IDs()...), 6)
			w.waitOps(t, 100, 20*time.Second)
			old := c.WaitLeader(10 * time.Second)
			c.Net.Isolate(old)
			nodetest.WaitFor(t, 20*time.Second, "a successor of the isolated leader", func() bool {
				l := c.LeaderNode()
				return l != nil && l.ID() != old
			})
			w.waitOps(t, 100, 20*time.Second)
			c.Net.Heal()
			lead := c.WaitLeader(20 * time.Second)
			minority := []uint64{lead}
			var majority []uint64
			for _, id := range c.IDs() {
				switch {
				case id == lead:
				case len(minority) < 2:
					minority = append(minority, id)
				default:
					majority = append(majority, id)
				}
			}
			c.Net.Split(minority, majority)
			w.waitOps(t, 100, 20*time.Second)
			c.Net.Heal()
			c.WaitLeader(20 * time.Second)
			w.waitOps(t, 100, 20*time.Second)
			w.stopAndCheck(t)
			var leaseReads uint64
			for _, n := range c.Nodes() {
				leaseReads += n.Metrics().LeaseReads
			}
			if mode == node.ReadModeLease && leaseReads == 0 {
				t.Fatal("lease mode answered no read from a lease: the test exercised only heartbeat rounds")
			}
			if mode == node.ReadModeIndex && leaseReads != 0 {
				t.Fatalf("index mode answered %d reads from a lease", leaseReads)
			}
		})
	}
}

// Commands retried across leader changes are applied once: a client whose
// attempts straddle leadership transfers gets every write applied exactly
// once on every replica.
func TestKV_ExactlyOnceAcrossLeaderChanges(t *testing.T) {
	c := kvCluster(t, 3, "tcp", false, nil)
	c.WaitLeader(10 * time.Second)
	// Lost messages make attempts time out after their command was
	// committed, so retries reach the log twice and must be deduplicated.
	for _, id := range c.IDs() {
		if err := c.Fault(id).SetRules(fault.Rules{DropRate: 0.2}); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kv.NewClient(endpoints(c, c.IDs()...), kv.ClientOptions{AttemptTimeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var transfers sync.WaitGroup
	transfers.Add(1)
	go func() { // keep moving leadership around while the client writes
		defer transfers.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			if l := c.LeaderNode(); l != nil {
				tctx, tcancel := context.WithTimeout(ctx, time.Second)
				_ = l.TransferLeadership(tctx, uint64(1+i%3))
				tcancel()
			}
		}
	}()
	const writes = 150
	for i := range writes {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("key%d", i)), []byte("v")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	close(stop)
	transfers.Wait()
	for _, id := range c.IDs() {
		if err := c.Fault(id).SetRules(fault.Rules{}); err != nil {
			t.Fatal(err)
		}
	}
	checkReplicasAgree(t, c)
	var dups uint64
	for _, id := range c.IDs() {
		st := c.SM(id).(*kv.Store).Stats()
		if st.Puts != writes {
			t.Fatalf("replica %d executed %d puts for %d distinct writes", id, st.Puts, writes)
		}
		dups += st.Duplicates
	}
	if dups == 0 {
		t.Fatal("no retried command reached the log twice: the test exercised no deduplication")
	}
	t.Logf("duplicates answered from the session cache: %d", dups)
	var leaders int
	for _, n := range c.Nodes() {
		if n.Metrics().LeaderChanges > 1 {
			leaders++
		}
	}
	if leaders == 0 {
		t.Fatal("leadership never moved: the test exercised no leader change")
	}
	_ = core.None
}

func fmtSscanf(name string, i *uint64) (int, error) { return fmt.Sscanf(name, "snap-%d.bin", i) }

// Package peertest is the conformance suite every peers.Library passes:
// replication through kv.Client, crash and restart of the leader,
// isolation of the leader, and linearizability of a concurrent history
// under a leader crash, each ending with every replica compared. It is
// test plumbing, imported only by the adapters' tests.
package peertest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/transport/fault"
)

// Options shape the suite for one library.
type Options struct {
	// Knobs start every cluster (timings short enough for tests).
	Knobs peers.Knobs
	// Unsupported is a knob setting the library must refuse.
	Unsupported peers.Knobs
	// Rules are message faults the library applies (loss and delay at
	// least); Refused, when set, are rules it must refuse.
	Rules, Refused fault.Rules
	// Snapshots, when set, are knobs that make the library snapshot and
	// compact often (added to Knobs) for the SnapshotCatchUp test;
	// SnapshotTaken reports whether node id's directory holds one.
	Snapshots     peers.Knobs
	SnapshotTaken func(dir string) bool
}

// Run runs the whole suite against lib.
func Run(t *testing.T, lib peers.Library, o Options) {
	t.Run("Replicate", func(t *testing.T) { testReplicate(t, lib, o) })
	t.Run("KillLeaderRestart", func(t *testing.T) { testKillLeader(t, lib, o) })
	t.Run("IsolateLeader", func(t *testing.T) { testIsolateLeader(t, lib, o) })
	t.Run("Linearizable", func(t *testing.T) { testLinearizable(t, lib, o) })
	t.Run("MessageFaults", func(t *testing.T) { testMessageFaults(t, lib, o) })
	if o.Snapshots != (peers.Knobs{}) {
		t.Run("SnapshotCatchUp", func(t *testing.T) { testSnapshotCatchUp(t, lib, o) })
	}
	t.Run("RefusesUnsupportedKnob", func(t *testing.T) { testRefuses(t, lib, o) })
}

// Start starts a 3-node cluster of lib in a test directory, closed when
// the test ends.
func Start(t *testing.T, lib peers.Library, k peers.Knobs) peers.System {
	t.Helper()
	return StartIn(t, lib, k, t.TempDir())
}

// StartIn is Start with the data directory given.
func StartIn(t *testing.T, lib peers.Library, k peers.Knobs, dir string) peers.System {
	t.Helper()
	sys, err := lib.Start(peers.Config{Dir: dir, Nodes: 3, Seed: 7, Knobs: k})
	if err != nil {
		t.Fatalf("start %s: %v", lib.Name, err)
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Errorf("close %s: %v", lib.Name, err)
		}
	})
	// Test binaries carry no dependency list in their build information,
	// so the version can only be checked where there is one.
	if bi, ok := debug.ReadBuildInfo(); ok && len(bi.Deps) > 0 {
		if got := sys.Version(); got == "" || got == "unknown" {
			t.Errorf("%s: Version() = %q, want %s's version from the build info", lib.Name, got, lib.Module)
		}
	}
	return sys
}

// Endpoints returns every node's endpoint into group g.
func Endpoints(sys peers.System, g int) []kv.Endpoint {
	var eps []kv.Endpoint
	for _, id := range sys.Nodes() {
		eps = append(eps, sys.Endpoint(g, id))
	}
	return eps
}

// WaitLeader waits for a leader of group g other than not (0: any) in a
// term above term.
func WaitLeader(t *testing.T, sys peers.System, g int, not, term uint64, timeout time.Duration) (uint64, uint64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if id, tm := sys.Leader(g); id != 0 && id != not && tm > term {
			return id, tm
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: no leader other than %d above term %d within %v", sys.Name(), not, term, timeout)
	return 0, 0
}

// Settle waits until group g settles and checks that every running
// replica has the same state hash; it returns the settled index.
func Settle(t *testing.T, sys peers.System, g int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	idx, err := peers.WaitSettled(ctx, sys, g, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var ref [32]byte
	var refID uint64
	for _, id := range sys.Nodes() {
		st := sys.Store(g, id)
		if st == nil {
			continue
		}
		h := st.Hash()
		if refID == 0 {
			ref, refID = h, id
		} else if h != ref {
			t.Fatalf("%s group %d settled at %d but node %d's state hash %x differs from node %d's %x",
				sys.Name(), g, idx, id, h[:8], refID, ref[:8])
		}
	}
	if refID == 0 {
		t.Fatalf("%s group %d: no running replica", sys.Name(), g)
	}
	return idx
}

// acks records acknowledged writes, each to a key of its own.
type acks struct {
	mu sync.Mutex
	m  map[string]string
	// batch numbers the writers calls, so each writes keys of its own.
	batch atomic.Int64
}

func (a *acks) add(k, v string) {
	a.mu.Lock()
	a.m[k] = v
	a.mu.Unlock()
}

// checkOn fails the test if any acknowledged write is missing from any
// running replica of group g.
func (a *acks) checkOn(t *testing.T, sys peers.System, g int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.m) == 0 {
		t.Fatalf("%s: no write was acknowledged", sys.Name())
	}
	for _, id := range sys.Nodes() {
		st := sys.Store(g, id)
		if st == nil {
			continue
		}
		lost := 0
		var first string
		for k, v := range a.m {
			got, ok := st.Get([]byte(k))
			if !ok || string(got) != v {
				if lost == 0 {
					first = k
				}
				lost++
			}
		}
		if lost > 0 {
			t.Fatalf("%s: node %d lost %d of %d acknowledged writes (first: %q)", sys.Name(), id, lost, len(a.m), first)
		}
	}
}

// writers runs n clients, each putting keys of its own until stop is
// closed or each has done max puts (0: no bound), recording every
// acknowledged put.
func writers(t *testing.T, sys peers.System, n, max int, stop <-chan struct{}, a *acks) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	batch := a.batch.Add(1)
	for c := range n {
		cl, err := kv.NewClient(Endpoints(sys, 0), kv.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; max == 0 || i < max; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("b%d-c%d-%d", batch, c, i), fmt.Sprintf("v%d-%d-%d", batch, c, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := cl.Put(ctx, []byte(k), []byte(v))
				cancel()
				if err == nil {
					a.add(k, v)
				} else if !errors.Is(err, kv.ErrOutcomeUnknown) {
					t.Errorf("%s: put %s: %v (want success or an unknown outcome)", sys.Name(), k, err)
					return
				}
			}
		}()
	}
	return &wg
}

// waitAcks waits until at least n writes are acknowledged.
func (a *acks) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		got := len(a.m)
		a.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d writes acknowledged within %v", n, timeout)
}

func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

// testReplicate: a few hundred puts from concurrent clients are applied
// identically everywhere, and reads see them.
func testReplicate(t *testing.T, lib peers.Library, o Options) {
	sys := Start(t, lib, o.Knobs)
	a := &acks{m: map[string]string{}}
	wg := writers(t, sys, 4, 75, nil, a)
	wg.Wait()
	if got := a.count(); got != 300 {
		t.Fatalf("%d of 300 puts acknowledged in a healthy cluster", got)
	}
	idx := Settle(t, sys, 0)
	if idx < 300 {
		t.Fatalf("settled at index %d, below the 300 puts made", idx)
	}
	a.checkOn(t, sys, 0)
	cl, err := kv.NewClient(Endpoints(sys, 0), kv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, found, err := cl.Get(ctx, []byte("b1-c3-74"))
	if err != nil || !found || string(v) != "v1-3-74" {
		t.Fatalf("linearizable get of b1-c3-74 = %q, %t, %v; want \"v1-3-74\"", v, found, err)
	}
	// A follower refuses, naming the leader, so clients redirect.
	lead, _ := sys.Leader(0)
	for _, id := range sys.Nodes() {
		if id == lead {
			continue
		}
		_, err := sys.Endpoint(0, id).Propose(ctx, []byte("not a command"))
		var nle *node.NotLeaderError
		if !errors.As(err, &nle) || !errors.Is(err, node.ErrNotLeader) || nle.Leader != lead {
			t.Fatalf("follower %d answered a proposal with %v, want a *node.NotLeaderError naming leader %d", id, err, lead)
		}
	}
}

// testKillLeader: the leader crashes while clients write and restarts from
// its directory; no acknowledged write is lost and the replicas agree.
func testKillLeader(t *testing.T, lib peers.Library, o Options) {
	sys := Start(t, lib, o.Knobs)
	a := &acks{m: map[string]string{}}
	stop := make(chan struct{})
	wg := writers(t, sys, 4, 0, stop, a)
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()
	a.waitFor(t, 100, 20*time.Second)
	old, term := WaitLeader(t, sys, 0, 0, 0, 10*time.Second)
	if err := sys.Stop(old); err != nil {
		t.Fatal(err)
	}
	if sys.Running(old) {
		t.Fatalf("node %d runs after Stop", old)
	}
	if _, err := sys.Status(0, old); err == nil {
		t.Fatalf("Status of stopped node %d did not fail", old)
	}
	WaitLeader(t, sys, 0, old, term, 20*time.Second)
	before := a.count()
	a.waitFor(t, before+100, 20*time.Second)
	if err := sys.Restart(old); err != nil {
		t.Fatal(err)
	}
	if err := sys.Restart(old); err == nil {
		t.Fatalf("Restart of running node %d did not fail", old)
	}
	a.waitFor(t, a.count()+100, 20*time.Second)
	stopWriters()
	Settle(t, sys, 0)
	a.checkOn(t, sys, 0)
}

// testIsolateLeader: the isolated leader cannot acknowledge a write; the
// others elect a new leader and go on; after healing every acknowledged
// write is everywhere.
func testIsolateLeader(t *testing.T, lib peers.Library, o Options) {
	sys := Start(t, lib, o.Knobs)
	a := &acks{m: map[string]string{}}
	stop := make(chan struct{})
	wg := writers(t, sys, 3, 0, stop, a)
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()
	a.waitFor(t, 100, 20*time.Second)
	old, term := WaitLeader(t, sys, 0, 0, 0, 10*time.Second)
	sys.Network().Isolate(old)
	// A client that can only reach the old leader must not get a write
	// acknowledged: the old leader cannot reach a quorum.
	lone, err := kv.NewClient([]kv.Endpoint{sys.Endpoint(0, old)}, kv.ClientOptions{AttemptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	err = lone.Put(ctx, []byte("isolated"), []byte("x"))
	cancel()
	if err == nil {
		t.Fatalf("isolated leader %d acknowledged a write", old)
	}
	WaitLeader(t, sys, 0, old, term, 20*time.Second)
	a.waitFor(t, a.count()+100, 20*time.Second)
	sys.Network().Heal()
	a.waitFor(t, a.count()+50, 20*time.Second)
	stopWriters()
	Settle(t, sys, 0)
	a.checkOn(t, sys, 0)
	if c := sys.FaultCounters(); c.PartitionedSend == 0 {
		t.Errorf("fault counters %+v count no partitioned message during an isolation", c)
	}
}

// testLinearizable: a short concurrent history of puts, gets and CASes on
// a few keys, through a leader crash and restart, is linearizable.
func testLinearizable(t *testing.T, lib peers.Library, o Options) {
	sys := Start(t, lib, o.Knobs)
	rec := kv.NewRecorder()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops atomic.Int64
	for c := range 5 {
		cl, err := kv.NewClient(Endpoints(sys, 0), kv.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rc := rec.NewRecordingClient(cl)
		rng := rand.New(rand.NewPCG(uint64(c), 99))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := []byte(fmt.Sprintf("k%d", rng.IntN(3)))
				val := []byte(fmt.Sprintf("%d-%d", c, i))
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				switch rng.IntN(3) {
				case 0:
					_ = rc.Put(ctx, key, val)
				case 1:
					_, _, _ = rc.Get(ctx, key)
				default:
					_, _ = rc.CAS(ctx, key, []byte(fmt.Sprintf("%d-%d", rng.IntN(5), i-1)), val)
				}
				cancel()
				ops.Add(1)
			}
		}()
	}
	waitOps := func(n int64) {
		deadline := time.Now().Add(20 * time.Second)
		for ops.Load() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if ops.Load() < n {
			t.Fatalf("only %d operations done", ops.Load())
		}
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	waitOps(150)
	old, term := WaitLeader(t, sys, 0, 0, 0, 10*time.Second)
	if err := sys.Stop(old); err != nil {
		t.Fatal(err)
	}
	WaitLeader(t, sys, 0, old, term, 20*time.Second)
	waitOps(ops.Load() + 150)
	if err := sys.Restart(old); err != nil {
		t.Fatal(err)
	}
	waitOps(ops.Load() + 100)
	close(stop)
	wg.Wait()
	Settle(t, sys, 0)
	res, info := rec.Check(30 * time.Second)
	if res != porcupine.Ok {
		path, _ := kv.Visualize(info, "")
		t.Fatalf("%s: history of %d operations is %v (visualisation: %s)", sys.Name(), len(rec.Operations()), res, path)
	}
}

// testRefuses: the library's Check refuses a knob it cannot express,
// naming itself and the knob.
func testRefuses(t *testing.T, lib peers.Library, o Options) {
	err := lib.Check(peers.Config{Dir: t.TempDir(), Knobs: o.Unsupported})
	var ue *peers.UnsupportedError
	if !errors.Is(err, peers.ErrUnsupported) || !errors.As(err, &ue) || ue.System != lib.Name {
		t.Fatalf("%s: Check(%+v) = %v, want an UnsupportedError naming %s", lib.Name, o.Unsupported, err, lib.Name)
	}
	if _, err := lib.Start(peers.Config{Dir: t.TempDir(), Knobs: o.Unsupported}); !errors.Is(err, peers.ErrUnsupported) {
		t.Fatalf("%s: Start with an unsupported knob = %v, want ErrUnsupported", lib.Name, err)
	}
	if err := lib.Check(peers.Config{Dir: t.TempDir(), Knobs: o.Knobs}); err != nil {
		t.Fatalf("%s: Check of the suite's own knobs: %v", lib.Name, err)
	}
}

// testMessageFaults: with loss and delay on every node's messages the
// cluster still acknowledges writes, the fault layer counts what it did,
// and once the rules are lifted the replicas agree; rules the library
// cannot apply are refused.
func testMessageFaults(t *testing.T, lib peers.Library, o Options) {
	sys := Start(t, lib, o.Knobs)
	WaitLeader(t, sys, 0, 0, 0, 10*time.Second)
	for _, id := range sys.Nodes() {
		if err := sys.SetRules(id, o.Rules); err != nil {
			t.Fatalf("SetRules(%d, %+v): %v", id, o.Rules, err)
		}
	}
	a := &acks{m: map[string]string{}}
	writers(t, sys, 4, 50, nil, a).Wait()
	if got := a.count(); got < 150 {
		t.Fatalf("only %d of 200 puts acknowledged under %+v", got, o.Rules)
	}
	c := sys.FaultCounters()
	if o.Rules.DropRate > 0 && c.Dropped == 0 {
		t.Errorf("counters %+v show no message dropped at DropRate %v", c, o.Rules.DropRate)
	}
	if o.Rules.Delay > 0 && c.Delayed == 0 {
		t.Errorf("counters %+v show no message delayed at Delay %v", c, o.Rules.Delay)
	}
	for _, id := range sys.Nodes() {
		if err := sys.SetRules(id, fault.Rules{}); err != nil {
			t.Fatal(err)
		}
	}
	Settle(t, sys, 0)
	a.checkOn(t, sys, 0)
	if o.Refused != (fault.Rules{}) {
		err := sys.SetRules(1, o.Refused)
		var ue *peers.UnsupportedError
		if !errors.As(err, &ue) || ue.System != lib.Name {
			t.Fatalf("SetRules(%+v) = %v, want an UnsupportedError naming %s", o.Refused, err, lib.Name)
		}
		if err := lib.CheckRules(o.Refused); !errors.Is(err, peers.ErrUnsupported) {
			t.Fatalf("CheckRules(%+v) = %v, want ErrUnsupported", o.Refused, err)
		}
	}
}

// testSnapshotCatchUp: a follower stopped while the others snapshot and
// compact past it catches up on restart (from a snapshot), loses nothing,
// and agrees with the others.
func testSnapshotCatchUp(t *testing.T, lib peers.Library, o Options) {
	k := o.Knobs
	k.SnapshotEntries, k.SnapshotTrailing = o.Snapshots.SnapshotEntries, o.Snapshots.SnapshotTrailing
	dir := t.TempDir()
	sys := StartIn(t, lib, k, dir)
	lead, _ := WaitLeader(t, sys, 0, 0, 0, 10*time.Second)
	f := lead%3 + 1
	a := &acks{m: map[string]string{}}
	writers(t, sys, 4, 25, nil, a).Wait()
	if err := sys.Stop(f); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	round := 0
	for {
		round++
		w := writers(t, sys, 4, 50, nil, a)
		w.Wait()
		taken := false
		for _, id := range sys.Nodes() {
			if id != f && o.SnapshotTaken(peers.NodeDir(dir, id)) {
				taken = true
			}
		}
		if taken && round >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no snapshot taken with %+v after %d puts", lib.Name, o.Snapshots, a.count())
		}
	}
	if err := sys.Restart(f); err != nil {
		t.Fatal(err)
	}
	Settle(t, sys, 0)
	a.checkOn(t, sys, 0)
	if !o.SnapshotTaken(peers.NodeDir(dir, f)) {
		t.Fatalf("%s: restarted node %d caught up without receiving a snapshot; the test did not compact past it", lib.Name, f)
	}
}

// HasFile reports whether a regular file whose name ends in suffix is
// anywhere under dir.
func HasFile(dir, suffix string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(d.Name(), suffix) {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

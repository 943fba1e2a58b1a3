package node

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport/fault"
)

// load runs closed-loop proposers against whichever node leads, each
// proposing unique commands, until stopped. It records every acknowledged
// command, and which node acknowledged it when.
type load struct {
	c       *testCluster
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	next    atomic.Uint64
	mu      sync.Mutex
	acked   map[uint64]bool
	ackedBy []ack
}

type ack struct {
	cmd  uint64
	node uint64
	at   time.Time
}

func (c *testCluster) startLoad(clients int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{c: c, cancel: cancel, acked: map[uint64]bool{}}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				id := l.next.Add(1)
				l.proposeUntilDone(ctx, id)
			}
		}()
	}
	return l
}

// proposeUntilDone retries command id until some node acknowledges it or
// the load stops. A retried command may be applied twice (the recorder has
// no sessions; kv's tests cover exactly-once).
func (l *load) proposeUntilDone(ctx context.Context, id uint64) {
	data := binary.BigEndian.AppendUint64(nil, id)
	for ctx.Err() == nil {
		n := l.c.leaderNode()
		if n == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.Propose(pctx, data)
		cancel()
		if err == nil {
			l.mu.Lock()
			l.acked[id] = true
			l.ackedBy = append(l.ackedBy, ack{id, n.ID(), time.Now()})
			l.mu.Unlock()
			return
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrStopped) {
			l.c.tb.Errorf("propose %d: unexpected error %v", id, err)
			return
		}
	}
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until at least n more commands are acknowledged.
func (l *load) waitAcked(n int, timeout time.Duration) {
	l.c.tb.Helper()
	want := l.count() + n
	waitFor(l.c.tb, timeout, "the load to make progress", func() bool { return l.count() >= want })
}

// leaderNode returns a running node that believes it leads (highest term).
func (c *testCluster) leaderNode() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *Node
	var bestTerm uint64
	for _, n := range c.nodes {
		if s := n.Status(); s.Role == core.Leader && s.Term >= bestTerm {
			best, bestTerm = n, s.Term
		}
	}
	return best
}

// checkAllAckedApplied: every acknowledged command is applied on every
// running node, and they all applied the same sequence.
func (c *testCluster) checkAllAckedApplied(l *load) {
	c.tb.Helper()
	l.mu.Lock()
	acked := make(map[uint64]bool, len(l.acked))
	for k := range l.acked {
		acked[k] = true
	}
	l.mu.Unlock()
	// Everything proposed so far must settle: wait for equal logs.
	seq := c.waitApplied(len(acked), 30*time.Second)
	applied := map[uint64]bool{}
	for _, cm := range seq {
		applied[binary.BigEndian.Uint64(cm.Data)] = true
	}
	for id := range acked {
		if !applied[id] {
			c.tb.Fatalf("acknowledged command %d is missing after the faults", id)
		}
	}
	if len(acked) == 0 {
		c.tb.Fatal("no command was acknowledged: the test exercised nothing")
	}
}

func recorderCluster(t *testing.T, n int, kind string) *testCluster {
	return newTestCluster(t, n, kind, func() StateMachine { return &recorder{} }, nil)
}

func TestFault_LeaderCrashAndRestartMidLoad(t *testing.T) {
	for _, kind := range []string{"tcp", "quic"} {
		t.Run(kind, func(t *testing.T) {
			c := recorderCluster(t, 3, kind)
			old := c.waitLeader(10 * time.Second)
			l := c.startLoad(16)
			l.waitAcked(200, 10*time.Second)
			c.stop(old)
			newLead := c.waitLeader(10 * time.Second)
			if newLead == old {
				t.Fatalf("stopped leader %d still leads", old)
			}
			l.waitAcked(200, 10*time.Second)
			c.restart(old)
			l.waitAcked(200, 10*time.Second)
			l.stop()
			c.waitLeader(10 * time.Second)
			c.checkAllAckedApplied(l)
		})
	}
}

func TestFault_LeaderPartitionedAway(t *testing.T) {
	c := recorderCluster(t, 3, "tcp")
	old := c.waitLeader(10 * time.Second)
	l := c.startLoad(16)
	l.waitAcked(200, 10*time.Second)
	isolatedAt := time.Now()
	c.net.Isolate(old)
	// A new leader on the majority side.
	var newLead uint64
	waitFor(t, 10*time.Second, "a new leader on the majority side", func() bool {
		for id, n := range c.nodes {
			if s := n.Status(); id != old && s.Role == core.Leader {
				newLead = id
				return true
			}
		}
		return false
	})
	l.waitAcked(200, 10*time.Second)
	// The old leader steps down (check-quorum) and acknowledged nothing
	// after it was cut off: it could not have reached a quorum.
	waitFor(t, 10*time.Second, "the isolated leader to step down", func() bool {
		return c.nodes[old].Status().Role != core.Leader
	})
	l.mu.Lock()
	for _, a := range l.ackedBy {
		if a.node == old && a.at.After(isolatedAt.Add(50*time.Millisecond)) {
			t.Errorf("isolated old leader %d acknowledged command %d at %v, after isolation at %v", old, a.cmd, a.at, isolatedAt)
		}
	}
	l.mu.Unlock()
	c.net.Heal()
	l.waitAcked(200, 10*time.Second)
	l.stop()
	if got := c.waitLeader(10 * time.Second); got == core.None {
		t.Fatal("no leader after healing")
	}
	_ = newLead
	c.checkAllAckedApplied(l)
}

func TestFault_MinorityPartitioned(t *testing.T) {
	c := recorderCluster(t, 5, "tcp")
	lead := c.waitLeader(10 * time.Second)
	var minority, majority []uint64
	for id := range c.nodes {
		if id != lead && len(minority) < 2 {
			minority = append(minority, id)
		} else {
			majority = append(majority, id)
		}
	}
	l := c.startLoad(16)
	c.net.Split(minority, majority)
	l.waitAcked(500, 10*time.Second) // the majority keeps committing
	if s := c.nodes[lead].Status(); s.Role != core.Leader {
		t.Fatalf("leader %d lost leadership to a minority partition", lead)
	}
	c.net.Heal()
	l.waitAcked(200, 10*time.Second)
	l.stop()
	c.checkAllAckedApplied(l)
}

func TestFault_LossReorderDuplicate(t *testing.T) {
	c := recorderCluster(t, 3, "tcp")
	for _, ft := range c.faults {
		if err := ft.SetRules(fault.Rules{DropRate: 0.05, DuplicateRate: 0.02, ReorderRate: 0.1, Delay: time.Millisecond, Jitter: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLeader(20 * time.Second)
	l := c.startLoad(16)
	l.waitAcked(2000, 60*time.Second)
	l.stop()
	for _, ft := range c.faults {
		if err := ft.SetRules(fault.Rules{}); err != nil {
			t.Fatal(err)
		}
	}
	var dropped uint64
	for _, ft := range c.faults {
		dropped += ft.Counters().Dropped
	}
	if dropped == 0 {
		t.Fatal("the fault wrapper dropped nothing: the test exercised no loss")
	}
	c.checkAllAckedApplied(l)
}

func TestFault_FullClusterRestart(t *testing.T) {
	c := recorderCluster(t, 3, "tcp")
	c.waitLeader(10 * time.Second)
	l := c.startLoad(16)
	l.waitAcked(500, 10*time.Second)
	l.stop()
	for id := uint64(1); id <= 3; id++ {
		c.stop(id)
	}
	for id := uint64(1); id <= 3; id++ {
		c.restart(id)
	}
	c.waitLeader(10 * time.Second)
	c.checkAllAckedApplied(l)
	// The restarted nodes kept their terms and votes.
	for id, n := range c.nodes {
		if n.Status().Term < 2 {
			t.Fatalf("node %d restarted into term %d; the stored term was lost", id, n.Status().Term)
		}
	}
}

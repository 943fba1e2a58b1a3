package node_test

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node/nodetest"
	"github.com/raftbench/raftbench/transport/fault"
)

// load runs closed-loop proposers against whichever node leads, each
// proposing unique commands, until stopped. It records every acknowledged
// command, and which node acknowledged it when.
type load struct {
	t       *testing.T
	c       *nodetest.Cluster
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

func startLoad(t *testing.T, c *nodetest.Cluster, clients int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{t: t, c: c, cancel: cancel, acked: map[uint64]bool{}}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				id := l.next.Add(1)
				by, err := proposeOne(ctx, c, binary.BigEndian.AppendUint64(nil, id))
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("propose %d: %v", id, err)
					}
					return
				}
				l.mu.Lock()
				l.acked[id] = true
				l.ackedBy = append(l.ackedBy, ack{id, by, time.Now()})
				l.mu.Unlock()
			}
		}()
	}
	return l
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
	l.t.Helper()
	want := l.count() + n
	nodetest.WaitFor(l.t, timeout, "the load to make progress", func() bool { return l.count() >= want })
}

// checkAllAckedApplied: every acknowledged command is applied on every
// running node, and they all applied the same sequence.
func checkAllAckedApplied(t *testing.T, c *nodetest.Cluster, l *load) {
	t.Helper()
	l.mu.Lock()
	acked := make(map[uint64]bool, len(l.acked))
	for k := range l.acked {
		acked[k] = true
	}
	l.mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no command was acknowledged: the test exercised nothing")
	}
	seq := waitApplied(t, c, len(acked), 30*time.Second)
	applied := map[uint64]bool{}
	for _, cm := range seq {
		applied[binary.BigEndian.Uint64(cm.Data)] = true
	}
	for id := range acked {
		if !applied[id] {
			t.Fatalf("acknowledged command %d is missing after the faults", id)
		}
	}
}

func TestFault_LeaderCrashAndRestartMidLoad(t *testing.T) {
	for _, kind := range []string{"tcp", "quic"} {
		t.Run(kind, func(t *testing.T) {
			c := recorderCluster(t, 3, kind, nil)
			old := c.WaitLeader(10 * time.Second)
			l := startLoad(t, c, 16)
			l.waitAcked(200, 10*time.Second)
			c.Stop(old)
			if newLead := c.WaitLeader(10 * time.Second); newLead == old {
				t.Fatalf("stopped leader %d still leads", old)
			}
			l.waitAcked(200, 10*time.Second)
			c.Restart(old)
			l.waitAcked(200, 10*time.Second)
			l.stop()
			c.WaitLeader(10 * time.Second)
			checkAllAckedApplied(t, c, l)
		})
	}
}

func TestFault_LeaderPartitionedAway(t *testing.T) {
	c := recorderCluster(t, 3, "tcp", nil)
	old := c.WaitLeader(10 * time.Second)
	l := startLoad(t, c, 16)
	l.waitAcked(200, 10*time.Second)
	isolatedAt := time.Now()
	c.Net.Isolate(old)
	nodetest.WaitFor(t, 10*time.Second, "a new leader on the majority side", func() bool {
		for _, n := range c.Nodes() {
			if s := n.Status(); n.ID() != old && s.Role == core.Leader {
				return true
			}
		}
		return false
	})
	l.waitAcked(200, 10*time.Second)
	// The old leader steps down (check-quorum) and acknowledged nothing
	// after it was cut off: it could not have reached a quorum.
	nodetest.WaitFor(t, 10*time.Second, "the isolated leader to step down", func() bool {
		return c.Node(old).Status().Role != core.Leader
	})
	l.mu.Lock()
	for _, a := range l.ackedBy {
		if a.node == old && a.at.After(isolatedAt.Add(50*time.Millisecond)) {
			t.Errorf("isolated old leader %d acknowledged command %d at %v, after isolation at %v", old, a.cmd, a.at, isolatedAt)
		}
	}
	l.mu.Unlock()
	c.Net.Heal()
	l.waitAcked(200, 10*time.Second)
	l.stop()
	c.WaitLeader(10 * time.Second)
	checkAllAckedApplied(t, c, l)
}

func TestFault_MinorityPartitioned(t *testing.T) {
	c := recorderCluster(t, 5, "tcp", nil)
	lead := c.WaitLeader(10 * time.Second)
	var minority, majority []uint64
	for _, id := range c.IDs() {
		if id != lead && len(minority) < 2 {
			minority = append(minority, id)
		} else {
			majority = append(majority, id)
		}
	}
	l := startLoad(t, c, 16)
	c.Net.Split(minority, majority)
	l.waitAcked(500, 10*time.Second) // the majority keeps committing
	if s := c.Node(lead).Status(); s.Role != core.Leader {
		t.Fatalf("leader %d lost leadership to a minority partition", lead)
	}
	c.Net.Heal()
	l.waitAcked(200, 10*time.Second)
	l.stop()
	checkAllAckedApplied(t, c, l)
}

func TestFault_LossReorderDuplicate(t *testing.T) {
	c := recorderCluster(t, 3, "tcp", nil)
	setRules := func(r fault.Rules) {
		for _, id := range c.IDs() {
			if err := c.Fault(id).SetRules(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	setRules(fault.Rules{DropRate: 0.05, DuplicateRate: 0.02, ReorderRate: 0.1, Delay: time.Millisecond, Jitter: time.Millisecond})
	c.WaitLeader(20 * time.Second)
	l := startLoad(t, c, 16)
	l.waitAcked(2000, 60*time.Second)
	l.stop()
	setRules(fault.Rules{})
	var dropped uint64
	for _, id := range c.IDs() {
		dropped += c.Fault(id).Counters().Dropped
	}
	if dropped == 0 {
		t.Fatal("the fault wrapper dropped nothing: the test exercised no loss")
	}
	checkAllAckedApplied(t, c, l)
}

func TestFault_FullClusterRestart(t *testing.T) {
	c := recorderCluster(t, 3, "tcp", nil)
	c.WaitLeader(10 * time.Second)
	l := startLoad(t, c, 16)
	l.waitAcked(500, 10*time.Second)
	l.stop()
	ids := c.IDs()
	for _, id := range ids {
		c.Stop(id)
	}
	for _, id := range ids {
		c.Restart(id)
	}
	c.WaitLeader(10 * time.Second)
	checkAllAckedApplied(t, c, l)
	// The restarted nodes kept their terms and votes.
	for _, n := range c.Nodes() {
		if n.Status().Term < 2 {
			t.Fatalf("node %d restarted into term %d; the stored term was lost", n.ID(), n.Status().Term)
		}
	}
}

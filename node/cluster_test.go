package node_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
)

// recorder is a state machine that records every command it applies.
type recorder struct {
	mu   sync.Mutex
	cmds []node.Command
}

func (r *recorder) Apply(cmds []node.Command) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]any, len(cmds))
	for i, c := range cmds {
		r.cmds = append(r.cmds, node.Command{Index: c.Index, Term: c.Term, Data: slices.Clone(c.Data)})
		out[i] = c.Index
	}
	return out
}

func (r *recorder) Read([]byte) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cmds), nil
}

func (r *recorder) applied() []node.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

func recorderCluster(t testing.TB, n int, kind string, configure func(*node.Config)) *nodetest.Cluster {
	return nodetest.New(t, nodetest.Options{
		Nodes: n, Transport: kind, Configure: configure,
		NewSM: func(uint64) node.StateMachine { return &recorder{} },
	})
}

func cmd(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// retryable reports the errors a proposer retries on (the command may be
// proposed again; the recorder has no sessions, kv's tests cover
// exactly-once).
func retryable(err error) bool {
	return errors.Is(err, node.ErrNotLeader) || errors.Is(err, node.ErrLeadershipLost) ||
		errors.Is(err, node.ErrTimeout) || errors.Is(err, node.ErrStopped)
}

// proposeOne proposes data at whichever node leads until one acknowledges
// it, and returns that node's ID.
func proposeOne(ctx context.Context, c *nodetest.Cluster, data []byte) (uint64, error) {
	for {
		if n := c.LeaderNode(); n != nil {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := n.Propose(pctx, data)
			cancel()
			if err == nil {
				return n.ID(), nil
			}
			if !retryable(err) {
				return 0, err
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// proposeAll proposes count commands from `clients` goroutines and returns
// once every one is acknowledged.
func proposeAll(t *testing.T, c *nodetest.Cluster, count, clients int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += clients {
				if _, err := proposeOne(ctx, c, cmd(i)); err != nil {
					errc <- fmt.Errorf("command %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// waitApplied waits until every running node has applied the same commands,
// at least want of them, and returns that sequence. Nodes may still apply
// stragglers (retried proposals) meanwhile, so the comparison is made on
// the very snapshots the wait looked at.
func waitApplied(t *testing.T, c *nodetest.Cluster, want int, timeout time.Duration) []node.Command {
	t.Helper()
	var seq []node.Command
	var mismatch string
	nodetest.WaitFor(t, timeout, fmt.Sprintf("every node to apply the same %d+ commands", want), func() bool {
		seq, mismatch = nil, ""
		for _, id := range c.IDs() {
			got := c.SM(id).(*recorder).applied()
			if len(got) < want || (seq != nil && len(got) != len(seq)) {
				return false
			}
			if seq == nil {
				seq = got
				continue
			}
			for i := range got {
				if got[i].Index != seq[i].Index || string(got[i].Data) != string(seq[i].Data) {
					// Equal lengths but different commands at one index is
					// a safety violation, not something to wait out.
					mismatch = fmt.Sprintf("node %d applied %x at %d; another node applied %x there", id, got[i].Data, got[i].Index, seq[i].Data)
					return true
				}
			}
		}
		return true
	})
	if mismatch != "" {
		t.Fatal(mismatch)
	}
	return seq
}

func TestCluster_ReplicatesAndAgrees(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		nodes int
	}{{"tcp", 3}, {"tcp", 5}, {"quic", 3}, {"quic", 5}} {
		t.Run(fmt.Sprintf("%s/%d", tc.kind, tc.nodes), func(t *testing.T) {
			c := recorderCluster(t, tc.nodes, tc.kind, nil)
			c.WaitLeader(10 * time.Second)
			const count = 10000
			proposeAll(t, c, count, 64, 60*time.Second)
			seq := waitApplied(t, c, count, 30*time.Second)
			seen := map[string]bool{}
			for _, cm := range seq {
				seen[string(cm.Data)] = true
			}
			for i := range count {
				if !seen[string(cmd(i))] {
					t.Fatalf("acknowledged command %d was not applied", i)
				}
			}
			_ = core.None
		})
	}
}

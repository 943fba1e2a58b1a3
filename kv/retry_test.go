package kv

import (
	"context"
	"fmt"
	"testing"

	"github.com/raftbench/raftbench/node"
)

// An overloaded leader refused the command before it reached the log: the
// client backs off and asks the same leader again, and the outcome stays
// known.
func TestClientRetriesOverloadedLeader(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	opts := fastOptions()
	opts.ID = 21
	c := newTestClient(t, eps, opts)
	ctx := context.Background()
	if err := c.Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	fc.takeCalls()
	over := fault{err: fmt.Errorf("node 1: %w", node.ErrOverloaded)}
	fc.script[1] = []fault{over, over}
	if err := c.Put(ctx, []byte("k"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, fc.takeCalls(), []call{
		{ep: 1, op: OpPut, client: 21, seq: 3},
		{ep: 1, op: OpPut, client: 21, seq: 3},
		{ep: 1, op: OpPut, client: 21, seq: 3},
	})
	if st := fc.store.Stats(); st.Puts != 2 || st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
}

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

// The measured failure: the leader's attempt times out, a follower that
// has not noticed yet names it again, and the client used to follow the
// hint straight back. Now it tries the others first and finds the new
// leader.
func TestClientDoesNotFollowAHintBackToATimedOutLeader(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	opts := fastOptions()
	opts.ID = 31
	c := newTestClient(t, eps, opts)
	ctx := context.Background()
	if err := c.Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	fc.takeCalls()
	// Node 1 hangs (cut off); 3 becomes leader; 2 still names 1.
	fc.script[1] = []fault{{err: node.ErrTimeout, then: func() {
		fc.mu.Lock()
		fc.leader, fc.hintTo = 3, 1
		fc.mu.Unlock()
	}}}
	if err := c.Put(ctx, []byte("k"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, fc.takeCalls(), []call{
		{ep: 1, op: OpPut, client: 31, seq: 3},
		{ep: 2, op: OpPut, client: 31, seq: 3}, // hint 1: not followed yet
		{ep: 3, op: OpPut, client: 31, seq: 3},
	})
}

// If every other endpoint still names the suspect, it is asked again: it
// was only slow, and still leads.
func TestClientReturnsToTheSuspectWhenEveryoneNamesIt(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	opts := fastOptions()
	opts.ID = 32
	c := newTestClient(t, eps, opts)
	ctx := context.Background()
	if err := c.Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	fc.takeCalls()
	fc.script[1] = []fault{{err: node.ErrTimeout}}
	if err := c.Put(ctx, []byte("k"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, fc.takeCalls(), []call{
		{ep: 1, op: OpPut, client: 32, seq: 3},
		{ep: 2, op: OpPut, client: 32, seq: 3}, // names 1: others untried
		{ep: 3, op: OpPut, client: 32, seq: 3}, // names 1: everyone has
		{ep: 1, op: OpPut, client: 32, seq: 3},
	})
	// Round robin without a hint also steps past the suspect.
	fc.script[1] = []fault{{err: node.ErrTimeout}}
	fc.noHint = true
	fc.setLeader(3)
	if err := c.Put(ctx, []byte("k"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, fc.takeCalls(), []call{
		{ep: 1, op: OpPut, client: 32, seq: 4},
		{ep: 2, op: OpPut, client: 32, seq: 4},
		{ep: 3, op: OpPut, client: 32, seq: 4},
	})
}

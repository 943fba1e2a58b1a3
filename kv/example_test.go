package kv_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// A retried command is answered from its session and runs once.
func ExampleStore() {
	s, err := kv.NewStore(kv.StoreOptions{})
	if err != nil {
		panic(err)
	}
	open, _ := kv.AppendCommand(nil, kv.Command{Op: kv.OpOpen, ClientID: 7, Seq: 1})
	put, _ := kv.AppendCommand(nil, kv.Command{Op: kv.OpPut, ClientID: 7, Seq: 2, Key: []byte("k"), Value: []byte("v")})
	results := s.Apply([]node.Command{{Index: 1, Data: open}, {Index: 2, Data: put}, {Index: 3, Data: put}})
	fmt.Println(results[1].(kv.Result).Status, results[2].(kv.Result).Status, "puts run:", s.Stats().Puts)

	v, err := s.Read(kv.AppendGetQuery(nil, []byte("k")))
	if err != nil {
		panic(err)
	}
	r := v.(kv.Result)
	fmt.Printf("k = %q (found %t)\n", r.Value, r.Found)
	// Output:
	// ok ok puts run: 1
	// k = "v" (found true)
}

// localNode is a one-replica "cluster": an Endpoint that applies at once.
// A real one is a *node.Node.
type localNode struct {
	mu    sync.Mutex
	store *kv.Store
	index uint64
}

func (n *localNode) ID() uint64 { return 1 }

func (n *localNode) Propose(_ context.Context, cmd []byte) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.index++
	return n.store.Apply([]node.Command{{Index: n.index, Data: cmd}})[0], nil
}

func (n *localNode) Read(_ context.Context, query []byte) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.store.Read(query)
}

func ExampleClient() {
	store, _ := kv.NewStore(kv.StoreOptions{})
	c, err := kv.NewClient([]kv.Endpoint{&localNode{store: store}}, kv.ClientOptions{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	swapped, _ := c.CASAbsent(ctx, []byte("lock"), []byte("me"))
	fmt.Println("acquired:", swapped)
	swapped, _ = c.CASAbsent(ctx, []byte("lock"), []byte("you"))
	fmt.Println("acquired again:", swapped)
	v, found, _ := c.Get(ctx, []byte("lock"))
	fmt.Printf("lock = %q (found %t)\n", v, found)
	// Output:
	// acquired: true
	// acquired again: false
	// lock = "me" (found true)
}

package core_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/raftbench/raftbench/core"
)

// The Ready loop of a single-node cluster: tick until the node elects
// itself, propose, persist what Ready hands out, and apply what commits.
func Example() {
	st := core.NewMemoryStorage()
	r, err := core.New(core.Config{
		ID: 1, Voters: []uint64{1},
		ElectionTicks: 10, HeartbeatTicks: 1,
		MaxInflight: 64, MaxSizePerMsg: 1 << 20,
		Storage: st, Rand: rand.New(rand.NewPCG(1, 1)),
	})
	if err != nil {
		panic(err)
	}
	handle := func() {
		for r.HasReady() {
			rd := r.Ready()
			if !rd.HardState.IsEmpty() {
				st.SetHardState(rd.HardState)
			}
			if err := st.Append(rd.Entries); err != nil {
				panic(err)
			}
			// (A cluster would send rd.Messages now and
			// rd.MessagesAfterPersist here.)
			for _, e := range rd.CommittedEntries {
				if len(e.Data) > 0 {
					fmt.Printf("applied %d: %s\n", e.Index, e.Data)
				}
			}
			r.Advance(rd)
			if n := len(rd.Entries); n > 0 {
				r.Persisted(rd.Entries[n-1].Index, rd.Entries[n-1].Term)
			}
		}
	}
	for r.Role() != core.Leader {
		r.Tick()
		handle()
	}
	if _, _, err := r.Propose(core.Entry{Data: []byte("x=1")}, core.Entry{Data: []byte("y=2")}); err != nil {
		panic(err)
	}
	handle()
	fmt.Println("term", r.Term(), "commit", r.Committed())
	// Output:
	// applied 2: x=1
	// applied 3: y=2
	// term 1 commit 3
}

package wal_test

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/wal"
)

// A follower saves entries, then a new leader's conflicting entry replaces
// its tail; the log reads back the result and its terms.
func ExampleOpenPebble() {
	l, err := wal.OpenPebble("raft-log", wal.PebbleOptions{FS: vfs.NewMem(), GroupID: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	err = l.Save(core.HardState{Term: 1, Vote: 2}, []core.Entry{
		{Index: 1, Term: 1, Data: []byte("a")},
		{Index: 2, Term: 1, Data: []byte("b")},
		{Index: 3, Term: 1, Data: []byte("c")},
	}, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The leader of term 2 disagrees from index 2 on: 2 and 3 are replaced.
	err = l.Save(core.HardState{Term: 2, Vote: 3, Commit: 2}, []core.Entry{
		{Index: 2, Term: 2, Data: []byte("B")},
	}, true)
	if err != nil {
		fmt.Println(err)
		return
	}

	last, _ := l.LastIndex()
	ents, _ := l.Entries(1, last+1, 1<<20)
	for _, e := range ents {
		fmt.Printf("%d/%d %s\n", e.Index, e.Term, e.Data)
	}
	// A byte limit smaller than one entry still returns one.
	one, _ := l.Entries(1, last+1, 0)
	hs, _, _ := l.InitialState()
	fmt.Println(len(one), hs.Term, hs.Commit)
	// Output:
	// 1/1 a
	// 2/2 B
	// 1 2 2
}

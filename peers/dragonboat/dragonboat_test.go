package dragonboat_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/peers/dragonboat"
	"github.com/raftbench/raftbench/peers/peertest"
	"github.com/raftbench/raftbench/transport/fault"
)

var testKnobs = peers.Knobs{Tick: 10 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, Heartbeat: 30 * time.Millisecond}

func TestSuite(t *testing.T) {
	peertest.Run(t, dragonboat.Library, peertest.Options{
		Knobs:       testKnobs,
		Unsupported: peers.Knobs{NoSync: true},
		Rules:       fault.Rules{DropRate: 0.05, DuplicateRate: 0.05, ReorderRate: 0.05, Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond},
		Snapshots:   peers.Knobs{SnapshotEntries: 100, SnapshotTrailing: 20},
		// dragonboat keeps each snapshot as snapshot-<index>.gbsnap.
		SnapshotTaken: func(dir string) bool { return peertest.HasFile(dir, ".gbsnap") },
	})
}

// TestGroups: with --groups 3 each shard is its own kv group: a client's
// writes land in its group only, every group settles with agreeing
// replicas, and a NodeHost restart brings every shard back.
func TestGroups(t *testing.T) {
	k := testKnobs
	k.Groups = 3
	sys := peertest.Start(t, dragonboat.Library, k)
	if sys.Groups() != 3 {
		t.Fatalf("Groups() = %d, want 3", sys.Groups())
	}
	put := func(round int) {
		var wg sync.WaitGroup
		for c := range 6 {
			g := c % sys.Groups()
			cl, err := kv.NewClient(peertest.Endpoints(sys, g), kv.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := cl.Put(ctx, []byte(fmt.Sprintf("r%d-c%d-%d", round, c, i)), []byte("v"))
					cancel()
					if err != nil {
						t.Errorf("group %d: put: %v", g, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	put(0)
	if err := sys.Stop(1); err != nil {
		t.Fatal(err)
	}
	put(1)
	if err := sys.Restart(1); err != nil {
		t.Fatal(err)
	}
	for g := range sys.Groups() {
		peertest.Settle(t, sys, g)
		for _, id := range sys.Nodes() {
			st := sys.Store(g, id)
			for round := range 2 {
				for c := range 6 {
					_, found := st.Get([]byte(fmt.Sprintf("r%d-c%d-0", round, c)))
					if want := c%sys.Groups() == g; found != want {
						t.Fatalf("group %d node %d: key of client %d (group %d) found=%t", g, id, c, c%sys.Groups(), found)
					}
				}
			}
		}
	}
}

// TestSmoke logs a quick throughput number: go test -run TestSmoke -peers.smoke=3s
func TestSmoke(t *testing.T) { peertest.Smoke(t, dragonboat.Library, peers.Knobs{}) }

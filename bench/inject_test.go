package bench

import (
	"context"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/transport/fault"
)

// partitionTarget is the least a Target can be to take partitions: a
// fault.Network, as an in-process cluster's wrappers share.
type partitionTarget struct {
	Target
	net *fault.Network
}

func (p partitionTarget) Group(int) Group { return noLeader{} }

// noLeader is a group without a leader.
type noLeader struct{ Group }

func (noLeader) Leader() (uint64, uint64) { return 0, 0 }
func (noLeader) MaxTerm() uint64          { return 0 }

func (p partitionTarget) Isolate(_ context.Context, id uint64) error {
	p.net.Isolate(id)
	return nil
}

func (p partitionTarget) Unisolate(_ context.Context, id uint64) error {
	p.net.Unisolate(id)
	return nil
}

func (p partitionTarget) HealNetwork(context.Context) error {
	p.net.Heal()
	return nil
}

// The end of isolate:3 reconnects node 3 only: another node's isolation
// and a one-way cut stay in force until their own end or a heal.
func TestIsolateEndReconnectsOnlyItsNode(t *testing.T) {
	net := fault.NewNetwork()
	c := partitionTarget{net: net}
	cfg := Default()
	in := newInjector(c, &cfg, nil, time.Now())
	parse := func(s string) faultspec.Fault {
		f, err := faultspec.Parse(s, 3)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	iso1, iso3 := parse("isolate:1@1s+5s"), parse("isolate:3@2s+2s")
	net.Cut(2, 1)
	for _, ev := range []faultspec.Event{{Fault: iso1}, {Fault: iso3}} {
		if _, err := in.apply(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if !net.Blocked(3, 2) || !net.Blocked(1, 2) {
		t.Fatal("isolate did not cut nodes 1 and 3 off")
	}
	what, err := in.apply(context.Background(), faultspec.Event{Fault: iso3, Undo: true})
	if err != nil || what != "reconnected node 3" {
		t.Fatalf("end of isolate:3 = %q, %v", what, err)
	}
	if net.Blocked(3, 2) || net.Blocked(2, 3) {
		t.Error("node 3 is still cut off after its isolation ended")
	}
	if !net.Blocked(1, 3) || !net.Blocked(2, 1) {
		t.Error("the end of isolate:3 lifted node 1's isolation too")
	}
	if _, err := in.apply(context.Background(), faultspec.Event{Fault: iso3, Undo: true}); err == nil {
		t.Error("ending an isolation twice did not fail")
	}
	if _, err := in.apply(context.Background(), faultspec.Event{Fault: parse("heal@3s")}); err != nil || net.Blocked(1, 2) || net.Blocked(2, 1) {
		t.Errorf("heal left partitions in force (%v)", err)
	}
}

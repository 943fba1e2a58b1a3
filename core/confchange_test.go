package core

import (
	"errors"
	"slices"
	"testing"
)

func TestConfChange_EncodingRoundTripAndGarbage(t *testing.T) {
	cc := ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 4, Context: []byte("10.0.0.4:7000")}, {Type: RemoveNode, NodeID: 1}}}
	got, err := UnmarshalConfChange(cc.Marshal())
	if err != nil || len(got.Changes) != 2 || got.Changes[0].NodeID != 4 || string(got.Changes[0].Context) != "10.0.0.4:7000" || got.Changes[1].Type != RemoveNode {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	enc := cc.Marshal()
	for i := range enc {
		if _, err := UnmarshalConfChange(enc[:i]); err == nil && i > 0 {
			t.Errorf("truncated encoding (%d of %d bytes) accepted", i, len(enc))
		}
	}
	if _, err := UnmarshalConfChange(append(enc, 0)); !errors.Is(err, ErrInvalidConfChange) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := UnmarshalConfChange([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Error("huge count accepted")
	}
}

func FuzzUnmarshalConfChange(f *testing.F) {
	f.Add(ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 9, Context: []byte("x")}}}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		cc, err := UnmarshalConfChange(b)
		if err != nil {
			return
		}
		again, err := UnmarshalConfChange(cc.Marshal())
		if err != nil || len(again.Changes) != len(cc.Changes) {
			t.Fatalf("re-encoding of a decoded change fails: %v", err)
		}
	})
}

func TestApplyConfChange_Rules(t *testing.T) {
	base := ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	ok := []struct {
		name string
		cc   ConfChange
		want ConfState
	}{
		{"add voter", ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 5}}}, ConfState{Voters: []uint64{1, 2, 3, 5}, Learners: []uint64{4}}},
		{"promote learner", ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 4}}}, ConfState{Voters: []uint64{1, 2, 3, 4}, Learners: []uint64{}}},
		{"add learner", ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 6}}}, ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4, 6}}},
		{"remove voter", ConfChange{Changes: []ConfChangeSingle{{Type: RemoveNode, NodeID: 2}}}, ConfState{Voters: []uint64{1, 3}, Learners: []uint64{4}}},
		{"remove learner", ConfChange{Changes: []ConfChangeSingle{{Type: RemoveNode, NodeID: 4}}}, ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{}}},
		{"joint replace", ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 5}, {Type: RemoveNode, NodeID: 1}}},
			ConfState{Voters: []uint64{2, 3, 5}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{4}}},
	}
	for _, c := range ok {
		got, err := ApplyConfChange(base, c.cc)
		if err != nil || !slices.Equal(got.Voters, c.want.Voters) || !slices.Equal(got.VotersOutgoing, c.want.VotersOutgoing) || len(got.Learners) != len(c.want.Learners) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	joint, _ := ApplyConfChange(base, ok[5].cc)
	left, err := ApplyConfChange(joint, ConfChange{})
	if err != nil || len(left.VotersOutgoing) != 0 || !slices.Equal(left.Voters, []uint64{2, 3, 5}) {
		t.Errorf("leaving joint: %+v, %v", left, err)
	}
	bad := []struct {
		name string
		cs   ConfState
		cc   ConfChange
	}{
		{"add existing voter", base, ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 1}}}},
		{"add existing learner", base, ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 4}}}},
		{"demote voter", base, ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 1}}}},
		{"remove non-member", base, ConfChange{Changes: []ConfChangeSingle{{Type: RemoveNode, NodeID: 9}}}},
		{"remove last voter", ConfState{Voters: []uint64{1}}, ConfChange{Changes: []ConfChangeSingle{{Type: RemoveNode, NodeID: 1}}}},
		{"node 0", base, ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 0}}}},
		{"same node twice", base, ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 7}, {Type: RemoveNode, NodeID: 7}}}},
		{"unknown type", base, ConfChange{Changes: []ConfChangeSingle{{Type: 9, NodeID: 7}}}},
		{"leave when not joint", base, ConfChange{}},
		{"change while joint", joint, ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 8}}}},
	}
	for _, c := range bad {
		if _, err := ApplyConfChange(c.cs, c.cc); !errors.Is(err, ErrInvalidConfChange) {
			t.Errorf("%s: %v, want ErrInvalidConfChange", c.name, err)
		}
	}
}

// networkWith builds a network of the given node IDs where voters start as
// the membership and the others are spares outside it.
func networkWith(t *testing.T, voters []uint64, spares ...uint64) *network {
	nw := &network{t: t, nodes: map[uint64]*Raft{}, stores: map[uint64]*MemoryStorage{}}
	for _, id := range append(slices.Clone(voters), spares...) {
		st := NewMemoryStorage()
		nw.stores[id] = st
		var learners []uint64
		if slices.Contains(spares, id) {
			learners = []uint64{id}
		}
		nw.nodes[id] = newTestRaft(t, id, voters, st, func(c *Config) { c.Learners = learners })
	}
	return nw
}

// electAny ticks every live node until one of them leads, and returns it.
func (nw *network) electAny() uint64 {
	nw.t.Helper()
	for range 500 {
		for id, r := range nw.nodes {
			if r != nil && r.Role() == Leader {
				return id
			}
		}
		for _, r := range nw.nodes {
			if r != nil {
				r.Tick()
			}
		}
		nw.stabilize()
	}
	nw.t.Fatal("no leader emerged")
	return 0
}

func (nw *network) changeConf(leader uint64, changes ...ConfChangeSingle) error {
	nw.t.Helper()
	_, _, err := nw.nodes[leader].ProposeConfChange(ConfChange{Changes: changes})
	if err == nil {
		nw.stabilize()
	}
	return err
}

// Grow 3 → 5 through learners, then shrink by removing the leader, which
// steps down once the change applies; the rest elect a new leader.
func TestMembership_GrowAndRemoveLeader(t *testing.T) {
	nw := networkWith(t, []uint64{1, 2, 3}, 4, 5)
	nw.campaign(1)
	nw.propose(1, "a")
	l := nw.nodes[1]
	for _, id := range []uint64{4, 5} {
		if err := nw.changeConf(1, ConfChangeSingle{Type: AddLearner, NodeID: id}); err != nil {
			t.Fatal(err)
		}
		// A learner gets the log but does not count toward commit.
		if nw.nodes[id].LastIndex() != l.LastIndex() {
			t.Fatalf("learner %d at %d, leader at %d", id, nw.nodes[id].LastIndex(), l.LastIndex())
		}
		if err := nw.changeConf(1, ConfChangeSingle{Type: AddVoter, NodeID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Conf().Voters; !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("voters %v after growing", got)
	}
	for id, r := range nw.nodes {
		if !slices.Equal(r.Conf().Voters, []uint64{1, 2, 3, 4, 5}) {
			t.Fatalf("node %d has voters %v", id, r.Conf().Voters)
		}
	}
	if err := nw.changeConf(1, ConfChangeSingle{Type: RemoveNode, NodeID: 1}); err != nil {
		t.Fatal(err)
	}
	if l.Role() == Leader {
		t.Fatal("the removed leader still leads")
	}
	// It handed leadership on as it stepped down: a successor was told to
	// campaign at once, without waiting out an election timeout.
	var successor uint64
	for _, m := range nw.delivered {
		if m.Type == MsgTimeoutNow && m.From == 1 {
			successor = m.To
		}
	}
	if successor == None || nw.nodes[successor].Role() != Leader {
		t.Fatalf("no successor took over at once (TimeoutNow to %d)", successor)
	}
	delete(nw.nodes, 1) // gone
	lead := nw.electAny()
	if !slices.Equal(nw.nodes[lead].Conf().Voters, []uint64{2, 3, 4, 5}) {
		t.Fatalf("new leader %d has voters %v", lead, nw.nodes[lead].Conf().Voters)
	}
	nw.propose(lead, "b")
}

// Joint consensus: replacing two voters at once passes through C_old,new
// and leaves it automatically.
func TestMembership_JointReplace(t *testing.T) {
	nw := networkWith(t, []uint64{1, 2, 3}, 4, 5)
	nw.campaign(1)
	err := nw.changeConf(1,
		ConfChangeSingle{Type: AddVoter, NodeID: 4}, ConfChangeSingle{Type: AddVoter, NodeID: 5},
		ConfChangeSingle{Type: RemoveNode, NodeID: 2}, ConfChangeSingle{Type: RemoveNode, NodeID: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5 && len(nw.nodes[1].Conf().VotersOutgoing) > 0; i++ {
		nw.stabilize()
	}
	if c := nw.nodes[1].Conf(); !slices.Equal(c.Voters, []uint64{1, 4, 5}) || len(c.VotersOutgoing) != 0 {
		t.Fatalf("after the joint change the leader has %+v", c)
	}
	var sawJoint bool
	for _, m := range nw.delivered {
		for _, e := range m.Entries {
			if e.Type == EntryConfChange {
				cc, _ := UnmarshalConfChange(e.Data)
				if len(cc.Changes) == 0 {
					sawJoint = true
				}
			}
		}
	}
	if !sawJoint {
		t.Fatal("no leave-joint entry was replicated")
	}
	nw.propose(1, "after")
}

// One change at a time, and only after the leader committed in its term.
func TestMembership_OneChangeInFlight(t *testing.T) {
	nw := networkWith(t, []uint64{1, 2, 3}, 4, 5)
	l := nw.nodes[1]
	l.becomeCandidate()
	l.becomeLeader()
	if _, _, err := l.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 4}}}); !errors.Is(err, ErrConfChangePending) {
		t.Fatalf("change before the leader's first commit: %v", err)
	}
	nw.stabilize()
	nw.isolate(3)
	nw.drop = func(Message) bool { return true } // nothing commits
	if _, _, err := l.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 4}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: AddLearner, NodeID: 5}}}); !errors.Is(err, ErrConfChangePending) {
		t.Fatalf("second change in flight: %v", err)
	}
	if _, _, err := nw.nodes[2].ProposeConfChange(ConfChange{}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("change on a follower: %v", err)
	}
	if _, _, err := l.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: RemoveNode, NodeID: 9}}}); err == nil {
		t.Fatal("invalid change accepted")
	}
}

// The single-server change race: a change proposed by a leader that loses
// leadership before it commits, and another proposed by the next leader,
// must never let two majorities form. The new leader cannot propose until
// it commits an entry of its own term, which settles the old change first.
func TestMembership_ChangeRaceAcrossLeaderChange(t *testing.T) {
	nw := networkWith(t, []uint64{1, 2, 3, 4}, 5, 6)
	nw.campaign(1)
	// Leader 1 proposes adding 5 but only it holds the entry.
	nw.drop = func(m Message) bool { return m.From == 1 }
	if _, _, err := nw.nodes[1].ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: 5}}}); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	// 1 is cut off; another node becomes leader without the entry.
	nw.isolate(1)
	old := nw.nodes[1]
	delete(nw.nodes, 1)
	lead := nw.electAny()
	nw.nodes[1] = old
	l2 := nw.nodes[lead]
	if err := nw.changeConf(lead, ConfChangeSingle{Type: AddVoter, NodeID: 6}); err != nil {
		t.Fatal(err)
	}
	// Heal: 1's uncommitted change is overwritten, not applied.
	nw.heal()
	for range 20 {
		l2.Tick()
		nw.stabilize()
	}
	if l2.Role() != Leader {
		t.Fatalf("leader %d was deposed when the old leader returned", lead)
	}
	want := []uint64{1, 2, 3, 4, 6}
	for id, r := range nw.nodes {
		if id == 5 {
			continue
		}
		if !slices.Equal(r.Conf().Voters, want) {
			t.Fatalf("node %d has voters %v, want %v", id, r.Conf().Voters, want)
		}
	}
}

// A removed node that keeps campaigning does not disrupt the cluster: with
// pre-vote and check-quorum it never bumps the members' term.
func TestMembership_RemovedNodeDoesNotDisrupt(t *testing.T) {
	nw := networkWith(t, []uint64{1, 2, 3})
	nw.campaign(1)
	// Node 3 misses its own removal.
	nw.isolate(3)
	if err := nw.changeConf(1, ConfChangeSingle{Type: RemoveNode, NodeID: 3}); err != nil {
		t.Fatal(err)
	}
	nw.heal()
	term := nw.nodes[1].Term()
	r3 := nw.nodes[3]
	for range 100 {
		r3.Tick()
		nw.nodes[1].Tick()
		nw.stabilize()
	}
	if nw.nodes[1].Role() != Leader || nw.nodes[1].Term() != term || nw.nodes[2].Term() != term {
		t.Fatalf("removed node disrupted the cluster: leader 1 is %s in term %d (was %d)", nw.nodes[1].Role(), nw.nodes[1].Term(), term)
	}
	nw.propose(1, "still fine")
}

// A restart replays membership changes the state machine has already
// applied (Config.Applied beyond the snapshot).
func TestMembership_RestartReplaysChanges(t *testing.T) {
	nw := networkWith(t, []uint64{1, 2, 3}, 4)
	nw.campaign(1)
	if err := nw.changeConf(1, ConfChangeSingle{Type: AddLearner, NodeID: 4}); err != nil {
		t.Fatal(err)
	}
	st := nw.stores[2]
	applied := nw.nodes[2].Committed()
	r := newTestRaft(t, 2, []uint64{1, 2, 3}, st, func(c *Config) { c.Applied = applied })
	if !slices.Equal(r.Conf().Learners, []uint64{4}) {
		t.Fatalf("restarted node has learners %v, want [4]", r.Conf().Learners)
	}
}

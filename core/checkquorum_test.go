package core

import (
	"fmt"
	"testing"
)

// tickAll ticks every node once and delivers everything that follows.
func (nw *network) tickAll() {
	for id := uint64(1); id <= uint64(len(nw.nodes)); id++ {
		nw.nodes[id].Tick()
	}
	nw.stabilize()
}

// ticksUntilStepDown ticks only r (the isolated leader; its followers'
// clocks do not matter to it) until it is no longer leader, delivering
// whatever still gets through, and returns how many ticks that took.
func ticksUntilStepDown(nw *network, r *Raft, limit int) int {
	for i := 1; i <= limit; i++ {
		r.Tick()
		nw.stabilize()
		if r.Role() != Leader {
			return i
		}
	}
	return -1
}

// Continuous check-quorum: an isolated leader steps down within an election
// timeout (plus at most one heartbeat interval) of losing its quorum,
// wherever the isolation falls in the election-timeout window the old,
// window-based check used (its phase is the offset since the leader was
// elected), and not before ET minus a heartbeat — it keeps leading while
// the quorum is within reach. With the window check, isolation just after a
// window began cost up to 2·ET.
func TestCheckQuorum_StepDownWithinElectionTimeoutAtEveryPhase(t *testing.T) {
	const et, hb = 10, 3
	cfg := func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = et, hb }
	for offset := 0; offset < 2*et; offset++ {
		t.Run(fmt.Sprintf("offset=%d", offset), func(t *testing.T) {
			nw := newNetwork(t, 3, cfg)
			nw.campaign(1)
			l := nw.nodes[1]
			for range offset {
				nw.tickAll()
			}
			if l.Role() != Leader {
				t.Fatalf("leader of a healthy cluster stepped down within %d ticks", offset)
			}
			nw.isolate(1)
			got := ticksUntilStepDown(nw, l, 3*et)
			if got < 0 || got > et+hb {
				t.Fatalf("isolated at offset %d, the leader stepped down after %d ticks; want within ET+HB = %d", offset, got, et+hb)
			}
			if got < et-hb {
				t.Fatalf("isolated at offset %d, the leader stepped down after only %d ticks; its quorum was heard within ET-HB", offset, got)
			}
			if l.Lead() != None {
				t.Fatalf("deposed leader still names leader %d", l.Lead())
			}
		})
	}
}

// In a joint configuration the leader needs both majorities: hearing from
// all of C_new while C_old is cut off is not enough.
func TestCheckQuorum_JointNeedsBothHalves(t *testing.T) {
	const et, hb = 10, 2
	joint := SnapshotMeta{Index: 1, Term: 1, Conf: ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{1, 4, 5}}}
	nw := &network{t: t, nodes: map[uint64]*Raft{}, stores: map[uint64]*MemoryStorage{}}
	for id := uint64(1); id <= 5; id++ {
		st := NewMemoryStorage()
		if err := st.ApplySnapshot(joint); err != nil {
			t.Fatal(err)
		}
		nw.stores[id] = st
		nw.nodes[id] = newTestRaft(t, id, []uint64{1, 2, 3, 4, 5}, st, func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = et, hb })
	}
	// Hold back the leader's C_new so the configuration stays joint.
	holdConf := func(m Message) bool {
		for _, e := range m.Entries {
			if e.Type == EntryConfChange {
				return true
			}
		}
		return false
	}
	nw.drop = holdConf
	nw.campaign(1)
	l := nw.nodes[1]
	if l.Role() != Leader || len(l.Conf().VotersOutgoing) == 0 {
		t.Fatalf("setup: node 1 is %s in %+v", l.Role(), l.Conf())
	}
	for range 2 * et {
		nw.tickAll()
	}
	if l.Role() != Leader {
		t.Fatal("a leader heard by both halves stepped down")
	}
	// 2 and 3 (the incoming half with the leader) still answer.
	nw.drop = func(m Message) bool { return holdConf(m) || m.From == 4 || m.To == 4 || m.From == 5 || m.To == 5 }
	got := ticksUntilStepDown(nw, l, 3*et)
	if got < 0 || got > et+hb {
		t.Fatalf("with the outgoing half cut off the leader stepped down after %d ticks; want within %d", got, et+hb)
	}
}

// The disk-stall step-down is continuous too: a leader whose log write
// never completes gives up within an election timeout of the stall,
// wherever in the old window it begins, while its followers keep answering.
func TestDiskStall_StepDownWithinElectionTimeoutAtEveryPhase(t *testing.T) {
	const et, hb = 10, 3
	cfg := func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = et, hb }
	for offset := 0; offset < 2*et; offset++ {
		t.Run(fmt.Sprintf("offset=%d", offset), func(t *testing.T) {
			nw := newNetwork(t, 3, cfg)
			nw.campaign(1)
			l := nw.nodes[1]
			for range offset {
				nw.tickAll()
			}
			if _, _, err := l.Propose(Entry{Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			// Hand the entry to a "disk" that never completes; keep
			// delivering messages as usual.
			l.Advance(l.Ready())
			for i := 1; i <= 3*et; i++ {
				l.Tick()
				rd := l.Ready()
				l.Advance(rd)
				for _, m := range rd.Messages {
					if err := nw.nodes[m.To].Step(m); err != nil {
						t.Fatal(err)
					}
				}
				for _, id := range []uint64{2, 3} {
					for _, m := range persistAll(t, nw.nodes[id], nw.stores[id]) {
						if err := l.Step(m); err != nil {
							t.Fatal(err)
						}
					}
				}
				if l.Role() != Leader {
					if i > et+hb || i < et-1 {
						t.Fatalf("stalled at offset %d, stepped down after %d ticks; want within [ET-1, ET+HB] = [%d, %d]", offset, i, et-1, et+hb)
					}
					return
				}
			}
			t.Fatalf("stalled at offset %d, the leader kept leading for %d ticks", offset, 3*et)
		})
	}
}

// A slow disk that completes every write within the election timeout keeps
// its leader.
func TestDiskStall_SlowButProgressingDiskKeepsLeading(t *testing.T) {
	const et = 10
	nw := newNetwork(t, 3, func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = et, 2 })
	nw.campaign(1)
	l := nw.nodes[1]
	st := nw.stores[1]
	var pending []Ready
	for i := range 6 * et {
		if _, _, err := l.Propose(Entry{Data: []byte{byte(i)}}); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		rd := l.Ready()
		l.Advance(rd)
		pending = append(pending, rd)
		// Every write takes et-2 ticks to become durable.
		if len(pending) > et-2 {
			done := pending[0]
			pending = pending[1:]
			if err := st.Append(done.Entries); err != nil {
				t.Fatal(err)
			}
			if n := len(done.Entries); n > 0 {
				l.Persisted(done.Entries[n-1].Index, done.Entries[n-1].Term)
			}
		}
		for _, m := range append(rd.Messages, rd.MessagesAfterPersist...) {
			if err := nw.nodes[m.To].Step(m); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []uint64{2, 3} {
			for _, m := range persistAll(t, nw.nodes[id], nw.stores[id]) {
				if err := l.Step(m); err != nil {
					t.Fatal(err)
				}
			}
		}
		l.Tick()
		if l.Role() != Leader {
			t.Fatalf("a leader whose writes each take %d ticks stepped down at tick %d", et-2, i)
		}
	}
}

// A follower names its leader as a hint only while it has heard from it
// within the election timeout; the leader names itself.
func TestLeaderHint_FreshOnly(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = 10, 2 })
	nw.campaign(1)
	f := nw.nodes[2]
	if nw.nodes[1].LeaderHint() != 1 || f.LeaderHint() != 1 {
		t.Fatalf("hints %d, %d; want 1, 1", nw.nodes[1].LeaderHint(), f.LeaderHint())
	}
	nw.isolate(1)
	// f's randomized election timeout is at least ET, so for ET-1 ticks it
	// stays a follower of 1 that has heard nothing new.
	for i := 1; i < 10; i++ {
		f.Tick()
		if f.Role() != Follower || f.LeaderHint() != 1 {
			t.Fatalf("%d ticks after hearing the leader: %s, hint %d; want follower, 1", i, f.Role(), f.LeaderHint())
		}
	}
	f.Tick()
	if f.LeaderHint() != None {
		t.Fatalf("an election timeout after hearing the leader: hint %d (lead %d), want none", f.LeaderHint(), f.Lead())
	}
	if r := newTestRaft(t, 3, []uint64{1, 2, 3}, nil); r.LeaderHint() != None {
		t.Fatalf("a fresh node hints %d", r.LeaderHint())
	}
}

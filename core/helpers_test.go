package core

import (
	"math/rand/v2"
	"testing"
)

// testConfig is a valid config for node id of the given voters.
func testConfig(id uint64, voters []uint64, st Storage) Config {
	return Config{
		ID: id, Voters: voters,
		ElectionTicks: 10, HeartbeatTicks: 1,
		MaxInflight: 256, MaxSizePerMsg: 1 << 20,
		Storage: st, Rand: rand.New(rand.NewPCG(id, 7)),
	}
}

func newTestRaft(t testing.TB, id uint64, voters []uint64, st *MemoryStorage, mod ...func(*Config)) *Raft {
	t.Helper()
	if st == nil {
		st = NewMemoryStorage()
	}
	cfg := testConfig(id, voters, st)
	for _, m := range mod {
		m(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// persistAll plays a synchronous runtime: it saves everything r's Ready
// holds into st, acknowledges it, and returns every message to send.
func persistAll(t testing.TB, r *Raft, st *MemoryStorage) []Message {
	t.Helper()
	var out []Message
	for r.HasReady() {
		rd := r.Ready()
		if !rd.HardState.IsEmpty() {
			st.SetHardState(rd.HardState)
		}
		if rd.Snapshot != nil {
			if err := st.ApplySnapshot(rd.Snapshot.Meta); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Append(rd.Entries); err != nil {
			t.Fatal(err)
		}
		out = append(out, rd.Messages...)
		out = append(out, rd.MessagesAfterPersist...)
		r.Advance(rd)
		if n := len(rd.Entries); n > 0 {
			r.Persisted(rd.Entries[n-1].Index, rd.Entries[n-1].Term)
		} else if rd.Snapshot != nil {
			r.Persisted(rd.Snapshot.Meta.Index, rd.Snapshot.Meta.Term)
		}
	}
	return out
}

// network is a synchronous in-memory cluster for scenario tests: messages
// are delivered in order, saves complete at once, and drop filters cut
// links.
type network struct {
	t      testing.TB
	nodes  map[uint64]*Raft
	stores map[uint64]*MemoryStorage
	drop   func(m Message) bool
	// delivered records every message delivered, for assertions.
	delivered []Message
}

func newNetwork(t testing.TB, n int, mod ...func(*Config)) *network {
	voters := make([]uint64, n)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	nw := &network{t: t, nodes: map[uint64]*Raft{}, stores: map[uint64]*MemoryStorage{}}
	for _, id := range voters {
		st := NewMemoryStorage()
		nw.stores[id] = st
		nw.nodes[id] = newTestRaft(t, id, voters, st, mod...)
	}
	return nw
}

// stabilize delivers messages until the cluster is quiet.
func (nw *network) stabilize() {
	nw.t.Helper()
	for range 10000 {
		var msgs []Message
		for id := uint64(1); id <= uint64(len(nw.nodes)); id++ {
			if r := nw.nodes[id]; r != nil {
				msgs = append(msgs, persistAll(nw.t, r, nw.stores[id])...)
			}
		}
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			if nw.drop != nil && nw.drop(m) {
				continue
			}
			if to := nw.nodes[m.To]; to != nil {
				nw.delivered = append(nw.delivered, m)
				if err := to.Step(m); err != nil {
					nw.t.Fatalf("Step(%s %d->%d): %v", m.Type, m.From, m.To, err)
				}
			}
		}
	}
	nw.t.Fatal("network did not stabilize")
}

// campaign makes id time out and run an election, then stabilizes.
func (nw *network) campaign(id uint64) {
	nw.t.Helper()
	r := nw.nodes[id]
	for i := 0; r.Role() == Follower; i++ {
		if i > 100 {
			nw.t.Fatalf("node %d did not campaign within 100 ticks", id)
		}
		r.Tick()
	}
	nw.stabilize()
}

func (nw *network) propose(id uint64, data ...string) {
	nw.t.Helper()
	ents := make([]Entry, len(data))
	for i, d := range data {
		ents[i].Data = []byte(d)
	}
	if _, _, err := nw.nodes[id].Propose(ents...); err != nil {
		nw.t.Fatalf("Propose at %d: %v", id, err)
	}
	nw.stabilize()
}

// isolate cuts id off from everyone (both directions).
func (nw *network) isolate(id uint64) {
	nw.drop = func(m Message) bool { return m.From == id || m.To == id }
}

func (nw *network) heal() { nw.drop = nil }

// entsWithTerms builds a log with the given terms at indexes 1, 2, ...
func entsWithTerms(terms ...uint64) []Entry {
	ents := make([]Entry, len(terms))
	for i, t := range terms {
		ents[i] = Entry{Index: uint64(i + 1), Term: t}
	}
	return ents
}

// storageWith returns a storage holding the given log and hard state.
func storageWith(t testing.TB, hs HardState, terms ...uint64) *MemoryStorage {
	st := NewMemoryStorage()
	if err := st.Append(entsWithTerms(terms...)); err != nil {
		t.Fatal(err)
	}
	st.SetHardState(hs)
	return st
}

func logTerms(t testing.TB, r *Raft) []uint64 {
	t.Helper()
	var out []uint64
	for i := uint64(1); i <= r.LastIndex(); i++ {
		tm, err := r.log.term(i)
		if err != nil {
			t.Fatalf("term(%d): %v", i, err)
		}
		out = append(out, tm)
	}
	return out
}

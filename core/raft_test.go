package core

import (
	"errors"
	"slices"
	"testing"

	"github.com/raftbench/raftbench/core/tracker"
)

// §5.2: a follower that hears nothing campaigns; with a quorum it leads, and
// a new leader appends an empty entry of its term.
func TestElection_5_2_LeaderElected(t *testing.T) {
	for _, n := range []int{1, 3, 5, 7} {
		nw := newNetwork(t, n)
		nw.campaign(1)
		r := nw.nodes[1]
		if r.Role() != Leader || r.Term() != 1 {
			t.Fatalf("%d nodes: node 1 is %s in term %d, want Leader in term 1", n, r.Role(), r.Term())
		}
		for id, f := range nw.nodes {
			if id != 1 && (f.Role() != Follower || f.Lead() != 1) {
				t.Fatalf("%d nodes: node %d is %s following %d", n, id, f.Role(), f.Lead())
			}
		}
		if got := logTerms(t, r); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("%d nodes: leader log terms %v, want one empty entry of term 1", n, got)
		}
		if r.Committed() != 1 {
			t.Fatalf("%d nodes: commit %d, want 1", n, r.Committed())
		}
	}
}

// §5.2: without a quorum a candidate never leads.
func TestElection_5_2_NoQuorumNoLeader(t *testing.T) {
	nw := newNetwork(t, 5, func(c *Config) { c.DisablePreVote = true })
	nw.drop = func(m Message) bool { return m.To > 2 || m.From > 2 }
	nw.campaign(1)
	if r := nw.nodes[1]; r.Role() != Candidate {
		t.Fatalf("node 1 with 2 of 5 votes is %s, want Candidate", r.Role())
	}
}

// §5.1: any message with a higher term makes the receiver adopt it and step
// down.
func TestTerm_5_1_HigherTermStepsDown(t *testing.T) {
	for _, typ := range []MessageType{MsgApp, MsgHeartbeat, MsgAppResp, MsgVoteResp, MsgHeartbeatResp} {
		nw := newNetwork(t, 3)
		nw.campaign(1)
		r := nw.nodes[1]
		if err := r.Step(Message{Type: typ, From: 2, To: 1, Term: 5}); err != nil {
			t.Fatal(err)
		}
		if r.Role() != Follower || r.Term() != 5 {
			t.Fatalf("%s at term 5: leader is %s in term %d, want Follower in 5", typ, r.Role(), r.Term())
		}
		wantLead := uint64(None)
		if typ == MsgApp || typ == MsgHeartbeat {
			wantLead = 2
		}
		if r.Lead() != wantLead {
			t.Fatalf("%s: lead %d, want %d", typ, r.Lead(), wantLead)
		}
	}
}

// §5.1: a stale-term request is never obeyed; an append from a stale leader
// is answered with our term so that leader learns it is stale.
func TestTerm_5_1_StaleTermIgnoredOrAnswered(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	if err := nw.nodes[1].TransferLeader(2); err != nil { // term 2, node 2 leads
		t.Fatal(err)
	}
	nw.stabilize()
	f := nw.nodes[3]
	persistAll(t, f, nw.stores[3])
	before := logTerms(t, f)
	err := f.Step(Message{Type: MsgApp, From: 1, To: 3, Term: 1, Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := logTerms(t, f); !slices.Equal(got, before) || f.Lead() != 2 || f.Term() != 2 {
		t.Fatalf("stale append changed the follower: log %v (was %v), lead %d, term %d", got, before, f.Lead(), f.Term())
	}
	msgs := persistAll(t, f, nw.stores[3])
	if len(msgs) != 1 || msgs[0].Type != MsgAppResp || msgs[0].Term != 2 || msgs[0].To != 1 {
		t.Fatalf("stale append answered with %+v, want one MsgAppResp carrying term 2", msgs)
	}
	// A stale vote request is ignored outright.
	if err := f.Step(Message{Type: MsgVote, From: 1, To: 3, Term: 1, Index: 9, LogTerm: 9}); err != nil {
		t.Fatal(err)
	}
	if msgs := persistAll(t, f, nw.stores[3]); len(msgs) != 0 || f.vote == 1 {
		t.Fatalf("stale vote request answered %+v / vote %d", msgs, f.vote)
	}
	// The stale leader, told the new term, steps down.
	old := nw.nodes[1]
	old.becomeLeader()
	old.term = 1
	persistAll(t, old, nw.stores[1])
	if err := old.Step(Message{Type: MsgAppResp, From: 3, To: 1, Term: 2}); err != nil {
		t.Fatal(err)
	}
	if old.Role() != Follower || old.Term() != 2 {
		t.Fatalf("stale leader is %s in %d after hearing term 2", old.Role(), old.Term())
	}
}

// §5.2: one vote per term, first come first served; the vote leaves only
// after it is durable.
func TestVote_5_2_OneVotePerTerm(t *testing.T) {
	st := NewMemoryStorage()
	r := newTestRaft(t, 3, []uint64{1, 2, 3}, st, func(c *Config) { c.DisableCheckQuorum = true })
	if err := r.Step(Message{Type: MsgVote, From: 1, To: 3, Term: 1}); err != nil {
		t.Fatal(err)
	}
	rd := r.Ready()
	if len(rd.Messages) != 0 || len(rd.MessagesAfterPersist) != 1 || rd.MessagesAfterPersist[0].Reject {
		t.Fatalf("vote for 1: now %+v, after persist %+v; want one grant after persist", rd.Messages, rd.MessagesAfterPersist)
	}
	if rd.HardState.Vote != 1 || rd.HardState.Term != 1 || !rd.MustSync {
		t.Fatalf("hard state %+v (MustSync %v), want vote 1 in term 1 synced", rd.HardState, rd.MustSync)
	}
	persistAll(t, r, st)
	for _, from := range []uint64{2, 1} {
		if err := r.Step(Message{Type: MsgVote, From: from, To: 3, Term: 1}); err != nil {
			t.Fatal(err)
		}
		msgs := persistAll(t, r, st)
		wantReject := from != 1 // a repeated request from our candidate is granted again
		if len(msgs) != 1 || msgs[0].Reject != wantReject {
			t.Fatalf("second request from %d answered %+v, want reject=%v", from, msgs, wantReject)
		}
	}
	// The vote survives a restart.
	r2 := newTestRaft(t, 3, []uint64{1, 2, 3}, st, func(c *Config) { c.DisableCheckQuorum = true })
	if err := r2.Step(Message{Type: MsgVote, From: 2, To: 3, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if msgs := persistAll(t, r2, st); len(msgs) != 1 || !msgs[0].Reject {
		t.Fatalf("after restart a vote for 2 in term 1 was answered %+v, want a rejection", msgs)
	}
}

// §5.4.1: a vote goes only to a candidate whose log is at least as
// up-to-date: a later last term wins; with equal terms the longer log.
func TestVote_5_4_1_UpToDate(t *testing.T) {
	// Voter's log: terms 1 1 2 (last entry index 3, term 2).
	cases := []struct {
		index, term uint64
		grant       bool
	}{
		{3, 2, true},  // same
		{4, 2, true},  // longer, same term
		{2, 2, false}, // shorter, same term
		{1, 3, true},  // later term wins however short
		{9, 1, false}, // earlier term loses however long
	}
	for _, c := range cases {
		st := storageWith(t, HardState{Term: 2}, 1, 1, 2)
		r := newTestRaft(t, 3, []uint64{1, 2, 3}, st)
		if err := r.Step(Message{Type: MsgVote, From: 1, To: 3, Term: 3, Index: c.index, LogTerm: c.term}); err != nil {
			t.Fatal(err)
		}
		msgs := persistAll(t, r, st)
		if len(msgs) != 1 || msgs[0].Reject == c.grant {
			t.Errorf("candidate last (%d, %d): answered %+v, want grant=%v", c.index, c.term, msgs, c.grant)
		}
	}
}

// §5.2: only a current leader or a granted vote restarts a follower's
// election timer. A higher-term vote request it rejects moves it to that
// term but must leave the timer running, or a stale candidate campaigning
// at a steady pace keeps every up-to-date node from ever timing out.
func TestElection_5_2_RejectedVoteKeepsTimer(t *testing.T) {
	for _, grant := range []bool{false, true} {
		st := storageWith(t, HardState{Term: 2}, 1, 1, 2)
		r := newTestRaft(t, 3, []uint64{1, 2, 3}, st, func(c *Config) { c.DisableCheckQuorum = true; c.DisablePreVote = true })
		for range r.electionTicks - 1 {
			r.Tick()
		}
		elapsed := r.electionElapsed
		cand := Message{Type: MsgVote, From: 1, To: 3, Term: 5, Index: 1, LogTerm: 1} // behind: rejected
		if grant {
			cand.Index, cand.LogTerm = 3, 2
		}
		if err := r.Step(cand); err != nil {
			t.Fatal(err)
		}
		msgs := persistAll(t, r, st)
		if len(msgs) != 1 || msgs[0].Reject == grant || r.Term() != 5 {
			t.Fatalf("grant=%v: answered %+v in term %d", grant, msgs, r.Term())
		}
		want := elapsed
		if grant {
			want = 0
		}
		if r.electionElapsed != want {
			t.Errorf("grant=%v: election timer at %d after the vote request, want %d", grant, r.electionElapsed, want)
		}
	}
}

// §5.2: election timeouts are uniform in [ET, 2·ET): every value occurs.
func TestElection_5_2_RandomizedTimeoutSpread(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3}, nil)
	seen := map[int]bool{}
	for range 1000 {
		r.resetRandomizedElectionTimeout()
		to := r.randomizedElectionTimeout
		if to < r.electionTicks || to >= 2*r.electionTicks {
			t.Fatalf("timeout %d outside [%d, %d)", to, r.electionTicks, 2*r.electionTicks)
		}
		seen[to] = true
	}
	if len(seen) != r.electionTicks {
		t.Fatalf("saw %d distinct timeouts, want all %d in [ET, 2ET)", len(seen), r.electionTicks)
	}
}

// §5.2: two candidates splitting the vote both fail; a later election with
// a fresh term elects one.
func TestElection_5_2_DuelingCandidates(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.DisablePreVote = true; c.DisableCheckQuorum = true })
	// 1 and 3 cannot talk; both campaign; 2 votes for whoever asks first.
	nw.drop = func(m Message) bool { return (m.From == 1 && m.To == 3) || (m.From == 3 && m.To == 1) }
	nw.campaign(1)
	nw.campaign(3)
	if nw.nodes[1].Role() != Leader || nw.nodes[3].Role() != Candidate {
		t.Fatalf("after duel: 1 is %s, 3 is %s; want Leader and Candidate", nw.nodes[1].Role(), nw.nodes[3].Role())
	}
	// Node 3's log is behind, so even after healing it cannot win term 2's
	// election against 1's log; it rejoins as a follower.
	nw.heal()
	nw.campaign(3)
	var leaders int
	for _, r := range nw.nodes {
		if r.Role() == Leader {
			leaders++
		}
	}
	if leaders != 1 || nw.nodes[3].Role() == Leader {
		t.Fatalf("after healing: %d leaders, node 3 is %s", leaders, nw.nodes[3].Role())
	}
}

// Figure 7: a new leader brings followers with missing, extra and
// conflicting entries (cases a–f) into line with its log.
func TestReplication_Figure7_LogReconciliation(t *testing.T) {
	leaderLog := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	followers := map[string][]uint64{
		"a": {1, 1, 1, 4, 4, 5, 5, 6, 6},
		"b": {1, 1, 1, 4},
		"c": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},
		"d": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},
		"e": {1, 1, 1, 4, 4, 4, 4},
		"f": {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},
	}
	for name, flog := range followers {
		t.Run(name, func(t *testing.T) {
			lst := storageWith(t, HardState{Term: 7, Commit: 3}, leaderLog...)
			fst := storageWith(t, HardState{Term: 7, Commit: 3}, flog...)
			nw := &network{t: t, nodes: map[uint64]*Raft{}, stores: map[uint64]*MemoryStorage{1: lst, 2: fst}}
			nw.nodes[1] = newTestRaft(t, 1, []uint64{1, 2}, lst)
			nw.nodes[2] = newTestRaft(t, 2, []uint64{1, 2}, fst)
			l := nw.nodes[1]
			l.becomeCandidate() // term 8
			l.becomeLeader()
			nw.stabilize()
			want := append(slices.Clone(leaderLog), 8)
			if got := logTerms(t, nw.nodes[2]); !slices.Equal(got, want) {
				t.Fatalf("follower %s log %v, want the leader's %v", name, got, want)
			}
			if c := nw.nodes[2].Committed(); c != 11 {
				t.Fatalf("follower %s commit %d, want 11", name, c)
			}
			// Conflict hints skip whole terms: far fewer rejections than
			// differing entries.
			rejects := 0
			for _, m := range nw.delivered {
				if m.Type == MsgAppResp && m.Reject {
					rejects++
				}
			}
			if rejects > 3 {
				t.Fatalf("follower %s needed %d rejections; conflict hints should skip a term per round trip", name, rejects)
			}
		})
	}
}

// A follower never truncates a committed entry: an append that reaches
// below the commit index (a duplicate or a stale leader's) is answered with
// the commit index and changes nothing.
func TestReplication_NeverTruncateCommitted(t *testing.T) {
	st := storageWith(t, HardState{Term: 2, Commit: 2}, 1, 2)
	r := newTestRaft(t, 2, []uint64{1, 2}, st)
	err := r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := logTerms(t, r); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("log %v changed", got)
	}
	msgs := persistAll(t, r, st)
	if len(msgs) != 1 || msgs[0].Reject || msgs[0].Index != 2 {
		t.Fatalf("answered %+v, want success at the commit index 2", msgs)
	}
	// The log's own guard refuses such a truncation outright.
	if _, _, err := r.log.maybeAppend(1, 1, 0, []Entry{{Index: 2, Term: 3}}); !errors.Is(err, errTruncateCommitted) {
		t.Fatalf("maybeAppend over a committed entry: %v, want errTruncateCommitted", err)
	}
}

// Figure 8: a leader never commits an entry of an earlier term by counting
// replicas; it commits it only by committing one of its own term after it.
func TestCommit_Figure8_OnlyCurrentTermByCounting(t *testing.T) {
	// Leader of term 4 (node 1) holds [1, 2]; the entry of term 2 at index
	// 2 is not committed yet.
	lst := storageWith(t, HardState{Term: 3, Commit: 1}, 1, 2)
	l := newTestRaft(t, 1, []uint64{1, 2, 3}, lst)
	l.becomeCandidate()
	l.becomeLeader() // term 4, appends index 3
	persistAll(t, l, lst)
	// A majority (1 and 2) holds index 2 of term 2, but not index 3.
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 4, Index: 2}); err != nil {
		t.Fatal(err)
	}
	if l.Committed() != 1 {
		t.Fatalf("commit %d after a majority holds the term-2 entry; want 1 (Figure 8)", l.Committed())
	}
	// Once index 3 (term 4) is on a majority, 2 and 3 commit together.
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 4, Index: 3}); err != nil {
		t.Fatal(err)
	}
	if l.Committed() != 3 {
		t.Fatalf("commit %d after a majority holds the term-4 entry; want 3", l.Committed())
	}
}

// The leader's own entries count toward the quorum only once durable (its
// appends leave before its own save completes).
func TestCommit_LeaderCountsItselfWhenDurable(t *testing.T) {
	st := NewMemoryStorage()
	l := newTestRaft(t, 1, []uint64{1, 2, 3}, st)
	l.becomeCandidate()
	l.becomeLeader()
	rd := l.Ready()
	if len(rd.Entries) != 1 {
		t.Fatalf("Ready has %d entries, want the empty entry", len(rd.Entries))
	}
	var apps int
	for _, m := range rd.Messages {
		if m.Type == MsgApp && len(m.Entries) == 1 {
			apps++
		}
	}
	if apps != 2 {
		t.Fatalf("%d appends may leave before the save; want 2 (overlap with fsync)", apps)
	}
	l.Advance(rd)
	// One follower acks; the leader has not persisted: no quorum yet.
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 1}); err != nil {
		t.Fatal(err)
	}
	if l.Committed() != 0 {
		t.Fatalf("commit %d with the leader's entry not durable; want 0", l.Committed())
	}
	if err := st.Append(rd.Entries); err != nil {
		t.Fatal(err)
	}
	l.Persisted(1, 1)
	if l.Committed() != 1 {
		t.Fatalf("commit %d after the leader's save; want 1", l.Committed())
	}
}

// Flow control: in replicate state at most MaxInflight appends are
// outstanding; a full window pauses sending; responses free it; an
// out-of-date response changes nothing.
func TestFlowControl_Window(t *testing.T) {
	st := NewMemoryStorage()
	l := newTestRaft(t, 1, []uint64{1, 2}, st, func(c *Config) {
		c.MaxInflight = 3
		c.MaxSizePerMsg = 1 // one entry per append
	})
	l.becomeCandidate()
	l.becomeLeader()
	persistAll(t, l, st)
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 1}); err != nil {
		t.Fatal(err)
	}
	persistAll(t, l, st)
	pr := l.prs.Progress(2)
	if pr.State() != tracker.StateReplicate {
		t.Fatalf("follower in %s after a successful probe, want replicate", pr.State())
	}
	countApps := func() int {
		n := 0
		for _, m := range persistAll(t, l, st) {
			if m.Type == MsgApp && len(m.Entries) > 0 {
				n++
			}
		}
		return n
	}
	for i := range 5 {
		if _, _, err := l.Propose(Entry{Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := countApps(); got != 3 || !pr.InflightFull() {
		t.Fatalf("sent %d appends for 5 entries (window full %v); want 3, window full", got, pr.InflightFull())
	}
	if _, _, err := l.Propose(Entry{Data: []byte("more")}); err != nil {
		t.Fatal(err)
	}
	if got := countApps(); got != 0 {
		t.Fatalf("sent %d appends with the window full; want 0", got)
	}
	// Acknowledging index 3 frees two slots (the appends ending at 2 and 3).
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 3}); err != nil {
		t.Fatal(err)
	}
	if got := countApps(); got != 2 {
		t.Fatalf("sent %d appends after two slots were freed; want 2", got)
	}
	// An out-of-date acknowledgement changes nothing.
	before := *pr
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 2}); err != nil {
		t.Fatal(err)
	}
	if got := countApps(); got != 0 || pr.Match() != before.Match() || pr.Next() != before.Next() || pr.Inflight() != before.Inflight() {
		t.Fatalf("stale ack changed progress %v -> %v, sent %d", &before, pr, got)
	}
	// So does a stale rejection of an index already matched.
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 2, Reject: true, RejectHint: 1}); err != nil {
		t.Fatal(err)
	}
	if pr.State() != tracker.StateReplicate || pr.Match() != before.Match() {
		t.Fatalf("stale rejection moved the follower to %s match %d", pr.State(), pr.Match())
	}
}

// Batching: one append carries at most MaxSizePerMsg bytes of entries, but a
// single larger entry still travels.
func TestFlowControl_MaxSizePerMsg(t *testing.T) {
	st := NewMemoryStorage()
	size := uint64(100 + entryOverhead)
	l := newTestRaft(t, 1, []uint64{1, 2}, st, func(c *Config) { c.MaxSizePerMsg = 3 * size })
	l.becomeCandidate()
	l.becomeLeader()
	persistAll(t, l, st)
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 1}); err != nil {
		t.Fatal(err)
	}
	persistAll(t, l, st)
	ents := make([]Entry, 7)
	for i := range ents {
		ents[i].Data = make([]byte, 100)
	}
	ents = append(ents, Entry{Data: make([]byte, 10*size)})
	if _, _, err := l.Propose(ents...); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, m := range persistAll(t, l, st) {
		if m.Type == MsgApp {
			sizes = append(sizes, len(m.Entries))
		}
	}
	if !slices.Equal(sizes, []int{3, 3, 1, 1}) {
		t.Fatalf("appends carried %v entries, want [3 3 1 1]", sizes)
	}
}

// ReadIndex is refused until the new leader has committed an entry of its
// term; then it returns the commit index once a heartbeat quorum confirms.
func TestReadIndex_RefusedBeforeFirstCommit(t *testing.T) {
	nw := newNetwork(t, 3)
	l := nw.nodes[1]
	l.becomeCandidate()
	l.becomeLeader()
	if err := l.ReadIndex(42); !errors.Is(err, ErrReadNotReady) {
		t.Fatalf("ReadIndex before the first commit: %v, want ErrReadNotReady", err)
	}
	nw.stabilize()
	if err := l.ReadIndex(42); err != nil {
		t.Fatalf("ReadIndex after the first commit: %v", err)
	}
	rd := l.Ready()
	if len(rd.ReadStates) != 0 {
		t.Fatalf("read confirmed before any heartbeat answered: %+v", rd.ReadStates)
	}
	var got []ReadState
	nw.drop = func(m Message) bool {
		return false
	}
	// Deliver and capture read states.
	for range 10 {
		for id, r := range nw.nodes {
			if r.HasReady() {
				rd := r.Ready()
				if id == 1 {
					got = append(got, rd.ReadStates...)
				}
				st := nw.stores[id]
				st.SetHardState(r.hardState())
				_ = st.Append(rd.Entries)
				r.Advance(rd)
				for _, m := range append(rd.Messages, rd.MessagesAfterPersist...) {
					_ = nw.nodes[m.To].Step(m)
				}
			}
		}
	}
	if len(got) != 1 || got[0].Context != 42 || got[0].Index != l.Committed() {
		t.Fatalf("read states %+v, want one for ctx 42 at commit %d", got, l.Committed())
	}
	if err := nw.nodes[2].ReadIndex(7); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadIndex on a follower: %v, want ErrNotLeader", err)
	}
}

// ReadIndex on a leader cut off from its quorum never confirms.
func TestReadIndex_NeedsQuorum(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	nw.isolate(1)
	if err := nw.nodes[1].ReadIndex(9); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if rs := nw.nodes[1].readStates; len(rs) != 0 {
		t.Fatalf("isolated leader confirmed reads %+v", rs)
	}
}

// Leadership transfer: the target is caught up, then told to campaign; it
// wins even inside the old leader's lease, and proposals are refused while
// the transfer runs.
func TestTransfer_CatchUpThenTimeoutNow(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	// Node 3 misses some entries.
	nw.isolate(3)
	nw.propose(1, "a", "b")
	nw.heal()
	l := nw.nodes[1]
	if err := l.TransferLeader(3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Propose(Entry{Data: []byte("x")}); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("Propose during transfer: %v, want ErrProposalDropped", err)
	}
	// Heartbeats drive the catch-up of the probing follower.
	for i := 0; i < 5 && l.Role() == Leader; i++ {
		l.Tick()
		nw.stabilize()
	}
	if nw.nodes[3].Role() != Leader || l.Role() != Follower || l.Lead() != 3 {
		t.Fatalf("after transfer: node 3 is %s, node 1 is %s following %d", nw.nodes[3].Role(), l.Role(), l.Lead())
	}
	var sawTimeoutNow bool
	for _, m := range nw.delivered {
		if m.Type == MsgTimeoutNow {
			sawTimeoutNow = true
		}
	}
	if !sawTimeoutNow {
		t.Fatal("no MsgTimeoutNow was sent")
	}
	if err := nw.nodes[3].TransferLeader(9); err == nil {
		t.Fatal("transfer to a non-member accepted")
	}
}

// A transfer that cannot complete is abandoned after an election timeout.
func TestTransfer_AbortsAfterElectionTimeout(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	nw.isolate(3)
	l := nw.nodes[1]
	if err := l.TransferLeader(3); err != nil {
		t.Fatal(err)
	}
	for range l.electionTicks {
		l.Tick()
		nw.stabilize()
	}
	if l.Transferee() != None || l.Role() != Leader {
		t.Fatalf("after an election timeout: transferee %d, role %s", l.Transferee(), l.Role())
	}
	if _, _, err := l.Propose(Entry{}); err != nil {
		t.Fatalf("Propose after the transfer was abandoned: %v", err)
	}
}

// Check-quorum: a leader that hears from no quorum for an election timeout
// steps down; followers inside the lease ignore a disruptive candidate.
func TestCheckQuorum_LeaderStepsDownAndLease(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	f := nw.nodes[2]
	// Inside the lease a vote request with a higher term is ignored.
	if err := f.Step(Message{Type: MsgVote, From: 3, To: 2, Term: 9, Index: 99, LogTerm: 9}); err != nil {
		t.Fatal(err)
	}
	if f.Term() != 1 || f.vote != 1 {
		t.Fatalf("lease broken: follower moved to term %d, vote %d", f.Term(), f.vote)
	}
	nw.isolate(1)
	l := nw.nodes[1]
	for i := 0; i < 2*l.electionTicks && l.Role() == Leader; i++ {
		l.Tick()
		nw.stabilize()
	}
	if l.Role() != Follower {
		t.Fatalf("isolated leader is still %s after two election timeouts", l.Role())
	}
}

// Pre-vote: a node returning from a partition does not bump the cluster's
// term.
func TestPreVote_PartitionedNodeDoesNotDisrupt(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	nw.isolate(3)
	r3 := nw.nodes[3]
	for range 100 {
		r3.Tick()
		nw.stabilize()
	}
	if r3.Term() != 1 {
		t.Fatalf("isolated pre-voting node raised its term to %d", r3.Term())
	}
	nw.heal()
	for range 3 {
		nw.nodes[1].Tick()
		nw.stabilize()
	}
	if nw.nodes[1].Role() != Leader || nw.nodes[1].Term() != 1 || r3.Lead() != 1 {
		t.Fatalf("after healing: node 1 %s in term %d; node 3 follows %d", nw.nodes[1].Role(), nw.nodes[1].Term(), r3.Lead())
	}
}

// A leader whose disk makes no progress for an election timeout steps down
// (rather than keep a cluster quiet with heartbeats it cannot back).
func TestDiskStall_LeaderStepsDown(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	l := nw.nodes[1]
	if _, _, err := l.Propose(Entry{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// Hand the entry to a "disk" that never completes; keep delivering
	// messages as usual.
	rd := l.Ready()
	l.Advance(rd)
	for i := 0; i < 3*l.electionTicks && l.Role() == Leader; i++ {
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
	}
	if l.Role() == Leader {
		t.Fatal("a leader with a stuck disk kept leading")
	}
}

// Snapshot: a follower whose next entry the leader has compacted gets a
// snapshot, installs it, and resumes replication from the log.
func TestSnapshot_LaggingFollowerCatchesUp(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	nw.isolate(3)
	nw.propose(1, "a", "b", "c", "d")
	l := nw.nodes[1]
	if err := nw.stores[1].Compact(4, l.Conf()); err != nil {
		t.Fatal(err)
	}
	nw.heal()
	var snaps []Message
	nw.drop = func(m Message) bool {
		if m.Type == MsgSnap {
			snaps = append(snaps, m)
			l.ReportSnapshot(m.To, true)
		}
		return false
	}
	nw.propose(1, "e")
	if len(snaps) != 1 || snaps[0].Snapshot.Meta.Index != 4 || snaps[0].To != 3 {
		t.Fatalf("snapshots sent: %+v, want one at index 4 to node 3", snaps)
	}
	f := nw.nodes[3]
	if f.LastIndex() != l.LastIndex() || f.Committed() != l.Committed() {
		t.Fatalf("follower at last %d commit %d; leader at %d / %d", f.LastIndex(), f.Committed(), l.LastIndex(), l.Committed())
	}
	if first, _ := nw.stores[3].FirstIndex(); first != 5 {
		t.Fatalf("follower storage first index %d, want 5 after the snapshot", first)
	}
	if pr := l.prs.Progress(3); pr.State() != tracker.StateReplicate || pr.Match() != l.LastIndex() {
		t.Fatalf("follower progress %s match %d, want replicate at %d", pr.State(), pr.Match(), l.LastIndex())
	}
	// A stale copy of the same snapshot changes nothing.
	if err := f.Step(snaps[0]); err != nil {
		t.Fatal(err)
	}
	if f.Committed() != l.Committed() || f.LastIndex() != l.LastIndex() {
		t.Fatal("a duplicate snapshot rewound the follower")
	}
}

// A crash loses what was not durable; the restarted node resumes from
// storage with its term, vote and log.
func TestRestart_ResumesFromStorage(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	nw.propose(1, "a", "b")
	st := nw.stores[2]
	r := newTestRaft(t, 2, []uint64{1, 2, 3}, st)
	if r.Term() != 1 || r.Committed() < 2 || r.LastIndex() != 3 {
		t.Fatalf("restarted node: term %d commit %d last %d", r.Term(), r.Committed(), r.LastIndex())
	}
	rd := r.Ready()
	if len(rd.CommittedEntries) == 0 || rd.CommittedEntries[0].Index != 1 {
		t.Fatalf("restarted node re-applies %+v, want from index 1", rd.CommittedEntries)
	}
	// With Applied set, nothing already applied is handed out again.
	r2 := newTestRaft(t, 2, []uint64{1, 2, 3}, st, func(c *Config) { c.Applied = r.Committed() })
	if rd := r2.Ready(); len(rd.CommittedEntries) != 0 {
		t.Fatalf("re-applied %d entries despite Applied", len(rd.CommittedEntries))
	}
}

// Proposals anywhere but the leader are refused with ErrNotLeader, and the
// follower knows where the leader is.
func TestPropose_NotLeader(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	_, _, err := nw.nodes[2].Propose(Entry{Data: []byte("x")})
	if !errors.Is(err, ErrNotLeader) || nw.nodes[2].Lead() != 1 {
		t.Fatalf("Propose on follower: %v (lead %d), want ErrNotLeader and lead 1", err, nw.nodes[2].Lead())
	}
	if _, _, err := nw.nodes[1].Propose(Entry{Type: EntryConfChange}); err == nil {
		t.Fatal("a ConfChange entry was accepted by Propose")
	}
}

// Unreachable followers fall back to probing.
func TestReportUnreachable(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	l := nw.nodes[1]
	if l.prs.Progress(2).State() != tracker.StateReplicate {
		t.Fatalf("follower 2 in %s", l.prs.Progress(2).State())
	}
	l.ReportUnreachable(2)
	if l.prs.Progress(2).State() != tracker.StateProbe {
		t.Fatalf("after ReportUnreachable follower 2 is in %s, want probe", l.prs.Progress(2).State())
	}
}

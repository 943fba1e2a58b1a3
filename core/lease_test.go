package core

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const leaseET, leaseHB, leaseDrift = 10, 2, 2

func leaseCfg(c *Config) {
	c.ElectionTicks, c.HeartbeatTicks = leaseET, leaseHB
	c.ReadOnlyOption, c.LeaseDriftTicks = ReadOnlyLeaseBased, leaseDrift
}

// leaseLeader elects node 1 of a 3-node lease cluster and commits its
// first entry, so it may serve reads.
func leaseLeader(t *testing.T) (*network, *Raft) {
	t.Helper()
	nw := newNetwork(t, 3, leaseCfg)
	for range leaseET { // out of the start lease (see TestLease_StartedNodeKeepsThePromise)
		nw.tickAll()
	}
	nw.campaign(1)
	l := nw.nodes[1]
	if l.Role() != Leader {
		t.Fatalf("node 1 is %s", l.Role())
	}
	return nw, l
}

// readAtOnce asks for a read point and reports whether it was answered in
// the same call, without any message (the lease), and what was sent.
func readAtOnce(t *testing.T, r *Raft, ctx uint64) (bool, []Message) {
	t.Helper()
	before := len(r.readStates)
	msgs := len(r.msgs)
	if err := r.ReadIndex(ctx); err != nil {
		t.Fatalf("ReadIndex: %v", err)
	}
	return len(r.readStates) > before, r.msgs[msgs:]
}

// While the lease holds a read point needs no round trip.
func TestLease_ReadWithoutRoundTrip(t *testing.T) {
	nw, l := leaseLeader(t)
	nw.tickAll() // a heartbeat round, answered
	nw.tickAll()
	ok, sent := readAtOnce(t, l, 7)
	if !ok || len(sent) != 0 {
		t.Fatalf("lease read: answered at once %v, sent %d messages; want at once, none", ok, len(sent))
	}
	rd := l.Ready()
	if len(rd.ReadStates) != 1 || rd.ReadStates[0] != (ReadState{Index: l.Committed(), Context: 7}) {
		t.Fatalf("read states %+v, want index %d ctx 7", rd.ReadStates, l.Committed())
	}
	l.Advance(rd)
	// ReadOnlySafe never answers at once in a cluster.
	nw2 := newNetwork(t, 3)
	nw2.campaign(1)
	if ok, sent := readAtOnce(t, nw2.nodes[1], 7); ok || len(sent) != 2 {
		t.Fatalf("safe read: answered at once %v, sent %d; want a heartbeat round to both", ok, len(sent))
	}
}

// The lease lasts exactly ElectionTicks-1-LeaseDriftTicks ticks from the
// sending of the last heartbeat round a quorum answered; after that a read
// falls back to a heartbeat round.
func TestLease_LastsLeaseTicksFromTheAnsweredRound(t *testing.T) {
	lease := leaseET - 1 - leaseDrift
	for k := 0; k <= lease+2; k++ {
		t.Run(fmt.Sprintf("ticks=%d", k), func(t *testing.T) {
			nw, l := leaseLeader(t)
			// Tick only the leader until its heartbeat goes out, and deliver
			// that round's answers; then cut it off.
			for l.heartbeatElapsed != leaseHB-1 {
				l.Tick()
				nw.stabilize()
			}
			l.Tick() // sends the round at tick s
			sent := l.ticks
			nw.stabilize()
			if acked := l.prs.QuorumAcked(l.id, l.conf.Voters, nil); acked != l.hbSeq {
				t.Fatalf("round %d not answered (acked %d)", l.hbSeq, acked)
			}
			nw.isolate(1)
			for l.ticks < sent+uint64(k) {
				l.Tick()
				nw.stabilize()
			}
			if l.Role() != Leader {
				t.Fatalf("stepped down after %d ticks", k)
			}
			ok, _ := readAtOnce(t, l, 9)
			if want := k < lease; ok != want {
				t.Fatalf("%d ticks after the answered round: lease read %v, want %v (lease %d ticks)", k, ok, want, lease)
			}
		})
	}
}

// The followers' side of the promise: having answered a leader, a follower
// ignores any vote request for a new term (and does not campaign) for an
// election timeout of its own ticks, even if a message of a higher term
// that is not a vote (which forgets the leader) arrives in between.
func TestLease_FollowerRefusesVotesForAnElectionTimeout(t *testing.T) {
	nw, _ := leaseLeader(t)
	f := nw.nodes[2]
	nw.isolate(1)
	nw.drop = func(Message) bool { return true } // f hears nobody now
	heard := f.leadHeardAt
	// A late rejection of a pre-vote at a higher term moves f's term on
	// and forgets the leader; it must not end the promise.
	if err := f.Step(Message{Type: MsgPreVoteResp, From: 3, To: 2, Term: f.Term() + 3, Reject: true}); err != nil {
		t.Fatal(err)
	}
	if f.Lead() != None {
		t.Fatalf("setup: lead %d", f.Lead())
	}
	term := f.Term()
	for ; f.ticks-heard < leaseET; f.Tick() {
		vote := Message{Type: MsgVote, From: 3, To: 2, Term: term + 1, Index: 100, LogTerm: 100}
		if err := f.Step(vote); err != nil {
			t.Fatal(err)
		}
		if f.vote == 3 || f.Term() != term || f.Role() != Follower {
			t.Fatalf("%d ticks after hearing the leader: voted %d, term %d, %s", f.ticks-heard, f.vote, f.Term(), f.Role())
		}
		f.msgs, f.msgsAfter = nil, nil
	}
	if err := f.Step(Message{Type: MsgVote, From: 3, To: 2, Term: term + 1, Index: 100, LogTerm: 100}); err != nil {
		t.Fatal(err)
	}
	if f.vote != 3 {
		t.Fatalf("after an election timeout the follower still refuses (vote %d)", f.vote)
	}
}

// A node that starts cannot know whose heartbeat it answered before it
// stopped: in lease mode it keeps the promise for its first election
// timeout. In ReadOnlySafe it votes at once, as before.
func TestLease_StartedNodeKeepsThePromise(t *testing.T) {
	vote := Message{Type: MsgVote, From: 3, To: 2, Term: 5, Index: 100, LogTerm: 100}
	r := newTestRaft(t, 2, []uint64{1, 2, 3}, nil, leaseCfg)
	for i := 0; i < leaseET; i++ {
		if err := r.Step(vote); err != nil {
			t.Fatal(err)
		}
		if r.vote != None {
			t.Fatalf("voted %d ticks after starting", i)
		}
		r.Tick()
	}
	if err := r.Step(vote); err != nil {
		t.Fatal(err)
	}
	if r.vote != 3 {
		t.Fatalf("after its first election timeout the node still refuses (vote %d)", r.vote)
	}
	safe := newTestRaft(t, 2, []uint64{1, 2, 3}, nil)
	if err := safe.Step(vote); err != nil {
		t.Fatal(err)
	}
	if safe.vote != 3 {
		t.Fatalf("ReadOnlySafe node refused a vote at start (vote %d)", safe.vote)
	}
}

// A leadership transfer lets the transferee's election through the
// followers' leases, so the leader gives up its own for the rest of its
// term.
func TestLease_TransferRevokesTheLease(t *testing.T) {
	nw, l := leaseLeader(t)
	nw.tickAll()
	nw.drop = func(m Message) bool { return m.Type == MsgTimeoutNow } // keep 1 leading
	if err := l.TransferLeader(2); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if l.Role() != Leader {
		t.Fatalf("setup: node 1 is %s", l.Role())
	}
	for range 2 * leaseET {
		nw.tickAll() // the transfer is abandoned; the lease stays revoked
	}
	if ok, sent := readAtOnce(t, l, 11); ok || len(sent) == 0 {
		t.Fatalf("after a transfer: read answered at once %v, %d messages; want a heartbeat round", ok, len(sent))
	}
	nw.stabilize()
	if len(l.reads) != 0 || l.Role() != Leader {
		t.Fatalf("the heartbeat round did not confirm the read: %d pending, node 1 %s", len(l.reads), l.Role())
	}
}

// A won pre-vote does not bypass the leases: only a transfer's election
// carries the transfer context.
func TestLease_PreVoteWinIsNoTransfer(t *testing.T) {
	nw := newNetwork(t, 3, leaseCfg)
	var votes []Message
	nw.drop = func(m Message) bool {
		if m.Type == MsgVote {
			votes = append(votes, m)
		}
		return false
	}
	for range leaseET {
		nw.tickAll()
	}
	nw.campaign(1)
	if len(votes) == 0 {
		t.Fatal("no vote requests")
	}
	for _, m := range votes {
		if m.Context == contextTransfer {
			t.Fatalf("vote request after a won pre-vote carries the transfer context: %+v", m)
		}
	}
}

// A read whose heartbeat round is lost is confirmed by a later round (the
// periodic heartbeat), since any round sent after the read will do.
func TestReadIndex_ConfirmedByALaterRound(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = 10, 3 })
	nw.campaign(1)
	l := nw.nodes[1]
	nw.drop = func(m Message) bool { return m.Type == MsgHeartbeat }
	if err := l.ReadIndex(5); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if len(l.reads) != 1 {
		t.Fatal("confirmed without an answered round")
	}
	nw.heal()
	var confirmed []ReadState
	for range 3 {
		l.Tick()
		rd := l.Ready()
		confirmed = append(confirmed, rd.ReadStates...)
		for _, m := range rd.Messages {
			if err := nw.nodes[m.To].Step(m); err != nil {
				t.Fatal(err)
			}
		}
		l.Advance(rd)
		nw.stabilize()
	}
	if len(l.reads) != 0 || l.Role() != Leader {
		t.Fatalf("read still pending after a periodic round (%+v), node 1 %s", confirmed, l.Role())
	}
	// An answer naming a round the leader never sent confirms nothing.
	if err := l.ReadIndex(6); err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint64{2, 3} {
		if err := l.Step(Message{Type: MsgHeartbeatResp, From: from, To: 1, Term: l.Term(), Context: l.hbSeq + 100}); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.reads) != 1 || l.prs.Progress(2).AckedHeartbeat() > l.hbSeq {
		t.Fatalf("a forged round confirmed a read: %d pending", len(l.reads))
	}
}

func TestLease_ConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { leaseCfg(c); c.DisableCheckQuorum = true }, "requires check-quorum"},
		{func(c *Config) { leaseCfg(c); c.LeaseDriftTicks = -1 }, "LeaseDriftTicks is -1"},
		{func(c *Config) { leaseCfg(c); c.LeaseDriftTicks = 7 }, "must be longer than HeartbeatTicks 2"},
		{func(c *Config) { c.ReadOnlyOption = 7 }, "ReadOnlyOption is 7"},
	} {
		cfg := testConfig(1, []uint64{1, 2, 3}, NewMemoryStorage())
		tc.mod(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	cfg := testConfig(1, []uint64{1, 2, 3}, NewMemoryStorage())
	leaseCfg(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid lease config: %v", err)
	}
	for _, o := range []ReadOnlyOption{ReadOnlySafe, ReadOnlyLeaseBased, 9} {
		if o.String() == "" {
			t.Errorf("option %d has no name", o)
		}
	}
}

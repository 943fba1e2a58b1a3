package tracker

import (
	"slices"
	"testing"
)

// pr builds a progress in a given state for the table tests.
func pr(state State, match, next uint64, window int) *Progress {
	p := &Progress{match: match, next: next, state: state, inflights: newInflights(window, 0)}
	return p
}

type want struct {
	state           State
	match, next     uint64
	probeSent       bool
	pendingSnapshot uint64
	inflight        int
}

func (w want) check(t *testing.T, name string, p *Progress) {
	t.Helper()
	got := want{p.state, p.match, p.next, p.probeSent, p.pendingSnapshot, p.inflights.count}
	if got != w {
		t.Errorf("%s: got %+v, want %+v", name, got, w)
	}
}

func TestProgress_Transitions(t *testing.T) {
	for _, tc := range []struct {
		name string
		from *Progress
		do   func(p *Progress)
		want want
	}{
		{"probe→replicate resets next to match+1", pr(StateProbe, 5, 9, 4),
			func(p *Progress) { p.BecomeReplicate() }, want{StateReplicate, 5, 6, false, 0, 0}},
		{"replicate→probe drops the window", func() *Progress {
			p := pr(StateReplicate, 5, 9, 4)
			p.inflights.add(7, 1)
			p.inflights.add(8, 1)
			return p
		}(), func(p *Progress) { p.BecomeProbe() }, want{StateProbe, 5, 6, false, 0, 0}},
		{"snapshot→probe resumes after a landed snapshot", func() *Progress {
			p := pr(StateReplicate, 5, 6, 4)
			p.BecomeSnapshot(20)
			return p
		}(), func(p *Progress) { p.BecomeProbe() }, want{StateProbe, 5, 21, false, 0, 0}},
		{"snapshot→probe resumes after match when beyond the snapshot", func() *Progress {
			p := pr(StateSnapshot, 30, 31, 4)
			p.pendingSnapshot = 20
			return p
		}(), func(p *Progress) { p.BecomeProbe() }, want{StateProbe, 30, 31, false, 0, 0}},
		{"become snapshot", pr(StateProbe, 5, 6, 4),
			func(p *Progress) { p.probeSent = true; p.BecomeSnapshot(40) }, want{StateSnapshot, 5, 6, false, 40, 0}},
		{"maybeUpdate moves match and next", pr(StateReplicate, 5, 9, 4),
			func(p *Progress) { p.MaybeUpdate(7) }, want{StateReplicate, 7, 9, false, 0, 0}},
		{"maybeUpdate past next", pr(StateProbe, 5, 6, 4),
			func(p *Progress) { p.probeSent = true; p.MaybeUpdate(12) }, want{StateProbe, 12, 13, false, 0, 0}},
		{"stale maybeUpdate changes nothing", pr(StateProbe, 5, 6, 4),
			func(p *Progress) { p.probeSent = true; p.MaybeUpdate(5) }, want{StateProbe, 5, 6, true, 0, 0}},
		{"ack of a probe starts replication", pr(StateProbe, 5, 6, 4),
			func(p *Progress) { p.Acknowledged(8) }, want{StateReplicate, 8, 9, false, 0, 0}},
		{"ack in replicate frees the window up to it", func() *Progress {
			p := pr(StateReplicate, 5, 6, 4)
			p.SentAppend(7, 2, 10)
			p.SentAppend(9, 2, 10)
			p.SentAppend(11, 2, 10)
			return p
		}(), func(p *Progress) { p.Acknowledged(9) }, want{StateReplicate, 9, 12, false, 0, 1}},
		{"ack beyond a pending snapshot ends it", func() *Progress {
			p := pr(StateSnapshot, 5, 6, 4)
			p.pendingSnapshot = 20
			return p
		}(), func(p *Progress) { p.Acknowledged(20) }, want{StateReplicate, 20, 21, false, 0, 0}},
		{"ack below a pending snapshot keeps waiting", func() *Progress {
			p := pr(StateSnapshot, 5, 6, 4)
			p.pendingSnapshot = 20
			return p
		}(), func(p *Progress) { p.Acknowledged(10) }, want{StateSnapshot, 10, 11, false, 20, 0}},
		{"stale ack changes nothing", func() *Progress {
			p := pr(StateReplicate, 5, 6, 4)
			p.SentAppend(7, 2, 10)
			return p
		}(), func(p *Progress) { p.Acknowledged(4) }, want{StateReplicate, 5, 8, false, 0, 1}},
		{"rejection clamps below the rejected index", pr(StateProbe, 2, 11, 4),
			func(p *Progress) { p.Rejected(10, 50) }, want{StateProbe, 2, 10, false, 0, 0}},
		{"rejection clamps above match", pr(StateProbe, 4, 11, 4),
			func(p *Progress) { p.Rejected(10, 1) }, want{StateProbe, 4, 5, false, 0, 0}},
		{"rejection takes the hint in between", pr(StateReplicate, 2, 11, 4),
			func(p *Progress) { p.Rejected(10, 6) }, want{StateProbe, 2, 6, false, 0, 0}},
		{"probe sent pauses", pr(StateProbe, 2, 3, 4),
			func(p *Progress) { p.SentAppend(0, 0, 10) }, want{StateProbe, 2, 3, true, 0, 0}},
		{"probe with entries pauses without moving next", pr(StateProbe, 2, 3, 4),
			func(p *Progress) { p.SentAppend(9, 7, 10) }, want{StateProbe, 2, 3, true, 0, 0}},
		{"empty append in replicate takes no slot", pr(StateReplicate, 2, 3, 4),
			func(p *Progress) { p.SentAppend(0, 0, 10) }, want{StateReplicate, 2, 3, false, 0, 0}},
		{"append in snapshot state changes nothing", func() *Progress {
			p := pr(StateSnapshot, 2, 3, 4)
			p.pendingSnapshot = 9
			return p
		}(), func(p *Progress) { p.SentAppend(5, 2, 10) }, want{StateSnapshot, 2, 3, false, 9, 0}},
		{"heartbeat answer lets a probe go again", pr(StateProbe, 2, 3, 4),
			func(p *Progress) { p.probeSent = true; p.HeartbeatAnswered() }, want{StateProbe, 2, 3, false, 0, 0}},
		{"heartbeat answer frees the oldest slot of a full window", func() *Progress {
			p := pr(StateReplicate, 2, 3, 2)
			p.SentAppend(4, 2, 10)
			p.SentAppend(6, 2, 10)
			return p
		}(), func(p *Progress) { p.HeartbeatAnswered() }, want{StateReplicate, 2, 7, false, 0, 1}},
		{"heartbeat answer keeps a window with room", func() *Progress {
			p := pr(StateReplicate, 2, 3, 2)
			p.SentAppend(4, 2, 10)
			return p
		}(), func(p *Progress) { p.HeartbeatAnswered() }, want{StateReplicate, 2, 5, false, 0, 1}},
		{"snapshot reported ok probes after it, paused", func() *Progress {
			p := pr(StateSnapshot, 2, 3, 4)
			p.pendingSnapshot = 9
			return p
		}(), func(p *Progress) { p.SnapshotReported(true) }, want{StateProbe, 2, 10, true, 0, 0}},
		{"snapshot reported failed probes after match, paused", func() *Progress {
			p := pr(StateSnapshot, 2, 3, 4)
			p.pendingSnapshot = 9
			return p
		}(), func(p *Progress) { p.SnapshotReported(false) }, want{StateProbe, 2, 3, true, 0, 0}},
		{"snapshot report without a snapshot changes nothing", pr(StateReplicate, 2, 5, 4),
			func(p *Progress) { p.SnapshotReported(true) }, want{StateReplicate, 2, 5, false, 0, 0}},
		{"unreachable replicate falls back to probe", pr(StateReplicate, 2, 5, 4),
			func(p *Progress) { p.Unreachable() }, want{StateProbe, 2, 3, false, 0, 0}},
		{"unreachable probe stays", pr(StateProbe, 2, 5, 4),
			func(p *Progress) { p.Unreachable() }, want{StateProbe, 2, 5, false, 0, 0}},
	} {
		p := tc.from
		tc.do(p)
		tc.want.check(t, tc.name, p)
	}
}

func TestProgress_AcceptsRejection(t *testing.T) {
	snap := pr(StateSnapshot, 2, 3, 4)
	snap.pendingSnapshot = 9
	for _, tc := range []struct {
		p     *Progress
		index uint64
		want  bool
	}{
		{pr(StateReplicate, 5, 9, 4), 5, false}, // already matched: superseded
		{pr(StateReplicate, 5, 9, 4), 4, false},
		{pr(StateReplicate, 5, 9, 4), 6, true},
		{pr(StateReplicate, 5, 9, 4), 8, true},
		{pr(StateProbe, 5, 9, 4), 8, true}, // the outstanding probe at next-1
		{pr(StateProbe, 5, 9, 4), 7, false},
		{pr(StateProbe, 5, 9, 4), 9, false},
		{snap, 2, false},
		{snap, 8, false},
	} {
		if got := tc.p.AcceptsRejection(tc.index); got != tc.want {
			t.Errorf("%v: AcceptsRejection(%d) = %v, want %v", tc.p, tc.index, got, tc.want)
		}
	}
}

func TestProgress_Paused(t *testing.T) {
	full := pr(StateReplicate, 1, 2, 1)
	full.SentAppend(3, 2, 10)
	probing := pr(StateProbe, 1, 2, 1)
	probing.SentAppend(0, 0, 10)
	for _, tc := range []struct {
		name string
		p    *Progress
		want bool
	}{
		{"fresh probe", pr(StateProbe, 1, 2, 1), false},
		{"probe sent", probing, true},
		{"replicate with room", pr(StateReplicate, 1, 2, 1), false},
		{"replicate full", full, true},
		{"snapshot", pr(StateSnapshot, 1, 2, 1), true},
	} {
		if got := tc.p.IsPaused(); got != tc.want {
			t.Errorf("%s: paused %v, want %v", tc.name, got, tc.want)
		}
	}
	if !full.InflightFull() || full.Inflight() != 1 {
		t.Errorf("full window reports full=%v inflight=%d", full.InflightFull(), full.Inflight())
	}
	for _, s := range []State{StateProbe, StateReplicate, StateSnapshot, State(7)} {
		if s.String() == "" {
			t.Errorf("state %d has no name", s)
		}
	}
	if full.String() == "" || full.PendingSnapshot() != 0 || full.IsLearner() {
		t.Errorf("accessors of %v", full)
	}
}

func TestInflights_Ring(t *testing.T) {
	in := newInflights(3, 0)
	for _, i := range []uint64{10, 20, 30} {
		in.add(i, 1)
	}
	if !in.full() {
		t.Fatal("3 of 3 not full")
	}
	in.freeLE(15)
	if in.count != 2 || in.buf[in.start].index != 20 {
		t.Fatalf("after freeLE(15): count %d head %d", in.count, in.buf[in.start].index)
	}
	in.add(40, 1) // wraps around the ring
	in.freeFirst()
	if in.count != 2 || in.buf[in.start].index != 30 {
		t.Fatalf("after wrap and freeFirst: count %d head %d", in.count, in.buf[in.start].index)
	}
	in.freeLE(100)
	in.freeFirst() // on empty: nothing
	if in.count != 0 {
		t.Fatalf("count %d after freeing everything", in.count)
	}
}

func TestTracker_MembersAndCommit(t *testing.T) {
	tr := New(4, 0)
	tr.SetMembers([]uint64{3, 1, 2}, nil, []uint64{4, 2}, 11, 0)
	if got := tr.IDs(); !slices.Equal(got, []uint64{1, 2, 3, 4}) || tr.Len() != 4 {
		t.Fatalf("members %v (len %d)", got, tr.Len())
	}
	if tr.Progress(2).IsLearner() || !tr.Progress(4).IsLearner() {
		t.Fatal("a node listed as voter and learner must be a voter; 4 is a learner")
	}
	if p := tr.Progress(1); p.Next() != 11 || p.Match() != 0 || p.State() != StateProbe {
		t.Fatalf("newcomer progress %v", p)
	}
	tr.Progress(1).MaybeUpdate(10)
	tr.Progress(2).MaybeUpdate(8)
	tr.Progress(4).MaybeUpdate(10) // learners do not count
	if c := tr.Committed([]uint64{1, 2, 3}, nil); c != 8 {
		t.Fatalf("committed %d, want 8", c)
	}
	if c := tr.Committed([]uint64{1, 2, 3}, []uint64{3, 4, 5}); c != 0 {
		t.Fatalf("joint committed %d, want 0 (outgoing half has only 4)", c)
	}
	if m := tr.Match(99); m != 0 {
		t.Fatalf("non-member match %d", m)
	}
	// Promote 4, remove 3: 1, 2 and 4 keep their progress.
	tr.SetMembers([]uint64{1, 2, 4}, nil, nil, 50, 0)
	if tr.Progress(3) != nil || tr.Progress(4).IsLearner() || tr.Progress(4).Match() != 10 || tr.Progress(1).Match() != 10 {
		t.Fatalf("after the change: %v", tr.IDs())
	}
	if c := tr.Committed([]uint64{1, 2, 4}, nil); c != 10 {
		t.Fatalf("committed %d after promotion, want 10", c)
	}
	// A new term: everyone probes from next; self keeps its durable log.
	tr.Progress(2).SentAppend(0, 0, 10)
	tr.Reset(60, 1, 55, 0)
	for _, id := range tr.IDs() {
		p := tr.Progress(id)
		wantMatch := uint64(0)
		if id == 1 {
			wantMatch = 55
		}
		if p.Match() != wantMatch || p.Next() != 60 || p.State() != StateProbe || p.IsPaused() {
			t.Errorf("after Reset, %d: %v", id, p)
		}
	}
}

func TestTracker_QuorumHeard(t *testing.T) {
	tr := New(1, 0)
	voters := []uint64{1, 2, 3}
	tr.SetMembers(voters, nil, []uint64{4}, 1, 5)
	// Newcomers count as heard when they joined.
	if got := tr.QuorumHeard(1, voters, nil, 20); got != 5 {
		t.Fatalf("fresh members: quorum heard at %d, want 5 (when they joined)", got)
	}
	tr.Progress(4).Heard(30) // a learner does not count
	if got := tr.QuorumHeard(1, voters, nil, 30); got != 5 {
		t.Fatalf("a learner moved the quorum to %d", got)
	}
	tr.Progress(2).Heard(25)
	tr.Progress(2).Heard(22) // late: never moves back
	if got := tr.Progress(2).LastHeard(); got != 25 {
		t.Fatalf("last heard %d, want 25", got)
	}
	if got := tr.QuorumHeard(1, voters, nil, 30); got != 25 {
		t.Fatalf("self and 2: quorum heard at %d, want 25", got)
	}
	tr.Progress(3).Heard(28)
	if got := tr.QuorumHeard(1, voters, nil, 30); got != 28 {
		t.Fatalf("the quorum's freshest pair: %d, want 28", got)
	}
	// A single voter is its own quorum, always heard now.
	if got := tr.QuorumHeard(1, []uint64{1}, nil, 99); got != 99 {
		t.Fatalf("single voter: %d", got)
	}
	// Joint: the outgoing half {3, 5, 6} needs two of its own members.
	out := []uint64{3, 5, 6}
	tr.SetMembers(voters, out, nil, 1, 10)
	tr.Progress(5).Heard(12)
	tr.Progress(6).Heard(40)
	if got := tr.QuorumHeard(1, voters, out, 50); got != 28 {
		t.Fatalf("joint: %d, want min(28 incoming, 28 outgoing)", got)
	}
	tr.Progress(3).Heard(45)
	if got := tr.QuorumHeard(1, voters, out, 50); got != 40 {
		t.Fatalf("joint: %d, want min(45 incoming, 40 outgoing)", got)
	}
	// Non-members (say, a voter not yet tracked) count as never heard.
	if got := tr.QuorumHeard(1, []uint64{1, 8, 9}, nil, 50); got != 0 {
		t.Fatalf("untracked voters: %d", got)
	}
	tr.Reset(1, 1, 0, 60)
	if got := tr.QuorumHeard(1, voters, out, 70); got != 60 {
		t.Fatalf("after Reset at 60: %d", got)
	}
}

// The commit computation runs on every append response.
func TestTracker_CommittedAllocationFree(t *testing.T) {
	for n := 1; n <= 7; n++ {
		voters := make([]uint64, n)
		for i := range voters {
			voters[i] = uint64(i + 1)
		}
		tr := New(8, 0)
		tr.SetMembers(voters, nil, nil, 1, 0)
		for i, id := range voters {
			tr.Progress(id).MaybeUpdate(uint64(i + 3))
		}
		var sink uint64
		if a := testing.AllocsPerRun(100, func() { sink += tr.Committed(voters, voters[:1]) }); a != 0 {
			t.Errorf("%d voters: %v allocations per Committed", n, a)
		}
		_ = sink
	}
}

func TestTracker_QuorumAcked(t *testing.T) {
	tr := New(1, 0)
	voters := []uint64{1, 2, 3, 4, 5}
	tr.SetMembers(voters, nil, []uint64{6}, 1, 0)
	if got := tr.QuorumAcked(1, voters, nil); got != 0 {
		t.Fatalf("nothing answered: %d", got)
	}
	tr.Progress(6).HeartbeatAcked(9) // a learner does not count
	tr.Progress(2).HeartbeatAcked(7)
	tr.Progress(3).HeartbeatAcked(4)
	tr.Progress(3).HeartbeatAcked(2) // late: never moves back
	if got := tr.Progress(3).AckedHeartbeat(); got != 4 {
		t.Fatalf("acked %d, want 4", got)
	}
	if got := tr.QuorumAcked(1, voters, nil); got != 4 {
		t.Fatalf("self, 2 (7) and 3 (4) answered: quorum acked %d, want 4", got)
	}
	tr.Progress(4).HeartbeatAcked(8)
	if got := tr.QuorumAcked(1, voters, nil); got != 7 {
		t.Fatalf("quorum acked %d, want 7", got)
	}
	if got := tr.QuorumAcked(1, []uint64{1}, nil); got != ^uint64(0) {
		t.Fatalf("a single voter has answered everything: %d", got)
	}
	// Joint: the outgoing half {1, 5, 7} has only self.
	if got := tr.QuorumAcked(1, voters, []uint64{1, 5, 7}); got != 0 {
		t.Fatalf("joint with an unanswered outgoing half: %d", got)
	}
	tr.Reset(1, 1, 0, 0)
	if got := tr.QuorumAcked(1, voters, nil); got != 0 {
		t.Fatalf("a new term forgets the answers: %d", got)
	}
}

// The window is full at MaxInflight appends or MaxInflightBytes bytes,
// whichever comes first, and an append into an empty window always goes.
func TestInflights_Bytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		count    int
		maxBytes uint64
		sizes    []uint64 // appends added, at indexes 1, 2, ...
		full     bool
		bytes    uint64
	}{
		{"empty", 4, 100, nil, false, 0},
		{"below both", 4, 100, []uint64{30, 30}, false, 60},
		{"bytes reached", 4, 100, []uint64{60, 40}, true, 100},
		{"bytes passed by one large append", 4, 100, []uint64{10, 500}, true, 510},
		{"count reached first", 2, 1000, []uint64{1, 1}, true, 2},
		{"no byte limit", 3, 0, []uint64{1 << 40, 1 << 40}, false, 2 << 40},
	} {
		in := newInflights(tc.count, tc.maxBytes)
		for i, sz := range tc.sizes {
			in.add(uint64(i+1), sz)
		}
		if in.full() != tc.full || in.bytes != tc.bytes {
			t.Errorf("%s: full %v bytes %d, want %v %d", tc.name, in.full(), in.bytes, tc.full, tc.bytes)
		}
	}
	in := newInflights(8, 100)
	if in.full() {
		t.Fatal("an empty window is full")
	}
	in.add(1, 70)
	in.add(2, 70)
	if !in.full() {
		t.Fatal("140 of 100 bytes not full")
	}
	in.freeLE(1)
	if in.full() || in.bytes != 70 {
		t.Fatalf("after freeing 70 bytes: full %v bytes %d", in.full(), in.bytes)
	}
	in.freeFirst()
	in.reset()
	if in.bytes != 0 || in.count != 0 {
		t.Fatalf("after reset: %d bytes, %d appends", in.bytes, in.count)
	}
	// Through Progress: a byte-full window pauses replication.
	tr := New(256, 100)
	tr.SetMembers([]uint64{1, 2}, nil, nil, 1, 0)
	p := tr.Progress(2)
	p.BecomeReplicate()
	p.SentAppend(3, 3, 120)
	if !p.IsPaused() || p.InflightBytes() != 120 || p.Inflight() != 1 {
		t.Fatalf("after 120 bytes of 100: paused %v, %d bytes in %d appends", p.IsPaused(), p.InflightBytes(), p.Inflight())
	}
	p.Acknowledged(3)
	if p.IsPaused() || p.InflightBytes() != 0 {
		t.Fatalf("acknowledged: paused %v, %d bytes", p.IsPaused(), p.InflightBytes())
	}
}

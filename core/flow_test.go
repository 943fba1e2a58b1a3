package core

import (
	"errors"
	"testing"
)

// The pipeline window is bounded by bytes as well as by count: with room
// for 8 appends but 3 entries' worth of bytes, the leader has 3 one-entry
// appends in flight, and each acknowledgement frees room for one more.
func TestFlowControl_InflightBytes(t *testing.T) {
	size := uint64(100 + entryOverhead)
	st := NewMemoryStorage()
	l := newTestRaft(t, 1, []uint64{1, 2}, st, func(c *Config) {
		c.MaxInflight, c.MaxInflightBytes, c.MaxSizePerMsg = 8, 3*size, size
	})
	l.becomeCandidate()
	l.becomeLeader()
	persistAll(t, l, st)
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 1}); err != nil {
		t.Fatal(err)
	}
	persistAll(t, l, st)
	apps := func() int {
		n := 0
		for _, m := range persistAll(t, l, st) {
			if m.Type == MsgApp && len(m.Entries) > 0 {
				n++
			}
		}
		return n
	}
	ents := make([]Entry, 6)
	for i := range ents {
		ents[i].Data = make([]byte, 100)
	}
	if _, _, err := l.Propose(ents...); err != nil {
		t.Fatal(err)
	}
	pr := l.prs.Progress(2)
	if got := apps(); got != 3 || pr.InflightBytes() != 3*size || !pr.IsPaused() {
		t.Fatalf("sent %d appends, %d bytes in flight (paused %v); want 3, %d, paused", got, pr.InflightBytes(), pr.IsPaused(), 3*size)
	}
	if st := l.Status().Progress[2]; st.InflightBytes != 3*size || st.Inflight != 3 {
		t.Fatalf("status %+v", st)
	}
	// The appends carry entries 2, 3 and 4; acknowledging 2 frees one.
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 2}); err != nil {
		t.Fatal(err)
	}
	if got := apps(); got != 1 {
		t.Fatalf("one append acknowledged freed room for %d, want 1", got)
	}
	// A single entry larger than the whole byte window still travels.
	if err := l.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: l.LastIndex()}); err != nil {
		t.Fatal(err)
	}
	persistAll(t, l, st)
	if _, _, err := l.Propose(Entry{Data: make([]byte, 10*size)}); err != nil {
		t.Fatal(err)
	}
	if got := apps(); got != 1 {
		t.Fatalf("an entry larger than MaxInflightBytes: %d appends, want 1", got)
	}
}

// MaxUncommittedBytes: a leader whose quorum stalls refuses proposals once
// its uncommitted entries reach the cap, takes them again as entries
// commit, and starts from zero after a change of leadership.
func TestPropose_UncommittedLimit(t *testing.T) {
	size := uint64(100 + entryOverhead)
	nw := newNetwork(t, 3, func(c *Config) { c.MaxUncommittedBytes = 3 * size })
	nw.campaign(1)
	l := nw.nodes[1]
	if got := l.Status().UncommittedBytes; got != 0 {
		t.Fatalf("after the no-op committed: %d bytes uncommitted", got)
	}
	nw.isolate(1) // the quorum is gone; nothing commits
	payload := func() Entry { return Entry{Data: make([]byte, 100)} }
	for i := range 3 {
		if _, _, err := l.Propose(payload()); err != nil {
			t.Fatalf("proposal %d within the cap: %v", i, err)
		}
	}
	_, _, err := l.Propose(payload())
	if !errors.Is(err, ErrUncommittedLimit) {
		t.Fatalf("proposal beyond the cap: %v, want ErrUncommittedLimit", err)
	}
	last := l.LastIndex()
	nw.stabilize()
	if l.LastIndex() != last || l.Status().UncommittedBytes != 3*size {
		t.Fatalf("a refused proposal changed the log: last %d, uncommitted %d", l.LastIndex(), l.Status().UncommittedBytes)
	}
	// Committing releases the bytes.
	nw.heal()
	l.Tick() // a heartbeat brings the followers' answers, then the appends
	nw.stabilize()
	if got := l.Status().UncommittedBytes; got != 0 || l.Committed() != l.LastIndex() {
		t.Fatalf("after commit: %d bytes uncommitted, commit %d of %d", got, l.Committed(), l.LastIndex())
	}
	if _, _, err := l.Propose(payload()); err != nil {
		t.Fatalf("after commit: %v", err)
	}
	// With nothing uncommitted a batch larger than the cap is taken whole.
	nw.stabilize()
	big := []Entry{payload(), payload(), payload(), payload(), payload()}
	if _, _, err := l.Propose(big...); err != nil {
		t.Fatalf("a batch larger than the cap with nothing uncommitted: %v", err)
	}
	// A new leader starts from zero; entries of earlier terms do not count.
	nw.isolate(1)
	if _, _, err := l.Propose(payload()); !errors.Is(err, ErrUncommittedLimit) {
		t.Fatalf("over the cap: %v", err)
	}
	l.becomeFollower(l.Term()+1, None)
	if got := l.uncommittedSize; got != 0 {
		t.Fatalf("after stepping down: %d bytes", got)
	}
	l.becomeCandidate()
	l.becomeLeader()
	if got, want := l.uncommittedSize, (&Entry{}).Size(); got != want {
		t.Fatalf("new leader counts %d bytes, want only its no-op (%d)", got, want)
	}
}

package core

import (
	"errors"
	"slices"
	"testing"
)

func TestMemoryStorage_AppendTermEntriesCompact(t *testing.T) {
	st := NewMemoryStorage()
	if f, _ := st.FirstIndex(); f != 1 {
		t.Fatalf("empty first index %d", f)
	}
	if l, _ := st.LastIndex(); l != 0 {
		t.Fatalf("empty last index %d", l)
	}
	if err := st.Append(entsWithTerms(1, 1, 2, 2, 3)); err != nil {
		t.Fatal(err)
	}
	// Overwrite a suffix.
	if err := st.Append([]Entry{{Index: 4, Term: 4}}); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.LastIndex(); l != 4 {
		t.Fatalf("last %d after truncating append, want 4", l)
	}
	if tm, _ := st.Term(4); tm != 4 {
		t.Fatalf("term(4) = %d", tm)
	}
	if err := st.Append([]Entry{{Index: 7, Term: 4}}); err == nil {
		t.Fatal("append leaving a hole accepted")
	}
	ents, err := st.Entries(1, 5, 2*entryOverhead)
	if err != nil || len(ents) != 2 {
		t.Fatalf("Entries with a 2-entry byte limit: %d entries, %v", len(ents), err)
	}
	ents, err = st.Entries(1, 5, 0)
	if err != nil || len(ents) != 1 {
		t.Fatalf("Entries with a zero byte limit: %d entries, %v; want 1", len(ents), err)
	}
	if _, err := st.Entries(1, 9, 100); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Entries beyond last: %v", err)
	}
	if err := st.Compact(2, ConfState{Voters: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if f, _ := st.FirstIndex(); f != 3 {
		t.Fatalf("first index %d after compacting 2", f)
	}
	if tm, err := st.Term(2); err != nil || tm != 1 {
		t.Fatalf("term of the last compacted entry: %d, %v", tm, err)
	}
	if _, err := st.Term(1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("term(1) after compaction: %v", err)
	}
	if _, err := st.Entries(2, 4, 100); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Entries below first: %v", err)
	}
	if _, err := st.Term(9); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("term(9): %v", err)
	}
	if err := st.Compact(9, ConfState{}); err == nil {
		t.Fatal("compacting beyond the log accepted")
	}
	// Appending entries wholly inside the snapshot is a no-op.
	if err := st.Append(entsWithTerms(1)); err != nil {
		t.Fatal(err)
	}
	meta, _ := st.SnapshotMeta()
	if meta.Index != 2 || meta.Term != 1 || !slices.Equal(meta.Conf.Voters, []uint64{1}) {
		t.Fatalf("snapshot meta %+v", meta)
	}
	if err := st.ApplySnapshot(SnapshotMeta{Index: 1}); err == nil {
		t.Fatal("an older snapshot was applied")
	}
	if err := st.ApplySnapshot(SnapshotMeta{Index: 10, Term: 5}); err != nil {
		t.Fatal(err)
	}
	if f, _ := st.FirstIndex(); f != 11 {
		t.Fatalf("first index %d after snapshot 10", f)
	}
}

func TestLimitSize(t *testing.T) {
	ents := []Entry{{Data: make([]byte, 10)}, {Data: make([]byte, 10)}, {Data: make([]byte, 10)}}
	one := ents[0].Size()
	for _, c := range []struct {
		max  uint64
		want int
	}{{0, 1}, {one, 1}, {2*one - 1, 1}, {2 * one, 2}, {10 * one, 3}} {
		if got := len(LimitSize(ents, c.max)); got != c.want {
			t.Errorf("LimitSize(%d) kept %d, want %d", c.max, got, c.want)
		}
	}
	if LimitSize(nil, 5) != nil {
		t.Error("LimitSize(nil) not nil")
	}
	if EntriesSize(ents) != 3*one {
		t.Error("EntriesSize")
	}
}

// The unstable tail never rewrites memory handed out in a Ready, even when
// a conflicting append replaces entries the runtime is still writing.
func TestUnstable_HandedOutEntriesStayIntact(t *testing.T) {
	st := NewMemoryStorage()
	r := newTestRaft(t, 2, []uint64{1, 2}, st)
	if err := r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: entsWithTerms(1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	rd := r.Ready()
	r.Advance(rd)
	held := slices.Clone(rd.Entries)
	// Leader of term 2 replaces entries 2..3.
	if err := r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: 2, Data: []byte("new")}}}); err != nil {
		t.Fatal(err)
	}
	for i := range held {
		if rd.Entries[i].Term != held[i].Term || string(rd.Entries[i].Data) != string(held[i].Data) {
			t.Fatalf("entry %d of a Ready already handed out changed to %+v", i, rd.Entries[i])
		}
	}
	rd2 := r.Ready()
	if len(rd2.Entries) != 1 || rd2.Entries[0].Index != 2 || rd2.Entries[0].Term != 2 {
		t.Fatalf("second Ready entries %+v, want the replacement at 2", rd2.Entries)
	}
	// The first save being acknowledged must not mark the replacement
	// durable: entry 3 of term 1 is gone, so (3, 1) matches nothing.
	r.Persisted(3, 1)
	if r.log.unstable.persisted != 0 {
		t.Fatalf("stale Persisted marked entries durable up to %d", r.log.unstable.persisted)
	}
	r.Advance(rd2)
	r.Persisted(2, 2)
	if r.log.unstable.persisted != 2 {
		t.Fatalf("Persisted(2,2) left entries durable up to %d, want 2", r.log.unstable.persisted)
	}
	// Durable but not yet applied: still served from memory.
	if r.log.unstable.offset != 1 {
		t.Fatalf("entries not yet applied left memory (offset %d)", r.log.unstable.offset)
	}
}

// Messages and read states arriving between Ready and Advance survive
// Advance.
func TestReadyAdvance_InterleavedSteps(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	l := nw.nodes[1]
	if _, _, err := l.Propose(Entry{Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	rd := l.Ready()
	if _, _, err := l.Propose(Entry{Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	l.Advance(rd)
	rd2 := l.Ready()
	if len(rd2.Entries) != 1 || string(rd2.Entries[0].Data) != "b" {
		t.Fatalf("entries after interleaved Propose: %+v", rd2.Entries)
	}
	if len(rd2.Messages) == 0 {
		t.Fatal("appends for the second proposal were lost by Advance")
	}
}

package wal

import (
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/raftbench/raftbench/core"
)

// TestConformance runs every behaviour the Log contract promises against
// every implementation.
func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *handle)
	}{
		{"Empty", testEmpty},
		{"Append", testAppend},
		{"OverwriteSuffix", testOverwriteSuffix},
		{"OverwriteWithLonger", testOverwriteWithLonger},
		{"RefusesGapsAndBadRuns", testRefuses},
		{"RefusesCommitBeyondLast", testRefusesCommitBeyondLast},
		{"EntriesByteLimit", testEntriesByteLimit},
		{"EntriesBounds", testEntriesBounds},
		{"EmptyData", testEmptyData},
		{"HardState", testHardState},
		{"Compact", testCompact},
		{"TermsAcrossCompaction", testTermsAcrossCompaction},
		{"SaveSkipsSnapshottedEntries", testSaveSkipsSnapshotted},
		{"SaveSnapshot", testSaveSnapshot},
		{"ReaderDuringWrites", testReaderDuringWrites},
		{"Closed", testClosed},
		{"ReopenFindsSynced", testReopen},
	}
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { tt.fn(t, im.open(t)) })
			}
		})
	}
}

func testEmpty(t *testing.T, h *handle) {
	checkLog(t, h, 0, 0, nil)
	if ents, err := h.Entries(1, 1, 100); err != nil || len(ents) != 0 {
		t.Fatalf("Entries(1, 1) = %v, %v; want none", ents, err)
	}
	if _, err := h.Entries(1, 2, 100); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("Entries(1, 2) on empty log: err = %v, want ErrUnavailable", err)
	}
	hs, cs, err := h.InitialState()
	if err != nil || !hs.IsEmpty() || !cs.IsEmpty() {
		t.Fatalf("InitialState = %+v, %+v, %v; want empty", hs, cs, err)
	}
	if m, err := h.SnapshotMeta(); err != nil || m.Index != 0 {
		t.Fatalf("SnapshotMeta = %+v, %v; want none", m, err)
	}
}

func testAppend(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 3, 1))
	mustSave(t, h, core.HardState{}, run(4, 4, 1))
	if err := h.Save(core.HardState{}, run(5, 9, 2), false); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 0, 0, cat(run(1, 4, 1), run(5, 9, 2)))
	// Saving nothing, with or without sync, changes nothing.
	mustSave(t, h, core.HardState{}, nil)
	if err := h.Save(core.HardState{}, nil, false); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 0, 0, cat(run(1, 4, 1), run(5, 9, 2)))
}

func testOverwriteSuffix(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 10, 1))
	// A follower's conflict truncation: 6.. replaced by a shorter run.
	mustSave(t, h, core.HardState{}, run(6, 7, 2))
	checkLog(t, h, 0, 0, cat(run(1, 5, 1), run(6, 7, 2)))
	if _, err := h.Entries(6, 9, 1<<20); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("Entries past the truncated end: err = %v, want ErrUnavailable", err)
	}
	// The log continues from the new end, and can be replaced from index 1.
	mustSave(t, h, core.HardState{}, run(8, 8, 2))
	checkLog(t, h, 0, 0, cat(run(1, 5, 1), run(6, 8, 2)))
	mustSave(t, h, core.HardState{}, run(1, 2, 3))
	checkLog(t, h, 0, 0, run(1, 2, 3))
	if h.reopen != nil {
		h.reopen(t)
		checkLog(t, h, 0, 0, run(1, 2, 3))
	}
}

func testOverwriteWithLonger(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 5, 1))
	mustSave(t, h, core.HardState{}, run(3, 9, 2))
	checkLog(t, h, 0, 0, cat(run(1, 2, 1), run(3, 9, 2)))
}

func testRefuses(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 5, 2))
	want := run(1, 5, 2)
	hs := core.HardState{Term: 9, Vote: 1, Commit: 1}
	for _, tc := range []struct {
		name string
		ents []core.Entry
		err  error
	}{
		{"gap", run(7, 8, 2), ErrGap},
		{"not consecutive", cat(run(6, 6, 2), run(8, 8, 2)), ErrInvalidEntries},
		{"term decreases", cat(run(6, 6, 3), run(7, 7, 2)), ErrInvalidEntries},
		{"term below previous entry", run(6, 6, 1), ErrInvalidEntries},
		{"index zero", run(0, 1, 2), ErrInvalidEntries},
	} {
		if err := h.Save(hs, tc.ents, true); !errors.Is(err, tc.err) {
			t.Errorf("%s: Save err = %v, want %v", tc.name, err, tc.err)
		}
	}
	// A refused save is refused whole: the hard state did not change either.
	checkLog(t, h, 0, 0, want)
	if got, _, _ := h.InitialState(); !got.IsEmpty() {
		t.Fatalf("hard state after refused saves = %+v, want empty", got)
	}
}

// testRefusesCommitBeyondLast: no write may leave the hard state committing
// past the log's end — Open reads that as lost entries.
func testRefusesCommitBeyondLast(t *testing.T, h *handle) {
	hs := core.HardState{Term: 1, Commit: 3}
	mustSave(t, h, hs, run(1, 5, 1))
	for _, tc := range []struct {
		name string
		hs   core.HardState
		ents []core.Entry
	}{
		{"new commit past the new entries", core.HardState{Term: 1, Commit: 7}, run(6, 6, 1)},
		{"truncation below the stored commit", core.HardState{}, run(2, 2, 2)},
		{"hard state alone", core.HardState{Term: 1, Commit: 6}, nil},
	} {
		if err := h.Save(tc.hs, tc.ents, true); !errors.Is(err, ErrCommitBeyondLast) {
			t.Errorf("%s: Save err = %v, want ErrCommitBeyondLast", tc.name, err)
		}
	}
	// A snapshot that conflicts with the log at an index below the commit
	// would drop committed entries.
	if err := h.SaveSnapshot(core.SnapshotMeta{Index: 2, Term: 5}); !errors.Is(err, ErrCommitBeyondLast) {
		t.Errorf("conflicting snapshot below the commit: err = %v, want ErrCommitBeyondLast", err)
	}
	checkLog(t, h, 0, 0, run(1, 5, 1))
	if got, _, _ := h.InitialState(); got != hs {
		t.Fatalf("hard state after refused writes = %+v, want %+v", got, hs)
	}
	// At the boundary it is fine: truncate right after the commit index.
	mustSave(t, h, core.HardState{Term: 2, Commit: 4}, run(4, 4, 2))
	checkLog(t, h, 0, 0, cat(run(1, 3, 1), run(4, 4, 2)))
}

func testEntriesByteLimit(t *testing.T, h *handle) {
	all := run(1, 10, 1)
	mustSave(t, h, core.HardState{}, all)
	one := all[0].Size()
	for _, max := range []uint64{0, 1, one - 1, one, one + 1, 3 * one, 3*one + 1, core.EntriesSize(all), 1 << 62} {
		for _, r := range [][2]uint64{{1, 11}, {4, 9}, {10, 11}} {
			want := core.LimitSize(all[r[0]-1:r[1]-1], max)
			got, err := h.Entries(r[0], r[1], max)
			if err != nil {
				t.Fatalf("Entries(%d, %d, %d): %v", r[0], r[1], max, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Entries(%d, %d, %d) = %d entries, want %d (%v)", r[0], r[1], max, len(got), len(want), want)
			}
		}
	}
}

func testEntriesBounds(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 10, 1))
	if err := h.Compact(3, core.ConfState{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lo, hi uint64
		err    error
	}{
		{1, 5, core.ErrCompacted},
		{3, 5, core.ErrCompacted},
		{4, 12, core.ErrUnavailable},
		{11, 12, core.ErrUnavailable},
	} {
		if _, err := h.Entries(tc.lo, tc.hi, 1<<20); !errors.Is(err, tc.err) {
			t.Errorf("Entries(%d, %d): err = %v, want %v", tc.lo, tc.hi, err, tc.err)
		}
	}
	if ents, err := h.Entries(4, 11, 1<<20); err != nil || len(ents) != 7 {
		t.Fatalf("Entries(4, 11) = %d entries, %v; want 7", len(ents), err)
	}
	if ents, err := h.Entries(11, 11, 1<<20); err != nil || len(ents) != 0 {
		t.Fatalf("Entries(11, 11) = %v, %v; want none", ents, err)
	}
}

func testEmptyData(t *testing.T, h *handle) {
	ents := []core.Entry{
		{Index: 1, Term: 1},
		{Index: 2, Term: 1, Type: core.EntryConfChange, Data: []byte{0}},
		{Index: 3, Term: 1 << 40, Type: 200},
	}
	mustSave(t, h, core.HardState{}, ents)
	checkLog(t, h, 0, 0, ents)
}

func testHardState(t *testing.T, h *handle) {
	hs := core.HardState{Term: 3, Vote: 2, Commit: 0}
	mustSave(t, h, hs, nil)
	hs2 := core.HardState{Term: 3, Vote: 2, Commit: 4}
	mustSave(t, h, hs2, run(1, 4, 3))
	// An empty hard state means "unchanged".
	mustSave(t, h, core.HardState{}, run(5, 5, 3))
	check := func() {
		t.Helper()
		got, _, err := h.InitialState()
		if err != nil || got != hs2 {
			t.Fatalf("InitialState hard state = %+v, %v; want %+v", got, err, hs2)
		}
	}
	check()
	if h.reopen != nil {
		h.reopen(t)
		check()
	}
}

func testCompact(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, cat(run(1, 4, 1), run(5, 10, 2)))
	conf := core.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	if err := h.Compact(5, conf); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 5, 2, run(6, 10, 2))
	m, err := h.SnapshotMeta()
	if want := (core.SnapshotMeta{Index: 5, Term: 2, Conf: conf}); err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("SnapshotMeta = %+v, %v; want %+v", m, err, want)
	}
	if _, cs, _ := h.InitialState(); !reflect.DeepEqual(cs, conf) {
		t.Fatalf("InitialState conf = %+v, want %+v", cs, conf)
	}
	// Compacting at or below the snapshot is a no-op; beyond the end fails.
	if err := h.Compact(3, core.ConfState{}); err != nil {
		t.Fatalf("Compact(3) below the snapshot: %v", err)
	}
	if err := h.Compact(11, core.ConfState{}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("Compact(11) beyond the end: err = %v, want ErrUnavailable", err)
	}
	checkLog(t, h, 5, 2, run(6, 10, 2))
	// Compacting everything leaves an empty log that still knows its end.
	if err := h.Compact(10, conf); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 10, 2, nil)
	mustSave(t, h, core.HardState{}, run(11, 11, 3))
	checkLog(t, h, 10, 2, run(11, 11, 3))
	if h.reopen != nil {
		h.reopen(t)
		checkLog(t, h, 10, 2, run(11, 11, 3))
		if m2, _ := h.SnapshotMeta(); !reflect.DeepEqual(m2, core.SnapshotMeta{Index: 10, Term: 2, Conf: conf}) {
			t.Fatalf("SnapshotMeta after reopen = %+v", m2)
		}
	}
}

func testTermsAcrossCompaction(t *testing.T, h *handle) {
	// Many short terms, so term lookups cross many runs.
	var all []core.Entry
	for term := uint64(1); term <= 20; term++ {
		all = append(all, run(uint64(len(all))+1, uint64(len(all))+5, term)...)
	}
	mustSave(t, h, core.HardState{}, all)
	checkLog(t, h, 0, 0, all)
	for _, c := range []uint64{3, 5, 6, 37, 99} {
		if err := h.Compact(c, core.ConfState{}); err != nil {
			t.Fatal(err)
		}
		checkLog(t, h, c, all[c-1].Term, all[c:])
		if h.reopen != nil {
			h.reopen(t)
			checkLog(t, h, c, all[c-1].Term, all[c:])
		}
	}
}

func testSaveSkipsSnapshotted(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 10, 1))
	if err := h.Compact(5, core.ConfState{}); err != nil {
		t.Fatal(err)
	}
	// Entries 3..5 are covered by the snapshot and skipped; 6..8 overwrite
	// and 9..10 go.
	mustSave(t, h, core.HardState{}, run(3, 8, 1))
	checkLog(t, h, 5, 1, run(6, 8, 1))
	// A run entirely inside the snapshot is skipped, hard state still saved.
	hs := core.HardState{Term: 1, Commit: 8}
	mustSave(t, h, hs, run(1, 4, 1))
	checkLog(t, h, 5, 1, run(6, 8, 1))
	if got, _, _ := h.InitialState(); got != hs {
		t.Fatalf("hard state = %+v, want %+v", got, hs)
	}
}

func testSaveSnapshot(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, cat(run(1, 5, 1), run(6, 10, 2)))
	conf := core.ConfState{Voters: []uint64{1, 2}, VotersOutgoing: []uint64{1, 2, 3}}
	// The log holds (7, 2): the tail after it stays.
	if err := h.SaveSnapshot(core.SnapshotMeta{Index: 7, Term: 2, Conf: conf}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 7, 2, run(8, 10, 2))
	// (9, 3) conflicts with the log's (9, 2): everything goes.
	if err := h.SaveSnapshot(core.SnapshotMeta{Index: 9, Term: 3, Conf: conf}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 9, 3, nil)
	// A snapshot beyond the end leaves an empty log at its index.
	if err := h.SaveSnapshot(core.SnapshotMeta{Index: 20, Term: 4, Conf: conf}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, h, 20, 4, nil)
	if err := h.SaveSnapshot(core.SnapshotMeta{Index: 19, Term: 4}); !errors.Is(err, ErrSnapshotOutOfDate) {
		t.Fatalf("older snapshot: err = %v, want ErrSnapshotOutOfDate", err)
	}
	if err := h.Save(core.HardState{}, run(22, 22, 4), true); !errors.Is(err, ErrGap) {
		t.Fatalf("append after a gap past the snapshot: err = %v, want ErrGap", err)
	}
	mustSave(t, h, core.HardState{}, run(21, 22, 4))
	checkLog(t, h, 20, 4, run(21, 22, 4))
	want := core.SnapshotMeta{Index: 20, Term: 4, Conf: conf}
	check := func() {
		t.Helper()
		if m, err := h.SnapshotMeta(); err != nil || !reflect.DeepEqual(m, want) {
			t.Fatalf("SnapshotMeta = %+v, %v; want %+v", m, err, want)
		}
	}
	check()
	if h.reopen != nil {
		h.reopen(t)
		check()
		checkLog(t, h, 20, 4, run(21, 22, 4))
	}
}

// testReaderDuringWrites reads while another goroutine appends, truncates
// and compacts (run it with -race). Each read must be self-consistent: the
// entries consecutive, starting where asked, with the term that entry has
// in every version of the log this test writes (term = index/100 + 1 plus
// the generation, see below).
func testReaderDuringWrites(t *testing.T, h *handle) {
	const rounds = 60
	termOf := func(gen, i uint64) uint64 { return gen*1000 + i/50 + 1 }
	var wg sync.WaitGroup
	done := make(chan struct{})
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for r := uint64(0); r < rounds; r++ {
			last, _ := h.LastIndex()
			lo := last + 1
			if r%5 == 4 && last > 30 {
				lo = last - 20 // a conflict truncation with a newer generation
			}
			var ents []core.Entry
			for i := lo; i < lo+25; i++ {
				ents = append(ents, core.Entry{Index: i, Term: termOf(r, i), Data: []byte{byte(i)}})
			}
			if err := h.Save(core.HardState{Term: termOf(r, lo+24)}, ents, r%2 == 0); err != nil {
				errc <- err
				return
			}
			if r%7 == 6 {
				if err := h.Compact(lo-10, core.ConfState{}); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	reads := 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		first, _ := h.FirstIndex()
		last, _ := h.LastIndex()
		if last < first {
			continue
		}
		ents, err := h.Entries(first, last+1, 1<<20)
		if errors.Is(err, core.ErrCompacted) || errors.Is(err, core.ErrUnavailable) {
			continue // the log moved between the calls; that is allowed
		}
		if err != nil {
			t.Fatalf("Entries(%d, %d): %v", first, last+1, err)
		}
		for k, e := range ents {
			if e.Index != first+uint64(k) || len(e.Data) != 1 || e.Data[0] != byte(e.Index) {
				t.Fatalf("Entries(%d, %d)[%d] = %+v: not the entry asked for", first, last+1, k, e)
			}
			if k > 0 && e.Term < ents[k-1].Term {
				t.Fatalf("Entries(%d, %d): term decreases at %d", first, last+1, e.Index)
			}
		}
		if _, err := h.Term(last); err != nil && !errors.Is(err, core.ErrCompacted) && !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("Term(%d): %v", last, err)
		}
		reads++
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if reads == 0 {
		t.Fatal("the reader never ran")
	}
}

func testClosed(t *testing.T, h *handle) {
	mustSave(t, h, core.HardState{}, run(1, 2, 1))
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, checks["Entries"] = h.Entries(1, 2, 10)
	_, checks["Term"] = h.Term(1)
	_, checks["FirstIndex"] = h.FirstIndex()
	_, checks["LastIndex"] = h.LastIndex()
	_, _, checks["InitialState"] = h.InitialState()
	_, checks["SnapshotMeta"] = h.SnapshotMeta()
	checks["Save"] = h.Save(core.HardState{}, run(3, 3, 1), true)
	checks["Compact"] = h.Compact(1, core.ConfState{})
	checks["SaveSnapshot"] = h.SaveSnapshot(core.SnapshotMeta{Index: 5, Term: 1})
	checks["Close"] = h.Close()
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func testReopen(t *testing.T, h *handle) {
	if h.reopen == nil {
		t.Skip("nothing survives a close of this implementation")
	}
	hs := core.HardState{Term: 2, Vote: 1, Commit: 6}
	mustSave(t, h, hs, cat(run(1, 3, 1), run(4, 8, 2)))
	if err := h.Compact(2, core.ConfState{Voters: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	h.reopen(t)
	checkLog(t, h, 2, 1, cat(run(3, 3, 1), run(4, 8, 2)))
	if got, cs, _ := h.InitialState(); got != hs || !reflect.DeepEqual(cs.Voters, []uint64{1}) {
		t.Fatalf("InitialState after reopen = %+v, %+v", got, cs)
	}
	// The reopened log takes appends and truncations as before.
	mustSave(t, h, core.HardState{}, run(6, 9, 3))
	checkLog(t, h, 2, 1, cat(run(3, 3, 1), run(4, 5, 2), run(6, 9, 3)))
}

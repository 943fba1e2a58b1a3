package wal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// logState is everything a Log holds, for comparing whole logs.
type logState struct {
	hs   core.HardState
	snap core.SnapshotMeta
	ents []core.Entry
}

func readState(t *testing.T, l Log) logState {
	t.Helper()
	hs, _, err := l.InitialState()
	if err != nil {
		t.Fatalf("InitialState: %v", err)
	}
	snap, err := l.SnapshotMeta()
	if err != nil {
		t.Fatalf("SnapshotMeta: %v", err)
	}
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	ents, err := l.Entries(first, last+1, 1<<62)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v (a torn or missing entry)", first, last+1, err)
	}
	if len(ents) == 0 {
		ents = nil
	}
	return logState{hs, snap, ents}
}

func (s logState) String() string {
	last := s.snap.Index
	if n := len(s.ents); n > 0 {
		last = s.ents[n-1].Index
	}
	return fmt.Sprintf("hs %+v snapshot (%d, %d) entries (%d, %d]", s.hs, s.snap.Index, s.snap.Term, s.snap.Index, last)
}

// TestCrashRecoversSyncedPrefix runs random saves (appends, conflict
// truncations, compactions; some synced, some not) on a filesystem that can
// forget unsynced writes, "crashes" at a random point keeping a random part
// of the unsynced data, and reopens. The recovered log must equal the log
// as it was after one of the saves since the last synced one: every synced
// save survives, and whatever was lost is a suffix of the history, never a
// hole and never a torn entry. A MemoryLog fed the same saves is the model.
func TestCrashRecoversSyncedPrefix(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { crashOnce(t, seed) })
	}
}

func crashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	fs := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: fs, MemTableSize: 1 << 20, Logger: testLogger{t}}
	l := mustOpen(t, "wal", opts)
	model := NewMemory()
	history := []logState{readState(t, model)} // history[k]: after k saves
	lastSynced := 0
	term := uint64(1)
	steps := 10 + rng.IntN(50)
	for step := 0; step < steps; step++ {
		first, _ := model.FirstIndex()
		last, _ := model.LastIndex()
		sync := rng.IntN(3) == 0
		switch op := rng.IntN(10); {
		case op == 0 && last >= first:
			// Compaction is always synced.
			idx := first + rng.Uint64N(last-first+1)
			for _, lg := range []Log{l, model} {
				if err := lg.Compact(idx, core.ConfState{Voters: []uint64{1, 2, 3}}); err != nil {
					t.Fatalf("Compact(%d): %v", idx, err)
				}
			}
			sync = true
		default:
			lo := last + 1
			// A conflict truncation, never of a committed entry (Save
			// refuses to leave the commit index past the log's end).
			hs0, _, _ := model.InitialState()
			if low := max(first, hs0.Commit+1); op < 3 && last >= low {
				lo = low + rng.Uint64N(last-low+1)
				term++
			}
			var ents []core.Entry
			for i, n := lo, 1+rng.IntN(30); i < lo+uint64(n); i++ {
				data := bytes.Repeat([]byte{byte(i), byte(term), byte(seed)}, rng.IntN(700))
				ents = append(ents, core.Entry{Index: i, Term: term, Data: data})
			}
			hs := core.HardState{Term: term, Vote: 1, Commit: lo - 1}
			if rng.IntN(3) == 0 {
				hs = core.HardState{}
			}
			for _, lg := range []Log{l, model} {
				if err := lg.Save(hs, ents, sync); err != nil {
					t.Fatalf("Save: %v", err)
				}
			}
		}
		history = append(history, readState(t, model))
		if sync {
			lastSynced = len(history) - 1
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	opts.FS = crashed
	l = mustOpen(t, "wal", opts)
	defer l.Close()
	got := readState(t, l)
	for k := len(history) - 1; k >= lastSynced; k-- {
		if reflect.DeepEqual(got, history[k]) {
			return
		}
	}
	t.Fatalf("recovered %v\nwhich is no state after save %d (the last synced) or later; last state %v",
		got, lastSynced, history[len(history)-1])
}

// TestEmptySyncedSaveIsABarrier: a synced Save with nothing in it makes the
// unsynced saves before it durable.
func TestEmptySyncedSaveIsABarrier(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: fs, Logger: testLogger{t}}
	l := mustOpen(t, "wal", opts)
	if err := l.Save(core.HardState{Term: 2}, run(1, 5, 2), false); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(core.HardState{}, nil, true); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // synced data only
	l.Close()
	opts.FS = crashed
	l = mustOpen(t, "wal", opts)
	defer l.Close()
	checkLog(t, l, 0, 0, run(1, 5, 2))
}

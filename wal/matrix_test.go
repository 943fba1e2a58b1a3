package wal

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// matrixBase is a log's directory after a scripted history, ready to be
// damaged: fs holds it (every byte in it synced, so CrashClone copies it
// exactly), history[k] is the log after k saves, and synced is the index of
// the last state a synced save reported durable. Later states were saved
// without sync and may be missing.
type matrixBase struct {
	name    string
	fs      *vfs.MemFS
	history []logState
	synced  int
}

// matrixOutcome is how one damaged directory ended.
type matrixOutcome int

const (
	refused    matrixOutcome = iota // Open, or a read of the damaged range, said ErrCorrupt
	intact                          // every synced entry read back, unchanged
	lostSynced                      // the log opened shorter than what was reported durable
	wrongData                       // anything else: data no save ever wrote, or another error
)

// TestCorruptionMatrix damages a log's files at every 4 KiB: it flips a
// byte at each 4 KiB offset, and truncates at each 4 KiB boundary, of the
// live WAL and of a flushed sstable, in a fresh store (whose live WAL is
// its first) and in a restarted one, after synced writes (the log closed)
// and after unsynced ones (a crash that kept some of them). Every case must
// end in exactly one of: Open refuses with ErrCorrupt; every synced entry
// reads back intact, only unsynced ones missing; or reading the damaged
// range returns ErrCorrupt. Never wrong data, never a silently shorter log.
func TestCorruptionMatrix(t *testing.T) {
	var counts [4]int
	var bad []string
	for _, restarted := range []bool{false, true} {
		for _, synced := range []bool{true, false} {
			for _, target := range []string{"wal", "sst"} {
				base := buildMatrixBase(t, restarted, synced, target == "sst")
				path, size := matrixTarget(t, base.fs, target)
				for off := int64(0); off < size; off += 4096 {
					for _, damage := range []string{"flip", "truncate"} {
						name := fmt.Sprintf("%s/%s %s@%d of %s", base.name, target, damage, off, path)
						fs := base.fs.CrashClone(vfs.CrashCloneCfg{})
						if damage == "flip" {
							flipMem(t, fs, path, off)
						} else {
							truncateMem(t, fs, path, off)
						}
						out, why := classify(t, fs, base)
						counts[out]++
						if out >= lostSynced {
							bad = append(bad, name+": "+why)
						}
					}
				}
			}
		}
	}
	n := counts[refused] + counts[intact] + counts[lostSynced] + counts[wrongData]
	fmt.Printf("wal-corruption: %d cases, %d refused, %d ok, %d lost-synced\n", n, counts[refused], counts[intact], counts[lostSynced])
	if counts[wrongData] > 0 || counts[lostSynced] > 0 || n < 80 {
		t.Fatalf("%d cases, %d lost synced entries, %d wrong:\n%s", n, counts[lostSynced], counts[wrongData], strings.Join(bad, "\n"))
	}
}

// buildMatrixBase writes a history: 24 entries of about 700 random bytes
// (so the files compress poorly and span several 4 KiB pages) in synced
// saves of 4, then — after a close and reopen when restarted, and after a
// memtable flush when flush — 24 more synced, and when !synced 48 more
// without sync, followed by a crash that keeps what of them reached the file.
// A fresh store's live WAL then spans two 32 KiB blocks, so Pebble's replay
// can tell damage in the first from a torn tail.
func buildMatrixBase(t *testing.T, restarted, synced, flush bool) matrixBase {
	t.Helper()
	b := matrixBase{name: fmt.Sprintf("fresh,synced=%v", synced)}
	if restarted {
		b.name = fmt.Sprintf("restarted,synced=%v", synced)
	}
	rng := rand.New(rand.NewPCG(uint64(len(b.name)), 11))
	mem := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: mem, MemTableSize: 1 << 20, Logger: quietTestLogger{t}}
	l := mustOpen(t, "wal", opts)
	model := NewMemory()
	b.history = []logState{readState(t, model)}
	save := func(from, to uint64, sync bool) {
		for i := from; i <= to; i += 4 {
			var ents []core.Entry
			for j := i; j < i+4 && j <= to; j++ {
				data := make([]byte, 600+rng.IntN(200))
				for k := range data {
					data[k] = byte(rng.Uint32())
				}
				ents = append(ents, core.Entry{Index: j, Term: 1, Data: data})
			}
			hs := core.HardState{Term: 1, Vote: 1, Commit: i - 1}
			for _, lg := range []Log{l, model} {
				if err := lg.Save(hs, ents, sync); err != nil {
					t.Fatalf("Save(%d): %v", i, err)
				}
			}
			b.history = append(b.history, readState(t, model))
			if sync {
				b.synced = len(b.history) - 1
			}
		}
	}
	save(1, 24, true)
	if restarted {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, "wal", opts)
	}
	if flush {
		if err := l.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	save(25, 48, true)
	if synced {
		b.fs = mem
	} else {
		// Enough for Pebble to fill the WAL's current 32 KiB block, which
		// it then writes out without a sync (it holds a partial block back
		// until the next sync): wait for that, so the crash has an
		// unsynced tail in the file to keep.
		path, before := matrixTarget(t, mem, "wal")
		save(49, 96, false)
		want := (before + 32<<10) &^ (32<<10 - 1)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if fi, err := mem.Stat(path); err == nil && fi.Size() >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Pebble did not write the unsynced block of %s within 5s", path)
			}
		}
		// The marker trails synced saves (PebbleOptions.ExactMarker is
		// off): bring it up to date first, so the matrix checks damage
		// found at rest against a marker covering every synced save, as
		// after any crash more than a marker fsync after the last one.
		if err := l.raise(); err != nil {
			t.Fatal(err)
		}
		b.fs = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return b
}

// matrixTarget returns the file to damage: the live WAL (the newest) or the
// largest sstable, and its size.
func matrixTarget(t *testing.T, fs vfs.FS, target string) (string, int64) {
	t.Helper()
	names, err := fs.List("wal")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var path string
	var size int64
	for _, n := range names {
		p := fs.PathJoin("wal", n)
		fi, err := fs.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case target == "wal" && strings.HasSuffix(n, ".log"):
			path, size = p, fi.Size() // the last one listed is the newest
		case target == "sst" && strings.HasSuffix(n, ".sst") && fi.Size() > size:
			path, size = p, fi.Size()
		}
	}
	if path == "" || size < 3*4096 {
		t.Fatalf("no %s file of at least 3 pages in %v", target, names)
	}
	return path, size
}

func flipMem(t *testing.T, fs vfs.FS, path string, off int64) {
	t.Helper()
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func truncateMem(t *testing.T, fs vfs.FS, path string, size int64) {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keep := make([]byte, size)
	_, err = io.ReadFull(f, keep)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	g, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write(keep); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(g.Sync(), g.Close(), syncDir(fs, fs.PathDir(path))); err != nil {
		t.Fatal(err)
	}
}

// classify opens the damaged directory and reads all of it back.
func classify(t *testing.T, fs vfs.FS, b matrixBase) (matrixOutcome, string) {
	t.Helper()
	l, err := OpenPebble("wal", PebbleOptions{FS: fs, MemTableSize: 1 << 20, Logger: quietTestLogger{t}})
	if errors.Is(err, ErrCorrupt) {
		return refused, ""
	}
	if err != nil {
		return wrongData, fmt.Sprintf("open: %v (not ErrCorrupt)", err)
	}
	defer l.Close()
	got, err := readAll(l)
	if errors.Is(err, ErrCorrupt) {
		return refused, ""
	}
	if err != nil {
		return wrongData, fmt.Sprintf("read: %v (not ErrCorrupt)", err)
	}
	for k := b.synced; k < len(b.history); k++ {
		if reflect.DeepEqual(got, b.history[k]) {
			return intact, ""
		}
	}
	want := b.history[b.synced]
	if lastOf(got) < lastOf(want) {
		return lostSynced, fmt.Sprintf("opened with %v, but %v was reported durable", got, want)
	}
	return wrongData, fmt.Sprintf("opened with %v, which no save after the last synced one left", got)
}

// readAll is readState returning errors instead of failing: every read
// method, over the whole log.
func readAll(l Log) (logState, error) {
	hs, _, err := l.InitialState()
	if err != nil {
		return logState{}, err
	}
	snap, err := l.SnapshotMeta()
	if err != nil {
		return logState{}, err
	}
	first, err := l.FirstIndex()
	if err != nil {
		return logState{}, err
	}
	last, err := l.LastIndex()
	if err != nil {
		return logState{}, err
	}
	ents, err := l.Entries(first, last+1, 1<<62)
	if err != nil {
		return logState{}, err
	}
	for i := first; i <= last; i++ {
		if term, err := l.Term(i); err != nil {
			return logState{}, err
		} else if term != ents[i-first].Term {
			return logState{}, fmt.Errorf("Term(%d) = %d, but the entry has term %d", i, term, ents[i-first].Term)
		}
	}
	if len(ents) == 0 {
		ents = nil
	}
	return logState{hs, snap, ents}, nil
}

func lastOf(s logState) uint64 {
	if n := len(s.ents); n > 0 {
		return s.ents[n-1].Index
	}
	return s.snap.Index
}

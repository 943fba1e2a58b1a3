package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/raftbench/raftbench/core"
)

// liveWAL returns the path of the newest Pebble WAL file in dir: the one
// Pebble appends to while the log is open, and the last one it replays.
func liveWAL(t *testing.T, dir string) string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL file in %s (%v)", dir, err)
	}
	slices.Sort(logs) // zero-padded file numbers sort numerically
	return logs[len(logs)-1]
}

// flipFileBit flips the lowest bit of the byte at off in the file at path.
func flipFileBit(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read byte %d of %s: %v", off, path, err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// syncedSaves makes n synced saves of one entry each (and the hard state
// committing it) to a log; the entries are about 200 bytes, as in the
// report of issue 10.
func syncedSaves(t *testing.T, l Log, from, n uint64) {
	t.Helper()
	for i := from; i < from+n; i++ {
		e := core.Entry{Index: i, Term: 1, Data: fmt.Appendf(nil, "command %06d %0180d", i, i)}
		if err := l.Save(core.HardState{Term: 1, Vote: 1, Commit: i}, []core.Entry{e}, true); err != nil {
			t.Fatalf("Save(%d): %v", i, err)
		}
	}
}

// TestFreshStoreWALCarriesSyncOffsets: the first WAL of a new directory is
// written in Pebble's sync-offset chunk format (chunk encodings 9..12), the
// one in which replay tells corruption of synced data from a torn tail.
// Pebble v2.1.7 creates a new store at its oldest format and opens its
// first WAL before ratcheting, so without care that WAL is in the older
// recyclable format (encodings 5..8).
func TestFreshStoreWALCarriesSyncOffsets(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, PebbleOptions{Logger: testLogger{t}})
	syncedSaves(t, l, 1, 10)
	path := liveWAL(t, dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 7 {
		t.Fatalf("live WAL %s has %d bytes", path, len(b))
	}
	// Byte 6 of a chunk header is its encoding; the file starts with one.
	if enc := b[6]; enc < 9 || enc > 12 {
		t.Fatalf("live WAL %s starts with a chunk of encoding %d, want a sync-offset chunk (9..12)", filepath.Base(path), enc)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFreshStoreBitFlipIsRefused is issue 10's report: a fresh store, 600
// synced saves, one bit flipped at byte 16384 of the live WAL (block 0 of
// ~150 KB, far from any tail a torn write could explain), reopen. Pebble's
// replay must report the corruption, not read it as the end of the log and
// silently drop the 500-odd synced entries after it.
func TestFreshStoreBitFlipIsRefused(t *testing.T) {
	dir := t.TempDir()
	opts := PebbleOptions{Logger: testLogger{t}}
	l := mustOpen(t, dir, opts)
	syncedSaves(t, l, 1, 600)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := liveWAL(t, dir)
	if fi, err := os.Stat(path); err != nil || fi.Size() < 4*32<<10 {
		t.Fatalf("live WAL %s: %v, want more than 4 blocks of 32 KiB", path, err)
	}
	flipFileBit(t, path, 16384)

	l, err := OpenPebble(dir, opts)
	if err == nil {
		last, _ := l.LastIndex()
		hs, _, _ := l.InitialState()
		l.Close()
		t.Fatalf("open succeeded with last index %d and commit %d after 600 synced saves", last, hs.Commit)
	}
	// Pebble itself must see it: the second line of defence (the durable
	// index marker) would refuse this too, but it must not be the only one.
	if !errors.Is(err, ErrCorrupt) || !pebble.IsCorruptionError(err) {
		t.Fatalf("open: %v; want ErrCorrupt from Pebble's WAL replay", err)
	}
}

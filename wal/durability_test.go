package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
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

// walWritten returns how much of the WAL file at path Pebble wrote: its
// length without the trailing zeros of the spare WAL file it may have been
// made from (spare.go), where damage would touch no record.
func walWritten(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(bytes.TrimRight(b, "\x00")))
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
	if n := walWritten(t, path); n < 4*32<<10 {
		t.Fatalf("live WAL %s: %d bytes written, want more than 4 blocks of 32 KiB", path, n)
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

// expectLostSynced asserts that err is Open's refusal of a log that ends
// at found although it reported want durable, naming both indexes.
func expectLostSynced(t *testing.T, err error, want uint64) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.What != "log" {
		t.Fatalf("open: %v; want a *CorruptError about the log", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("reported index %d durable", want)) || !strings.Contains(msg, "ends at index ") {
		t.Fatalf("open: %q does not name the found and the expected last index %d", msg, want)
	}
}

// TestTruncatedWALIsRefused cuts the live WAL of a closed log at a 4 KiB
// boundary. Pebble reads the cut as the end of the log (a truncated WAL is
// indistinguishable from a torn one); the durable-index marker knows that
// index 600 was reported durable and refuses the log.
func TestTruncatedWALIsRefused(t *testing.T) {
	dir := t.TempDir()
	opts := PebbleOptions{Logger: testLogger{t}}
	l := mustOpen(t, dir, opts)
	syncedSaves(t, l, 1, 600)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := liveWAL(t, dir)
	if err := os.Truncate(path, walWritten(t, path)/2&^4095); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPebble(dir, opts)
	expectLostSynced(t, err, 600)
}

// TestBitFlipInLastWALBlockIsRefused flips a bit in the last 32 KiB block of
// the live WAL. Pebble's replay looks for a later block to tell damage from
// a torn tail and finds none, so it stops there without an error; the
// marker catches the synced saves it dropped.
func TestBitFlipInLastWALBlockIsRefused(t *testing.T) {
	dir := t.TempDir()
	opts := PebbleOptions{Logger: testLogger{t}}
	l := mustOpen(t, dir, opts)
	syncedSaves(t, l, 1, 300)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := liveWAL(t, dir)
	lastBlock := (walWritten(t, path) - 1) &^ (32<<10 - 1)
	flipFileBit(t, path, lastBlock+100)
	_, err := OpenPebble(dir, opts)
	expectLostSynced(t, err, 300)
}

// TestDurabilityMarkerDamage: a torn or damaged slot of the marker falls
// back to the other one; a marker with no intact slot, or a missing marker
// in a directory holding the group's log, is ErrCorrupt, never a silent
// reset of what was reported durable.
func TestDurabilityMarkerDamage(t *testing.T) {
	setup := func(t *testing.T) (vfs.FS, PebbleOptions, string) {
		fs := vfs.NewMem()
		opts := PebbleOptions{FS: fs, GroupID: 4, Logger: testLogger{t}}
		l := mustOpen(t, "db", opts)
		syncedSaves(t, l, 1, 20)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return fs, opts, fs.PathJoin("db", markFileName(4))
	}
	damage := func(t *testing.T, fs vfs.FS, path string, offs ...int64) {
		f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, off := range offs {
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x40
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("one slot", func(t *testing.T) {
		for _, off := range []int64{0, 20, markSlotSize + 5} {
			fs, opts, path := setup(t)
			damage(t, fs, path, off)
			l := mustOpen(t, "db", opts)
			if last, _ := l.LastIndex(); last != 20 {
				t.Fatalf("last index %d, want 20", last)
			}
			// The log goes on, and the damaged slot is rewritten in turn.
			syncedSaves(t, l, 21, 3)
			l.Close()
			_ = mustOpen(t, "db", opts).Close()
		}
	})
	t.Run("both slots", func(t *testing.T) {
		fs, opts, path := setup(t)
		damage(t, fs, path, 3, markSlotSize+3)
		_, err := OpenPebble("db", opts)
		var ce *CorruptError
		if !errors.As(err, &ce) || !strings.Contains(ce.What, "durability marker") {
			t.Fatalf("open: %v; want a *CorruptError about the durability marker", err)
		}
	})
	t.Run("short or foreign file", func(t *testing.T) {
		for _, n := range []int{0, 1, markSlotLen - 1, markSlotSize + 7, 3000} {
			fs, opts, path := setup(t)
			f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(bytes.Repeat([]byte("RBDM\x04"), n)[:n]); err != nil {
				t.Fatal(err)
			}
			f.Close()
			_, err = OpenPebble("db", opts)
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(ce.What, "durability marker") {
				t.Fatalf("%d-byte marker: open: %v; want a *CorruptError about the durability marker", n, err)
			}
		}
	})
	for _, spare := range []uint64{0, 1 << 20} {
		t.Run(fmt.Sprintf("store wiped/spare=%d", spare), func(t *testing.T) {
			// Every Pebble file gone, the marker left: an empty store is no
			// new one when the marker says 20 entries were durable.
			fs, opts, path := setup(t)
			names, _ := fs.List("db")
			for _, n := range names {
				if p := fs.PathJoin("db", n); p != path {
					if err := fs.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			opts.SpareWAL = spare
			_, err := OpenPebble("db", opts)
			expectLostSynced(t, err, 20)
			if spare != 0 {
				// Nor does the refused directory get a spare WAL.
				expectNoSpare(t, fs, "db", int64(spare))
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		fs, opts, path := setup(t)
		if err := fs.Remove(path); err != nil {
			t.Fatal(err)
		}
		_, err := OpenPebble("db", opts)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.What != "durability marker" || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("open: %v; want a *CorruptError: durability marker missing", err)
		}
	})
}

// waitMarker waits until the trailing marker stands at want, failing the
// test if it passes want or does not get there within 10 s.
func waitMarker(t *testing.T, l *PebbleLog, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.markMu.Lock()
		v := l.mark.value
		l.markMu.Unlock()
		if v == want {
			return
		}
		if v > want || time.Now().After(deadline) {
			t.Fatalf("trailing marker at %d, want %d", v, want)
		}
	}
}

// TestTrailingMarkerCatchesUp: with the default trailing marker, a synced
// save returns before the marker covers it, and the marker goroutine then
// raises it unprompted, so a crash after it caught up (no Close) still
// catches a store that lost every entry.
func TestTrailingMarkerCatchesUp(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: mem, GroupID: 2, Logger: quietTestLogger{t}}
	l := mustOpen(t, "db", opts)
	syncedSaves(t, l, 1, 30)
	waitMarker(t, l, 30)
	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // synced data only
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mark := crashed.PathJoin("db", markFileName(2))
	names, _ := crashed.List("db")
	for _, n := range names {
		if p := crashed.PathJoin("db", n); p != mark {
			if err := crashed.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err := OpenPebble("db", PebbleOptions{FS: crashed, GroupID: 2, Logger: quietTestLogger{t}})
	expectLostSynced(t, err, 30)
}

// TestUpgradeFromVersion1: a directory written before the marker existed
// opens, gets a marker at its last index and the current format version,
// and is protected from then on.
func TestUpgradeFromVersion1(t *testing.T) {
	dir := t.TempDir()
	opts := PebbleOptions{Logger: testLogger{t}}
	l := mustOpen(t, dir, opts)
	syncedSaves(t, l, 1, 300)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it a version 1 directory: no marker, version 1 stamped.
	if err := os.Remove(filepath.Join(dir, markFileName(0))); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, vfs.Default, dir, formatKey, binary.AppendUvarint([]byte(formatMagic), 1))

	l = mustOpen(t, dir, opts)
	if last, _ := l.LastIndex(); last != 300 {
		t.Fatalf("last index %d after upgrade, want 300", last)
	}
	v, ok, err := l.get(formatKey)
	if err != nil || !ok || !bytes.Equal(v, binary.AppendUvarint([]byte(formatMagic), formatVersion)) {
		t.Fatalf("format marker after upgrade = %q, %v, %v", v, ok, err)
	}
	syncedSaves(t, l, 301, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The live WAL holds saves 301..310 and, before them, the stamp of the
	// new version: cutting it loses both, which must not pass for a
	// version 1 directory to upgrade again.
	if err := os.Truncate(liveWAL(t, dir), 0); err != nil {
		t.Fatal(err)
	}
	_, err = OpenPebble(dir, opts)
	expectLostSynced(t, err, 310)
}

// TestHardStatePastLogIsRefused: a stored hard state that commits past the
// last entry means entries written before it were lost; Open says so.
func TestHardStatePastLogIsRefused(t *testing.T) {
	fs := vfs.NewMem()
	opts := PebbleOptions{FS: fs, Logger: testLogger{t}}
	l := mustOpen(t, "db", opts)
	syncedSaves(t, l, 1, 5)
	l.Close()
	key := makeKey(kindHardState, 0, 0)
	writeRaw(t, fs, "db", key, encodeHardState(key, core.HardState{Term: 1, Commit: 9}))
	_, err := OpenPebble("db", opts)
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "ends at index 5, but the hard state commits index 9") {
		t.Fatalf("open: %v; want ErrCorrupt naming index 5 and commit 9", err)
	}
}

// syncHookFS calls hook before and after every sync of a file or directory
// on the filesystem it wraps.
type syncHookFS struct {
	vfs.FS
	hook func()
}

type syncHookFile struct {
	vfs.File
	hook func()
}

func (f syncHookFile) Sync() error {
	f.hook()
	defer f.hook()
	return f.File.Sync()
}

func (f syncHookFile) SyncData() error {
	f.hook()
	defer f.hook()
	return f.File.SyncData()
}

func (fs syncHookFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return syncHookFile{f, fs.hook}, nil
}

func (fs syncHookFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}

func (fs syncHookFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.Open(name, opts...))
}

func (fs syncHookFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs syncHookFS) OpenDir(name string) (vfs.File, error) { return fs.wrap(fs.FS.OpenDir(name)) }

func (fs syncHookFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}

// TestCrashAtEverySyncNeverRefusesOrLoses crashes a log at every point
// where durability can change: just before and just after each fsync of any
// file (Pebble's WAL, its MANIFEST, the marker, directories), while random
// saves append, truncate conflicting suffixes below and above the marker,
// compact and install snapshots, synced or not. Every crash image must
// open — no false refusal, however the marker's writes and Pebble's
// interleave — and hold the log as it was after some save at or after the
// last synced one that had returned.
func TestCrashAtEverySyncNeverRefusesOrLoses(t *testing.T) {
	seeds := 3
	if testing.Short() {
		seeds = 1
	}
	// The marker exact, trailing by the default lag (few raises in so
	// short a run), and trailing by a nanosecond (a raise racing nearly
	// every save and shortening).
	modes := []struct {
		name  string
		exact bool
		lag   time.Duration
	}{{"exact", true, 0}, {"lag=default", false, 0}, {"lag=1ns", false, time.Nanosecond}}
	for _, m := range modes {
		for seed := uint64(1); seed <= uint64(seeds); seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", m.name, seed), func(t *testing.T) { crashAtEverySync(t, seed, m.exact, m.lag) })
		}
	}
}

func crashAtEverySync(t *testing.T, seed uint64, exact bool, lag time.Duration) {
	rng := rand.New(rand.NewPCG(seed, 7))
	mem := vfs.NewCrashableMem()
	type crash struct {
		fs           *vfs.MemFS
		minOK, maxOK int // the history states it may hold
	}
	var (
		mu         sync.Mutex
		crashes    []crash
		started    int // saves begun
		syncedDone int // history index of the last synced save that returned
		hooking    bool
	)
	hook := func() {
		mu.Lock()
		defer mu.Unlock()
		if !hooking {
			return
		}
		crashes = append(crashes, crash{mem.CrashClone(vfs.CrashCloneCfg{}), syncedDone, started})
	}
	opts := PebbleOptions{FS: syncHookFS{mem, hook}, MemTableSize: 1 << 20, ExactMarker: exact, MarkerLag: lag, Logger: quietTestLogger{t}}
	l := mustOpen(t, "wal", opts)
	model := NewMemory()
	history := []logState{readState(t, model)}
	mu.Lock()
	hooking = true
	mu.Unlock()
	term := uint64(1)
	for step := 0; step < 30; step++ {
		first, _ := model.FirstIndex()
		last, _ := model.LastIndex()
		hs0, _, _ := model.InitialState()
		sync := rng.IntN(2) == 0
		mu.Lock()
		started++
		mu.Unlock()
		switch op := rng.IntN(10); {
		case op == 0 && last >= first:
			idx := first + rng.Uint64N(last-first+1)
			for _, lg := range []Log{l, model} {
				if err := lg.Compact(idx, core.ConfState{Voters: []uint64{1}}); err != nil {
					t.Fatalf("Compact(%d): %v", idx, err)
				}
			}
			sync = true
		case op == 1:
			// A leader's snapshot past the log's end replaces it.
			meta := core.SnapshotMeta{Index: last + 1 + rng.Uint64N(5), Term: term, Conf: core.ConfState{Voters: []uint64{1}}}
			for _, lg := range []Log{l, model} {
				if err := lg.SaveSnapshot(meta); err != nil {
					t.Fatalf("SaveSnapshot(%d): %v", meta.Index, err)
				}
			}
			sync = true
		default:
			lo := last + 1
			if low := max(first, hs0.Commit+1); op < 5 && last >= low {
				lo = low + rng.Uint64N(last-low+1) // conflict truncation
				term++
			}
			var ents []core.Entry
			for i := lo; i < lo+uint64(1+rng.IntN(8)); i++ {
				ents = append(ents, core.Entry{Index: i, Term: term, Data: bytes.Repeat([]byte{byte(i)}, rng.IntN(300))})
			}
			hs := core.HardState{Term: term, Vote: 1, Commit: max(hs0.Commit, lo-1-rng.Uint64N(lo))}
			for _, lg := range []Log{l, model} {
				if err := lg.Save(hs, ents, sync); err != nil {
					t.Fatalf("Save: %v", err)
				}
			}
		}
		history = append(history, readState(t, model))
		if sync {
			mu.Lock()
			syncedDone = len(history) - 1
			mu.Unlock()
		}
	}
	mu.Lock()
	hooking = false
	mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(crashes) < 30 {
		t.Fatalf("only %d crash points", len(crashes))
	}
	for i, c := range crashes {
		lg, err := OpenPebble("wal", PebbleOptions{FS: c.fs, MemTableSize: 1 << 20, Logger: quietTestLogger{t}})
		if err != nil {
			t.Fatalf("crash %d of %d (after save %d, during save %d): open: %v", i, len(crashes), c.minOK, c.maxOK, err)
		}
		got := readState(t, lg)
		lg.Close()
		found := false
		for k := c.minOK; k <= c.maxOK && !found; k++ {
			found = reflect.DeepEqual(got, history[k])
		}
		if !found {
			t.Fatalf("crash %d of %d: recovered %v, which is no state from save %d to %d", i, len(crashes), got, c.minOK, c.maxOK)
		}
	}
	t.Logf("%d crash points, %d saves, last state %v", len(crashes), len(history)-1, history[len(history)-1])
}

// quietTestLogger drops Pebble's messages but fails the test on a fatal one.
type quietTestLogger struct{ t testing.TB }

func (quietTestLogger) Infof(string, ...any)  {}
func (quietTestLogger) Errorf(string, ...any) {}
func (l quietTestLogger) Fatalf(format string, args ...any) {
	l.t.Errorf("pebble fatal: "+format, args...)
}

// TestRaiseNeverPassesALaterShortening interleaves two writes the way
// concurrent callers can: a synced append to 20 is applied, then a
// conflict truncation to 12 is applied before the append's fsync returns.
// The append's marker raise must stop at 12, not 20, since the truncation
// may be durable already; a crash that keeps only synced data must then
// open. The marker is exact here, so each save's raise is done when it
// returns.
func TestRaiseNeverPassesALaterShortening(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: mem, ExactMarker: true, Logger: quietTestLogger{t}}
	l := mustOpen(t, "wal", opts)
	mustSave(t, l, core.HardState{Term: 1, Commit: 5}, run(1, 10, 1))
	if l.mark.value != 10 {
		t.Fatalf("marker %d after a synced save to 10", l.mark.value)
	}
	p, err := l.applySave(core.HardState{}, run(11, 20, 1), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.applySave(core.HardState{Term: 2}, run(8, 12, 2), false); err != nil {
		t.Fatal(err)
	}
	if err := l.finish(p); err != nil {
		t.Fatal(err)
	}
	if l.mark.value != 12 {
		t.Fatalf("marker %d after the append's raise, want 12: the append reached 20, but the truncation after it to 12 may be durable too", l.mark.value)
	}
	mustSave(t, l, core.HardState{}, run(13, 14, 2))
	if l.mark.value != 14 {
		t.Fatalf("marker %d after a synced save to 14", l.mark.value)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	l.Close()
	l = mustOpen(t, "wal", PebbleOptions{FS: crashed, Logger: quietTestLogger{t}})
	defer l.Close()
	checkLog(t, l, 0, 0, cat(run(1, 7, 1), run(8, 14, 2)))
}

// TestNewDirectorySurvivesCrash: a log created in directories that did not
// exist keeps its synced saves through a crash, which drops every
// directory entry not synced — the new directories' included, unless Open
// syncs their parents.
func TestNewDirectorySurvivesCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	l := mustOpen(t, "node1/data/wal", PebbleOptions{FS: mem, Logger: quietTestLogger{t}})
	syncedSaves(t, l, 1, 5)
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	l.Close()
	l = mustOpen(t, "node1/data/wal", PebbleOptions{FS: crashed, Logger: quietTestLogger{t}})
	defer l.Close()
	if last, err := l.LastIndex(); err != nil || last != 5 {
		t.Fatalf("last index after the crash = %d, %v; want 5", last, err)
	}
}

// failingMarkFS fails every fdatasync of the marker file once failing is
// set; everything else passes through.
type failingMarkFS struct {
	vfs.FS
	failing *atomic.Bool
}

func (fs failingMarkFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, cat, opts...)
	if err != nil || !strings.Contains(name, "DURABLE-") {
		return f, err
	}
	return failingMarkFile{File: f, failing: fs.failing}, nil
}

type failingMarkFile struct {
	vfs.File
	failing *atomic.Bool
}

func (f failingMarkFile) SyncData() error {
	if f.failing.Load() {
		return errors.New("injected marker fsync failure")
	}
	return f.File.SyncData()
}

// TestMarkerFailureFailsTheLog: when the trailing marker's fsync fails,
// the marker on disk may hold the new value or the old, so the log fails
// as after a failed WAL fsync: later saves, and above all a save that
// shortens the log (which could otherwise be applied under a marker above
// it), are refused, naming the marker.
func TestMarkerFailureFailsTheLog(t *testing.T) {
	for _, exact := range []bool{false, true} {
		failing := new(atomic.Bool)
		fs := failingMarkFS{FS: vfs.NewMem(), failing: failing}
		l := mustOpen(t, "db", PebbleOptions{FS: fs, ExactMarker: exact, MarkerLag: time.Millisecond, Logger: quietTestLogger{t}})
		mustSave(t, l, core.HardState{Term: 1, Commit: 2}, run(1, 10, 1))
		// The trailing raise for that save must be done before marker
		// fsyncs fail, or it fails the log before the save below.
		waitMarker(t, l, 10)
		failing.Store(true)
		err := l.Save(core.HardState{Term: 1, Commit: 2}, run(11, 20, 1), true)
		if exact != (err != nil) {
			t.Fatalf("exact=%v: synced save with a failing marker: %v", exact, err)
		}
		// Trailing: the save returned; wait for markLoop's failed raise.
		for deadline := time.Now().Add(10 * time.Second); l.failed.Load() == nil; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("exact=%v: the log did not fail after its marker's fsync failed", exact)
			}
		}
		err = l.Save(core.HardState{Term: 2, Commit: 2}, run(5, 6, 2), true) // a conflict truncation
		if err == nil || !strings.Contains(err.Error(), "durability marker") {
			t.Fatalf("exact=%v: shortening save after a failed marker: %v, want an error naming the durability marker", exact, err)
		}
		_ = l.Close()
	}
}

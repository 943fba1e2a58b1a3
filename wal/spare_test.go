package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// The spare is opt-in: a log opened with the defaults keeps none, and
// its first WAL is an ordinary file.
func TestSpareWALOffByDefault(t *testing.T) {
	o := PebbleOptions{}
	o.EnsureDefaults()
	if o.SpareWAL != 0 {
		t.Errorf("default SpareWAL = %d, want 0", o.SpareWAL)
	}
	dir := t.TempDir()
	l := mustOpen(t, dir, PebbleOptions{Logger: testLogger{t}})
	defer l.Close()
	if l.spare != nil {
		t.Fatal("a spare without SpareWAL")
	}
	if _, err := os.Stat(filepath.Join(dir, spareName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spare file without SpareWAL: %v", err)
	}
}

// On the OS filesystem, a cut in what Pebble wrote into a WAL made from
// the spare is still refused: the zeros after it are no excuse for losing
// synced entries.
func TestSpareWALTruncatedIsRefused(t *testing.T) {
	dir := t.TempDir()
	opts := PebbleOptions{SpareWAL: 1 << 20, Logger: testLogger{t}}
	l := mustOpen(t, dir, opts)
	syncedSaves(t, l, 1, 600)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := liveWAL(t, dir)
	if fi, err := os.Stat(path); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("live WAL %s: %v, want one made from the 1 MiB spare", path, err)
	}
	if err := os.Truncate(path, walWritten(t, path)/2&^4095); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPebble(dir, opts)
	expectLostSynced(t, err, 600)
}

// spareEntries makes entries [lo, hi] with payloads of n bytes naming them.
func spareEntries(lo, hi uint64, n int) []core.Entry {
	ents := make([]core.Entry, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		data := bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), n/8)
		ents = append(ents, core.Entry{Index: i, Term: 1, Data: data})
	}
	return ents
}

// A log with a spare writes its first WAL into the spare, and a crash
// loses no synced entry of it: Pebble's replay reads the zeros after the
// last record as the end of the log. The same holds after memtable
// rotations (WAL files made from spares or recycled), and reopening
// without the spare reads the same log.
func TestSpareWALCrashKeepsSyncedEntries(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: fs, MemTableSize: 1 << 20, SpareWAL: 1 << 20, Logger: testLogger{t}}
	l := mustOpen(t, "wal", opts)
	if l.spare == nil || l.spare.taken.Load() != 1 {
		t.Fatalf("after open: spare %v, want one taken by the first WAL", l.spare)
	}
	var want []core.Entry
	next := uint64(1)
	save := func(batches int) {
		for range batches {
			ents := spareEntries(next, next+39, 1024)
			next += 40
			mustSave(t, l, core.HardState{Term: 1, Commit: next - 1}, ents)
			want = append(want, ents...)
		}
	}
	recover := func(what string, crashed *vfs.MemFS) {
		t.Helper()
		for _, spare := range []uint64{1 << 20, 0} {
			o := opts
			o.FS, o.SpareWAL = crashed, spare
			r := mustOpen(t, "wal", o)
			got := readState(t, r)
			if !reflect.DeepEqual(got.ents, want) {
				t.Errorf("%s, spare %d: recovered %s, want entries (0, %d]", what, spare, got, len(want))
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 160 KiB: all in the first WAL, the spare, before its first rotation
	// (the first memtable is 256 KiB).
	save(4)
	recover("in the spare", fs.CrashClone(vfs.CrashCloneCfg{})) // synced data only
	// 6 MiB more: many rotations.
	save(150)
	recover("after rotations", fs.CrashClone(vfs.CrashCloneCfg{}))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// Open deletes an unfinished spare and replaces one too short; the spare
// it leaves is whole: SpareWAL bytes of zeros.
func TestSpareWALOpenRepairs(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("wal", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{spareTmpName: "half built", spareName: "short"} {
		f, err := fs.Create(fs.PathJoin("wal", name), vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A large memtable: the first WAL takes the spare built at open, and
	// the rebuild after it is waited for by Close.
	l := mustOpen(t, "wal", PebbleOptions{FS: fs, SpareWAL: 1 << 20, Logger: testLogger{t}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, tmpErr := fs.Stat(fs.PathJoin("wal", spareTmpName))
	_, spareErr := fs.Stat(fs.PathJoin("wal", spareName))
	if tmpErr == nil || spareErr != nil {
		// Close stops a rebuild under way (the first WAL took the spare
		// built at open), which may leave a half-built spare or none;
		// the next open, of a store that now exists, deletes the one and
		// makes a whole spare after its checks, so open again and look
		// once more.
		l = mustOpen(t, "wal", PebbleOptions{FS: fs, SpareWAL: 1 << 20, Logger: testLogger{t}})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	names, err := fs.List("wal")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n != spareName && !isPebbleFile(n) {
			t.Errorf("unexpected file %s in %v", n, names)
		}
	}
	f, err := fs.Open(fs.PathJoin("wal", spareName))
	if err != nil {
		t.Fatalf("no spare after open and close: %v (files %v)", err, names)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1<<20 || !bytes.Equal(data, make([]byte, 1<<20)) {
		t.Errorf("spare: %d bytes, want %d zeros", len(data), 1<<20)
	}
}

// isPebbleFile reports whether name is one of Pebble's own files or the
// log's marker.
func isPebbleFile(name string) bool {
	for _, suffix := range []string{".log", ".sst", ".blob"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	for _, prefix := range []string{"MANIFEST-", "OPTIONS-", "CURRENT", "LOCK", "marker.", "DURABLE-"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// An existing store opened with a spare for the first time gets it once
// the log has passed its checks: its leftover half-built spare is gone and
// a whole one is ready for the next WAL, and the log reads as before.
func TestSpareWALAddedToExistingStore(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, "wal", PebbleOptions{FS: fs, Logger: testLogger{t}})
	ents := spareEntries(1, 40, 1024)
	mustSave(t, l, core.HardState{Term: 1, Commit: 40}, ents)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(fs.PathJoin("wal", spareTmpName), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, "wal", PebbleOptions{FS: fs, SpareWAL: 1 << 20, Logger: testLogger{t}})
	if n := l.spare.taken.Load(); n != 0 {
		t.Errorf("the live WAL of an existing store took %d spares, want 0: the spare comes after the checks", n)
	}
	if _, err := fs.Stat(fs.PathJoin("wal", spareTmpName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover %s after open: %v", spareTmpName, err)
	}
	if fi, err := fs.Stat(fs.PathJoin("wal", spareName)); err != nil || fi.Size() != 1<<20 {
		t.Errorf("spare after open: %v, %v; want %d bytes", fi, err, 1<<20)
	}
	if got := readState(t, l); !reflect.DeepEqual(got.ents, ents) {
		t.Errorf("recovered %s, want entries (0, 40]", got)
	}
	// Some memtables later (256 KiB, 512 KiB, ...; a rotation takes a
	// recycled WAL file first, when Pebble has one), a new WAL takes the
	// spare.
	more := spareEntries(41, 3040, 1024)
	for i := 0; i < len(more); i += 40 {
		mustSave(t, l, core.HardState{Term: 1, Commit: more[i+39].Index}, more[i:i+40])
	}
	if n := l.spare.taken.Load(); n < 1 {
		t.Errorf("after 3 MiB more, %d WAL files were made from the spare, want at least 1", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// expectNoSpare fails t if dir holds a spare WAL of size bytes, one being
// built, or a file as large (a WAL Pebble made from a spare).
func expectNoSpare(t *testing.T, fs vfs.FS, dir string, size int64) {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		fi, err := fs.Stat(fs.PathJoin(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if n == spareName || n == spareTmpName || fi.Size() >= size {
			t.Errorf("%s holds %s (%d bytes): a spare WAL was written into it", dir, n, fi.Size())
		}
	}
}

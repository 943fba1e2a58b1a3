package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// flipStored flips one byte of the data of group's entry at index, in place
// in Pebble at dir: damage Pebble's own checksums cannot see, since it
// happened above them.
func flipStored(t *testing.T, dir string, group, index uint64) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebbleFormat, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	key := entryKey(group, index)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Clone(v)
	closer.Close()
	v[len(v)-1] ^= 0x10
	if err := db.Set(key, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func expectCorruptAt(t *testing.T, err error, index uint64, what string) {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Index != index ||
		!strings.Contains(err.Error(), "entry "+uintString(index)) {
		t.Fatalf("%s: err = %v; want ErrCorrupt naming entry %d", what, err, index)
	}
}

func uintString(v uint64) string { return strings.TrimSpace(strings.Repeat(" ", 0) + formatUint(v)) }

func formatUint(v uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		if v /= 10; v == 0 {
			return string(b)
		}
	}
}

// TestCorruptEntryIsReportedAndContained damages entry 5 of 10 in a real
// directory: every read that reaches it fails with ErrCorrupt naming index
// 5, and everything else keeps working, including overwriting it.
func TestCorruptEntryIsReportedAndContained(t *testing.T) {
	dir := t.TempDir()
	opts := PebbleOptions{GroupID: 3}
	l := mustOpen(t, dir, opts)
	all := run(1, 10, 1)
	mustSave(t, l, core.HardState{Term: 1, Commit: 4}, all)
	l.Close()
	flipStored(t, dir, 3, 5)

	l = mustOpen(t, dir, opts)
	defer l.Close()
	_, err := l.Entries(5, 6, 1<<20)
	expectCorruptAt(t, err, 5, "Entries(5, 6)")
	_, err = l.Entries(1, 11, 1<<20)
	expectCorruptAt(t, err, 5, "Entries(1, 11)")
	_, err = l.Term(5)
	expectCorruptAt(t, err, 5, "Term(5)")

	// The rest is unaffected.
	for _, r := range [][2]uint64{{1, 5}, {6, 11}} {
		got, err := l.Entries(r[0], r[1], 1<<20)
		if err != nil || len(got) != int(r[1]-r[0]) || !bytes.Equal(got[0].Data, all[r[0]-1].Data) {
			t.Fatalf("Entries(%d, %d) = %d entries, %v", r[0], r[1], len(got), err)
		}
	}
	// A byte limit that stops before the damage reads fine.
	if got, err := l.Entries(3, 11, 2*all[0].Size()); err != nil || len(got) != 2 {
		t.Fatalf("Entries(3, 11) cut before 5 = %d entries, %v", len(got), err)
	}
	if term, err := l.Term(4); err != nil || term != 1 {
		t.Fatalf("Term(4) = %d, %v", term, err)
	}
	if hs, _, err := l.InitialState(); err != nil || hs.Commit != 4 {
		t.Fatalf("InitialState = %+v, %v", hs, err)
	}
	mustSave(t, l, core.HardState{}, run(11, 12, 1))
	// A leader's overwrite replaces the damaged entry.
	mustSave(t, l, core.HardState{}, run(5, 6, 2))
	checkLog(t, l, 0, 0, cat(run(1, 4, 1), run(5, 6, 2)))
}

// TestCorruptLastEntryFailsOpen: open reads the last entry (its term seeds
// the term cache), so damage there is reported at open, naming the index.
func TestCorruptLastEntryFailsOpen(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, PebbleOptions{})
	mustSave(t, l, core.HardState{}, run(1, 7, 1))
	l.Close()
	flipStored(t, dir, 0, 7)
	_, err := OpenPebble(dir, PebbleOptions{})
	expectCorruptAt(t, err, 7, "open")
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("open error %q does not name the directory", err)
	}
}

// TestDamagedSSTableIsAnError flips a byte in the middle of a flushed
// sstable. Pebble's block checksums see that first; the error must still be
// ErrCorrupt, at open or at the read, and never a panic or an empty log.
func TestDamagedSSTableIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, PebbleOptions{})
	mustSave(t, l, core.HardState{}, run(1, 200, 1))
	l.Close()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebbleFormat, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable after flush")
	}
	var biggest string
	var size int64
	for _, p := range ssts {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			biggest, size = p, fi.Size()
		}
	}
	b, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/4] ^= 0xff // inside the first data block, away from the footer
	if err := os.WriteFile(biggest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err = OpenPebble(dir, PebbleOptions{FS: vfs.Default, Logger: testLogger{t}})
	if err == nil {
		defer l.Close()
		_, err = l.Entries(1, 201, 1<<30)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

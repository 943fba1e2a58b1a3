package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/internal/configtest"
)

// PebbleOptions follows the config contract (internal/configtest), and
// OpenPebble refuses bad options with every problem and the directory.
func TestOptions_ConfigShape(t *testing.T) {
	fs := vfs.NewMem()
	bad := PebbleOptions{MemTableSize: 1000, SpareWAL: 1000, CacheSize: -1, WALMinSyncInterval: -1, TermCacheRuns: -5, MarkerLag: 2 * time.Second}
	want := []string{"MemTableSize 1000", "SpareWAL 1000", "CacheSize -1", "WALMinSyncInterval -1ns", "TermCacheRuns -5", "MarkerLag 2s"}
	configtest.Check(t, configtest.Case[PebbleOptions]{
		Sentinel:       ErrInvalidOptions,
		EnsureDefaults: (*PebbleOptions).EnsureDefaults,
		Validate:       func(o *PebbleOptions) error { return o.Validate() },
		Required:       func() PebbleOptions { return PebbleOptions{} },
		Set: func() PebbleOptions {
			return PebbleOptions{GroupID: 3, FS: fs, MemTableSize: 2 << 20, SpareWAL: 3 << 20, CacheSize: 4 << 20,
				WALMinSyncInterval: time.Millisecond, TermCacheRuns: 16, ExactMarker: true, MarkerLag: 3 * time.Millisecond, Logger: pebble.DefaultLogger}
		},
		Bad:  func() PebbleOptions { return bad },
		Want: want,
	})
	_, err := OpenPebble("unused", bad)
	if !errors.Is(err, ErrInvalidOptions) || len(configtest.Violations(errors.Unwrap(err))) != len(want) || !strings.Contains(err.Error(), "unused") {
		t.Errorf("OpenPebble(bad options) = %v, want %d violations naming the directory", err, len(want))
	}
}

// writeRaw puts key/value pairs straight into the Pebble instance at dir,
// bypassing the wal package, as another program (or a bug) would.
func writeRaw(t *testing.T, fs vfs.FS, dir string, kvs ...[]byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, FormatMajorVersion: pebbleFormat, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kvs); i += 2 {
		if err := db.Set(kvs[i], kvs[i+1], pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesOtherFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		kvs  [][]byte
		want string
	}{
		{"newer version", [][]byte{formatKey, binary.AppendUvarint([]byte(formatMagic), formatVersion+1)}, "version 3"},
		{"foreign marker", [][]byte{formatKey, []byte("something else")}, "not a wal"},
		{"data without marker", [][]byte{[]byte("user key"), []byte("v")}, "no wal format marker"},
	} {
		for _, spare := range []uint64{0, 1 << 20} {
			t.Run(fmt.Sprintf("%s/spare=%d", tc.name, spare), func(t *testing.T) {
				fs := vfs.NewMem()
				writeRaw(t, fs, "db", tc.kvs...)
				l, err := OpenPebble("db", PebbleOptions{FS: fs, SpareWAL: spare, Logger: testLogger{t}})
				if err == nil {
					l.Close()
					t.Fatal("open succeeded")
				}
				if !errors.Is(err, ErrFormatVersion) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "db") {
					t.Fatalf("err = %v; want ErrFormatVersion mentioning %q and the directory", err, tc.want)
				}
				// A refused directory gets no spare WAL written into it.
				expectNoSpare(t, fs, "db", 1<<20)
				// The refused open released the directory again.
				writeRaw(t, fs, "db")
			})
		}
	}
}

func TestOpenTwiceIsLocked(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"os", vfs.Default, t.TempDir()},
		{"mem", vfs.NewMem(), "wal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := PebbleOptions{FS: tc.fs}
			l := mustOpen(t, tc.dir, opts)
			_, err := OpenPebble(tc.dir, opts)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), tc.dir) {
				t.Fatalf("second open: err = %v; want ErrLocked naming the directory", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			mustOpen(t, tc.dir, opts).Close()
		})
	}
}

// TestOpenLockedByAnotherProcess holds the directory open in a child process
// (this test binary, running TestLockHolderProcess) and opens it here.
func TestOpenLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WAL_TEST_LOCK_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %q, %v", line, err)
	}
	_, err = OpenPebble(dir, PebbleOptions{})
	stdin.Close() // lets the child close its log and exit
	if werr := cmd.Wait(); werr != nil {
		t.Errorf("child: %v", werr)
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("open while another process holds it: err = %v, want ErrLocked", err)
	}
	mustOpen(t, dir, PebbleOptions{}).Close()
}

// TestLockHolderProcess is the child of TestOpenLockedByAnotherProcess; run
// directly it does nothing.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv("WAL_TEST_LOCK_DIR")
	if dir == "" {
		t.Skip("only runs as the child of TestOpenLockedByAnotherProcess")
	}
	l := mustOpen(t, dir, PebbleOptions{})
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGroupsAreIsolated stores two groups in one directory (one after the
// other: a shared instance comes later) and checks that truncating and
// compacting one leaves the other alone.
func TestGroupsAreIsolated(t *testing.T) {
	fs := vfs.NewMem()
	a := mustOpen(t, "db", PebbleOptions{FS: fs, GroupID: 1})
	mustSave(t, a, core.HardState{Term: 1}, run(1, 10, 1))
	a.Close()
	b := mustOpen(t, "db", PebbleOptions{FS: fs, GroupID: 2})
	checkLog(t, b, 0, 0, nil)
	mustSave(t, b, core.HardState{Term: 5}, run(1, 4, 5))
	mustSave(t, b, core.HardState{}, run(2, 2, 6))
	if err := b.SaveSnapshot(core.SnapshotMeta{Index: 50, Term: 7}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	a = mustOpen(t, "db", PebbleOptions{FS: fs, GroupID: 1})
	defer a.Close()
	checkLog(t, a, 0, 0, run(1, 10, 1))
	if hs, _, _ := a.InitialState(); hs.Term != 1 {
		t.Fatalf("group 1 hard state = %+v", hs)
	}
}

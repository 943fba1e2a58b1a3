package wal

import (
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// TestConcurrentSyncedSaves has several goroutines save (synced) at once,
// each appending after whatever LastIndex it sees, so their saves interleave
// with Pebble's group commit and sometimes overwrite each other. Every Save
// returned, so a crash that keeps only synced data must give back exactly
// the log as it is in memory.
func TestConcurrentSyncedSaves(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := PebbleOptions{FS: fs, Logger: testLogger{t}}
	l := mustOpen(t, "wal", opts)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				last, err := l.LastIndex()
				if err == nil {
					err = l.Save(core.HardState{Term: 1, Commit: last}, run(last+1, last+1+uint64(i%4), 1), true)
				}
				if err != nil && !errors.Is(err, ErrGap) { // another goroutine may truncate below our start
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	want := readState(t, l)
	if len(want.ents) < 40 {
		t.Fatalf("only %d entries after 160 appends", len(want.ents))
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // synced data only
	l.Close()
	opts.FS = crashed
	l = mustOpen(t, "wal", opts)
	defer l.Close()
	if got := readState(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("after crash: %v, want %v", got, want)
	}
}

// TestCloseDuringSaves closes the log while goroutines are saving: each
// Save either succeeds or reports ErrClosed, nothing panics (Pebble panics
// on a write to a closed DB), and the log reopens with what was saved.
func TestCloseDuringSaves(t *testing.T) {
	fs := vfs.NewMem()
	opts := PebbleOptions{FS: fs, Logger: testLogger{t}}
	l := mustOpen(t, "wal", opts)
	var wg sync.WaitGroup
	started := make(chan struct{}, 3)
	errc := make(chan error, 3)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i == 5 {
					started <- struct{}{}
				}
				err := l.Save(core.HardState{Term: 1}, nil, true)
				if _, rerr := l.Term(0); err == nil {
					err = rerr
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for g := 0; g < 3; g++ {
		<-started
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	l = mustOpen(t, "wal", opts)
	defer l.Close()
	if hs, _, _ := l.InitialState(); hs.Term != 1 {
		t.Fatalf("hard state after reopen = %+v", hs)
	}
}

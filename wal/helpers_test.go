package wal

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// impl is one Log implementation under the conformance suite.
type impl struct {
	name string
	// open returns a fresh, empty log, closed when the test ends.
	open func(t *testing.T) *handle
}

// handle holds the log under test; reopen (nil when the implementation
// keeps nothing across a close) closes it and opens it again.
type handle struct {
	Log
	reopen func(t *testing.T)
}

func impls() []impl {
	return []impl{
		{name: "memory", open: func(t *testing.T) *handle {
			h := &handle{Log: NewMemory()}
			t.Cleanup(func() { _ = h.Close() })
			return h
		}},
		{name: "pebble", open: func(t *testing.T) *handle {
			fs := vfs.NewMem()
			opts := PebbleOptions{FS: fs, GroupID: 7, MemTableSize: 1 << 20}
			h := &handle{Log: mustOpen(t, "wal", opts)}
			h.reopen = func(t *testing.T) {
				t.Helper()
				if err := h.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				h.Log = mustOpen(t, "wal", opts)
			}
			t.Cleanup(func() { _ = h.Close() })
			return h
		}},
	}
}

func mustOpen(t *testing.T, dir string, opts PebbleOptions) *PebbleLog {
	t.Helper()
	l, err := OpenPebble(dir, opts)
	if err != nil {
		t.Fatalf("OpenPebble(%s): %v", dir, err)
	}
	return l
}

// run makes entries [lo, hi] of the given term with data that names them.
func run(lo, hi, term uint64) []core.Entry {
	var ents []core.Entry
	for i := lo; i <= hi; i++ {
		ents = append(ents, core.Entry{Index: i, Term: term, Data: []byte(fmt.Sprintf("entry %d term %d", i, term))})
	}
	return ents
}

func cat(runs ...[]core.Entry) []core.Entry {
	var out []core.Entry
	for _, r := range runs {
		out = append(out, r...)
	}
	return out
}

func mustSave(t *testing.T, l Log, hs core.HardState, ents []core.Entry) {
	t.Helper()
	if err := l.Save(hs, ents, true); err != nil {
		t.Fatalf("Save(%+v, %d entries): %v", hs, len(ents), err)
	}
}

// checkLog asserts that l holds exactly the snapshot index snapIndex (with
// snapTerm) followed by want, through every read method.
func checkLog(t *testing.T, l Log, snapIndex, snapTerm uint64, want []core.Entry) {
	t.Helper()
	first, err := l.FirstIndex()
	if err != nil || first != snapIndex+1 {
		t.Fatalf("FirstIndex = %d, %v; want %d", first, err, snapIndex+1)
	}
	last, err := l.LastIndex()
	if wantLast := snapIndex + uint64(len(want)); err != nil || last != wantLast {
		t.Fatalf("LastIndex = %d, %v; want %d", last, err, wantLast)
	}
	got, err := l.Entries(first, last+1, 1<<62)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", first, last+1, err)
	}
	if len(want) == 0 {
		want = nil
	}
	if len(got) == 0 {
		got = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Entries(%d, %d):\n got %v\nwant %v", first, last+1, got, want)
	}
	if term, err := l.Term(snapIndex); err != nil || term != snapTerm {
		t.Fatalf("Term(%d) (snapshot) = %d, %v; want %d", snapIndex, term, err, snapTerm)
	}
	for _, e := range want {
		if term, err := l.Term(e.Index); err != nil || term != e.Term {
			t.Fatalf("Term(%d) = %d, %v; want %d", e.Index, term, err, e.Term)
		}
	}
	if _, err := l.Term(last + 1); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("Term(%d) past the end: err = %v, want ErrUnavailable", last+1, err)
	}
	if snapIndex > 0 {
		if _, err := l.Term(snapIndex - 1); !errors.Is(err, core.ErrCompacted) {
			t.Fatalf("Term(%d) below the snapshot: err = %v, want ErrCompacted", snapIndex-1, err)
		}
	}
}

// testLogger sends Pebble's messages to the test log instead of stderr.
type testLogger struct{ t testing.TB }

func (l testLogger) Infof(format string, args ...any)  { l.t.Logf(format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf(format, args...) }
func (l testLogger) Fatalf(format string, args ...any) { l.t.Fatalf(format, args...) }

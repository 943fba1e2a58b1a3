package etcd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func ent(i, term uint64, data string) *pb.Entry {
	return &pb.Entry{Index: &i, Term: &term, Data: []byte(data)}
}

func hardState(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
}

// writeLog saves the given batches into a fresh log in dir and closes it.
func writeLog(t *testing.T, dir string, saves func(l *walLog)) {
	t.Helper()
	l, _, err := openLog(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	saves(l)
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
}

func mustSave(t *testing.T, l *walLog, hs *pb.HardState, ents ...*pb.Entry) {
	t.Helper()
	if err := l.save(hs, ents, true); err != nil {
		t.Fatal(err)
	}
}

func indexes(ents []*pb.Entry) (out []uint64) {
	for _, e := range ents {
		out = append(out, e.GetIndex())
	}
	return out
}

// A later entry at an index replaces it and everything after it; the last
// hard state wins.
func TestLogReplayOverwrites(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, func(l *walLog) {
		mustSave(t, l, hardState(1, 1, 0), ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c"))
		mustSave(t, l, hardState(2, 2, 1), ent(2, 2, "B"))
		mustSave(t, l, nil, ent(3, 2, "C"), ent(4, 2, "D"))
	})
	l, rec, err := openLog(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if got := indexes(rec.entries); len(got) != 4 || got[3] != 4 {
		t.Fatalf("replayed indexes %v, want [1 2 3 4]", got)
	}
	if d := string(rec.entries[1].GetData()); d != "B" || rec.entries[1].GetTerm() != 2 {
		t.Fatalf("entry 2 = %q term %d, want the overwrite \"B\" term 2", d, rec.entries[1].GetTerm())
	}
	if rec.hs.GetTerm() != 2 || rec.hs.GetCommit() != 1 {
		t.Fatalf("hard state %v, want the last one (term 2, commit 1)", rec.hs)
	}
	if rec.repaired != 0 {
		t.Fatalf("repaired %d bytes of an intact log", rec.repaired)
	}
}

// What a crash can leave at the end — a record cut short, zero-filled
// blocks — is cut off, keeping everything before it; the log then takes
// appends again.
func TestLogTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(good []byte) []byte
	}{
		{"short header", func(g []byte) []byte { return append(g, 1, 2, 3) }},
		{"short payload", func(g []byte) []byte {
			rec, _ := appendRecord(nil, kindEntry, ent(3, 1, "cut short"))
			return append(g, rec[:len(rec)-4]...)
		}},
		{"zero blocks", func(g []byte) []byte { return append(g, make([]byte, 4096)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLog(t, dir, func(l *walLog) { mustSave(t, l, hardState(1, 1, 2), ent(1, 1, "a"), ent(2, 1, "b")) })
			path := filepath.Join(dir, logName)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.tail(good), 0o644); err != nil {
				t.Fatal(err)
			}
			l, rec, err := openLog(dir, false)
			if err != nil {
				t.Fatalf("open after a torn tail: %v", err)
			}
			if got := indexes(rec.entries); len(got) != 2 || rec.hs.GetCommit() != 2 {
				t.Fatalf("recovered %v commit %d, want [1 2] commit 2", got, rec.hs.GetCommit())
			}
			if rec.repaired == 0 {
				t.Fatal("the torn tail was not reported as repaired")
			}
			mustSave(t, l, nil, ent(3, 1, "c"))
			_ = l.close()
			l, rec, err = openLog(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			if got := indexes(rec.entries); len(got) != 3 || rec.repaired != 0 {
				t.Fatalf("after repair and append: %v (repaired %d), want [1 2 3] and nothing to repair", got, rec.repaired)
			}
		})
	}
}

// Damage a crash cannot explain stops the node with ErrCorrupt instead of
// silently shortening the log.
func TestLogCorruption(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, l *walLog)
		edit  func(b []byte) []byte
	}{
		{"flipped byte mid-log", func(t *testing.T, l *walLog) {
			mustSave(t, l, hardState(1, 1, 1), ent(1, 1, "aaaa"))
			mustSave(t, l, nil, ent(2, 1, "bbbb"))
		}, func(b []byte) []byte { b[12] ^= 0xff; return b }},
		{"flipped byte in the last record", func(t *testing.T, l *walLog) {
			mustSave(t, l, hardState(1, 1, 1), ent(1, 1, "aaaa"))
		}, func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }},
		{"commit past the log", func(t *testing.T, l *walLog) {
			mustSave(t, l, hardState(1, 1, 5), ent(1, 1, "a"))
		}, func(b []byte) []byte { return b }},
		{"gap in the indexes", func(t *testing.T, l *walLog) {
			mustSave(t, l, nil, ent(1, 1, "a"), ent(3, 1, "c"))
		}, func(b []byte) []byte { return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLog(t, dir, func(l *walLog) { tc.write(t, l) })
			path := filepath.Join(dir, logName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.edit(b), 0o644); err != nil {
				t.Fatal(err)
			}
			l, _, err := openLog(dir, false)
			if !errors.Is(err, ErrCorrupt) {
				if l != nil {
					_ = l.close()
				}
				t.Fatalf("open = %v, want ErrCorrupt", err)
			}
		})
	}
}

// A second opener of a live log is refused.
func TestLogLocked(t *testing.T) {
	dir := t.TempDir()
	l, _, err := openLog(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if l2, _, err := openLog(dir, false); err == nil {
		_ = l2.close()
		t.Fatal("a second open of a locked log succeeded")
	}
}

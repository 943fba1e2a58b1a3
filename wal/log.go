package wal

import (
	"errors"
	"fmt"

	"github.com/raftbench/raftbench/core"
)

// Log is the durable Raft log: core's read-only Storage view plus the writes
// the runtime makes. All methods are safe for concurrent use; the intended
// pattern is the Raft goroutine reading while a WAL-writer goroutine saves.
//
// The log is the snapshot (SnapshotMeta, possibly empty) followed by the
// entries [FirstIndex, LastIndex], with FirstIndex == SnapshotMeta().Index+1
// at all times, exactly as core.Storage documents.
//
// Entries returned by reads must be treated as read-only: an implementation
// may share their Data with its own state.
type Log interface {
	core.Storage

	// Save stores hs and ents as one atomic write: after a crash either both
	// are there or neither is. An empty hs (hs.IsEmpty()) leaves the stored
	// hard state unchanged.
	//
	// ents must have consecutive indexes and non-decreasing terms, and start
	// at or below LastIndex+1 (a higher start would leave a hole: ErrGap).
	// Every stored entry at ents[0].Index and after is discarded first, which
	// is a follower's conflict truncation. Entries at or below the snapshot
	// index are skipped, not refused: they are already covered.
	//
	// With sync, Save returns only once the write, and every write saved
	// before it, is durable; without sync it may be lost in a crash, but
	// only together with every later save (the log recovers to a prefix of
	// its history). Save does not retain ents or their Data.
	//
	// The stored hard state (hs, or the one before if hs is empty) must not
	// commit past the log's last index after the save: Raft never commits
	// an entry a node does not hold, nor truncates a committed one, so a
	// Save that would is refused with ErrCommitBeyondLast. Open relies on
	// it: a stored commit index past the last entry means entries were lost.
	Save(hs core.HardState, ents []core.Entry, sync bool) error

	// Compact discards the entries up to and including index, recording
	// SnapshotMeta{index, Term(index), conf} as the latest snapshot: a
	// compacted prefix must be covered by a snapshot, or a lagging follower
	// could never catch up. FirstIndex becomes index+1 and Term(index) stays
	// answerable. Compacting at or below the current snapshot is a no-op;
	// index above LastIndex is core.ErrUnavailable. The change is durable
	// when Compact returns.
	Compact(index uint64, conf core.ConfState) error

	// SaveSnapshot records meta as the latest snapshot (one received from a
	// leader, say) and makes the log start after it: entries up to
	// meta.Index are discarded, and if the log does not hold meta.Index with
	// meta.Term every entry is, since they conflict with the snapshot. A
	// snapshot older than the current one is ErrSnapshotOutOfDate, and one
	// that would discard every entry although the stored hard state commits
	// past meta.Index is ErrCommitBeyondLast (see Save). The hard state is
	// left alone; raising Commit is the caller's business. The change is
	// durable when SaveSnapshot returns.
	SaveSnapshot(meta core.SnapshotMeta) error

	// Close releases the log. Saves in flight complete first; every call
	// after Close returns ErrClosed.
	Close() error
}

// Sentinel errors. Each is wrapped with context; test with errors.Is.
var (
	// ErrCorrupt marks stored data that fails its checksum or cannot be
	// decoded (or that Pebble itself reports as corrupt). See CorruptError.
	ErrCorrupt = errors.New("wal: corrupt data")
	// ErrFormatVersion marks a directory written in another format version
	// of this package, or holding Pebble data that is not a wal at all.
	ErrFormatVersion = errors.New("wal: unsupported format version")
	// ErrLocked marks a directory already opened by another process or by
	// another Log in this process.
	ErrLocked = errors.New("wal: directory is locked")
	// ErrGap marks a Save whose entries would leave a hole after LastIndex.
	ErrGap = errors.New("wal: entries leave a gap")
	// ErrInvalidEntries marks a Save whose entries are not a valid run:
	// indexes not consecutive, or terms decreasing.
	ErrInvalidEntries = errors.New("wal: invalid entries")
	// ErrCommitBeyondLast marks a write that would leave the hard state
	// committing an index past the log's last one.
	ErrCommitBeyondLast = errors.New("wal: commit index beyond the last index")
	// ErrSnapshotOutOfDate marks a snapshot older than the current one.
	ErrSnapshotOutOfDate = errors.New("wal: snapshot is older than the current one")
	// ErrClosed marks a call on a closed Log.
	ErrClosed = errors.New("wal: log is closed")
)

// CorruptError describes stored data that failed verification. It matches
// ErrCorrupt under errors.Is; use errors.As to learn which record it was.
type CorruptError struct {
	Group    uint64
	What     string // "entry", "hard state", "snapshot metadata", ...
	Index    uint64 // the entry's index, when HasIndex
	HasIndex bool
	Reason   string
}

// Error names the group, the record and, for an entry, its index.
func (e *CorruptError) Error() string {
	if e.HasIndex {
		return fmt.Sprintf("wal: group %d: %s %d is corrupt: %s", e.Group, e.What, e.Index, e.Reason)
	}
	return fmt.Sprintf("wal: group %d: %s is corrupt: %s", e.Group, e.What, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// checkRun verifies the invariant core.Entry states for a log: consecutive
// indexes and terms that never decrease. It runs once where entries enter
// the log, so the rest of the package can trust them.
func checkRun(ents []core.Entry) error {
	for i := 1; i < len(ents); i++ {
		prev, e := &ents[i-1], &ents[i]
		if e.Index != prev.Index+1 {
			return fmt.Errorf("%w: index %d follows %d", ErrInvalidEntries, e.Index, prev.Index)
		}
		if e.Term < prev.Term {
			return fmt.Errorf("%w: entry %d has term %d below term %d of entry %d",
				ErrInvalidEntries, e.Index, e.Term, prev.Term, prev.Index)
		}
	}
	if n := len(ents); n > 0 && ents[n-1].Index == maxIndex {
		return fmt.Errorf("%w: index %d is reserved", ErrInvalidEntries, uint64(maxIndex))
	}
	if len(ents) > 0 && ents[0].Index == 0 {
		return fmt.Errorf("%w: index 0 is reserved for the empty log", ErrInvalidEntries)
	}
	return nil
}

// prepareAppend trims ents to what a log with the given bounds must store
// and checks that they attach to it. prevTerm returns the term of an index in
// [first-1, last]. It returns the entries to write (possibly none).
func prepareAppend(ents []core.Entry, first, last uint64, prevTerm func(uint64) (uint64, error)) ([]core.Entry, error) {
	if len(ents) == 0 {
		return nil, nil
	}
	if err := checkRun(ents); err != nil {
		return nil, err
	}
	if ents[len(ents)-1].Index < first {
		return nil, nil // all covered by the snapshot
	}
	if ents[0].Index < first {
		ents = ents[first-ents[0].Index:]
	}
	if ents[0].Index > last+1 {
		return nil, fmt.Errorf("%w: entry %d after last index %d", ErrGap, ents[0].Index, last)
	}
	pt, err := prevTerm(ents[0].Index - 1)
	if err != nil {
		return nil, err
	}
	if ents[0].Term < pt {
		return nil, fmt.Errorf("%w: entry %d has term %d below term %d of entry %d",
			ErrInvalidEntries, ents[0].Index, ents[0].Term, pt, ents[0].Index-1)
	}
	return ents, nil
}

// checkEntriesRange applies core.Storage's bounds rules for Entries. The
// sentinels are returned bare, as core.MemoryStorage does, so a caller that
// compares with == works as well as one that uses errors.Is.
func checkEntriesRange(lo, hi, first, last uint64) error {
	if lo < first {
		return core.ErrCompacted
	}
	if hi > last+1 {
		return core.ErrUnavailable
	}
	return nil
}

// checkTermRange applies core.Storage's bounds rules for Term: the entry
// just below FirstIndex (the snapshot's) still answers.
func checkTermRange(i, first, last uint64) error {
	if i+1 < first {
		return core.ErrCompacted
	}
	if i > last {
		return core.ErrUnavailable
	}
	return nil
}

// checkCommit refuses a write after which the hard state would commit past
// the log's last index (see Log.Save).
func checkCommit(commit, last uint64) error {
	if commit > last {
		return fmt.Errorf("%w: the hard state commits index %d, but the log would end at %d", ErrCommitBeyondLast, commit, last)
	}
	return nil
}

// cloneConf returns a deep copy, so callers never share our slices.
func cloneConf(cs core.ConfState) core.ConfState {
	clone := func(s []uint64) []uint64 {
		if len(s) == 0 {
			return nil
		}
		return append([]uint64(nil), s...)
	}
	return core.ConfState{Voters: clone(cs.Voters), VotersOutgoing: clone(cs.VotersOutgoing), Learners: clone(cs.Learners)}
}

// cloneMeta returns a deep copy of m.
func cloneMeta(m core.SnapshotMeta) core.SnapshotMeta {
	m.Conf = cloneConf(m.Conf)
	return m
}

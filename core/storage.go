package core

import (
	"errors"
	"fmt"
	"slices"
)

// ErrCompacted is returned by Storage when the requested index lies below the
// log's first index: the entries were folded into a snapshot and are gone.
var ErrCompacted = errors.New("core: requested index is compacted")

// ErrUnavailable is returned by Storage when the requested index lies beyond
// the last index it holds.
var ErrUnavailable = errors.New("core: requested entry is unavailable")

// Storage is core's read-only view of the durable log. core never writes to
// it: the runtime persists what Ready hands out (wal.Log does both sides) and
// then tells core with Raft.Persisted.
//
// The log it describes is the snapshot (if any) followed by the entries
// [FirstIndex, LastIndex]. FirstIndex is the snapshot's index + 1, so Term of
// FirstIndex-1 must still answer (with the snapshot's term): the consistency
// check of the first append after a snapshot needs it.
//
// Implementations must be safe to call from the goroutine that owns the Raft
// while another goroutine appends to them.
type Storage interface {
	// InitialState returns the persisted hard state and the membership
	// recorded with the latest snapshot (empty if there is none).
	InitialState() (HardState, ConfState, error)
	// Entries returns the entries [lo, hi), cut to at most maxBytes of
	// Entry.Size, but always at least one entry when lo < hi. It returns
	// ErrCompacted when lo < FirstIndex and ErrUnavailable when hi-1 >
	// LastIndex.
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)
	// Term returns the term of entry i, for FirstIndex-1 <= i <= LastIndex.
	// It returns ErrCompacted below that range and ErrUnavailable above it.
	Term(i uint64) (uint64, error)
	// FirstIndex is the index of the first entry held (snapshot index + 1).
	FirstIndex() (uint64, error)
	// LastIndex is the index of the last entry held, or the snapshot's index
	// when no entry follows it.
	LastIndex() (uint64, error)
	// SnapshotMeta describes the latest snapshot; a zero Index means none.
	SnapshotMeta() (SnapshotMeta, error)
}

// MemoryStorage is a Storage held in memory, with the writes a runtime would
// make. It backs core's own tests and simulator; it is not safe for
// concurrent use.
//
// Invariant: ents[0] is a sentinel whose Index and Term are the snapshot's
// (0, 0 with no snapshot); real entries follow it consecutively.
type MemoryStorage struct {
	hard HardState
	snap SnapshotMeta
	ents []Entry
}

// NewMemoryStorage returns an empty log.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{ents: make([]Entry, 1)}
}

// InitialState implements Storage.
func (ms *MemoryStorage) InitialState() (HardState, ConfState, error) {
	return ms.hard, ms.snap.Conf, nil
}

// SetHardState records hs as durable.
func (ms *MemoryStorage) SetHardState(hs HardState) { ms.hard = hs }

// HardState returns the stored hard state.
func (ms *MemoryStorage) HardState() HardState { return ms.hard }

func (ms *MemoryStorage) firstIndex() uint64 { return ms.ents[0].Index + 1 }
func (ms *MemoryStorage) lastIndex() uint64  { return ms.ents[0].Index + uint64(len(ms.ents)) - 1 }

// FirstIndex implements Storage.
func (ms *MemoryStorage) FirstIndex() (uint64, error) { return ms.firstIndex(), nil }

// LastIndex implements Storage.
func (ms *MemoryStorage) LastIndex() (uint64, error) { return ms.lastIndex(), nil }

// Term implements Storage.
func (ms *MemoryStorage) Term(i uint64) (uint64, error) {
	off := ms.ents[0].Index
	if i < off {
		return 0, ErrCompacted
	}
	if i > ms.lastIndex() {
		return 0, ErrUnavailable
	}
	return ms.ents[i-off].Term, nil
}

// Entries implements Storage.
func (ms *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	off := ms.ents[0].Index
	if lo <= off {
		return nil, ErrCompacted
	}
	if hi > ms.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	return LimitSize(ms.ents[lo-off:hi-off:hi-off], maxBytes), nil
}

// SnapshotMeta implements Storage.
func (ms *MemoryStorage) SnapshotMeta() (SnapshotMeta, error) { return ms.snap, nil }

// Append writes ents, first discarding every stored entry at ents[0].Index
// and after (a follower's conflict truncation). Entries already covered by
// the snapshot are skipped. It fails if ents would leave a hole.
func (ms *MemoryStorage) Append(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ms.firstIndex()
	if last := ents[len(ents)-1].Index; last < first {
		return nil
	}
	if ents[0].Index < first {
		ents = ents[first-ents[0].Index:]
	}
	if ents[0].Index > ms.lastIndex()+1 {
		return fmt.Errorf("core: memory storage: append at %d leaves a hole after %d", ents[0].Index, ms.lastIndex())
	}
	keep := ents[0].Index - ms.ents[0].Index
	if keep == uint64(len(ms.ents)) {
		// Plain append: slices handed out by Entries are capped at their
		// length, so growing in place cannot disturb them.
		ms.ents = append(ms.ents, ents...)
		return nil
	}
	// Truncation: copy the kept prefix so no slice handed out earlier sees
	// its entries overwritten.
	ms.ents = append(slices.Clone(ms.ents[:keep]), ents...)
	return nil
}

// ApplySnapshot replaces the whole log with the snapshot's image.
func (ms *MemoryStorage) ApplySnapshot(meta SnapshotMeta) error {
	if meta.Index < ms.snap.Index {
		return fmt.Errorf("core: memory storage: snapshot %d is older than %d", meta.Index, ms.snap.Index)
	}
	ms.snap = meta
	ms.ents = []Entry{{Index: meta.Index, Term: meta.Term}}
	return nil
}

// Compact discards the entries up to and including index, which must be in
// the log; the term of index stays answerable.
func (ms *MemoryStorage) Compact(index uint64, conf ConfState) error {
	off := ms.ents[0].Index
	if index <= off {
		return nil
	}
	if index > ms.lastIndex() {
		return fmt.Errorf("core: memory storage: compact %d beyond last index %d", index, ms.lastIndex())
	}
	term := ms.ents[index-off].Term
	ms.snap = SnapshotMeta{Index: index, Term: term, Conf: conf}
	rest := ms.ents[index-off+1:]
	ms.ents = append([]Entry{{Index: index, Term: term}}, rest...)
	return nil
}

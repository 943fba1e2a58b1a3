package wal

import (
	"fmt"
	"sync"

	"github.com/raftbench/raftbench/core"
)

// MemoryLog is a Log held in memory: nothing survives the process, and sync
// has no effect. It is the twin of PebbleLog for tests and the benchmark
// baseline that measures Raft without a disk; the conformance suite holds
// both to the same behaviour.
type MemoryLog struct {
	mu     sync.RWMutex
	closed bool
	hard   core.HardState
	snap   core.SnapshotMeta
	// ents[0] is a sentinel carrying the snapshot's index and term (0, 0
	// without one); the real entries follow it consecutively.
	//
	// Invariant: ents[0].Index == snap.Index and ents[i].Index ==
	// snap.Index+i. Entries are replaced by reallocation, never written in
	// place, so a slice handed out by Entries stays valid.
	ents []core.Entry
}

var _ Log = (*MemoryLog)(nil)

// NewMemory returns an empty MemoryLog.
func NewMemory() *MemoryLog {
	return &MemoryLog{ents: make([]core.Entry, 1)}
}

func (m *MemoryLog) firstIndex() uint64 { return m.ents[0].Index + 1 }
func (m *MemoryLog) lastIndex() uint64  { return m.ents[0].Index + uint64(len(m.ents)) - 1 }

// term answers for i in [first-1, last]; the caller checked the range.
func (m *MemoryLog) term(i uint64) uint64 { return m.ents[i-m.ents[0].Index].Term }

// InitialState implements core.Storage.
func (m *MemoryLog) InitialState() (core.HardState, core.ConfState, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return core.HardState{}, core.ConfState{}, ErrClosed
	}
	return m.hard, cloneConf(m.snap.Conf), nil
}

// Entries implements core.Storage.
func (m *MemoryLog) Entries(lo, hi, maxBytes uint64) ([]core.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if err := checkEntriesRange(lo, hi, m.firstIndex(), m.lastIndex()); err != nil {
		return nil, err
	}
	if lo >= hi {
		return nil, nil
	}
	off := m.ents[0].Index
	// The full slice expression caps the result, so a caller's append
	// cannot write into our array.
	return core.LimitSize(m.ents[lo-off:hi-off:hi-off], maxBytes), nil
}

// Term implements core.Storage.
func (m *MemoryLog) Term(i uint64) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if err := checkTermRange(i, m.firstIndex(), m.lastIndex()); err != nil {
		return 0, err
	}
	return m.term(i), nil
}

// FirstIndex implements core.Storage.
func (m *MemoryLog) FirstIndex() (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.firstIndex(), nil
}

// LastIndex implements core.Storage.
func (m *MemoryLog) LastIndex() (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.lastIndex(), nil
}

// SnapshotMeta implements core.Storage.
func (m *MemoryLog) SnapshotMeta() (core.SnapshotMeta, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return core.SnapshotMeta{}, ErrClosed
	}
	return cloneMeta(m.snap), nil
}

// Save implements Log. The entries and their Data are copied, so the caller
// may reuse its buffers, as with PebbleLog.
func (m *MemoryLog) Save(hs core.HardState, ents []core.Entry, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	ents, err := prepareAppend(ents, m.firstIndex(), m.lastIndex(), func(i uint64) (uint64, error) {
		return m.term(i), nil
	})
	if err != nil {
		return err
	}
	newLast, commit := m.lastIndex(), m.hard.Commit
	if len(ents) > 0 {
		newLast = ents[len(ents)-1].Index
	}
	if !hs.IsEmpty() {
		commit = hs.Commit
	}
	if err := checkCommit(commit, newLast); err != nil {
		return err
	}
	if len(ents) > 0 {
		keep := ents[0].Index - m.ents[0].Index
		if keep < uint64(len(m.ents)) {
			// A truncation: copy the kept prefix to a new array rather than
			// overwrite, since readers may hold slices of the old one.
			next := make([]core.Entry, keep, keep+uint64(len(ents)))
			copy(next, m.ents[:keep])
			m.ents = next
		}
		// A plain append only writes past every slice handed out (those are
		// capped at their length), so it may reuse the array.
		m.ents = append(m.ents, copyEntries(ents)...)
	}
	if !hs.IsEmpty() {
		m.hard = hs
	}
	return nil
}

// copyEntries deep-copies ents, with all Data in one allocation.
func copyEntries(ents []core.Entry) []core.Entry {
	out := make([]core.Entry, len(ents))
	buf := make([]byte, 0, core.EntriesSize(ents))
	for i, e := range ents {
		if len(e.Data) > 0 {
			buf = append(buf, e.Data...)
			e.Data = buf[len(buf)-len(e.Data) : len(buf) : len(buf)]
		} else {
			e.Data = nil
		}
		out[i] = e
	}
	return out
}

// Compact implements Log.
func (m *MemoryLog) Compact(index uint64, conf core.ConfState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if index <= m.snap.Index {
		return nil
	}
	if index > m.lastIndex() {
		return fmt.Errorf("wal: compact to %d beyond last index %d: %w", index, m.lastIndex(), core.ErrUnavailable)
	}
	m.setSnapshot(core.SnapshotMeta{Index: index, Term: m.term(index), Conf: conf}, true)
	return nil
}

// SaveSnapshot implements Log.
func (m *MemoryLog) SaveSnapshot(meta core.SnapshotMeta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if meta.Index < m.snap.Index {
		return fmt.Errorf("wal: snapshot at %d, have %d: %w", meta.Index, m.snap.Index, ErrSnapshotOutOfDate)
	}
	keep := meta.Index <= m.lastIndex() && m.term(meta.Index) == meta.Term
	if !keep {
		if err := checkCommit(m.hard.Commit, meta.Index); err != nil {
			return err
		}
	}
	m.setSnapshot(meta, keep)
	return nil
}

// setSnapshot records meta and drops the entries it covers, and with
// keepTail false every entry after it too.
func (m *MemoryLog) setSnapshot(meta core.SnapshotMeta, keepTail bool) {
	var tail []core.Entry
	if keepTail {
		tail = m.ents[meta.Index-m.ents[0].Index+1:]
	}
	// The new array keeps the old one's capacity: a log compacted at a
	// steady rate grows back to about the size it was, and growing it from
	// the tail's length up again copies the whole log several times over
	// between compactions (growslice was 8% of a --wal memory run's CPU).
	next := make([]core.Entry, 1+len(tail), max(cap(m.ents), 1+len(tail)))
	next[0] = core.Entry{Index: meta.Index, Term: meta.Term}
	copy(next[1:], tail)
	m.ents = next
	m.snap = cloneMeta(meta)
}

// Close implements Log.
func (m *MemoryLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	return nil
}

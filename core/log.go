package core

import (
	"errors"
	"fmt"
)

// unstable is the in-memory tail of the log: entries (and possibly a
// snapshot) that Ready has handed, or will hand, to the runtime to persist,
// and entries that are durable but not yet handed out to apply. Keeping the
// latter saves reading them back from storage (decoding, checksumming) for
// the applier and for replication moments after they were written.
//
// Invariants:
//   - entries[i].Index == offset+i.
//   - With a snapshot, offset == snapshot.Index+1.
//   - offset-1 <= persisted < offsetInProgress <= offset+len(entries):
//     entries up to persisted are durable; entries below offsetInProgress
//     have been handed out in a Ready and are being written.
//   - A slice of entries handed out is never written to again: truncation
//     copies, so the runtime may read a Ready's entries while core moves on.
type unstable struct {
	snapshot           *Snapshot
	snapshotInProgress bool
	entries            []Entry
	offset             uint64
	offsetInProgress   uint64
	persisted          uint64
}

func (u *unstable) lastIndex() (uint64, bool) {
	if n := len(u.entries); n > 0 {
		return u.offset + uint64(n) - 1, true
	}
	if u.snapshot != nil {
		return u.snapshot.Meta.Index, true
	}
	return 0, false
}

func (u *unstable) term(i uint64) (uint64, bool) {
	if i < u.offset {
		if u.snapshot != nil && i == u.snapshot.Meta.Index {
			return u.snapshot.Meta.Term, true
		}
		return 0, false
	}
	last, ok := u.lastIndex()
	if !ok || i > last {
		return 0, false
	}
	return u.entries[i-u.offset].Term, true
}

// truncateAndAppend adds ents, discarding any unstable entries they replace.
func (u *unstable) truncateAndAppend(ents []Entry) {
	first := ents[0].Index
	switch {
	case first == u.offset+uint64(len(u.entries)):
		// Plain append. Capacity beyond len is never handed out, so this
		// cannot disturb a Ready the runtime still holds.
		u.entries = append(u.entries, ents...)
	case first <= u.offset:
		// Replace everything: the runtime rewrites from first. What lies
		// before first is in storage, so durable.
		u.entries = append([]Entry(nil), ents...)
		u.offset = first
		u.offsetInProgress = first
		u.persisted = first - 1
	default:
		// Keep a prefix, copied so that slices handed out stay intact.
		keep := make([]Entry, 0, int(first-u.offset)+len(ents))
		keep = append(keep, u.entries[:first-u.offset]...)
		u.entries = append(keep, ents...)
		u.offsetInProgress = min(u.offsetInProgress, first)
		u.persisted = min(u.persisted, first-1)
	}
}

// stableTo records entries up to index as durable, provided the entry at
// index still has term t (it might have been replaced since the write that
// is being acknowledged began), and that it was handed out to be written.
func (u *unstable) stableTo(index, t uint64) bool {
	got, ok := u.term(index)
	if !ok || got != t || index < u.offset || index >= u.offsetInProgress {
		return false
	}
	u.persisted = max(u.persisted, index)
	return true
}

// shrinkTo drops entries up to index once they are durable (and, as the
// caller ensures, handed out to apply): from then on storage serves them.
func (u *unstable) shrinkTo(index uint64) {
	index = min(index, u.persisted)
	if index < u.offset {
		return
	}
	n := index + 1 - u.offset
	u.entries = u.entries[n:]
	u.offset = index + 1
	if len(u.entries) == 0 {
		u.entries = nil
	}
}

// stableSnapTo forgets the pending snapshot once it is durable.
func (u *unstable) stableSnapTo(index uint64) bool {
	if u.snapshot != nil && u.snapshot.Meta.Index == index && u.snapshotInProgress {
		u.snapshot = nil
		u.snapshotInProgress = false
		u.persisted = max(u.persisted, index)
		return true
	}
	return false
}

// raftLog is the whole log as core sees it: durable storage followed by the
// unstable tail, plus the commit and apply cursors.
//
// Invariants: applying <= committed; committed entries are never removed
// (the caller refuses any truncation at or below committed).
type raftLog struct {
	storage   Storage
	unstable  unstable
	committed uint64
	// applying is the last committed entry handed to the runtime to apply.
	applying uint64
	// err is the first storage failure seen by a lookup that could only
	// answer "no match"; Raft turns it into its sticky error.
	err error
}

// stableIndex is the last index known durable: everything before the
// unstable tail. With a snapshot still pending nothing is known durable.
func (l *raftLog) stableIndex() uint64 {
	if l.unstable.snapshot != nil {
		return 0
	}
	return l.unstable.persisted
}

// shrinkUnstable lets storage serve everything durable and handed out to
// apply.
func (l *raftLog) shrinkUnstable() { l.unstable.shrinkTo(l.applying) }

func newRaftLog(storage Storage, applied uint64) (*raftLog, error) {
	first, err := storage.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("core: storage first index: %w", err)
	}
	last, err := storage.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("core: storage last index: %w", err)
	}
	if first == 0 || last+1 < first {
		return nil, fmt.Errorf("core: storage reports first index %d and last index %d", first, last)
	}
	l := &raftLog{
		storage:  storage,
		unstable: unstable{offset: last + 1, offsetInProgress: last + 1, persisted: last},
	}
	// Everything up to the snapshot is committed and applied by definition.
	l.committed = first - 1
	l.applying = max(first-1, applied)
	return l, nil
}

func (l *raftLog) firstIndex() (uint64, error) {
	if s := l.unstable.snapshot; s != nil {
		return s.Meta.Index + 1, nil
	}
	return l.storage.FirstIndex()
}

func (l *raftLog) lastIndex() uint64 {
	if i, ok := l.unstable.lastIndex(); ok {
		return i
	}
	// The unstable offset tracks storage's last index + 1 whenever the
	// unstable tail is empty, so storage need not be asked.
	return l.unstable.offset - 1
}

// term returns the term of entry i. An index outside the log returns 0 with
// ErrCompacted or ErrUnavailable, which callers treat as "no match"; any
// other error is a storage failure.
func (l *raftLog) term(i uint64) (uint64, error) {
	if t, ok := l.unstable.term(i); ok {
		return t, nil
	}
	if i > l.lastIndex() {
		return 0, ErrUnavailable
	}
	if i >= l.unstable.offset {
		return 0, ErrUnavailable
	}
	if s := l.unstable.snapshot; s != nil && i < s.Meta.Index {
		// Storage may still hold entries the pending snapshot supersedes.
		return 0, ErrCompacted
	}
	if i == 0 {
		return 0, nil
	}
	t, err := l.storage.Term(i)
	if err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("core: storage term of %d: %w", i, err)
		if l.err == nil {
			l.err = err
		}
	}
	return t, err
}

func (l *raftLog) lastTerm() (uint64, error) { return l.term(l.lastIndex()) }

func (l *raftLog) matchTerm(i, t uint64) bool {
	got, err := l.term(i)
	return err == nil && got == t
}

// isUpToDate is the election restriction (§5.4.1): a candidate whose last
// entry is (index, t) may get our vote only if its log is at least as
// up-to-date as ours.
func (l *raftLog) isUpToDate(index, t uint64) (bool, error) {
	lt, err := l.lastTerm()
	if err != nil {
		return false, err
	}
	return t > lt || (t == lt && index >= l.lastIndex()), nil
}

// append adds entries at the end of the unstable tail (possibly replacing a
// conflicting suffix). It returns the new last index.
func (l *raftLog) append(ents []Entry) uint64 {
	if len(ents) > 0 {
		l.unstable.truncateAndAppend(ents)
	}
	return l.lastIndex()
}

// errTruncateCommitted reports a leader asking to overwrite a committed
// entry: impossible under Raft's rules, so it means corruption or a bug.
var errTruncateCommitted = errors.New("core: append would truncate a committed entry")

// maybeAppend is the follower's half of the consistency check: if the log
// holds (prevIndex, prevTerm), ents are written after it, a conflicting
// suffix is discarded, and commit advances to min(commit, last new index).
// It returns the last index covered by the message and whether it matched.
func (l *raftLog) maybeAppend(prevIndex, prevTerm, commit uint64, ents []Entry) (uint64, bool, error) {
	if !l.matchTerm(prevIndex, prevTerm) {
		return 0, false, nil
	}
	lastNew := prevIndex + uint64(len(ents))
	ci, err := l.findConflict(ents)
	if err != nil {
		return 0, false, err
	}
	if ci != 0 {
		if ci <= l.committed {
			return 0, false, fmt.Errorf("%w: conflict at %d, committed %d", errTruncateCommitted, ci, l.committed)
		}
		l.append(ents[ci-ents[0].Index:])
	}
	l.commitTo(min(commit, lastNew))
	return lastNew, true, nil
}

// findConflict returns the index of the first entry of ents that the log does
// not already hold with the same term (0 when it holds them all).
func (l *raftLog) findConflict(ents []Entry) (uint64, error) {
	for i := range ents {
		t, err := l.term(ents[i].Index)
		if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrCompacted) {
			return 0, err
		}
		if errors.Is(err, ErrCompacted) {
			// Below our first index: covered by a snapshot, so committed
			// and necessarily the same entry.
			continue
		}
		if err != nil || t != ents[i].Term {
			return ents[i].Index, nil
		}
	}
	return 0, nil
}

// firstIndexOfTerm walks back from index while the term stays t and returns
// the first index of that run, not going below floor. It produces the
// follower's conflict hint.
func (l *raftLog) firstIndexOfTerm(index, t, floor uint64) (uint64, error) {
	for index > floor {
		pt, err := l.term(index - 1)
		if err != nil {
			if errors.Is(err, ErrCompacted) {
				return index, nil
			}
			return 0, err
		}
		if pt != t {
			break
		}
		index--
	}
	return index, nil
}

// lastIndexOfTerm returns the largest index <= index whose term is t, or
// (0, false) if the log has no entry of term t at or below index (scanning no
// lower than floor). The leader uses it to skip a whole term on rejection.
func (l *raftLog) lastIndexOfTerm(index, t, floor uint64) (uint64, bool, error) {
	for ; index > floor; index-- {
		got, err := l.term(index)
		if err != nil {
			if errors.Is(err, ErrCompacted) {
				return 0, false, nil
			}
			return 0, false, err
		}
		if got == t {
			return index, true, nil
		}
		if got < t {
			return 0, false, nil
		}
	}
	return 0, false, nil
}

func (l *raftLog) commitTo(c uint64) {
	if c > l.committed {
		l.committed = min(c, l.lastIndex())
	}
}

// maybeCommit advances commit to c if the entry at c is of term t (the
// leader's current term): the Figure 8 rule.
func (l *raftLog) maybeCommit(c, t uint64) bool {
	if c > l.committed && l.matchTerm(c, t) {
		l.committed = c
		return true
	}
	return false
}

// slice returns entries [lo, hi) from storage and the unstable tail, cut to
// maxBytes (always at least one entry).
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	first, err := l.firstIndex()
	if err != nil {
		return nil, err
	}
	if lo < first {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	var out []Entry
	if lo < l.unstable.offset {
		stop := min(hi, l.unstable.offset)
		ents, err := l.storage.Entries(lo, stop, maxBytes)
		if err != nil {
			return nil, err
		}
		if uint64(len(ents)) < stop-lo || stop == hi {
			return ents, nil
		}
		out = ents
		lo = stop
	}
	u := l.unstable.entries[lo-l.unstable.offset : hi-l.unstable.offset : hi-l.unstable.offset]
	if out == nil {
		return LimitSize(u, maxBytes), nil
	}
	size := EntriesSize(out)
	for i := range u {
		size += u[i].Size()
		if size > maxBytes {
			u = u[:i]
			break
		}
	}
	if len(u) == 0 {
		return out, nil
	}
	// Combine into a fresh slice: out may alias storage's memory.
	combined := make([]Entry, 0, len(out)+len(u))
	return append(append(combined, out...), u...), nil
}

// restore replaces the whole log with a snapshot's image.
func (l *raftLog) restore(s *Snapshot) {
	l.committed = s.Meta.Index
	l.unstable.snapshot = s
	l.unstable.snapshotInProgress = false
	l.unstable.entries = nil
	l.unstable.offset = s.Meta.Index + 1
	l.unstable.offsetInProgress = s.Meta.Index + 1
	l.unstable.persisted = s.Meta.Index // moot until the snapshot is durable
}

package wal

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/raftbench/raftbench/core"
)

// Save implements Log.
//
// The batch holds the hard state, one Set per entry (encoded in place in the
// batch's buffer, so no copy of the data is made on the way) and, when the
// new run ends before the old last index, one range deletion of the rest.
// Overwritten entries need no deletion: their keys are simply set again.
//
// A synced save is applied to Pebble (memtable and WAL buffer) under wmu and
// then waits for the fsync with no lock held, so saves from several
// goroutines share fsyncs through Pebble's group commit, and readers never
// wait for the disk. The durable-index marker (durable.go) is then raised
// over it, by the log's marker goroutine, or before Save returns with
// PebbleOptions.ExactMarker; concurrent saves share marker writes too.
func (l *PebbleLog) Save(hs core.HardState, ents []core.Entry, sync bool) error {
	p, err := l.applySave(hs, ents, sync)
	if err != nil || p.b == nil {
		return err
	}
	return l.finish(p)
}

// pending is a synced write applied to Pebble whose fsync is still due
// (and, with ExactMarker, its marker raise); b is nil when there is none to
// wait for.
type pending struct {
	b    *pebble.Batch
	seq  uint64 // the write's place in Pebble's order
	last uint64 // the log's last index after it
}

// applySave plans and applies a save under wmu. It returns the write to
// finish when the save is synced.
func (l *PebbleLog) applySave(hs core.HardState, ents []core.Entry, sync bool) (pending, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.usable(); err != nil {
		return pending{}, err
	}
	ents, err := prepareAppend(ents, l.snap.Index+1, l.last, l.termAt)
	if err != nil {
		return pending{}, err
	}
	if len(ents) == 0 && hs.IsEmpty() && !sync {
		return pending{}, nil
	}
	newLast, truncates := l.last, false
	if len(ents) > 0 {
		newLast, truncates = ents[len(ents)-1].Index, ents[0].Index <= l.last
	}
	commit := l.hard.Commit
	if !hs.IsEmpty() {
		commit = hs.Commit
	}
	if err := checkCommit(commit, newLast); err != nil {
		return pending{}, err
	}

	size := 0
	for i := range ents {
		size += keyLen + encodedEntryLen(&ents[i]) + batchRecordOverhead
	}
	b := l.db.NewBatchWithSize(size + 128)
	if !hs.IsEmpty() {
		if err := b.Set(l.hsKey, encodeHardState(l.hsKey, hs), nil); err != nil {
			return pending{}, l.abandon(b, err)
		}
	}
	for i := range ents {
		e := &ents[i]
		op := b.SetDeferred(keyLen, encodedEntryLen(e))
		putKey(op.Key, kindEntry, l.group, e.Index)
		encodeEntry(op.Value, op.Key, e)
		if err := op.Finish(); err != nil {
			return pending{}, l.abandon(b, err)
		}
	}
	if newLast < l.last {
		if err := b.DeleteRange(entryKey(l.group, newLast+1), entryKey(l.group, l.last+1), nil); err != nil {
			return pending{}, l.abandon(b, err)
		}
	}
	if b.Empty() {
		// Nothing to write but a sync was asked for: a synced empty log
		// record makes every earlier unsynced save durable.
		if err := b.LogData(nil, nil); err != nil {
			return pending{}, l.abandon(b, err)
		}
	}

	publish := func() {
		if !hs.IsEmpty() {
			l.hard = hs
		}
		if len(ents) > 0 {
			l.last = newLast
			l.terms.add(ents[0].Index, len(ents), func(k int) uint64 { return ents[k].Term })
		}
	}
	// Readers may see the new state before it is durable; core learns of
	// durability only from the runtime, after Save returns.
	return l.commit(b, sync, truncates, newLast, publish)
}

// batchRecordOverhead bounds the bytes a batch spends per record beyond key
// and value: a kind byte and two varint lengths.
const batchRecordOverhead = 1 + 2*5

// commit applies b and publishes its effect on the in-memory state; newLast
// is the log's last index after it. With exclusive, mu is held across the
// apply too, so no reader checks bounds against the old state while Pebble
// already holds the new keys (needed whenever entries are deleted or
// overwritten). A write that makes the log shorter first lowers the
// durable-index marker (durable.go). The caller holds wmu.
func (l *PebbleLog) commit(b *pebble.Batch, sync, exclusive bool, newLast uint64, publish func()) (pending, error) {
	seq := l.seq + 1
	if newLast < l.last {
		if err := l.shortenMark(seq, newLast); err != nil {
			l.fail(err)
			return pending{}, l.abandon(b, err)
		}
	}
	l.seq = seq
	if exclusive {
		l.mu.Lock()
	}
	var err error
	if sync {
		// ApplyNoSyncWait returns once the batch is in the memtable and
		// queued for the WAL, in commit order; finish then waits for the
		// fsync. Pebble marks it experimental; CockroachDB uses it for this
		// very purpose (Raft log writes). Without it, a synced Commit under
		// wmu would serialise fsyncs and defeat group commit.
		err = l.db.ApplyNoSyncWait(b, pebble.Sync)
	} else {
		err = b.Commit(pebble.NoSync)
	}
	if !exclusive {
		l.mu.Lock()
	}
	if err == nil {
		publish()
	}
	l.mu.Unlock()
	if err != nil {
		// The batch may or may not have reached the WAL: stop here rather
		// than guess.
		l.fail(err)
		return pending{}, l.abandon(b, err)
	}
	if !sync {
		return pending{}, l.abandon(b, nil)
	}
	l.inflight.Add(1) // before wmu is released, so Close waits for it
	return pending{b: b, seq: seq, last: newLast}, nil
}

// finish waits, holding no lock, for p's fsync, then has the marker raised
// over it: before returning with ExactMarker, by markLoop otherwise. Once
// it returns nil the write is durable and reported so.
func (l *PebbleLog) finish(p pending) error {
	defer l.inflight.Done()
	err := p.b.SyncWait()
	if cerr := p.b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.fail(err)
		return fmt.Errorf("wal: %s: sync: %w", l.dir, pebbleErr(err))
	}
	l.noteDurable(p.seq, p.last)
	if !l.exact {
		select {
		case l.markKick <- struct{}{}:
		default: // a wake-up is pending already; its raise covers this write
		}
		return nil
	}
	if err := l.raiseOrFail(); err != nil {
		return fmt.Errorf("wal: %s: %w", l.dir, err)
	}
	return nil
}

// markLoop raises the trailing marker after synced saves, then waits
// markLag before the next raise so the saves of that interval share one
// marker fsync, until Close closes markStop. A failed raise fails the log,
// like a failed fsync: the marker's state on disk is then unknown.
func (l *PebbleLog) markLoop() {
	defer close(l.markStopped)
	lag := time.NewTimer(l.markLag)
	lag.Stop()
	for {
		select {
		case <-l.markStop:
			return
		case <-l.markKick:
		}
		if l.failed.Load() == nil {
			_ = l.raiseOrFail() // the log has failed with it; every call now says so
		}
		lag.Reset(l.markLag)
		select {
		case <-l.markStop:
			lag.Stop()
			return
		case <-lag.C:
		}
	}
}

// shortening is a write that made the log shorter: its place in Pebble's
// order and the log's last index after it.
type shortening struct{ seq, last uint64 }

// raiseOrFail raises the marker and, if that fails, fails the log before
// releasing markMu, so a shortening waiting for markMu sees the failure.
func (l *PebbleLog) raiseOrFail() error {
	l.markMu.Lock()
	defer l.markMu.Unlock()
	err := l.raiseLocked()
	if err != nil {
		err = fmt.Errorf("durability marker: %w", err)
		l.fail(err)
	}
	return err
}

// noteDurable records that write seq, after which the log's last index was
// last, is durable in Pebble (its fsync returned).
func (l *PebbleLog) noteDurable(seq, last uint64) {
	l.durMu.Lock()
	if seq > l.durSeq {
		l.durSeq, l.durLast = seq, last
	}
	l.durMu.Unlock()
}

// raise raises the marker as far as is safe: to the last index after the
// newest write noted durable, but no higher than the last index after any
// later write that shortened the log, since Pebble may have made that one
// durable already. Concurrent callers share one marker write: whoever holds
// markMu covers every write noted durable before it looked.
func (l *PebbleLog) raise() error {
	l.markMu.Lock()
	defer l.markMu.Unlock()
	return l.raiseLocked()
}

// raiseLocked is raise with markMu held.
func (l *PebbleLog) raiseLocked() error {
	l.durMu.Lock()
	d, target := l.durSeq, l.durLast
	l.durMu.Unlock()
	if l.markSeq >= d {
		return nil // an earlier raise covered every write noted durable
	}
	keep := l.shortened[:0]
	for _, s := range l.shortened {
		if s.seq > d {
			target = min(target, s.last)
			keep = append(keep, s)
		}
	}
	l.shortened = keep
	l.markSeq = d
	if target <= l.mark.value {
		return nil
	}
	return l.mark.set(target)
}

// shortenMark records that write seq, about to be applied, shortens the log
// to last, and lowers the marker below last first if it is above: once
// applied, the write may become durable at any moment (even unsynced, by a
// later fsync or a memtable flush). The caller holds wmu.
func (l *PebbleLog) shortenMark(seq, last uint64) error {
	l.durMu.Lock()
	d := l.durSeq
	l.durMu.Unlock()
	l.markMu.Lock()
	defer l.markMu.Unlock()
	// A marker write that failed (markLoop's, since the caller passed
	// usable) leaves the marker's state on disk unknown: refuse to shorten
	// the log under it.
	if err := l.failed.Load(); err != nil {
		return fmt.Errorf("an earlier write failed: %w", *err)
	}
	// Only shortenings after the newest durable write can bound a raise.
	keep := l.shortened[:0]
	for _, s := range l.shortened {
		if s.seq > d {
			keep = append(keep, s)
		}
	}
	l.shortened = append(keep, shortening{seq, last})
	if last < l.mark.value {
		if err := l.mark.set(last); err != nil {
			return fmt.Errorf("lower the durability marker to %d: %w", last, err)
		}
	}
	return nil
}

// abandon closes an unapplied or finished batch and returns err wrapped with
// context (nil stays nil, unless closing fails).
func (l *PebbleLog) abandon(b *pebble.Batch, err error) error {
	cerr := b.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: %s: write: %w", l.dir, pebbleErr(err))
	}
	return nil
}

// Compact implements Log with one synced batch: the new snapshot metadata
// and a range deletion of every entry up to index. A range deletion is a
// single record however long the prefix, and Pebble drops the covered
// entries during flushes and compactions; the space comes back lazily.
func (l *PebbleLog) Compact(index uint64, conf core.ConfState) error {
	p, err := l.applyCompact(index, conf)
	if err != nil || p.b == nil {
		return err
	}
	return l.finish(p)
}

func (l *PebbleLog) applyCompact(index uint64, conf core.ConfState) (pending, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.usable(); err != nil {
		return pending{}, err
	}
	if index <= l.snap.Index {
		return pending{}, nil
	}
	if index > l.last {
		return pending{}, fmt.Errorf("wal: compact to %d beyond last index %d: %w", index, l.last, core.ErrUnavailable)
	}
	term, err := l.termAt(index)
	if err != nil {
		return pending{}, err
	}
	meta := core.SnapshotMeta{Index: index, Term: term, Conf: cloneConf(conf)}
	return l.applySnapshot(meta, true)
}

// SaveSnapshot implements Log with one synced batch, like Compact.
func (l *PebbleLog) SaveSnapshot(meta core.SnapshotMeta) error {
	p, err := l.applySaveSnapshot(cloneMeta(meta))
	if err != nil || p.b == nil {
		return err
	}
	return l.finish(p)
}

func (l *PebbleLog) applySaveSnapshot(meta core.SnapshotMeta) (pending, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.usable(); err != nil {
		return pending{}, err
	}
	if meta.Index < l.snap.Index {
		return pending{}, fmt.Errorf("wal: snapshot at %d, have %d: %w", meta.Index, l.snap.Index, ErrSnapshotOutOfDate)
	}
	keepTail := false
	if meta.Index <= l.last {
		t, err := l.termAt(meta.Index)
		if err != nil {
			return pending{}, err
		}
		keepTail = t == meta.Term
	}
	if !keepTail {
		if err := checkCommit(l.hard.Commit, meta.Index); err != nil {
			return pending{}, err
		}
	}
	return l.applySnapshot(meta, keepTail)
}

// applySnapshot writes meta and deletes the entries it covers, and with
// keepTail false every entry of the group. The caller holds wmu.
func (l *PebbleLog) applySnapshot(meta core.SnapshotMeta, keepTail bool) (pending, error) {
	b := l.db.NewBatch()
	end := uint64(maxIndex)
	if keepTail {
		end = meta.Index + 1
	}
	if err := b.Set(l.snapKey, encodeSnapshotMeta(l.snapKey, meta), nil); err != nil {
		return pending{}, l.abandon(b, err)
	}
	// Start at 0, not at the first index: a range deletion costs the same
	// whatever it spans, and this leaves nothing of the group behind.
	if err := b.DeleteRange(entryKey(l.group, 0), entryKey(l.group, end), nil); err != nil {
		return pending{}, l.abandon(b, err)
	}
	newLast := l.last
	if !keepTail {
		newLast = meta.Index
	}
	return l.commit(b, true, true, newLast, func() {
		l.snap = meta
		if keepTail {
			l.terms.compact(meta.Index + 1)
			return
		}
		l.last = meta.Index
		l.terms.reset(meta.Index, meta.Term)
	})
}

package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftbench/raftbench/core"
)

// PebbleLog is a Log stored in a Pebble instance. See the package comment
// for the key layout, the encoding and the durability contract.
//
// Locking: wmu serialises writers, so each write is planned against the
// state the previous one left and reaches Pebble in the same order. mu
// guards the in-memory state that readers use; a writer takes it only to
// publish its change (and, when it deletes entries, across the Pebble apply
// as well, so no reader sees the old bounds over the new keys). Neither lock
// is held while a write waits for its fsync: readers and the next writer
// proceed, and concurrent synced writes share one fsync (group commit).
type PebbleLog struct {
	dir   string
	group uint64
	db    *pebble.DB
	lock  *pebble.Lock
	// spare keeps the spare WAL file (spare.go); nil without one.
	spare   *spareFS
	hsKey   []byte
	snapKey []byte

	wmu      sync.Mutex
	inflight sync.WaitGroup // synced writes applied but not yet returned
	// seq numbers the writes applied to Pebble, in Pebble's order; guarded
	// by wmu.
	seq uint64

	// The durable-index marker (see durable.go). markMu serialises its
	// writes, is held across their fsync, and guards the fields after it.
	// A write that shortens the log takes it under wmu.
	markMu sync.Mutex
	mark   *durableMark
	// markSeq is the write whose durability the marker reflects.
	markSeq uint64
	// exact is PebbleOptions.ExactMarker. Otherwise markLoop raises the
	// marker at most once per markLag: finish wakes it through markKick
	// (capacity one, so wake-ups arriving while it raises or waits merge
	// into its next raise), and it closes markStopped once Close has closed
	// markStop.
	exact       bool
	markLag     time.Duration
	markKick    chan struct{}
	markStop    chan struct{}
	markStopped chan struct{}
	// shortened lists, in order, the writes after the newest known durable
	// one that made the log shorter (at most one per conflict truncation
	// or replacing snapshot since then).
	shortened []shortening

	// durSeq is the newest write known durable (its fsync returned) and
	// durLast the log's last index after it; guarded by durMu, which is
	// never held across I/O.
	durMu   sync.Mutex
	durSeq  uint64
	durLast uint64

	// failed holds the first write error whose outcome is unknown (a failed
	// commit or fsync). From then on every call returns it: the in-memory
	// state may no longer match the disk, and guessing would risk silent
	// loss.
	failed atomic.Pointer[error]

	mu     sync.RWMutex
	closed bool
	hard   core.HardState
	snap   core.SnapshotMeta
	// last is the last index held; the first is always snap.Index+1.
	//
	// Invariant: Pebble holds exactly the entries [snap.Index+1, last] of
	// this group (after the write in progress, if any, is published).
	last  uint64
	terms *termCache
}

var _ Log = (*PebbleLog)(nil)

// formatVersion is the version of the key layout and encodings. It is
// stored under formatKey when a directory is created and checked on every
// open, so a build never misreads a directory written by another version.
//
// Version 2 adds the durable-index marker file (see durable.go); a version 1
// directory is upgraded in place on open, its marker starting at the log's
// last index then.
const formatVersion = 2

// formatMagic starts the format marker's value; a marker without it means
// the Pebble directory belongs to someone else.
const formatMagic = "raftbench-wal\x00"

// OpenPebble opens (creating it if needed) the log of opts.GroupID in the
// Pebble directory dir. A directory of another format version is
// ErrFormatVersion, one open elsewhere is ErrLocked, and stored data that
// fails verification is ErrCorrupt — including a log that ends before an
// index it once reported durable (see the package comment); every error
// names dir.
func OpenPebble(dir string, opts PebbleOptions) (*PebbleLog, error) {
	l, err := openPebble(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	return l, nil
}

func openPebble(dir string, opts PebbleOptions) (*PebbleLog, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := mkdirAll(opts.FS, dir); err != nil {
		return nil, err
	}
	// Take Pebble's directory lock ourselves, so that its failure, and only
	// its failure, is reported as ErrLocked.
	lock, err := pebble.LockDirectory(dir, opts.FS)
	if err != nil {
		return nil, fmt.Errorf("%w (another process or Log has it open): %w", ErrLocked, err)
	}
	po := opts.pebbleOptions()
	po.Lock = lock
	var spare *spareFS
	if opts.SpareWAL > 0 {
		spare = newSpareFS(opts.FS, dir, int64(opts.SpareWAL), opts.Logger)
	}
	db, err := openDB(dir, po, spare, opts.GroupID)
	if err != nil {
		_ = lock.Close()
		return nil, pebbleErr(err)
	}
	if err := checkTables(db, opts.FS, dir, opts.GroupID); err != nil {
		err = errors.Join(err, db.Close())
		return nil, errors.Join(err, lock.Close())
	}
	l := &PebbleLog{
		dir:     dir,
		group:   opts.GroupID,
		db:      db,
		lock:    lock,
		spare:   spare,
		hsKey:   makeKey(kindHardState, opts.GroupID, 0),
		snapKey: makeKey(kindSnapshot, opts.GroupID, 0),
		terms:   newTermCache(opts.TermCacheRuns),
		exact:   opts.ExactMarker,
		markLag: opts.MarkerLag,
	}
	if err := l.load(opts.FS); err != nil {
		if l.mark != nil {
			err = errors.Join(err, l.mark.close())
		}
		err = errors.Join(err, db.Close())
		return nil, errors.Join(err, lock.Close())
	}
	if spare != nil {
		// The log is ours and whole: now the spare may be written.
		spare.prepare()
		spare.start()
	}
	if !l.exact {
		l.markKick = make(chan struct{}, 1)
		l.markStop = make(chan struct{})
		l.markStopped = make(chan struct{})
		go l.markLoop()
	}
	return l, nil
}

// mkdirAll creates dir and its missing parents, and makes each new
// directory's entry durable by syncing the directory that holds it: Pebble
// syncs dir itself, but a crash soon after creation could otherwise lose
// dir from its parent, and the log with it — marker included, so the log
// would come back empty and look new.
func mkdirAll(fs vfs.FS, dir string) error {
	var missing []string
	for p := dir; ; {
		if _, err := fs.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		parent := fs.PathDir(p)
		if parent == p {
			break
		}
		p = parent
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range missing {
		if err := syncDir(fs, fs.PathDir(p)); err != nil {
			return err
		}
	}
	return nil
}

// openDB opens the Pebble instance at dir so that its live WAL, like every
// WAL it writes later, is in pebbleFormat's WAL format.
//
// Pebble v2.1.7 creates a new store at its oldest supported format, opens
// the store's first WAL, and only then ratchets the format up to the one
// asked for; it picks a WAL's chunk format once, when it creates the WAL.
// So the first WAL of a new directory (and the live WAL after any open that
// ratchets) would be written without FormatWALSyncChunks' sync offsets, the
// information replay needs to tell a torn unsynced tail from damage to
// synced data. Without it a flipped bit anywhere in that WAL reads as the
// end of the log, and every synced save after it is silently dropped — for
// a memtable's worth of writes, or until the first restart. No Pebble option
// makes Open create a store at a given format, so when the stored format is
// older than ours (or there is no store yet) we open once to ratchet, close
// (that WAL is empty: nothing of ours was written to it) and open again:
// the second open reads the ratcheted format from disk before it creates
// its WAL. A crash between the two opens leaves a ratcheted, empty store,
// which the next open takes as it is.
//
// Only the last open runs on spare (when not nil): the first one's WAL is
// deleted by the second, so giving it the spare would waste the spare. The
// spare is built before that open only for a new log — no Pebble store and
// no durability marker of group in dir — which has nothing that could be
// refused, and its first WAL then takes the spare. Any other directory
// gets its spare once the log has passed its checks (openPebble), so the
// spare is never written into a directory Open refuses (a store wiped but
// for its marker is left to the marker check).
func openDB(dir string, po *pebble.Options, spare *spareFS, group uint64) (*pebble.DB, error) {
	desc, err := pebble.Peek(dir, po.FS)
	if err != nil {
		return nil, err
	}
	fresh := !desc.Exists
	if fresh && spare != nil {
		if _, err := po.FS.Stat(po.FS.PathJoin(dir, markFileName(group))); !errors.Is(err, os.ErrNotExist) {
			fresh = false // a marker (or an error reading for one): not new
		}
	}
	if !desc.Exists || desc.FormatMajorVersion < pebbleFormat {
		db, err := pebble.Open(dir, po)
		if err != nil {
			return nil, err
		}
		if err := db.Close(); err != nil {
			return nil, err
		}
	}
	if spare != nil {
		if fresh {
			spare.prepare()
		}
		po.FS = spare
	}
	return pebble.Open(dir, po)
}

// checkTables verifies that every sstable the MANIFEST lists is in dir with
// the size the MANIFEST recorded, so a missing or truncated sstable is
// ErrCorrupt. Pebble's Open can check the same, but reports a failure as a
// plain error that nothing tells from an I/O problem, so pebbleOptions
// turns its check off in favour of this one.
func checkTables(db *pebble.DB, fs vfs.FS, dir string, group uint64) error {
	levels, err := db.SSTables()
	if err != nil {
		// Without properties, SSTables fails only on a table that is not
		// in the directory.
		return &CorruptError{Group: group, What: "sstable set", Reason: err.Error()}
	}
	for level, tables := range levels {
		for _, t := range tables {
			if t.Virtual || t.BackingType != pebble.BackingTypeLocal {
				continue // we make neither; Pebble checks them when read
			}
			name := fmt.Sprintf("%06d.sst", uint64(t.BackingSSTNum))
			fi, err := fs.Stat(fs.PathJoin(dir, name))
			switch {
			case errors.Is(err, os.ErrNotExist):
				return &CorruptError{Group: group, What: "sstable " + name, Reason: fmt.Sprintf("missing (level %d)", level)}
			case err != nil:
				return err
			case uint64(fi.Size()) != t.Size:
				return &CorruptError{Group: group, What: "sstable " + name, Reason: fmt.Sprintf(
					"%d bytes on disk, %d in the MANIFEST (level %d)", fi.Size(), t.Size, level)}
			}
		}
	}
	return nil
}

// pebbleErr marks Pebble's own corruption reports as ErrCorrupt too, so
// callers need one test for "the data is damaged".
func pebbleErr(err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// load checks the format marker, reads the group's state into memory and
// opens the durable-index marker, refusing a log that ends before the index
// the marker says was durable.
func (l *PebbleLog) load(fs vfs.FS) error {
	ver, err := l.checkFormat()
	if err != nil {
		return err
	}
	var hasHard, hasSnap bool
	if v, ok, err := l.get(l.hsKey); err != nil {
		return err
	} else if ok {
		hasHard = true
		if l.hard, ok = decodeHardState(l.hsKey, v); !ok {
			return &CorruptError{Group: l.group, What: "hard state", Reason: "checksum mismatch or malformed"}
		}
	}
	if v, ok, err := l.get(l.snapKey); err != nil {
		return err
	} else if ok {
		hasSnap = true
		if l.snap, ok = decodeSnapshotMeta(l.snapKey, v); !ok {
			return &CorruptError{Group: l.group, What: "snapshot metadata", Reason: "checksum mismatch or malformed"}
		}
	}
	if err := l.loadBounds(); err != nil {
		return err
	}
	// The hard state is saved in the same batch as the entries it commits
	// or after them, so it never commits past the log's end: if it does,
	// Pebble recovered the hard state but lost entries written before it.
	if l.hard.Commit > l.last {
		return &CorruptError{Group: l.group, What: "log", Reason: fmt.Sprintf(
			"ends at index %d, but the hard state commits index %d: entries before it were lost", l.last, l.hard.Commit)}
	}
	m, err := openMark(fs, l.dir, l.group)
	switch {
	case err == nil:
		l.mark = m
	case ver < formatVersion:
		// A new directory, or one written before the marker existed (or a
		// creation of either that a crash cut short): the marker starts at
		// the log's last index. It is durable before the format is
		// stamped, so a crash in between leaves a directory that comes
		// back here.
		if l.mark, err = createMark(fs, l.dir, l.group, l.last); err != nil {
			return err
		}
	case errors.Is(err, errNoMark) && !hasHard && !hasSnap && l.last == 0:
		// A group this instance has never held.
		if l.mark, err = createMark(fs, l.dir, l.group, 0); err != nil {
			return err
		}
	case errors.Is(err, errNoMark):
		return &CorruptError{Group: l.group, What: "durability marker", Reason: fmt.Sprintf(
			"missing (%v) in a directory that holds this group's log", err)}
	default:
		return err
	}
	// Checked whatever the format version says: the WAL record that
	// stamped the version can be lost with the entries after it.
	if l.last < l.mark.value {
		return &CorruptError{Group: l.group, What: "log", Reason: fmt.Sprintf(
			"ends at index %d, but it reported index %d durable (%s): synced entries were lost",
			l.last, l.mark.value, l.mark.path)}
	}
	if ver < formatVersion {
		val := binary.AppendUvarint([]byte(formatMagic), formatVersion)
		return pebbleErr(l.db.Set(formatKey, val, pebble.Sync))
	}
	return nil
}

// checkFormat returns the format version of the directory: 0 for an empty
// one (not yet stamped), or the version its marker names, which must be
// one this build reads. Anything else is ErrFormatVersion.
func (l *PebbleLog) checkFormat() (uint64, error) {
	v, ok, err := l.get(formatKey)
	if err != nil {
		return 0, err
	}
	if !ok {
		empty, err := l.isEmpty()
		if err != nil {
			return 0, err
		}
		if !empty {
			return 0, fmt.Errorf("%w: the Pebble data here has no wal format marker", ErrFormatVersion)
		}
		return 0, nil
	}
	rest, found := bytes.CutPrefix(v, []byte(formatMagic))
	if !found {
		return 0, fmt.Errorf("%w: format marker %q is not a wal's", ErrFormatVersion, v)
	}
	ver, n := binary.Uvarint(rest)
	if n <= 0 || n != len(rest) {
		return 0, fmt.Errorf("%w: format marker %q is malformed", ErrFormatVersion, v)
	}
	if ver < 1 || ver > formatVersion {
		return 0, fmt.Errorf("%w: directory has version %d, this build reads versions 1 to %d", ErrFormatVersion, ver, formatVersion)
	}
	return ver, nil
}

// isEmpty reports whether the Pebble instance holds no key at all.
func (l *PebbleLog) isEmpty() (bool, error) {
	it, err := l.db.NewIter(nil)
	if err != nil {
		return false, pebbleErr(err)
	}
	empty := !it.First()
	return empty, pebbleErr(errors.Join(it.Error(), it.Close()))
}

// loadBounds finds the group's first and last entries and seeds the term
// cache with the last one. It checks that the entries start right after the
// snapshot, without scanning the log: every entry is verified when read.
func (l *PebbleLog) loadBounds() error {
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: entryKey(l.group, 0),
		UpperBound: entryKey(l.group, maxIndex),
	})
	if err != nil {
		return pebbleErr(err)
	}
	defer it.Close()
	l.last = l.snap.Index
	if !it.First() {
		return pebbleErr(it.Error())
	}
	_, first, _ := parseEntryKey(it.Key())
	if first != l.snap.Index+1 {
		return &CorruptError{Group: l.group, What: "log", Reason: fmt.Sprintf(
			"entries start at %d, but the snapshot is at %d", first, l.snap.Index)}
	}
	if !it.Last() {
		return pebbleErr(it.Error())
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return pebbleErr(err)
	}
	e, err := decodeEntry(it.Key(), val)
	if err != nil {
		return err
	}
	l.last = e.Index
	l.terms.reset(e.Index, e.Term)
	return nil
}

// get returns a copy of the value at key, and whether there is one.
func (l *PebbleLog) get(key []byte) ([]byte, bool, error) {
	v, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, pebbleErr(err)
	}
	v = bytes.Clone(v)
	return v, true, closer.Close()
}

// usable returns the error every call must return once the log is closed
// or has failed. Callers hold mu (either way) or wmu.
func (l *PebbleLog) usable() error {
	if l.closed {
		return ErrClosed
	}
	if err := l.failed.Load(); err != nil {
		return fmt.Errorf("wal: %s: an earlier write failed: %w", l.dir, *err)
	}
	return nil
}

// fail records err as the log's permanent failure (the first one wins).
func (l *PebbleLog) fail(err error) {
	l.failed.CompareAndSwap(nil, &err)
}

// InitialState implements core.Storage.
func (l *PebbleLog) InitialState() (core.HardState, core.ConfState, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return core.HardState{}, core.ConfState{}, err
	}
	return l.hard, cloneConf(l.snap.Conf), nil
}

// FirstIndex implements core.Storage.
func (l *PebbleLog) FirstIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	return l.snap.Index + 1, nil
}

// LastIndex implements core.Storage.
func (l *PebbleLog) LastIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	return l.last, nil
}

// SnapshotMeta implements core.Storage.
func (l *PebbleLog) SnapshotMeta() (core.SnapshotMeta, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return core.SnapshotMeta{}, err
	}
	return cloneMeta(l.snap), nil
}

// Term implements core.Storage. Terms of the log's tail come from the term
// cache; older ones, and the first lookups after an open, read Pebble.
func (l *PebbleLog) Term(i uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	return l.termAt(i)
}

// termAt is Term without locking; the caller holds mu or wmu.
func (l *PebbleLog) termAt(i uint64) (uint64, error) {
	if err := checkTermRange(i, l.snap.Index+1, l.last); err != nil {
		return 0, err
	}
	if i == l.snap.Index {
		return l.snap.Term, nil
	}
	if t, ok := l.terms.term(i); ok {
		return t, nil
	}
	key := entryKey(l.group, i)
	v, ok, err := l.get(key)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, &CorruptError{Group: l.group, What: "entry", Index: i, HasIndex: true, Reason: "missing"}
	}
	e, err := decodeEntry(key, v)
	return e.Term, err
}

// Entries implements core.Storage. Every entry read is verified against its
// checksum: a damaged entry that the read reaches fails the call with a
// *CorruptError naming its index, rather than returning a shorter result
// that would look like a byte-limit cut. Reads that stop before it succeed.
func (l *PebbleLog) Entries(lo, hi, maxBytes uint64) ([]core.Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return nil, err
	}
	if err := checkEntriesRange(lo, hi, l.snap.Index+1, l.last); err != nil {
		return nil, err
	}
	if lo >= hi {
		return nil, nil
	}
	return l.readEntries(lo, hi, maxBytes)
}

// readEntries reads [lo, hi) (within the log) cut to maxBytes.
func (l *PebbleLog) readEntries(lo, hi, maxBytes uint64) (ents []core.Entry, err error) {
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: entryKey(l.group, lo),
		UpperBound: entryKey(l.group, hi),
	})
	if err != nil {
		return nil, pebbleErr(err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			ents, err = nil, pebbleErr(cerr)
		}
	}()
	ents = make([]core.Entry, 0, min(hi-lo, 256))
	var size uint64
	next := lo
	for ok := it.First(); ok; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, pebbleErr(err)
		}
		// Same cut as core.LimitSize: at least one entry, then stop
		// before the one that would pass the limit. The size is known
		// before the entry is verified, so an entry the limit cuts off
		// does not fail the read even if it is damaged.
		if sz, ok := entrySizeHint(val); ok && len(ents) > 0 && size+sz > maxBytes {
			return ents, nil
		}
		e, err := decodeEntry(it.Key(), val)
		if err != nil {
			return nil, err
		}
		if e.Index != next {
			return nil, &CorruptError{Group: l.group, What: "entry", Index: next, HasIndex: true, Reason: "missing"}
		}
		size += e.Size()
		e.Data = bytes.Clone(e.Data) // val is Pebble's until Next
		ents = append(ents, e)
		next++
	}
	if err := it.Error(); err != nil {
		return nil, pebbleErr(err)
	}
	if next != hi {
		return nil, &CorruptError{Group: l.group, What: "entry", Index: next, HasIndex: true, Reason: "missing"}
	}
	return ents, nil
}

// Close implements Log. It waits for synced saves in flight, stops the
// trailing marker's goroutine and raises the marker over every synced save
// (so a log closed cleanly is checked exactly on its next open), then
// closes the marker and Pebble and releases the directory lock.
func (l *PebbleLog) Close() error {
	l.wmu.Lock()
	l.mu.Lock()
	closed := l.closed
	l.closed = true
	l.mu.Unlock()
	l.wmu.Unlock()
	if closed {
		return ErrClosed
	}
	l.inflight.Wait()
	var merr error
	if !l.exact {
		close(l.markStop)
		<-l.markStopped
	}
	if l.failed.Load() == nil {
		if merr = l.raise(); merr != nil {
			merr = fmt.Errorf("durability marker: %w", merr)
		}
	}
	err := errors.Join(merr, l.mark.close(), l.db.Close())
	// Pebble creates no WAL file once closed: the spare's rebuilder can stop.
	l.spare.close()
	if err := errors.Join(err, l.lock.Close()); err != nil {
		return fmt.Errorf("wal: close %s: %w", l.dir, err)
	}
	return nil
}

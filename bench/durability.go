package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/wal"
)

// durability is the in-process target's state for the faults that test the
// WAL's durability (crash, crash-leader, bitflip-wal, truncate-wal) and for
// the checks that they lose nothing silently. It opens every node's log
// (cluster.Template.OpenWAL) so it can note, per node, what the log must
// still hold when it next opens.
//
// With --wal crashable every node's Pebble runs on its own
// vfs.NewCrashableMem, an in-memory filesystem that tracks what was synced.
// A crash replaces it with its CrashClone: exactly the synced data, files
// cut back to their synced length and directory entries not synced gone —
// what Jepsen's lazyfs does to a real filesystem. The snapshot images stay
// on the real disk, which the node fsyncs before relying on them.
type durability struct {
	wal string // --wal

	mu  sync.Mutex
	fss map[uint64]*vfs.MemFS // each node's crashable WAL filesystem
	// logs is each node's log as it last opened.
	logs map[uint64]*trackedLog
	// floors is, for a node a crash or damage stopped, the last index its
	// log must still reach when it next opens, and what stopped it.
	floors  map[uint64]floor
	refused map[uint64]string // nodes whose WAL was refused, and why
	// problems are durability failures: a log silently shorter than it
	// must be, a crash that left a log that does not open.
	problems []string
}

type floor struct {
	last  uint64
	crash bool   // a crash (must always reopen), not a deliberate damage
	what  string // the fault, for messages
}

func newDurability(walName string) *durability {
	return &durability{wal: walName, fss: map[uint64]*vfs.MemFS{}, logs: map[uint64]*trackedLog{},
		floors: map[uint64]floor{}, refused: map[uint64]string{}}
}

// walFS returns the filesystem and directory of node id's Pebble WAL, whose
// directory on disk is dir.
func (d *durability) walFS(id uint64, dir string) (vfs.FS, string) {
	if d.wal != WALCrashable {
		return vfs.Default, dir
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fs := d.fss[id]
	if fs == nil {
		fs = vfs.NewCrashableMem()
		d.fss[id] = fs
	}
	return fs, fmt.Sprintf("node%d/wal", id)
}

// open returns the Template.OpenWAL of the run: Pebble with opts, on node
// id's crashable filesystem or in dir, checked against what its last
// crash or damage required it to keep.
func (d *durability) open(opts wal.PebbleOptions) func(id uint64, dir string) (wal.Log, error) {
	return func(id uint64, dir string) (wal.Log, error) {
		fs, path := d.walFS(id, dir)
		o := opts
		o.FS = fs
		p, err := wal.OpenPebble(path, o)
		if err != nil {
			d.noteStartFailure(id, err)
			return nil, err
		}
		d.checkFloor(id, p)
		l := &trackedLog{Log: p}
		if last, err := p.LastIndex(); err == nil {
			l.durable = last // what the log holds at open is on disk
		}
		d.mu.Lock()
		d.logs[id] = l
		d.mu.Unlock()
		return l, nil
	}
}

// noteStartFailure records a WAL that Open refused as corrupt. After a
// deliberate damage that is an acceptable outcome; after a crash it is a
// durability failure: a crash loses only what was not synced, and the log
// must recover from that.
func (d *durability) noteStartFailure(id uint64, err error) {
	if !errors.Is(err, wal.ErrCorrupt) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refused[id] = err.Error()
	if f, ok := d.floors[id]; ok && f.crash {
		d.problems = append(d.problems, fmt.Sprintf("node %d refused to start after %s, which only lost unsynced writes: %v", id, f.what, err))
	}
	delete(d.floors, id)
}

// checkFloor checks that node id's log, just opened after a crash or a
// damage, still reaches the index it had to keep.
func (d *durability) checkFloor(id uint64, l wal.Log) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.floors[id]
	if !ok {
		return
	}
	delete(d.floors, id)
	delete(d.refused, id)
	if last, err := l.LastIndex(); err != nil || last < f.last {
		d.problems = append(d.problems, fmt.Sprintf(
			"node %d reopened after %s with its log ending at %d (%v), before index %d it held: a silently shortened log", id, f.what, last, err, f.last))
	}
}

func (d *durability) isRefused(id uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.refused[id]
	return ok
}

// refusals returns the nodes that refused to start, keyed by ID.
func (d *durability) refusals() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.refused) == 0 {
		return nil
	}
	m := map[string]string{}
	for id, why := range d.refused {
		m[fmt.Sprint(id)] = why
	}
	return m
}

func (d *durability) problemList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.problems)
}

// memSize is the size of node id's crashable WAL filesystem (0 without).
func (d *durability) memSize(id uint64) int64 {
	d.mu.Lock()
	fs := d.fss[id]
	d.mu.Unlock()
	if fs == nil {
		return 0
	}
	return memTreeSize(fs, "")
}

func memTreeSize(fs vfs.FS, dir string) int64 {
	names, err := fs.List(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, name := range names {
		p := fs.PathJoin(dir, name)
		if fi, err := fs.Stat(p); err == nil {
			if fi.IsDir() {
				n += memTreeSize(fs, p)
			} else {
				n += fi.Size()
			}
		}
	}
	return n
}

// crash takes node id's crash image, once cluster.Crash has cut the node
// off: the log's durable point is frozen, and its filesystem is replaced by
// the image of what it had synced, which the next open must reach. It
// returns the last index the node had reported durable.
func (d *durability) crash(id uint64, spec string) uint64 {
	d.mu.Lock()
	l, fs := d.logs[id], d.fss[id]
	d.mu.Unlock()
	var last uint64
	if l != nil {
		last = l.freeze()
	}
	image := fs.CrashClone(vfs.CrashCloneCfg{})
	d.mu.Lock()
	d.fss[id] = image
	d.floors[id] = floor{last: last, crash: true, what: spec}
	d.mu.Unlock()
	return last
}

// damage damages the live (newest) Pebble WAL file of the stopped node id,
// whose data directory is nodeDir: bitflip-wal flips one bit at a random
// offset, truncate-wal cuts the file at a random length. The damage is
// synced, so a later crash keeps it.
func (d *durability) damage(id uint64, nodeDir string, kind faultspec.Kind, spec string, rng *rand.Rand) (string, error) {
	if d.wal == WALMemory {
		return "", fmt.Errorf("node %d: --wal memory has no WAL file to damage", id)
	}
	fs, dir := d.walFS(id, filepath.Join(nodeDir, "wal"))
	names, err := fs.List(dir)
	if err != nil {
		return "", fmt.Errorf("node %d: list WAL directory: %w", id, err)
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, n)
		}
	}
	if len(logs) == 0 {
		return "", fmt.Errorf("node %d: no WAL file in %s", id, dir)
	}
	slices.Sort(logs) // zero-padded numbers: the last is the newest
	name := logs[len(logs)-1]
	path := fs.PathJoin(dir, name)
	data, err := readAll(fs, path)
	if err != nil {
		return "", fmt.Errorf("node %d: read %s: %w", id, path, err)
	}
	// A WAL made from the spare file (wal.PebbleOptions.SpareWAL) ends in
	// zeros Pebble has not written over; damage there touches no record,
	// so the damage lands in what was written.
	written := len(bytes.TrimRight(data, "\x00"))
	if written == 0 {
		return fmt.Sprintf("node %d's live WAL %s is empty: nothing to damage", id, name), nil
	}
	var what string
	switch kind {
	case faultspec.BitflipWAL:
		off, bit := rng.IntN(written), rng.IntN(8)
		data[off] ^= 1 << bit
		what = fmt.Sprintf("flipped bit %d of byte %d of node %d's live WAL %s (%d bytes written)", bit, off, id, name, written)
	default:
		to := rng.IntN(written)
		what = fmt.Sprintf("cut node %d's live WAL %s from %d bytes written to %d", id, name, written, to)
		data = data[:to]
	}
	if err := rewrite(fs, path, data); err != nil {
		return "", fmt.Errorf("node %d: damage %s: %w", id, path, err)
	}
	d.mu.Lock()
	if l := d.logs[id]; l != nil {
		if last, clean := l.lastClosed(); clean {
			d.floors[id] = floor{last: last, what: spec}
		} else {
			// A crash image's durability marker may trail the crash by
			// the WAL's MarkerLag, so damage to entries acknowledged in
			// that window may legitimately read as a shorter log; the
			// replica and acknowledged-write checks still see any
			// committed write it loses.
			what += " (a crash image, whose durability marker may trail its last acknowledged entries: no floor checked)"
		}
	}
	d.mu.Unlock()
	return what, nil
}

func readAll(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// rewrite replaces the file at path with data, durably.
func rewrite(fs vfs.FS, path string, data []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	d, err := fs.OpenDir(fs.PathDir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// trackedLog is a node's log as the durability checks see it: it notes the
// log's last index after the newest synced save that returned (durable)
// and when it closed (closed): a crash must keep the first, a graceful
// stop the second. (The slow-disk control wraps it, outside.)
type trackedLog struct {
	wal.Log

	mu      sync.Mutex
	frozen  bool // a crash took its image: later saves are lost with it
	durable uint64
	closed  uint64
}

func (s *trackedLog) Save(hs core.HardState, ents []core.Entry, sync bool) error {
	if err := s.Log.Save(hs, ents, sync); err != nil {
		return err
	}
	if sync {
		// One writer goroutine saves, so nothing moves the log between
		// the save and this read.
		if last, err := s.Log.LastIndex(); err == nil {
			s.mu.Lock()
			if !s.frozen {
				s.durable = last
			}
			s.mu.Unlock()
		}
	}
	return nil
}

// Close notes the last index before closing: all of it is durable after.
func (s *trackedLog) Close() error {
	last, err := s.Log.LastIndex()
	s.mu.Lock()
	if err == nil {
		s.closed = last
	}
	s.mu.Unlock()
	return s.Log.Close()
}

// freeze marks the crash point and returns the last index reported durable
// before it.
func (s *trackedLog) freeze() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	return s.durable
}

// lastClosed is the last index the log held when it was closed, and
// whether that close was clean (no crash image taken before it, which would
// have lost what followed).
func (s *trackedLog) lastClosed() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed, !s.frozen
}

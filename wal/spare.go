package wal

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The spare WAL file.
//
// An fdatasync of a file that grew must also write the file's inode (its
// new size and extents): on this project's reference disk that is a second
// I/O per fsync (`perf stat` of a 256-client run counted about 2.0 block
// requests per WAL fsync while appending, 1.45 once recycling took over),
// and an appending fdatasync's median is 342 µs against 245 µs for one that
// overwrites (`peerbench limits`). Pebble avoids it by recycling: a WAL
// file whose memtable has flushed is reused, written over, for a later WAL.
// But a new store starts with 256 KiB memtables, doubling to MemTableSize,
// and a restarted one deletes its old WAL files instead of recycling them,
// so for its first five or six full memtables (about 15 s at 256 clients)
// nearly every WAL fsync appends: ext4's block allocations per two seconds
// fell from about 3,000 to 50 only 16 s into a run.
//
// So a log opened with PebbleOptions.SpareWAL keeps one spare: a file of
// that many bytes, written with zeros and synced, that spareFS hands to
// Pebble, renamed, whenever Pebble would otherwise create a new (empty) WAL
// file and a spare is ready, and then rebuilds it in the background
// (prepare makes the first). It is opt-in because every file made from a
// spare stays that large when Pebble recycles it, however
// light the load (see SpareWAL for the measured trade-off). Pebble writes
// the spare from offset 0 as it writes a recycled file, and its WAL replay
// already reads the zeros after the last record as the end of the log (the
// same zeros preallocation leaves), so recovery is unchanged.
//
// Crash safety: the spare is built under spareTmpName and renamed to
// spareName only once its zeros are synced, so a spareName file is always
// whole; Open deletes a leftover spareTmpName (once the directory is
// known to be a log's, see prepare). The rename from spareName to
// a WAL's name is made durable by the directory sync Pebble does after
// creating every WAL, before anything is written to it.
const (
	spareName    = "RAFTBENCH-SPARE-WAL"
	spareTmpName = "RAFTBENCH-SPARE-WAL.tmp"
	// spareChunk is how much of the spare is written between fsyncs, so
	// that building it never holds the disk for long against the WALs'
	// own fsyncs.
	spareChunk = 1 << 20
)

// spareFS is the filesystem Pebble runs on when the log keeps a spare WAL
// file: fs itself, except that creating a WAL file takes the spare when
// one is ready.
type spareFS struct {
	vfs.FS
	dir    string
	size   int64
	logger pebble.Logger

	// mu guards ready and orders the builder's rename of a finished spare
	// against Create's rename of it: ready means spareName is whole.
	mu    sync.Mutex
	ready bool

	// taken counts the WAL files created from the spare (tests read it).
	taken atomic.Int64

	// prepared and started are set by prepare and start, on the opening
	// goroutine, before the rebuilder exists.
	prepared, started bool

	kick chan struct{} // capacity one: a rebuild is wanted
	stop chan struct{}
	done chan struct{}
}

// newSpareFS makes the filesystem for dir's spare. It touches nothing in
// dir: a directory is only written to once it is known to be a log's (see
// prepare), and the rebuilder starts with start.
func newSpareFS(fs vfs.FS, dir string, size int64, logger pebble.Logger) *spareFS {
	return &spareFS{
		FS: fs, dir: dir, size: size, logger: logger,
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// prepare deletes a leftover spareTmpName and makes the spare ready,
// building it now when there is none whole. It runs once: before Pebble
// opens the directory of a new log (so that its first WAL takes the
// spare), otherwise after the log has passed its checks, so that a
// directory the log refuses — another format, another program's store,
// damage — gets no spare written into it; a restarted store's live WAL is
// therefore an ordinary file, and the spare serves its next one. A
// failure is logged, not returned: no spare only means appending fsyncs,
// as without the option, and the log itself is fine. The rebuilder then
// tries again when Pebble next creates a WAL.
func (s *spareFS) prepare() {
	if s.prepared {
		return
	}
	s.prepared = true
	if err := s.FS.RemoveAll(s.PathJoin(s.dir, spareTmpName)); err != nil {
		s.logger.Errorf("wal: %s: spare WAL: remove leftover: %v", s.dir, err)
		return
	}
	if fi, err := s.FS.Stat(s.PathJoin(s.dir, spareName)); err == nil && fi.Size() >= s.size {
		s.mu.Lock()
		s.ready = true
		s.mu.Unlock()
	} else if err := s.build(); err != nil {
		s.logger.Errorf("wal: %s: spare WAL: %v", s.dir, err)
	}
}

// start starts the rebuilder, which builds a new spare whenever Pebble
// has taken the last one (a take before start is remembered: Create's
// kick waits in its channel). Call it once, after prepare.
func (s *spareFS) start() {
	s.started = true
	go s.rebuild()
}

// Create creates name, taking the spare for it when name is a Pebble WAL
// file and a spare is ready.
func (s *spareFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if category != "pebble-wal" || !strings.HasSuffix(name, ".log") {
		return s.FS.Create(name, category)
	}
	s.mu.Lock()
	ready := s.ready
	s.ready = false
	var f vfs.File
	var err error
	if ready {
		f, err = s.FS.ReuseForWrite(s.PathJoin(s.dir, spareName), name, category)
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if ready && err == nil {
		s.taken.Add(1)
		return f, nil
	}
	if ready {
		s.logger.Errorf("wal: %s: spare WAL: take for %s: %v", s.dir, name, err)
	}
	// Create truncates whatever a failed reuse may have left under name.
	return s.FS.Create(name, category)
}

// rebuild builds a new spare each time one is taken, until close.
func (s *spareFS) rebuild() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		s.mu.Lock()
		ready := s.ready
		s.mu.Unlock()
		if ready {
			continue
		}
		if err := s.build(); err != nil && !errors.Is(err, errSpareStopped) {
			s.logger.Errorf("wal: %s: spare WAL: %v", s.dir, err)
		}
	}
}

var errSpareStopped = errors.New("stopped")

// build writes a whole spare under spareTmpName, syncs it, and renames it
// to spareName. A build that fails or is stopped removes what it wrote.
func (s *spareFS) build() error {
	tmp := s.PathJoin(s.dir, spareTmpName)
	f, err := s.FS.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = s.fill(f, tmp)
	err = errors.Join(err, f.Close())
	if err == nil {
		s.mu.Lock()
		if err = s.FS.Rename(tmp, s.PathJoin(s.dir, spareName)); err == nil {
			s.ready = true
		}
		s.mu.Unlock()
	}
	if err != nil {
		return errors.Join(err, s.FS.Remove(tmp))
	}
	return nil
}

// fill writes the spare's zeros to f, a chunk and its fsync at a time.
func (s *spareFS) fill(f vfs.File, name string) error {
	zeros := make([]byte, spareChunk)
	for off := int64(0); off < s.size; off += spareChunk {
		select {
		case <-s.stop:
			return errSpareStopped
		default:
		}
		n := min(int64(spareChunk), s.size-off)
		if _, err := f.Write(zeros[:n]); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := f.SyncData(); err != nil {
			return fmt.Errorf("sync %s: %w", name, err)
		}
	}
	return nil
}

// close stops the rebuilder, which removes a spare it was building (one a
// crash interrupts stays under spareTmpName for the next open to delete).
// Call it after Pebble is closed. A nil
// spareFS (no spare) closes as a no-op.
func (s *spareFS) close() {
	if s == nil || !s.started {
		return
	}
	close(s.stop)
	<-s.done
}

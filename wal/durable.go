package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The durable-index marker is the second line of defence against a log that
// silently lost synced entries. Pebble's WAL replay drops whatever follows
// a point it reads as a torn tail; with sync offsets it recognises damage
// to synced data, but not in every case (damage in the WAL's last 32 KiB
// block, whose read-ahead finds no later chunk to vouch for it; a WAL file
// cut short, which reads as a clean end). Anything recorded inside Pebble's
// WAL — say, a "durable up to" key in the same batch as the entries — is
// lost together with the entries it describes, so the marker lives in a
// file of its own beside Pebble's, written and fsynced by the log.
//
// The marker holds D, a lower bound on the log's last index in any state
// the log can recover to, kept as high as that allows: soon after every
// synced write returns (before it returns, with PebbleOptions.ExactMarker),
// D becomes the log's last index after that write, unless a later write
// has since shortened the log. Open refuses a log whose last index is below
// D: it lost entries the log reported durable.
//
// Two rules keep D a lower bound through crashes at any point:
//
//   - D is raised only after the write it covers is durable in Pebble (its
//     fsync returned). Raising it concurrently with Pebble's fsync would be
//     faster but cannot be sound: a crash between the two fsyncs leaves a
//     marker ahead of a log that legitimately lost an unacknowledged write,
//     which is indistinguishable on disk from a log that lost an
//     acknowledged one.
//   - A write that shortens the log below D (a follower's conflict
//     truncation, or a snapshot that replaces the log) lowers D first, and
//     is applied to Pebble only once the lower D is durable: from then on
//     Pebble may make that write durable at any moment, even if the write
//     itself is unsynced. Lowering is always synchronous.
//
// A raise never goes above the last index of a write after the newest one
// noted durable that shortened the log (see PebbleLog.raise), since that
// write may already be durable too.
//
// The file has two slots in separate 512-byte sectors, written
// alternately, each with a sequence number and a CRC-32C: a torn write
// damages at most the slot being written, and the other still holds the
// previous value, which is a valid lower bound because the write being
// marked is durable already (a raise) or not applied yet (a lowering).
// The file never changes size after it is created, so each update costs one
// in-place write and one fdatasync, after Pebble's.
//
// Trailing or exact. By default the marker trails: a synced save returns
// once Pebble's fsync does, and the log's marker goroutine (markLoop) then
// raises D over every write noted durable so far, at most once per
// PebbleOptions.MarkerLag (10 ms), so the saves of an interval share one
// marker fsync. The marker is a detector, not a durability mechanism — an
// acknowledged entry is on disk either way — and a trailing marker still
// catches every loss of an entry acknowledged before its last completed
// raise began (a raise reads what is durable, then writes and fsyncs the
// marker); what it can miss is the loss of entries acknowledged in the
// last MarkerLag plus up to two marker fsyncs before a crash (the raise in
// progress, and the next, which may also wait behind a lowering). Close raises D over
// every synced save, so a cleanly closed log is checked exactly. With
// ExactMarker a synced save waits for the raise, two fsyncs instead of
// one, and the check is exact after any crash.
//
// Why trail, and by how much (same sitting, 2-core VM, ext4 on virtio;
// `raftbench run --clients C --duration 6s|10s --warmup 2s
// --wal-marker-lag L`, rounds interleaved). The disk serialises fsyncs, so
// a marker fsync after every save, even in the background, delayed the
// next save's as much as waiting for it did: 1 client p50 0.56–0.59 ms
// either way, against 0.36–0.41 ms with no marker at all. What helps is
// fewer marker fsyncs. 1 client p50, three rounds: exact 0.57/0.84/1.13
// ms, 1 ms lag 0.42/0.80/0.70, 10 ms 0.40/0.55/0.55, 50 ms 0.40/0.54/0.54,
// no marker 0.42/0.64/0.53 — 10 ms is as good as none, and a longer lag
// buys nothing. 256 clients, three rounds: exact 57.5k/54.2k/52.8k ops/s
// at 23.2–25.2 µs CPU per op, 10 ms lag 70.4k/71.6k/66.5k at 19.3–20.8.

// markFileName is the marker's file name in the log's directory, per group
// so groups sharing an instance later keep separate markers. Pebble ignores
// files whose names it does not know.
func markFileName(group uint64) string { return fmt.Sprintf("DURABLE-%d", group) }

const (
	markMagic    = "RBDM"
	markSlotLen  = 32 // magic, group, seq, value, crc
	markSlotSize = 512
	markFileLen  = 2 * markSlotSize
)

// errNoMark reports a missing marker file.
var errNoMark = errors.New("durability marker is missing")

// durableMark is an open marker file. It is not safe for concurrent use:
// PebbleLog serialises its writes under markMu.
type durableMark struct {
	fs    vfs.FS
	path  string
	f     vfs.File
	group uint64
	seq   uint64 // sequence number of the newest valid slot
	value uint64 // D as on disk after the last completed write
	buf   [markSlotLen]byte
}

// createMark writes a new marker holding value in dir (replacing any file
// of that name), makes it and its directory entry durable, and opens it.
func createMark(fs vfs.FS, dir string, group, value uint64) (*durableMark, error) {
	path := fs.PathJoin(dir, markFileName(group))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	img := make([]byte, markFileLen)
	encodeSlot(img[0:markSlotLen], group, 0, value)
	encodeSlot(img[markSlotSize:markSlotSize+markSlotLen], group, 1, value)
	_, err = f.Write(img)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := syncDir(fs, dir); err != nil {
		return nil, err
	}
	return openMark(fs, dir, group)
}

// openMark opens and reads an existing marker. A missing file is errNoMark;
// a file with no valid slot is a *CorruptError.
func openMark(fs vfs.FS, dir string, group uint64) (*durableMark, error) {
	path := fs.PathJoin(dir, markFileName(group))
	// OpenReadWrite would create a missing file: look first.
	if _, err := fs.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", errNoMark, path)
	} else if err != nil {
		return nil, err
	}
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	img := make([]byte, markFileLen)
	n, err := f.ReadAt(img, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.Join(fmt.Errorf("read %s: %w", path, err), f.Close())
	}
	m := &durableMark{fs: fs, path: path, f: f, group: group}
	found := false
	for s := range 2 {
		off := s * markSlotSize
		if off+markSlotLen > n {
			continue
		}
		seq, value, ok := decodeSlot(img[off:off+markSlotLen], group)
		if ok && int(seq%2) == s && (!found || seq > m.seq) {
			m.seq, m.value, found = seq, value, true
		}
	}
	if !found {
		return nil, errors.Join(&CorruptError{Group: group, What: "durability marker " + path,
			Reason: "no slot with a valid checksum"}, f.Close())
	}
	return m, nil
}

// set makes value the marker's D, durably, in the slot after the newest.
//
// When it fails, the new slot may still reach the disk whole (a write that
// reported an error, a sync that failed after the data went out), so D on
// disk is then either value: m.value becomes the higher of the two, which
// keeps a later lowering (shortenMark) from skipping a marker that may be
// above the log, and m.seq moves past the slot, so the next write goes to
// the other one and cannot tear the only valid slot.
func (m *durableMark) set(value uint64) error {
	seq := m.seq + 1
	encodeSlot(m.buf[:], m.group, seq, value)
	var err error
	if _, err = m.f.WriteAt(m.buf[:], int64(seq%2)*markSlotSize); err != nil {
		err = fmt.Errorf("write %s: %w", m.path, err)
	} else if err = m.f.SyncData(); err != nil {
		err = fmt.Errorf("sync %s: %w", m.path, err)
	}
	if err != nil {
		m.seq, m.value = seq, max(m.value, value)
		return err
	}
	m.seq, m.value = seq, value
	return nil
}

func (m *durableMark) close() error { return m.f.Close() }

// encodeSlot fills dst (markSlotLen bytes) with one slot.
func encodeSlot(dst []byte, group, seq, value uint64) {
	copy(dst[0:4], markMagic)
	binary.LittleEndian.PutUint64(dst[4:12], group)
	binary.LittleEndian.PutUint64(dst[12:20], seq)
	binary.LittleEndian.PutUint64(dst[20:28], value)
	binary.LittleEndian.PutUint32(dst[28:32], crc32.Checksum(dst[0:28], castagnoli))
}

// decodeSlot returns a slot's sequence number and value, and whether it is
// intact and belongs to group.
func decodeSlot(b []byte, group uint64) (seq, value uint64, ok bool) {
	if string(b[0:4]) != markMagic || binary.LittleEndian.Uint32(b[28:32]) != crc32.Checksum(b[0:28], castagnoli) ||
		binary.LittleEndian.Uint64(b[4:12]) != group {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[12:20]), binary.LittleEndian.Uint64(b[20:28]), true
}

// syncDir makes dir's entries durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

package etcd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt is wrapped by every error about a log file that is damaged in
// a way a crash cannot explain.
var ErrCorrupt = errors.New("etcd: corrupt log")

// The log is one append-only file of records, written by one write per
// save and fsync'd when the Ready says it must be:
//
//	record := crc(4, little endian) length(4, little endian) kind(1) payload(length)
//	kind 1: a raftpb.Entry; kind 2: a raftpb.HardState (protobuf)
//
// crc is CRC-32C over kind and payload. An entry with index i replaces
// every earlier entry at i and above, as the Ready contract says; the last
// hard state wins. Nothing is ever compacted (the adapter takes no
// snapshots), so replay rebuilds the whole log.
//
// Why not etcd's own WAL (go.etcd.io/etcd/server/v3/storage/wal): it
// builds with raft v3.7.0 (etcd server v3.7.x requires it), but it imports
// etcdserverpb and with it all of gRPC, grpc-gateway and zap (116 more
// packages), and raises gRPC and x/sys for the whole module — the world,
// for a log file. This file does what that WAL does for this use: CRC per
// record, one write and one sync per Ready, torn-tail repair on open.
const (
	logName       = "raft.log"
	headerSize    = 9
	kindEntry     = 1
	kindHardState = 2
	// maxRecord bounds a record's length: a length above it is damage,
	// not a reason to allocate. An entry is one kv command (kilobytes);
	// a hard state is a few bytes.
	maxRecord = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walLog is a node's durable log file.
type walLog struct {
	f      *os.File
	noSync bool
	buf    []byte
}

// recovered is what a log file held.
type recovered struct {
	hs      *pb.HardState // nil when none was saved
	entries []*pb.Entry
	// repaired is the number of bytes of torn tail cut off.
	repaired int64
}

// openLog opens (creating) the log in dir, locks it against a second
// opener, repairs a torn tail, and returns what it holds. A record damaged
// anywhere but at the tail, a gap in the indexes, or a hard state that
// commits past the last entry is ErrCorrupt: the node must not start on
// a log shorter than it once acknowledged.
func openLog(dir string, noSync bool) (*walLog, recovered, error) {
	var rec recovered
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, rec, fmt.Errorf("etcd: log dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, logName)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, rec, fmt.Errorf("etcd: open log %s: %w", path, err)
	}
	fail := func(err error) (*walLog, recovered, error) {
		_ = f.Close()
		return nil, recovered{}, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(fmt.Errorf("etcd: log %s is locked by another process: %w", path, err))
	}
	if created {
		// The file's directory entry must be durable before anything in
		// it is acknowledged.
		if err := syncDir(dir); err != nil {
			return fail(err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fail(fmt.Errorf("etcd: read log %s: %w", path, err))
	}
	rec, good, err := parseLog(data)
	if err != nil {
		return fail(fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err))
	}
	if good < int64(len(data)) {
		rec.repaired = int64(len(data)) - good
		if err := f.Truncate(good); err != nil {
			return fail(fmt.Errorf("etcd: cut torn tail of %s at %d: %w", path, good, err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("etcd: sync %s after cutting its torn tail: %w", path, err))
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return fail(fmt.Errorf("etcd: seek %s: %w", path, err))
	}
	return &walLog{f: f, noSync: noSync}, rec, nil
}

// parseLog decodes data and returns what it holds and the length of its
// good prefix. A crash can leave only two kinds of damage at the end of an
// append-only file: a record cut short, and a run of zero bytes (blocks
// the file system allocated but never wrote); both are a torn tail, cut
// off. Any other bad record is corruption.
func parseLog(data []byte) (recovered, int64, error) {
	var rec recovered
	off := 0
	for off < len(data) {
		rest := data[off:]
		if len(rest) < headerSize || allZero(rest) {
			return rec, int64(off), nil
		}
		sum := binary.LittleEndian.Uint32(rest)
		n := int(binary.LittleEndian.Uint32(rest[4:]))
		if n > maxRecord {
			return rec, 0, fmt.Errorf("record at offset %d has length %d, above the limit %d", off, n, maxRecord)
		}
		if headerSize+n > len(rest) {
			return rec, int64(off), nil // cut short by a crash
		}
		body := rest[8 : headerSize+n]
		if crc32.Checksum(body, castagnoli) != sum {
			return rec, 0, fmt.Errorf("record at offset %d (length %d) fails its checksum", off, n)
		}
		switch kind, payload := body[0], body[1:]; kind {
		case kindEntry:
			e := &pb.Entry{}
			if err := proto.Unmarshal(payload, e); err != nil {
				return rec, 0, fmt.Errorf("entry record at offset %d: %w", off, err)
			}
			ents, err := appendEntry(rec.entries, e)
			if err != nil {
				return rec, 0, fmt.Errorf("entry record at offset %d: %w", off, err)
			}
			rec.entries = ents
		case kindHardState:
			hs := &pb.HardState{}
			if err := proto.Unmarshal(payload, hs); err != nil {
				return rec, 0, fmt.Errorf("hard state record at offset %d: %w", off, err)
			}
			rec.hs = hs
		default:
			return rec, 0, fmt.Errorf("record at offset %d has unknown kind %d", off, kind)
		}
		off += headerSize + n
	}
	var last uint64
	if n := len(rec.entries); n > 0 {
		last = rec.entries[n-1].GetIndex()
	}
	if c := rec.hs.GetCommit(); c > last {
		return rec, 0, fmt.Errorf("hard state commits index %d but the log ends at %d", c, last)
	}
	return rec, int64(off), nil
}

// appendEntry adds e to ents, replacing any entry at e's index and above.
func appendEntry(ents []*pb.Entry, e *pb.Entry) ([]*pb.Entry, error) {
	i := e.GetIndex()
	if len(ents) == 0 {
		if i != 1 {
			return nil, fmt.Errorf("the first entry has index %d, want 1 (this log is never compacted)", i)
		}
		return append(ents, e), nil
	}
	first, last := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
	switch {
	case i == 0 || i > last+1:
		return nil, fmt.Errorf("entry %d does not follow the log's last entry %d", i, last)
	case i < first:
		return nil, fmt.Errorf("entry %d is before the log's first entry %d", i, first)
	}
	return append(ents[:i-first], e), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// save appends the entries and then the hard state (if any) in one write,
// and fsyncs it when sync is set (and the log is not NoSync). Entries go
// first so that a torn write can never leave a hard state committing
// entries that are not there.
func (l *walLog) save(hs *pb.HardState, ents []*pb.Entry, sync bool) error {
	if len(ents) == 0 && (hs == nil || raft.IsEmptyHardState(hs)) {
		return nil
	}
	buf := l.buf[:0]
	var err error
	for _, e := range ents {
		if buf, err = appendRecord(buf, kindEntry, e); err != nil {
			return err
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		if buf, err = appendRecord(buf, kindHardState, hs); err != nil {
			return err
		}
	}
	l.buf = buf
	if _, err := l.f.Write(buf); err != nil {
		return fmt.Errorf("etcd: write log: %w", err)
	}
	if sync && !l.noSync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("etcd: sync log: %w", err)
		}
	}
	return nil
}

func appendRecord(buf []byte, kind byte, m proto.Message) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, headerSize)...)
	buf[start+8] = kind
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:start], fmt.Errorf("etcd: encode log record: %w", err)
	}
	n := len(buf) - start - headerSize
	if n > maxRecord {
		return buf[:start], fmt.Errorf("etcd: log record of %d bytes exceeds the limit %d", n, maxRecord)
	}
	binary.LittleEndian.PutUint32(buf[start+4:], uint32(n))
	binary.LittleEndian.PutUint32(buf[start:], crc32.Checksum(buf[start+8:], castagnoli))
	return buf, nil
}

// close closes the file without syncing it: what the last saves did not
// sync is left as a crash would leave it (in the page cache, here).
func (l *walLog) close() error { return l.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("etcd: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("etcd: sync dir %s: %w", dir, err)
	}
	return nil
}

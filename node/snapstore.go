package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/raftbench/raftbench/core"
)

// Snapshotter is the part of a StateMachine that snapshots need. A state
// machine that implements it can be snapshotted (so the log can be
// compacted) and restored (on restart, and on a follower that fell behind
// the leader's log).
type Snapshotter interface {
	// Snapshot returns an image of the whole state as of the last Apply.
	Snapshot() ([]byte, error)
	// Restore replaces the whole state with an image Snapshot produced.
	Restore(data []byte) error
}

// ErrCorruptSnapshot is wrapped by errors about snapshot files that fail
// their checksum or do not parse.
var ErrCorruptSnapshot = errors.New("node: corrupt snapshot file")

// snapStore keeps state-machine images in a directory, one file each:
//
//	magic "RBSN" | version byte | index u64 | term u64 |
//	voters, outgoing voters, learners (u32 count + u64 IDs each) |
//	data length u64 | data | CRC-32C of everything before
//
// (big endian). A file is written under a temporary name, synced, renamed
// into place and the directory synced, so a crash leaves either the old or
// the new image, never half of one. Only the newest image is kept.
type snapStore struct {
	dir string
}

const snapMagic = "RBSN"
const snapVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newSnapStore(dir string) (*snapStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: snapshot dir %s: %w", dir, err)
	}
	return &snapStore{dir: dir}, nil
}

func snapName(index uint64) string { return fmt.Sprintf("snap-%020d.bin", index) }

// encodeSnap is s's image file: magic, version, index, term, the
// configuration, the data, and a CRC-32C of all before it. It is allocated
// at its exact size: a guess short of it copied the image twice.
func encodeSnap(s *core.Snapshot) []byte {
	conf := &s.Meta.Conf
	size := len(snapMagic) + 1 + 8 + 8 + 3*4 + 8*(len(conf.Voters)+len(conf.VotersOutgoing)+len(conf.Learners)) + 8 + len(s.Data) + 4
	b := make([]byte, 0, size)
	b = append(b, snapMagic...)
	b = append(b, snapVersion)
	b = binary.BigEndian.AppendUint64(b, s.Meta.Index)
	b = binary.BigEndian.AppendUint64(b, s.Meta.Term)
	for _, ids := range [][]uint64{s.Meta.Conf.Voters, s.Meta.Conf.VotersOutgoing, s.Meta.Conf.Learners} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
		for _, id := range ids {
			b = binary.BigEndian.AppendUint64(b, id)
		}
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.Data)))
	b = append(b, s.Data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// save writes s durably and removes older images.
func (st *snapStore) save(s *core.Snapshot) error {
	b := encodeSnap(s)
	name := snapName(s.Meta.Index)
	if err := writeFileAtomic(st.dir, name, b); err != nil {
		return fmt.Errorf("node: save snapshot %d: %w", s.Meta.Index, err)
	}
	// Older images are superseded: remove them (best effort).
	entries, _ := os.ReadDir(st.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "snap-") && e.Name() < name {
			os.Remove(filepath.Join(st.dir, e.Name()))
		}
	}
	return nil
}

// loadLatest returns the newest image, or nil if there is none. A newest
// image that is corrupt is an error, not a silent fall-back: the log may
// already be compacted up to it.
func (st *snapStore) loadLatest() (*core.Snapshot, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("node: read snapshot dir %s: %w", st.dir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "snap-") && strings.HasSuffix(e.Name(), ".bin") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	path := filepath.Join(st.dir, names[len(names)-1])
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: read snapshot %s: %w", path, err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptSnapshot, path, err)
	}
	return s, nil
}

func decodeSnapshot(b []byte) (*core.Snapshot, error) {
	if len(b) < len(snapMagic)+1+16+4 || string(b[:4]) != snapMagic {
		return nil, errors.New("not a snapshot file")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("checksum mismatch")
	}
	if body[4] != snapVersion {
		return nil, fmt.Errorf("format version %d, want %d", body[4], snapVersion)
	}
	p := body[5:]
	u64 := func() (uint64, bool) {
		if len(p) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(p)
		p = p[8:]
		return v, true
	}
	s := &core.Snapshot{}
	var ok bool
	if s.Meta.Index, ok = u64(); !ok {
		return nil, errors.New("truncated header")
	}
	if s.Meta.Term, ok = u64(); !ok {
		return nil, errors.New("truncated header")
	}
	lists := make([][]uint64, 3)
	for i := range lists {
		if len(p) < 4 {
			return nil, errors.New("truncated membership")
		}
		n := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(n)*8 > uint64(len(p)) {
			return nil, errors.New("membership longer than the file")
		}
		for range n {
			id, _ := u64()
			lists[i] = append(lists[i], id)
		}
	}
	s.Meta.Conf = core.ConfState{Voters: lists[0], VotersOutgoing: lists[1], Learners: lists[2]}
	n, ok := u64()
	if !ok || n != uint64(len(p)) {
		return nil, errors.New("data length does not match the file")
	}
	s.Data = p
	return s, nil
}

// writeFileAtomic writes dir/name so that a crash leaves the old content or
// the new, never a torn file.
func writeFileAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// peersFile records member addresses learned from membership changes, so a
// restart after the changes were compacted out of the log still knows where
// every member is.
const peersFile = "peers.json"

func (st *snapStore) savePeers(peers map[uint64]string) error {
	b, err := json.Marshal(peers)
	if err != nil {
		return err
	}
	return writeFileAtomic(st.dir, peersFile, b)
}

func (st *snapStore) loadPeers() (map[uint64]string, error) {
	b, err := os.ReadFile(filepath.Join(st.dir, peersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read %s: %w", peersFile, err)
	}
	var peers map[uint64]string
	if err := json.Unmarshal(b, &peers); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptSnapshot, peersFile, err)
	}
	return peers, nil
}

package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/raftbench/raftbench/core"
)

// castagnoli is the CRC-32C table. CRC-32C has hardware support on amd64 and
// arm64 (hash/crc32 uses it), so checksumming costs far less than the write
// it protects, and it detects every burst error of up to 32 bits.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcLen is the size of the checksum that starts every value we store.
const crcLen = 4

// checksum is the CRC-32C of key followed by body. The key is covered so
// that a value stored under the wrong key (another index or group) fails the
// check just like a flipped bit does, although the index itself is not
// repeated in the value.
func checksum(key, body []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, body)
}

// sealValue fills val[:crcLen] with the checksum of key and val[crcLen:].
func sealValue(key, val []byte) {
	binary.LittleEndian.PutUint32(val[:crcLen], checksum(key, val[crcLen:]))
}

// openValue verifies val's checksum against key and returns the body.
func openValue(key, val []byte) ([]byte, bool) {
	if len(val) < crcLen {
		return nil, false
	}
	body := val[crcLen:]
	return body, binary.LittleEndian.Uint32(val[:crcLen]) == checksum(key, body)
}

// uvarintLen is the number of bytes binary.PutUvarint writes for v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// readUvarint decodes a canonical (shortest-form) uvarint from the front of
// b and returns it with the rest of b. Non-canonical forms are refused so
// that every value has exactly one encoding: decoding then re-encoding gives
// back the stored bytes, which the fuzz test relies on.
func readUvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != uvarintLen(v) {
		return 0, nil, false
	}
	return v, b[n:], true
}

// Entry value layout (the key carries group and index):
//
//	crc32c(key ‖ body) : 4 bytes, little endian
//	body:
//	  term             : uvarint
//	  type             : 1 byte (core.EntryType)
//	  data             : the rest of the value
//
// The data length is implied by the value length, which Pebble stores
// anyway, so an entry costs 6 bytes beyond its data for terms below 2^14.

// encodedEntryLen is the length of e's encoded value.
func encodedEntryLen(e *core.Entry) int {
	return crcLen + uvarintLen(e.Term) + 1 + len(e.Data)
}

// encodeEntry writes e's value into dst, which must be exactly
// encodedEntryLen(e) bytes, checksummed together with key.
func encodeEntry(dst, key []byte, e *core.Entry) {
	n := crcLen + binary.PutUvarint(dst[crcLen:], e.Term)
	dst[n] = byte(e.Type)
	copy(dst[n+1:], e.Data)
	sealValue(key, dst)
}

// decodeEntry decodes the value stored under an entry key. The returned Data
// aliases val (nil when empty); callers copy it if val is borrowed. A
// mismatching checksum or malformed body is a *CorruptError naming the index.
func decodeEntry(key, val []byte) (core.Entry, error) {
	group, index, ok := parseEntryKey(key)
	if !ok {
		return core.Entry{}, &CorruptError{What: "entry key", Reason: fmt.Sprintf("malformed key %x", key)}
	}
	corrupt := func(reason string) error {
		return &CorruptError{Group: group, What: "entry", Index: index, HasIndex: true, Reason: reason}
	}
	body, ok := openValue(key, val)
	if !ok {
		return core.Entry{}, corrupt("checksum mismatch")
	}
	term, rest, ok := readUvarint(body)
	if !ok || len(rest) == 0 {
		return core.Entry{}, corrupt("malformed body")
	}
	e := core.Entry{Term: term, Index: index, Type: core.EntryType(rest[0])}
	if len(rest) > 1 {
		e.Data = rest[1:]
	}
	return e, nil
}

// entrySizeHint returns the core.Entry.Size of the entry encoded in val
// without verifying it (false when val cannot be an entry). It lets a read
// stop at its byte limit before looking at the next entry's checksum.
func entrySizeHint(val []byte) (uint64, bool) {
	if len(val) < crcLen+2 {
		return 0, false
	}
	_, n := binary.Uvarint(val[crcLen:])
	if n <= 0 || crcLen+n+1 > len(val) {
		return 0, false
	}
	e := core.Entry{Data: val[crcLen+n+1:]}
	return e.Size(), true
}

// Hard state value: crc32c(key ‖ body), then term, vote, commit as uvarints.

func encodeHardState(key []byte, hs core.HardState) []byte {
	v := make([]byte, crcLen, crcLen+3*binary.MaxVarintLen64)
	v = binary.AppendUvarint(v, hs.Term)
	v = binary.AppendUvarint(v, hs.Vote)
	v = binary.AppendUvarint(v, hs.Commit)
	sealValue(key, v)
	return v
}

func decodeHardState(key, val []byte) (core.HardState, bool) {
	body, ok := openValue(key, val)
	if !ok {
		return core.HardState{}, false
	}
	var hs core.HardState
	for _, f := range []*uint64{&hs.Term, &hs.Vote, &hs.Commit} {
		if *f, body, ok = readUvarint(body); !ok {
			return core.HardState{}, false
		}
	}
	return hs, len(body) == 0
}

// Snapshot metadata value: crc32c(key ‖ body), then index and term as
// uvarints, then Voters, VotersOutgoing and Learners, each as a uvarint
// count followed by that many uvarint IDs.

func encodeSnapshotMeta(key []byte, m core.SnapshotMeta) []byte {
	v := make([]byte, crcLen, 64)
	v = binary.AppendUvarint(v, m.Index)
	v = binary.AppendUvarint(v, m.Term)
	for _, ids := range [][]uint64{m.Conf.Voters, m.Conf.VotersOutgoing, m.Conf.Learners} {
		v = binary.AppendUvarint(v, uint64(len(ids)))
		for _, id := range ids {
			v = binary.AppendUvarint(v, id)
		}
	}
	sealValue(key, v)
	return v
}

func decodeSnapshotMeta(key, val []byte) (core.SnapshotMeta, bool) {
	body, ok := openValue(key, val)
	if !ok {
		return core.SnapshotMeta{}, false
	}
	var m core.SnapshotMeta
	if m.Index, body, ok = readUvarint(body); !ok {
		return core.SnapshotMeta{}, false
	}
	if m.Term, body, ok = readUvarint(body); !ok {
		return core.SnapshotMeta{}, false
	}
	for _, ids := range []*[]uint64{&m.Conf.Voters, &m.Conf.VotersOutgoing, &m.Conf.Learners} {
		var n uint64
		// Each ID takes at least one byte, so a count above the bytes left
		// is corruption; checking it first bounds the allocation.
		if n, body, ok = readUvarint(body); !ok || n > uint64(len(body)) {
			return core.SnapshotMeta{}, false
		}
		if n == 0 {
			continue
		}
		*ids = make([]uint64, n)
		for i := range *ids {
			if (*ids)[i], body, ok = readUvarint(body); !ok {
				return core.SnapshotMeta{}, false
			}
		}
	}
	return m, len(body) == 0
}

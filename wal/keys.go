package wal

import (
	"encoding/binary"
	"math"
)

// Key kinds: the first byte of every key. Their order only matters in that
// every kind is a contiguous key range; entries of one group sort by index
// because the index is big-endian and comes last.
const (
	// kindFormat is the instance-wide format-version marker. Its key is the
	// single byte kindFormat: the version belongs to the Pebble instance,
	// which many groups may share, not to one group.
	kindFormat byte = 0x01
	// kindHardState holds a group's hard state (index field 0).
	kindHardState byte = 0x02
	// kindSnapshot holds a group's snapshot metadata (index field 0).
	kindSnapshot byte = 0x03
	// kindEntry holds one log entry of a group at the key's index.
	kindEntry byte = 0x04
)

// keyLen is the length of every per-group key: kind, group ID, index.
const keyLen = 1 + 8 + 8

// maxIndex is reserved as the exclusive end of a group's entry keys, so a
// range deletion can name "everything of this group from i on" with one key.
// Save refuses an entry at this index; no real log comes near it.
const maxIndex = math.MaxUint64

// formatKey is the key of the format-version marker.
var formatKey = []byte{kindFormat}

// putKey writes the key of (kind, group, index) into dst, which must be at
// least keyLen bytes long.
func putKey(dst []byte, kind byte, group, index uint64) {
	_ = dst[keyLen-1] // one bounds check instead of three
	dst[0] = kind
	binary.BigEndian.PutUint64(dst[1:9], group)
	binary.BigEndian.PutUint64(dst[9:17], index)
}

// makeKey returns a fresh key of (kind, group, index).
func makeKey(kind byte, group, index uint64) []byte {
	k := make([]byte, keyLen)
	putKey(k, kind, group, index)
	return k
}

// entryKey is the key of group's entry at index.
func entryKey(group, index uint64) []byte { return makeKey(kindEntry, group, index) }

// parseEntryKey returns the group and index of an entry key, and false for
// a key of another kind or length.
func parseEntryKey(k []byte) (group, index uint64, ok bool) {
	if len(k) != keyLen || k[0] != kindEntry {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:17]), true
}

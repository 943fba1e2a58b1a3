// Package wal is raftbench's durable Raft log: the Log interface (core's
// read-only Storage view plus the writes the runtime makes), PebbleLog on
// Pebble, and MemoryLog, an in-memory twin held to the same conformance
// suite.
//
// # Key layout
//
// Every per-group key is 17 bytes:
//
//	kind (1 byte) | group ID (8 bytes, big endian) | index (8 bytes, big endian)
//
// Kinds: 0x02 hard state, 0x03 snapshot metadata (both with index 0), 0x04
// log entry. Big-endian numbers make Pebble's byte order the numeric order,
// so a group's entries are one contiguous key range sorted by index: reading
// a range is one iterator, and compacting a prefix is one range deletion.
// The group ID lets many Raft groups share one Pebble instance (and its
// WAL, and so its fsyncs) later, as dragonboat's LogDB does.
//
// The single-byte key 0x01 holds the instance-wide format marker: a magic
// string and the format version. Opening a directory whose marker names a
// version this build does not read, or that holds Pebble data without a
// marker, fails with ErrFormatVersion rather than misreading it. Version 2
// added the durability marker file (below); a version 1 directory is
// upgraded in place when opened.
//
// # Entry encoding
//
// An entry's value is
//
//	crc32c (4 bytes, little endian) | term (uvarint) | type (1 byte) | data
//
// The index is not repeated: it is in the key. The data length is implied by
// the value length. The checksum (CRC-32C, hardware-accelerated) covers the
// key as well as the rest of the value, so a flipped bit and a value under
// the wrong key are both caught. It guards against what Pebble cannot see:
// Pebble checksums its files, but not data that was wrong before it reached
// Pebble or that a bug wrote to the wrong place. Every read verifies it; a
// mismatch is a *CorruptError naming the index, matching ErrCorrupt. Hard
// state and snapshot metadata are encoded as uvarints behind the same kind
// of checksum.
//
// # Durability contract
//
// A Save is one Pebble batch, so its hard state and entries (and the
// deletion of a conflicting suffix) are applied atomically: after a crash
// all of it is there or none of it. A Save with sync returns after Pebble's
// WAL is fsynced, which makes it and every earlier Save durable. A Save
// without sync may be lost in a crash, but Pebble's WAL is replayed in order,
// so the recovered log is always the state after some prefix of the saves
// (every synced one included): no hole, no torn entry, no later save without
// the earlier ones. Compact and SaveSnapshot are always synced.
//
// Damage is refused, never read as a shorter log, except for entries
// reported durable within the marker's trailing window before a crash
// (below). Every WAL Pebble writes carries sync offsets (see openDB), so
// its replay reports damage to synced data where a later block vouches for
// it. Where nothing can vouch (the WAL's last block, a WAL file cut short),
// a second line of defence does not depend on Pebble's recovery rules: a
// small marker file beside Pebble's, DURABLE-<group>, holds the log's last
// index as of a recent write it reported durable, and Open refuses with
// ErrCorrupt (naming the index found and the index expected) a log that
// ends before it. The marker is fsynced after Pebble's WAL, within
// PebbleOptions.MarkerLag (10 ms) plus up to two marker fsyncs after a
// synced write returns (before it returns, with ExactMarker; and over
// every synced write at Close), and lowered before a write that shortens
// the log (a conflict truncation, a replacing snapshot) is applied, so no
// crash at any point makes Open refuse a log that lost only what it never
// reported durable; durable.go has the argument and the measurement behind
// the trailing default. Open also refuses a hard state
// that commits past the last entry, which Save never writes.
//
// Concurrent synced saves ride Pebble's group commit: they are applied in
// order and then wait for the fsync without holding any lock of ours, so one
// fsync can cover several of them, and readers
// never wait for the disk.
// Readers may see a save before it is durable; Raft learns of durability from
// the runtime, once Save has returned, never from the Storage view.
//
// # Spare WAL file
//
// With PebbleOptions.SpareWAL the directory also holds RAFTBENCH-SPARE-WAL,
// a file of zeros Pebble takes (renamed) for its next new WAL, so that a
// new or restarted store's WAL fsyncs overwrite instead of appending (a
// restarted store's first WAL excepted: the spare is made only once the
// log has passed Open's checks); a RAFTBENCH-SPARE-WAL.tmp is one being
// built, deleted when the spare is made. spare.go
// says why and why it is safe; SpareWAL's doc has the measured trade-off.
package wal

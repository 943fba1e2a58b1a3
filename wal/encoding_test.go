package wal

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/raftbench/raftbench/core"
)

var encodingCases = []core.Entry{
	{Index: 1, Term: 1},
	{Index: 2, Term: 1, Data: []byte("x")},
	{Index: 1 << 40, Term: 127, Type: core.EntryConfChange, Data: []byte("conf")},
	{Index: maxIndex - 1, Term: 1<<64 - 1, Type: 255, Data: bytes.Repeat([]byte{0xab}, 4096)},
}

func encodeForTest(group uint64, e core.Entry) (key, val []byte) {
	key = entryKey(group, e.Index)
	val = make([]byte, encodedEntryLen(&e))
	encodeEntry(val, key, &e)
	return key, val
}

func TestEntryEncodingRoundTrip(t *testing.T) {
	for _, e := range encodingCases {
		key, val := encodeForTest(9, e)
		got, err := decodeEntry(key, val)
		if err != nil {
			t.Fatalf("decode %+v: %v", e, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("decode = %+v, want %+v", got, e)
		}
		if want := 6 + len(e.Data); e.Term < 1<<14 && len(val) > want {
			t.Fatalf("entry with term %d takes %d bytes beyond none of data %d", e.Term, len(val), want)
		}
	}
}

// TestEntryChecksumCatchesDamage flips every bit of every encoded case, cuts
// it short, and moves it under other keys: each must be ErrCorrupt naming
// the index of the key it was read under.
func TestEntryChecksumCatchesDamage(t *testing.T) {
	for _, e := range encodingCases[:3] {
		key, val := encodeForTest(9, e)
		expectCorrupt := func(what string, key, val []byte, index uint64) {
			t.Helper()
			_, err := decodeEntry(key, val)
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || !ce.HasIndex || ce.Index != index {
				t.Fatalf("entry %d, %s: err = %v; want a CorruptError for index %d", e.Index, what, err, index)
			}
		}
		for i := range val {
			for bit := 0; bit < 8; bit++ {
				v := bytes.Clone(val)
				v[i] ^= 1 << bit
				expectCorrupt("bit flip", key, v, e.Index)
			}
		}
		for n := 0; n < len(val); n++ {
			expectCorrupt("truncated", key, val[:n], e.Index)
		}
		expectCorrupt("under the next index", entryKey(9, e.Index+1), val, e.Index+1)
		expectCorrupt("under another group", entryKey(10, e.Index), val, e.Index)
	}
}

func TestHardStateAndSnapshotEncoding(t *testing.T) {
	key := makeKey(kindHardState, 1, 0)
	for _, hs := range []core.HardState{{}, {Term: 1, Vote: 2, Commit: 3}, {Term: 1 << 63, Vote: 1 << 62, Commit: 1<<64 - 1}} {
		v := encodeHardState(key, hs)
		if got, ok := decodeHardState(key, v); !ok || got != hs {
			t.Fatalf("hard state %+v round trip = %+v, %v", hs, got, ok)
		}
		v[len(v)-1] ^= 1
		if _, ok := decodeHardState(key, v); ok {
			t.Fatalf("hard state %+v: flipped bit not detected", hs)
		}
	}
	skey := makeKey(kindSnapshot, 1, 0)
	for _, m := range []core.SnapshotMeta{
		{},
		{Index: 10, Term: 2, Conf: core.ConfState{Voters: []uint64{1, 2, 3}}},
		{Index: 1 << 50, Term: 9, Conf: core.ConfState{Voters: []uint64{1}, VotersOutgoing: []uint64{1, 1 << 60}, Learners: []uint64{7}}},
	} {
		v := encodeSnapshotMeta(skey, m)
		if got, ok := decodeSnapshotMeta(skey, v); !ok || !reflect.DeepEqual(got, m) {
			t.Fatalf("snapshot meta %+v round trip = %+v, %v", m, got, ok)
		}
		if _, ok := decodeSnapshotMeta(key, v); ok {
			t.Fatalf("snapshot meta %+v accepted under the hard state key", m)
		}
	}
}

// FuzzDecodeEntry feeds arbitrary values to the entry decoder, once as
// stored and once with a valid checksum sealed over them (so the body
// parser sees arbitrary input too). The decoder must never panic; it either
// fails with a CorruptError for the key's index or returns an entry whose
// encoding is exactly the input, so no two stored forms mean the same entry.
func FuzzDecodeEntry(f *testing.F) {
	// Small seeds only: the fuzzer minimises every new interesting input,
	// which takes seconds for inputs of kilobytes.
	for _, e := range encodingCases[:3] {
		_, val := encodeForTest(1, e)
		f.Add(e.Index, val)
	}
	f.Add(uint64(5), []byte{})
	f.Add(uint64(5), []byte{0, 0, 0, 0, 0x80, 0x00, 1})
	f.Fuzz(func(t *testing.T, index uint64, val []byte) {
		key := entryKey(1, index)
		check := func(val []byte) {
			e, err := decodeEntry(key, val)
			if err != nil {
				var ce *CorruptError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Index != index {
					t.Fatalf("decode error %v is not a CorruptError for index %d", err, index)
				}
				return
			}
			if e.Index != index {
				t.Fatalf("decoded index %d under the key of %d", e.Index, index)
			}
			if e.Data != nil && len(e.Data) == 0 {
				t.Fatal("empty Data not normalised to nil")
			}
			re := make([]byte, encodedEntryLen(&e))
			encodeEntry(re, key, &e)
			if !bytes.Equal(re, val) {
				t.Fatalf("decode then encode changed the bytes:\n in %x\nout %x", val, re)
			}
		}
		check(val)
		if len(val) >= crcLen {
			sealed := bytes.Clone(val)
			sealValue(key, sealed)
			check(sealed)
		}
	})
}

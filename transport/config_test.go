package transport_test

import (
	"math"
	"testing"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/internal/configtest"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/transporttest"
)

// Options follows the config contract (internal/configtest).
func TestOptions_ConfigShape(t *testing.T) {
	bad, want := transporttest.BadOptions()
	configtest.Check(t, configtest.Case[transport.Options]{
		Sentinel:       transport.ErrInvalidConfig,
		EnsureDefaults: (*transport.Options).EnsureDefaults,
		Validate:       (*transport.Options).Validate,
		Required:       func() transport.Options { return transport.Options{ID: 1} },
		Set:            transporttest.SetOptions,
		Bad:            func() transport.Options { return bad },
		Want:           want,
	})
}

// MaxMessageSize bounds the encoding of every message without a snapshot by
// its entries' Size, at the extremes of every field: header fields at
// 2^64-1, entry terms and indexes at 2^63-1 (9-byte varints), data lengths
// on both sides of each varint length step. If core charged an entry fewer
// bytes than its encoding can take, this fails.
func TestMaxMessageSize_BoundsEveryAppend(t *testing.T) {
	const big = math.MaxInt64 // the largest term/index the bound promises
	header := core.Message{Type: core.MsgApp, From: math.MaxUint64, To: math.MaxUint64, Term: math.MaxUint64,
		LogTerm: math.MaxUint64, Index: math.MaxUint64, Commit: math.MaxUint64, RejectHint: math.MaxUint64,
		Context: math.MaxUint64, Reject: true}
	for _, tc := range []struct {
		name  string
		sizes []int // data length of each entry
	}{
		{"no entries", nil},
		{"one empty entry", []int{0}},
		{"many empty entries", make([]int, 5000)},
		{"length varint steps", []int{127, 128, 16383, 16384, 1<<21 - 1, 1 << 21}},
		{"one large entry", []int{3 << 20}},
	} {
		m := header
		for i, n := range tc.sizes {
			m.Entries = append(m.Entries, core.Entry{Term: big, Index: big - uint64(i), Type: core.EntryConfChange, Data: make([]byte, n)})
		}
		size, bound := uint64(transport.MessageSize(&m)), transport.MaxMessageSize(core.EntriesSize(m.Entries))
		if size > bound {
			t.Errorf("%s: MessageSize %d exceeds MaxMessageSize(EntriesSize %d) = %d", tc.name, size, core.EntriesSize(m.Entries), bound)
		}
		if got := uint64(len(transport.AppendMessage(nil, &m))); got != size {
			t.Fatalf("%s: encoded %d bytes, MessageSize says %d", tc.name, got, size)
		}
	}
}

package transport

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/raftbench/raftbench/core"
)

// The zero-copy encoder's segments, concatenated, are exactly the copying
// encoder's bytes, whatever mix of small and large data a batch holds.
func TestEncoderSegmentsMatchCopy(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 100)
	small := []byte{1, 2, 3}
	msgs := []core.Message{
		{Type: core.MsgApp, From: 1, To: 2, Entries: []core.Entry{{Data: small}, {Data: big}, {Data: small}, {Data: big}}},
		{Type: core.MsgHeartbeat, From: 1, To: 2},
		{Type: core.MsgSnap, From: 1, To: 2, Snapshot: &core.Snapshot{Meta: core.SnapshotMeta{Index: 3}, Data: big}},
	}
	var want []byte
	e := encoder{zeroCopyMin: 50}
	for i := range msgs {
		want = AppendFrame(want, &msgs[i])
		e.buf = binary.AppendUvarint(e.buf, uint64(MessageSize(&msgs[i])))
		e.message(&msgs[i])
	}
	e.cut()
	if e.zeroCopied != 300 {
		t.Errorf("zero-copied %d bytes, want 300", e.zeroCopied)
	}
	if got := bytes.Join(e.segs, nil); !bytes.Equal(got, want) {
		t.Fatalf("segments differ from the copied encoding")
	}
	if e.size() != len(want) {
		t.Errorf("size %d, want %d", e.size(), len(want))
	}
}

package node

import (
	"reflect"
	"testing"

	"github.com/raftbench/raftbench/core"
)

// An image is allocated at exactly its size, for every shape of
// configuration, and decodes back to the snapshot it was made from.
func TestSnapImageExactAndRoundTrips(t *testing.T) {
	for _, conf := range []core.ConfState{
		{Voters: []uint64{1}},
		{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
		{Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{5, 6}},
	} {
		s := &core.Snapshot{Meta: core.SnapshotMeta{Index: 12345, Term: 7, Conf: conf}, Data: []byte("the state machine's image")}
		b := encodeSnap(s)
		if len(b) != cap(b) {
			t.Errorf("conf %+v: image of %d bytes in a buffer of %d", conf, len(b), cap(b))
		}
		got, err := decodeSnapshot(b)
		if err != nil {
			t.Fatalf("conf %+v: %v", conf, err)
		}
		if !reflect.DeepEqual(got.Meta, s.Meta) || string(got.Data) != string(s.Data) {
			t.Errorf("round trip: got %+v %q, want %+v %q", got.Meta, got.Data, s.Meta, s.Data)
		}
	}
}

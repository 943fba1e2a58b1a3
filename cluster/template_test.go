package cluster

import (
	"errors"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/wal"
)

func TestTemplateValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Template
		want []string // substrings of the error; none: valid
	}{
		{"zero", Template{}, nil},
		{"named", Template{Transport: "quic", WAL: "memory"}, nil},
		{"unknown transport", Template{Transport: "carrier-pigeon"}, []string{`unknown transport "carrier-pigeon", want one of tcp, quic`}},
		{"unknown wal", Template{WAL: "tape"}, []string{`unknown WAL "tape", want one of pebble, memory`}},
		{"per-node fields", Template{Node: node.Config{ID: 3, SnapshotDir: "/x", JoinAsLearner: true}},
			[]string{"Node.ID is set", "Node.SnapshotDir is set", "Node.JoinAsLearner is set"}},
		{"bad knobs", Template{Node: node.Config{ElectionTicks: 5, HeartbeatTicks: 9}}, []string{"HeartbeatTicks 9 must be in [1, ElectionTicks 5)"}},
		{"bad pebble", Template{Pebble: wal.PebbleOptions{MemTableSize: 10}}, []string{"MemTableSize 10"}},
		{"messages beyond the largest frame", Template{Node: node.Config{MaxSizePerMsg: transport.MaxMaxFrameSize}},
			[]string{"MaxSizePerMsg 1073741824", "MaxFrameSize 1073741824"}},
		{"everything at once", Template{Transport: "x", WAL: "y"}, []string{"unknown transport", "unknown WAL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidTemplate) {
				t.Fatalf("Validate = %v, want ErrInvalidTemplate", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestFrameSize(t *testing.T) {
	for _, tc := range []struct {
		msg  uint64
		want int
	}{
		{0, transport.DefaultMaxFrameSize}, // default 1 MiB messages fit the default frame
		{1 << 20, transport.DefaultMaxFrameSize},
		{64 << 20, 2*(64<<20) + frameOverhead},
		{1 << 40, transport.MaxMaxFrameSize},
	} {
		if got := FrameSize(tc.msg); got != tc.want {
			t.Errorf("FrameSize(%d) = %d, want %d", tc.msg, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	if got := strings.Join(TransportNames(), ","); got != "tcp,quic" {
		t.Errorf("TransportNames = %s", got)
	}
	if got := strings.Join(WALNames(), ","); got != "pebble,memory" {
		t.Errorf("WALNames = %s", got)
	}
	if !(&Template{}).Durable() || (&Template{WAL: "memory"}).Durable() {
		t.Error("Durable: pebble is, memory is not")
	}
	if !(&Template{}).NeedsDir() || (&Template{WAL: "memory"}).NeedsDir() || !(&Template{WAL: "memory", Snapshots: true}).NeedsDir() {
		t.Error("NeedsDir: pebble or snapshots need a directory")
	}
}

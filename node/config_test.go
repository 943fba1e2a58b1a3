package node_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/internal/configtest"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/wal"
)

// framed is a transport that only answers MaxFrameSize, all Validate asks
// of one.
type framed struct {
	transport.Transport
	limit int
}

func (f framed) MaxFrameSize() int { return f.limit }

// imageSM is a state machine that can take snapshots, for configs with a
// SnapshotDir.
type imageSM struct{}

func (imageSM) Apply(cmds []node.Command) []any { return make([]any, len(cmds)) }
func (imageSM) Read([]byte) (any, error)        { return nil, nil }
func (imageSM) Snapshot() ([]byte, error)       { return nil, nil }
func (imageSM) Restore([]byte) error            { return nil }

// Config follows the config contract (internal/configtest): in particular
// Validate neither fills defaults nor seeds anything.
func TestConfig_ConfigShape(t *testing.T) {
	configtest.Check(t, configtest.Case[node.Config]{
		Sentinel:       node.ErrInvalidConfig,
		EnsureDefaults: (*node.Config).EnsureDefaults,
		Validate:       (*node.Config).Validate,
		Required: func() node.Config {
			return node.Config{ID: 1, Peers: map[uint64]string{1: "a"}, Transport: framed{limit: transport.DefaultMaxFrameSize},
				Log: wal.NewMemory(), StateMachine: imageSM{}}
		},
		Set: func() node.Config {
			return node.Config{ID: 1, Peers: map[uint64]string{1: "a", 2: "b"}, Transport: framed{limit: 1 << 20},
				Log: wal.NewMemory(), StateMachine: imageSM{},
				TickInterval: 5 * time.Millisecond, ElectionTicks: 50, HeartbeatTicks: 5,
				MaxBatchEntries: 10, MaxBatchBytes: 1 << 10, MaxProposalPipeline: 2,
				MaxInflight: 16, MaxInflightBytes: 1 << 22, MaxUncommittedBytes: 1 << 23, MaxSizePerMsg: 1 << 19,
				DisablePreVote: true, ReadMode: node.ReadModeLease, LeaseDriftTicks: 3, NoSync: true,
				SnapshotDir: "snap", SnapshotEntries: 100, SnapshotBytes: 1 << 20, SnapshotTrailing: 7,
				JoinAsLearner: true, Seed: 42, Logger: slog.New(slog.DiscardHandler)}
		},
		// Lease reads need check-quorum, so Set cannot also disable it.
		Unset: []string{"DisableCheckQuorum"},
		Bad: func() node.Config {
			return node.Config{ID: 0, Peers: map[uint64]string{0: "", 2: ""}, TickInterval: time.Microsecond,
				ElectionTicks: 1, HeartbeatTicks: 5, MaxBatchEntries: -1, MaxBatchBytes: -1, MaxProposalPipeline: -1,
				MaxInflight: -1, MaxSizePerMsg: 0, ReadMode: 5, SnapshotEntries: 5}
		},
		Want: []string{"ID is 0", "Peers lists node ID 0", "Peers gives node 2 no address", "Transport is nil",
			"Log is nil", "StateMachine is nil", "TickInterval 1µs", "ElectionTicks 1", "HeartbeatTicks 5",
			"MaxBatchEntries -1", "MaxBatchBytes -1", "MaxProposalPipeline -1", "MaxInflight -1", "MaxSizePerMsg 0",
			"ReadMode 5", "SnapshotDir is empty"},
	})
}

// A zero Seed defaults to one derived from the ID alone: the same for the
// same ID however often and whenever it is derived (no clock), different
// for different IDs, and never zero.
func TestConfig_SeedFromID(t *testing.T) {
	seed := func(id uint64) uint64 {
		c := node.Config{ID: id}
		c.EnsureDefaults()
		return c.Seed
	}
	seen := map[uint64]uint64{}
	for id := range uint64(1000) {
		s := seed(id)
		if s == 0 {
			t.Fatalf("ID %d got the zero seed", id)
		}
		if other, dup := seen[s]; dup {
			t.Fatalf("IDs %d and %d got the same seed %d", other, id, s)
		}
		seen[s] = id
		if again := seed(id); again != s {
			t.Fatalf("ID %d: seed %d, then %d", id, s, again)
		}
	}
}

// Validate refuses a MaxSizePerMsg whose appends cannot fit the
// transport's frames, naming both numbers and what would fit; the largest
// MaxSizePerMsg that fits is accepted.
func TestConfig_MaxSizePerMsgMustFitTheFrame(t *testing.T) {
	const frame = 1 << 20
	// The largest append is MaxSizePerMsg of data in one entry, plus that
	// entry's fixed charge, plus the message header.
	fit := uint64(frame) - transport.MaxMessageSize((&core.Entry{}).Size())
	for _, tc := range []struct {
		size uint64
		ok   bool
	}{
		{fit, true},
		{fit + 1, false},
		{2 << 20, false},
		{1<<64 - 1, false}, // must not wrap around into a small size
	} {
		c := node.Config{ID: 1, Peers: map[uint64]string{1: "a"}, Transport: framed{limit: frame},
			Log: wal.NewMemory(), StateMachine: imageSM{}, MaxSizePerMsg: tc.size}
		c.EnsureDefaults()
		err := c.Validate()
		if tc.ok {
			if err != nil {
				t.Errorf("MaxSizePerMsg %d with frames of %d: %v", tc.size, frame, err)
			}
			continue
		}
		if !errors.Is(err, node.ErrInvalidConfig) || len(configtest.Violations(err)) != 1 {
			t.Fatalf("MaxSizePerMsg %d with frames of %d: Validate = %v, want one violation", tc.size, frame, err)
		}
		for _, want := range []string{fmt.Sprintf("MaxSizePerMsg %d", tc.size), fmt.Sprintf("MaxFrameSize %d", frame),
			fmt.Sprintf("at most %d", fit)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
	}
}

// Start asks the real transport, through the fault wrapper, for its
// limit: a node whose messages cannot fit its TCP transport's frames does
// not start.
func TestStart_RefusesMessagesLargerThanFrames(t *testing.T) {
	const frame = 1 << 20
	inner, err := tcp.New(tcp.Config{Options: transport.Options{ID: 1, MaxFrameSize: frame}, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := fault.Wrap(inner, fault.Config{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	_, err = node.Start(node.Config{ID: 1, Peers: map[uint64]string{1: tr.Addr()}, Transport: tr,
		Log: wal.NewMemory(), StateMachine: imageSM{}, MaxSizePerMsg: 2 << 20, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, node.ErrInvalidConfig) || !strings.Contains(err.Error(), "MaxSizePerMsg 2097152") ||
		!strings.Contains(err.Error(), "MaxFrameSize 1048576") {
		t.Fatalf("Start with 2 MiB messages over 1 MiB frames = %v, want ErrInvalidConfig naming both", err)
	}
}

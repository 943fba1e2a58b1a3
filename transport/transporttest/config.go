package transporttest

import (
	"log/slog"
	"time"

	"github.com/raftbench/raftbench/transport"
)

// SetOptions returns valid transport.Options with every field set to
// something other than its default, for the config-contract tests of the
// transports that embed Options (internal/configtest, Case.Set).
func SetOptions() transport.Options {
	return transport.Options{
		ID: 1, ClusterID: 7, MaxFrameSize: 2 << 20, QueueLen: 10,
		BackoffMin: time.Millisecond, BackoffMax: 2 * time.Second,
		DialTimeout: 3 * time.Second, HandshakeTimeout: 4 * time.Second, WriteTimeout: 5 * time.Second,
		UnreachableAfter: 3, SnapshotChunkSize: 4096, MaxSnapshotSize: 1 << 20,
		SnapshotTimeout: 7 * time.Second, SnapshotRate: 1 << 20,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// BadOptions returns transport.Options with every field that Validate
// checks invalid, and one substring per violation Validate must report
// (internal/configtest, Case.Bad and Case.Want).
func BadOptions() (transport.Options, []string) {
	return transport.Options{
			ID: 0, MaxFrameSize: 10, QueueLen: -1, BackoffMin: -1, BackoffMax: -2,
			DialTimeout: -1, HandshakeTimeout: -1, WriteTimeout: -1, UnreachableAfter: -1,
			SnapshotChunkSize: 1, MaxSnapshotSize: -1, SnapshotTimeout: -1, SnapshotRate: -1,
		}, []string{"ID = 0", "MaxFrameSize = 10", "QueueLen = -1", "BackoffMin = -1ns", "BackoffMax = -2ns",
			"DialTimeout = -1ns", "HandshakeTimeout = -1ns", "WriteTimeout = -1ns", "UnreachableAfter = -1",
			"SnapshotChunkSize = 1", "MaxSnapshotSize = -1", "SnapshotTimeout = -1ns", "SnapshotRate = -1"}
}

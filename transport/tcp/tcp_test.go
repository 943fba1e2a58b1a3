package tcp_test

import (
	"testing"
	"time"

	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/transport/transporttest"
)

// testConfig is a config with timeouts short enough for tests on loopback.
func testConfig(o transporttest.Options) tcp.Config {
	return tcp.Config{
		Options: transport.Options{
			ID: o.ID, ClusterID: o.ClusterID, MaxFrameSize: o.MaxFrameSize, QueueLen: o.QueueLen,
			SnapshotChunkSize: o.SnapshotChunkSize, MaxSnapshotSize: o.MaxSnapshotSize, SnapshotRate: o.SnapshotRate,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			DialTimeout: time.Second, HandshakeTimeout: time.Second, WriteTimeout: 2 * time.Second,
		},
		ListenAddr: o.ListenAddr(),
	}
}

// Factory builds plain TCP transports for the conformance suite.
func Factory(t testing.TB, o transporttest.Options) transport.Transport {
	tr, err := tcp.New(testConfig(o))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TLSFactory returns a factory for mutual-TLS transports sharing files.
func TLSFactory(files transport.TLSFiles) transporttest.Factory {
	return func(t testing.TB, o transporttest.Options) transport.Transport {
		cfg := testConfig(o)
		cfg.TLS = &files
		tr, err := tcp.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, Factory)
}

func TestConformanceTLS(t *testing.T) {
	transporttest.Run(t, TLSFactory(transporttest.WriteCerts(t)))
}

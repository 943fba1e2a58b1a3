package quic_test

import (
	"testing"
	"time"

	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/transporttest"
)

func testConfig(o transporttest.Options) quic.Config {
	return quic.Config{
		Options: transport.Options{
			ID: o.ID, ClusterID: o.ClusterID, MaxFrameSize: o.MaxFrameSize, QueueLen: o.QueueLen,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			DialTimeout: time.Second, HandshakeTimeout: time.Second, WriteTimeout: 2 * time.Second,
		},
		ListenAddr:  o.ListenAddr(),
		IdleTimeout: 3 * time.Second,
	}
}

// Factory builds QUIC transports with a generated self-signed certificate.
func Factory(t testing.TB, o transporttest.Options) transport.Transport {
	tr, err := quic.New(testConfig(o))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, Factory)
}

func TestConformanceMutualTLS(t *testing.T) {
	files := transporttest.WriteCerts(t)
	transporttest.Run(t, func(t testing.TB, o transporttest.Options) transport.Transport {
		cfg := testConfig(o)
		cfg.TLS = &files
		tr, err := quic.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	})
}

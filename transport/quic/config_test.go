package quic_test

import (
	"testing"

	"github.com/raftbench/raftbench/internal/configtest"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/transporttest"
)

// Config follows the config contract (internal/configtest), the embedded
// transport.Options included.
func TestConfig_ConfigShape(t *testing.T) {
	badOpts, want := transporttest.BadOptions()
	configtest.Check(t, configtest.Case[quic.Config]{
		Sentinel:       transport.ErrInvalidConfig,
		EnsureDefaults: (*quic.Config).EnsureDefaults,
		Validate:       (*quic.Config).Validate,
		Required: func() quic.Config {
			return quic.Config{Options: transport.Options{ID: 1}, ListenAddr: "127.0.0.1:0"}
		},
		Set: func() quic.Config {
			return quic.Config{Options: transporttest.SetOptions(), ListenAddr: "127.0.0.1:0",
				TLS:         &transport.TLSFiles{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem", Mutual: true, ServerName: "n"},
				IdleTimeout: 3e9, StreamWindow: quic.MinStreamWindow, StatelessResetKey: &[32]byte{1}}
		},
		Bad: func() quic.Config {
			return quic.Config{Options: badOpts, TLS: &transport.TLSFiles{Mutual: true}, IdleTimeout: -1, StreamWindow: 1}
		},
		Want: append(want, "ListenAddr is empty", "TLS.CertFile is empty", "TLS.KeyFile is empty", "TLS.Mutual needs TLS.CAFile",
			"IdleTimeout = -1ns", "StreamWindow = 1"),
	})
}

package tcp_test

import (
	"testing"

	"github.com/raftbench/raftbench/internal/configtest"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/transport/transporttest"
)

// Config follows the config contract (internal/configtest), the embedded
// transport.Options included.
func TestConfig_ConfigShape(t *testing.T) {
	badOpts, want := transporttest.BadOptions()
	configtest.Check(t, configtest.Case[tcp.Config]{
		Sentinel:       transport.ErrInvalidConfig,
		EnsureDefaults: (*tcp.Config).EnsureDefaults,
		Validate:       (*tcp.Config).Validate,
		Required: func() tcp.Config {
			return tcp.Config{Options: transport.Options{ID: 1}, ListenAddr: "127.0.0.1:0"}
		},
		Set: func() tcp.Config {
			return tcp.Config{Options: transporttest.SetOptions(), ListenAddr: "127.0.0.1:0",
				TLS:       &transport.TLSFiles{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem", Mutual: true, ServerName: "n"},
				KeepAlive: -1}
		},
		Bad: func() tcp.Config {
			return tcp.Config{Options: badOpts, TLS: &transport.TLSFiles{Mutual: true}}
		},
		Want: append(want, "ListenAddr is empty", "TLS.CertFile is empty", "TLS.KeyFile is empty", "TLS.Mutual needs TLS.CAFile"),
	})
}

// New applies the same defaults and checks: a zero KeepAlive becomes
// DefaultKeepAlive, and a bad config is refused with every problem.
func TestNew_DefaultsThenValidates(t *testing.T) {
	c := tcp.Config{Options: transport.Options{ID: 1}, ListenAddr: "127.0.0.1:0"}
	c.EnsureDefaults()
	if c.KeepAlive != tcp.DefaultKeepAlive {
		t.Errorf("KeepAlive default = %v, want %v", c.KeepAlive, tcp.DefaultKeepAlive)
	}
	bad, want := transporttest.BadOptions()
	if _, err := tcp.New(tcp.Config{Options: bad}); len(configtest.Violations(err)) != len(want)+1 {
		t.Errorf("New(bad) reported %d violations, want %d: %v", len(configtest.Violations(err)), len(want)+1, err)
	}
}

package clientapi

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/raftbench/raftbench/internal/configtest"
)

// otherResults is a ResultCodec other than the default, for Case.Set.
type otherResults struct{ KVResults }

// Options and ServerConfig follow the config contract
// (internal/configtest).
func TestConfig_ConfigShape(t *testing.T) {
	t.Run("Options", func(t *testing.T) {
		dial := func(context.Context, string) (net.Conn, error) { return nil, nil }
		configtest.Check(t, configtest.Case[Options]{
			Sentinel:       ErrInvalidConfig,
			EnsureDefaults: (*Options).EnsureDefaults,
			Validate:       (*Options).Validate,
			Required:       func() Options { return Options{} },
			Set: func() Options {
				return Options{ClusterID: 3, Results: otherResults{}, DialTimeout: 2 * time.Second,
					RedialBackoff: time.Millisecond, MaxFrameSize: 1 << 20, WriteTimeout: time.Second, Dial: dial}
			},
			Bad: func() Options {
				return Options{DialTimeout: -1, RedialBackoff: -1, MaxFrameSize: 3, WriteTimeout: -1}
			},
			Want: []string{"DialTimeout -1ns", "RedialBackoff -1ns", "MaxFrameSize 3", "WriteTimeout -1ns"},
			Equal: func(a, b Options) bool {
				same := configtest.Funcs(a.Dial, b.Dial)
				a.Dial, b.Dial = nil, nil
				return same && reflect.DeepEqual(a, b)
			},
		})
	})
	t.Run("ServerConfig", func(t *testing.T) {
		addrs := func() map[uint64]string { return nil }
		configtest.Check(t, configtest.Case[ServerConfig]{
			Sentinel:       ErrInvalidConfig,
			EnsureDefaults: (*ServerConfig).EnsureDefaults,
			Validate:       (*ServerConfig).Validate,
			Required:       func() ServerConfig { return ServerConfig{NodeID: 1, Backend: funcBackend{}} },
			Set: func() ServerConfig {
				return ServerConfig{ClusterID: 3, NodeID: 1, Backend: funcBackend{}, Results: otherResults{},
					ClientAddrs: addrs, MaxFrameSize: 1 << 20, MaxInflight: 8, MaxTimeout: time.Second,
					HandshakeTimeout: time.Second, WriteTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)}
			},
			Bad: func() ServerConfig {
				return ServerConfig{MaxFrameSize: 3, MaxInflight: -1, MaxTimeout: -1, HandshakeTimeout: -1, WriteTimeout: -1}
			},
			Want: []string{"NodeID is 0", "Backend is nil", "MaxFrameSize 3", "MaxInflight -1", "MaxTimeout -1ns",
				"HandshakeTimeout -1ns", "WriteTimeout -1ns"},
			Equal: func(a, b ServerConfig) bool {
				same := configtest.Funcs(a.ClientAddrs, b.ClientAddrs)
				a.ClientAddrs, b.ClientAddrs = nil, nil
				return same && reflect.DeepEqual(a, b)
			},
		})
	})
}

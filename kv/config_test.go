package kv

import (
	"testing"
	"time"

	"github.com/raftbench/raftbench/internal/configtest"
)

// StoreOptions and ClientOptions follow the config contract
// (internal/configtest).
func TestOptions_ConfigShape(t *testing.T) {
	t.Run("StoreOptions", func(t *testing.T) {
		configtest.Check(t, configtest.Case[StoreOptions]{
			Sentinel:       ErrInvalidOptions,
			EnsureDefaults: (*StoreOptions).EnsureDefaults,
			Validate:       func(o *StoreOptions) error { return o.Validate() },
			Required:       func() StoreOptions { return StoreOptions{} },
			Set:            func() StoreOptions { return StoreOptions{MaxSessions: 10} },
			Bad:            func() StoreOptions { return StoreOptions{MaxSessions: -1} },
			Want:           []string{"MaxSessions is -1"},
		})
	})
	t.Run("ClientOptions", func(t *testing.T) {
		configtest.Check(t, configtest.Case[ClientOptions]{
			Sentinel:       ErrInvalidOptions,
			EnsureDefaults: (*ClientOptions).EnsureDefaults,
			Validate:       func(o *ClientOptions) error { return o.Validate() },
			Required:       func() ClientOptions { return ClientOptions{} },
			Set: func() ClientOptions {
				return ClientOptions{ID: 5, AttemptTimeout: time.Second, OpTimeout: 3 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Second}
			},
			Bad: func() ClientOptions {
				return ClientOptions{AttemptTimeout: -1, OpTimeout: -3, MinBackoff: -1, MaxBackoff: -2}
			},
			Want: []string{"OpTimeout is -3ns", "AttemptTimeout is -1ns", "MinBackoff is -1ns", "MaxBackoff is -2ns"},
		})
	})
}

// A zero client ID becomes a random non-zero one, which the client then
// uses.
func TestClientOptions_RandomID(t *testing.T) {
	var a, b ClientOptions
	a.EnsureDefaults()
	b.EnsureDefaults()
	if a.ID == 0 || a.ID == b.ID {
		t.Fatalf("default IDs %d and %d, want two distinct non-zero ones", a.ID, b.ID)
	}
	c, err := NewClient([]Endpoint{&fakeEndpoint{id: 1}}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() == 0 {
		t.Fatal("NewClient left the client ID zero")
	}
}

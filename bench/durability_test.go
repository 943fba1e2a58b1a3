package bench

import (
	"errors"
	"strings"
	"testing"
)

// A crash needs the crashable WAL: Validate switches --wal pebble to it
// (so config.json says what ran), keeps an explicit crashable, and refuses
// --wal memory, which has nothing to recover from.
func TestCrashFaultsChooseTheCrashableWAL(t *testing.T) {
	for _, tc := range []struct {
		wal, fault, want string
	}{
		{"pebble", "crash-leader@1s", "crashable"},
		{"pebble", "crash:2@1s+1s", "crashable"},
		{"crashable", "crash:2@1s", "crashable"},
		{"crashable", "kill:2@1s", "crashable"},
		{"pebble", "bitflip-wal:2@1s", "pebble"},
		{"pebble", "truncate-wal:2@1s", "pebble"},
	} {
		c := Default()
		c.WAL, c.Faults = tc.wal, []string{tc.fault}
		if err := c.Validate(); err != nil || c.WAL != tc.want {
			t.Errorf("--wal %s --fault %s: wal %q, %v; want %q", tc.wal, tc.fault, c.WAL, err, tc.want)
		}
	}
	for _, fault := range []string{"crash:1@1s", "crash-leader@1s", "bitflip-wal:1@1s", "truncate-wal:3@1s"} {
		c := Default()
		c.WAL, c.Faults = "memory", []string{fault}
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "--wal memory") {
			t.Errorf("--wal memory --fault %s: %v, want a refusal naming --wal memory", fault, err)
		}
	}
}

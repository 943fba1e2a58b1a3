package bench

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// --read-mode reaches node.Config, and a lease without check-quorum or an
// unknown mode is refused naming the flag.
func TestReadModeKnob(t *testing.T) {
	c, err := Merge(writeYAML(t, "read-mode: lease\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.ReadMode != "lease" || readMode(c.ReadMode) != node.ReadModeLease {
		t.Fatalf("read-mode lease from YAML: %q, %v", c.ReadMode, err)
	}
	if readMode(Default().ReadMode) != node.ReadModeIndex {
		t.Fatalf("default read mode %q", Default().ReadMode)
	}
	for _, tc := range []struct {
		flags []Assignment
		want  string
	}{
		{[]Assignment{{"read-mode", "lease"}, {"checkquorum", "false"}}, "--read-mode: lease needs --checkquorum"},
		{[]Assignment{{"read-mode", "eventual"}}, `--read-mode: "eventual", want index or lease`},
	} {
		c, err := Merge("", tc.flags)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.flags, err, tc.want)
		}
	}
	if _, err := ParseAxis("read-mode=index,lease"); err != nil {
		t.Errorf("read-mode is not sweepable: %v", err)
	}
}

// The byte limits take sizes with suffixes and refuse nonsense.
func TestFlowControlKnobs(t *testing.T) {
	c, err := Merge("", []Assignment{{"max-inflight-bytes", "16MiB"}, {"max-uncommitted-bytes", "1GiB"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.MaxInflightBytes != 16<<20 || c.MaxUncommittedBytes != 1<<30 {
		t.Fatalf("merged %d / %d, %v", c.MaxInflightBytes, c.MaxUncommittedBytes, err)
	}
	d := Default()
	if d.MaxInflightBytes != node.DefaultMaxInflightBytes || d.MaxUncommittedBytes != node.DefaultMaxUncommittedBytes {
		t.Errorf("defaults %d / %d are not node's", d.MaxInflightBytes, d.MaxUncommittedBytes)
	}
	d.MaxInflightBytes, d.MaxUncommittedBytes = 0, -1
	err = d.Validate()
	for _, want := range []string{"--max-inflight-bytes: 0", "--max-uncommitted-bytes: -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}

func TestAttemptTimeoutKnob(t *testing.T) {
	if d := Default(); d.AttemptTimeout.D() != kv.DefaultAttemptTimeout || d.AttemptTimeout >= d.ElectionTimeout {
		t.Errorf("default attempt timeout %v (election timeout %v)", d.AttemptTimeout.D(), d.ElectionTimeout.D())
	}
	c, err := Merge("", []Assignment{{"attempt-timeout", "250ms"}})
	if err != nil || c.Validate() != nil || c.AttemptTimeout.D() != 250*time.Millisecond {
		t.Fatalf("--attempt-timeout 250ms: %v, %v", c.AttemptTimeout.D(), err)
	}
	c, _ = Merge("", []Assignment{{"attempt-timeout", "20s"}})
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--attempt-timeout: 20s, want 1ms up to --op-timeout 10s") {
		t.Errorf("attempt beyond the op timeout: %v", err)
	}
}

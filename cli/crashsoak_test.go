package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/bench"
)

// TestCrashSoakBadInput: what crash-soak refuses before it starts any
// process is a one-line error and exit code 2.
func TestCrashSoakBadInput(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"crash-soak", "--wal", "memory"}, "--wal memory"},
		{[]string{"crash-soak", "--nodes", "2"}, "Nodes 2 outside 3..7"},
		{[]string{"crash-soak", "--dir", full}, "is not empty"},
		{[]string{"crash-soak", "--interval", "1ms"}, "Interval 1ms"},
		{[]string{"crash-soak", "--transport", "smoke"}, "--transport"},
		{[]string{"crash-soak", "extra"}, "takes 0 argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(context.Background(), tc.args, &stdout, &stderr)
		msg := stderr.String()
		if code != exitBadInput || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args[1:], code, msg, tc.want)
		}
	}
}

// TestNodeKnobFlags: the knobs crash-soak hands its nodes are every node
// knob, in a form raftbench node parses back to the same values.
func TestNodeKnobFlags(t *testing.T) {
	var f *nodeFlags
	knobs, err := bench.Merge("", []bench.Assignment{{Name: "tick", Value: "7ms"}, {Name: "prevote", Value: "false"}, {Name: "batch-bytes", Value: "1048576"}, {Name: "transport", Value: "quic"}})
	if err != nil {
		t.Fatal(err)
	}
	flags := knobs.NodeFlags()
	if len(flags) != len(bench.NodeKnobs) {
		t.Errorf("%d flags for %d node knobs", len(flags), len(bench.NodeKnobs))
	}
	cmd := newNodeCmdFlags(&f)
	args := append([]string{"--id", "1", "--peers", "1=127.0.0.1:1/127.0.0.1:2", "--dir", t.TempDir()}, flags...)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	s, err := f.setup(os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range bench.NodeKnobs {
		k, _ := bench.KnobByName(name)
		if got, want := k.Get(&s.knobs), k.Get(&knobs); got != want {
			t.Errorf("--%s: raftbench node parsed %q back as %q", name, want, got)
		}
	}
	if s.knobs.PreVote || s.knobs.Transport != "quic" {
		t.Errorf("the flags %q did not carry --prevote=false and --transport quic", flags)
	}
}

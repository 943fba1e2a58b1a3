package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/cli"
	"github.com/raftbench/raftbench/peers/target"
)

func TestMain(m *testing.M) {
	if err := target.Register(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli.Main(context.Background(), cli.Options{Name: "raftbench-peers", Commands: commands()}, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestBadFlagExit2: a knob a system has no setting for, or a fault it
// cannot inject, is one line on stderr naming the system and the flag,
// with exit code 2, and nothing is run.
func TestBadFlagExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--system", "dragonboat", "--max-inflight", "64"}, []string{"dragonboat", "--max-inflight"}},
		{[]string{"run", "--system", "hashicorp", "--heartbeat", "20ms"}, []string{"hashicorp", "--heartbeat"}},
		{[]string{"run", "--system", "hashicorp", "--fault", "reorder=0.1"}, []string{"hashicorp", "reorder=0.1"}},
		{[]string{"run", "--system", "etcd", "--transport", "quic"}, []string{"etcd", "--transport"}},
		{[]string{"run", "--system", "etcd", "--groups", "2"}, []string{"etcd", "--groups"}},
		{[]string{"run", "--system", "nosuch"}, []string{"--system", "nosuch", "dragonboat"}},
		{[]string{"table"}, []string{"table"}},
	} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := run(append(tc.args, "--out", out)...)
		if tc.args[0] == "table" {
			code, _, stderr = run(tc.args...)
		}
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "raftbench-peers: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q does not name %q", tc.args, stderr, w)
			}
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: wrote %s", tc.args, out)
		}
	}
}

// TestRunAndTable: a short etcd run through the CLI, with a leader kill
// and --check, passes its verdicts, and table reads its directory into a
// markdown row for etcd at 4 clients.
func TestRunAndTable(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := run("run", "--system", "etcd", "--clients", "4", "--duration", "1500ms", "--warmup", "200ms",
		"--election-timeout", "300ms", "--fault", "kill-leader@300ms+500ms", "--check", "--out", filepath.Join(dir, "c4-etcd"))
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`linearizable +ok`).MatchString(stdout) {
		t.Fatalf("stdout does not report a linearizable history:\n%s", stdout)
	}
	code, stdout, stderr = run("table", dir)
	if code != 0 {
		t.Fatalf("table: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "4 clients") || !strings.HasPrefix(lines[2], "| etcd") || strings.Contains(stdout, "[1]") {
		t.Fatalf("table:\n%s", stdout)
	}
}

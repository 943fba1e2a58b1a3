package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/bench/results"
)

// TestRunEndToEnd runs `raftbench run` for a few seconds on each transport,
// killing the leader (and restarting it) under load with --check, and
// checks the result directory is complete and every verdict holds.
func TestRunEndToEnd(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), []string{"run",
				"--transport", tr, "--duration", "3s", "--warmup", "500ms", "--clients", "8", "--keys", "50",
				"--tick", "5ms", "--election-timeout", "300ms", "--heartbeat", "30ms",
				"--fault", "kill-leader@1s+1s", "--check", "--cpuprofile", "--out", out,
			}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			for _, f := range []string{results.ConfigFile, results.SummaryFile, results.HgrmFile, results.HlogFile, results.TimelineFile,
				results.ReportFile, "cpu.pprof", "plots/latency_percentiles.png", "plots/throughput.png", "plots/p99.png"} {
				if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
					t.Errorf("result directory lacks %s (%v)", f, err)
				}
			}
			run, err := results.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			s := run.Summary
			if s.Linearizable == nil || !*s.Linearizable || s.LinearizabilityCheck != "ok" {
				t.Errorf("linearizable = %v (%s)", s.Linearizable, s.LinearizabilityCheck)
			}
			if !s.ReplicasAgree || !s.AckedOpsFound || s.AckedWrites == 0 {
				t.Errorf("replicas_agree %v, acked_ops_found %v (%d acked, lost %v); problems %v", s.ReplicasAgree, s.AckedOpsFound, s.AckedWrites, s.LostKeys, s.Problems)
			}
			if s.Ops == 0 || s.ThroughputOpsPerSec <= 0 || s.LatencyUS.P99 <= 0 {
				t.Errorf("no throughput measured: %+v", s)
			}
			if len(s.Failovers) != 1 || s.Failovers[0].ToLeaderMS < 0 || s.Failovers[0].NewLeader == s.Failovers[0].OldLeader {
				t.Errorf("failovers = %+v, want one with a new leader", s.Failovers)
			}
			if len(s.Faults) != 2 || !strings.HasPrefix(s.Faults[0].What, "killed node") || !strings.HasPrefix(s.Faults[1].What, "restarted node") {
				t.Errorf("faults = %+v, want a kill and a restart", s.Faults)
			}
			if len(run.Timeline) < 3 || len(run.Intervals) != len(run.Timeline) {
				t.Errorf("timeline has %d rows and hlog %d intervals, want 3+ and equal", len(run.Timeline), len(run.Intervals))
			}
			var cfg map[string]any
			b, _ := os.ReadFile(filepath.Join(out, results.ConfigFile))
			if err := json.Unmarshal(b, &cfg); err != nil || cfg["transport"] != tr || cfg["election_timeout"] != "300ms" {
				t.Errorf("config.json = %v (%v)", cfg, err)
			}
			if !strings.Contains(stdout.String(), "latency p99") || !strings.Contains(stdout.String(), "replicas agree       true") {
				t.Errorf("summary table missing:\n%s", stdout.String())
			}
			if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
				t.Errorf("a .partial directory was left behind")
			}
			// report rebuilds report.md and the plots from the data.
			if err := os.Remove(filepath.Join(out, results.ReportFile)); err != nil {
				t.Fatal(err)
			}
			if code := realMain(context.Background(), []string{"report", out}, &stdout, &stderr); code != 0 {
				t.Fatalf("report: exit %d: %s", code, stderr.String())
			}
			if md, err := os.ReadFile(filepath.Join(out, results.ReportFile)); err != nil || !strings.Contains(string(md), "linearizable: yes") {
				t.Errorf("rebuilt report.md lacks the verdict (%v)", err)
			}
		})
	}
}

// TestBadInput: every bad flag, config key or value, fault spec or output
// directory is a one-line error naming it, exit code 2, and leaves no
// result directory behind.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(cfgFile, []byte("nodes: 3\nwarp-speed: 9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--nodes", "0"}, "--nodes: 0"},
		{[]string{"run", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"run", "--payload", "lots"}, `--payload: "lots"`},
		{[]string{"run", "--transport", "carrier-pigeon"}, "--transport"},
		{[]string{"run", "--fault", "kill-leader"}, "needs a time"},
		{[]string{"run", "--fault", "meteor@1s"}, "grammar: NAME[:NODE]"},
		{[]string{"run", "--config", cfgFile}, `unknown key "warp-speed"`},
		{[]string{"run", "--config", filepath.Join(dir, "nope.yaml")}, "--config"},
		{[]string{"run", "--out", filepath.Join(blocker, "sub"), "--duration", "1s"}, "--out"},
		{[]string{"run", "--wal", "memory", "--fault", "kill-leader@1s+1s"}, "--wal memory"},
		{[]string{"run", "extra"}, "takes 0 argument"},
		{[]string{"sweep", "--set", "nodes"}, "--set"},
		{[]string{"sweep"}, "--set"},
		{[]string{"tune", "batch", "--batches", "0"}, "--batches"},
		{[]string{"tune", "election", "--timeouts", "soon"}, "--timeouts"},
		{[]string{"compare", dir, dir}, "no summary.json"},
		{[]string{"report", dir}, "not a result directory"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		var stdout, stderr bytes.Buffer
		args := append(tc.args, "--out", out)
		if tc.args[0] != "run" && tc.args[0] != "sweep" && tc.args[0] != "tune" {
			args = tc.args
		}
		if strings.Contains(strings.Join(tc.args, " "), "--out") {
			args = tc.args
		}
		code := realMain(context.Background(), args, &stdout, &stderr)
		msg := stderr.String()
		if code != exitBadInput || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, code, msg, tc.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v left %s behind", tc.args, out)
		}
		if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
			t.Errorf("%v left %s.partial behind", tc.args, out)
		}
	}
}

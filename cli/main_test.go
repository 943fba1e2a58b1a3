package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench"
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
			} else if f := s.Failovers[0]; f.ToCommitMS < f.ToLeaderMS {
				// The first commit of a write proposed after the kill
				// needs the new leader.
				t.Errorf("failover: first commit after %.1f ms, before the new leader at %.1f ms", f.ToCommitMS, f.ToLeaderMS)
			}
			if s.ReplicaCheck != "agree" || len(s.ReplicaApplied) != 3 {
				t.Errorf("replica_check %q, replica_applied %v", s.ReplicaCheck, s.ReplicaApplied)
			}
			if len(s.Faults) != 2 || !strings.HasPrefix(s.Faults[0].What, "killed node") || !strings.HasPrefix(s.Faults[1].What, "restarted node") {
				t.Errorf("faults = %+v, want a kill and a restart", s.Faults)
			}
			if len(run.Timeline) < 3 || len(run.Intervals) != len(run.Timeline) {
				t.Errorf("timeline has %d rows and hlog %d intervals, want 3+ and equal", len(run.Timeline), len(run.Intervals))
			}
			var cfg map[string]any
			b, _ := os.ReadFile(filepath.Join(out, results.ConfigFile))
			if err := json.Unmarshal(b, &cfg); err != nil || cfg["transport"] != tr || cfg["election-timeout"] != "300ms" {
				t.Errorf("config.json = %v (%v)", cfg, err)
			}
			if !strings.Contains(stdout.String(), "latency p99") || !strings.Contains(stdout.String(), "replicas agree       true") {
				t.Errorf("summary table missing:\n%s", stdout.String())
			}
			if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
				t.Errorf("a .partial directory was left behind")
			}
			md, _ := os.ReadFile(filepath.Join(out, results.ReportFile))
			for _, want := range []string{"# raftbench run run\n", "| batch-bytes | 4194304 |", "## Profiles", "[`cpu.pprof`](cpu.pprof)", "| incomplete |"} {
				if !strings.Contains(string(md), want) {
					t.Errorf("report.md lacks %q", want)
				}
			}
			if strings.Contains(string(md), ".partial") || strings.Contains(string(md), "e+06") {
				t.Errorf("report.md names the .partial directory or prints an integer in e-notation")
			}
			// config.json fed back as --config is the same configuration.
			again, err := bench.Merge(filepath.Join(out, results.ConfigFile), nil)
			if err != nil {
				t.Errorf("config.json as --config: %v", err)
			} else if again.Transport != tr || again.ElectionTimeout.D() != 300*time.Millisecond || len(again.Faults) != 1 || again.CPUProfile != "cpu.pprof" {
				t.Errorf("config.json as --config gave %+v", again)
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
		{[]string{"run", "--snapshot-every", "-5"}, "--snapshot-every: -5"},
		{[]string{"run", "--snapshot-trailing", "lots"}, `--snapshot-trailing: "lots"`},
		{[]string{"run", "--wal-memtable", "4096"}, "--wal-memtable: 4096"},
		{[]string{"run", "--fault", "add-node:2@1s"}, "add-node takes no node"},
		{[]string{"run", "--fault", "remove-leader@1s+1s"}, "takes no duration"},
		{[]string{"run", "--fault", "replace:5@1s"}, "between 1 and 4"},
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

// TestMembershipEndToEnd grows, shrinks and replaces under load on TCP with
// frequent snapshots and a small memtable, and checks the verdicts, that
// the summary lists each membership change with its time, and that every
// node's data directory stayed far below the log the run wrote.
func TestMembershipEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), []string{"run",
		"--duration", "6s", "--warmup", "300ms", "--clients", "8", "--keys", "50", "--payload", "4096",
		"--tick", "5ms", "--election-timeout", "300ms", "--heartbeat", "30ms",
		"--snapshot-every", "500", "--snapshot-trailing", "100", "--wal-memtable", "1MiB",
		"--fault", "add-node@1s", "--fault", "remove-leader@2500ms", "--fault", "replace:2@4s",
		"--check", "--out", out,
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	s := run.Summary
	if s.Linearizable == nil || !*s.Linearizable {
		t.Errorf("linearizable = %v (%s)", s.Linearizable, s.LinearizabilityCheck)
	}
	if !s.ReplicasAgree || !s.AckedOpsFound || s.AckedWrites == 0 {
		t.Errorf("replicas_agree %v, acked_ops_found %v (%d acked, lost %v); problems %v", s.ReplicasAgree, s.AckedOpsFound, s.AckedWrites, s.LostKeys, s.Problems)
	}
	// add-node@1s starts node 4; remove-leader removes whoever led; replace:2
	// swaps node 2 for node 5 (or fails if 2 was the leader removed before).
	if len(s.Membership) != 3 {
		t.Fatalf("membership = %+v, want 3 changes", s.Membership)
	}
	wantAt := []float64{1000, 2500, 4000}
	for i, m := range s.Membership {
		if m.Error != "" || m.DoneMS < 0 || m.AtMS < wantAt[i] || m.AtMS > wantAt[i]+500 {
			t.Errorf("membership change %d = %+v, want one done, started at ~%v ms", i, m, wantAt[i])
		}
	}
	add, rmLead, repl := s.Membership[0], s.Membership[1], s.Membership[2]
	if add.Added != 4 || len(add.Voters) != 4 {
		t.Errorf("add-node = %+v, want node 4 added, 4 voters", add)
	}
	if rmLead.Removed == 0 || slices.Contains(rmLead.Voters, rmLead.Removed) || len(rmLead.Voters) != 3 {
		t.Errorf("remove-leader = %+v, want the leader gone, 3 voters", rmLead)
	}
	if rmLead.Removed != 2 {
		if repl.Added != 5 || repl.Removed != 2 || slices.Contains(repl.Voters, 2) || !slices.Contains(repl.Voters, 5) || len(repl.Voters) != 3 {
			t.Errorf("replace:2 = %+v, want node 2 swapped for node 5", repl)
		}
		if repl.SnapshotIndex == 0 || repl.CaughtUpMS <= 0 {
			t.Errorf("replace:2 = %+v: node 5 did not catch up by snapshot", repl)
		}
	}
	var removeFailover bool
	for _, f := range s.Failovers {
		removeFailover = removeFailover || (f.Fault == "remove-leader@2500ms" && f.OldLeader == rmLead.Removed && f.ToLeaderMS >= 0)
	}
	if !removeFailover {
		t.Errorf("failovers = %+v, want remove-leader's time to a new leader", s.Failovers)
	}
	var timeline string
	for _, r := range run.Timeline {
		timeline += r.Faults + "\n"
	}
	for _, want := range []string{"add-node@1s: added node 4", "remove-leader@2500ms: removed and stopped node", "replace:2@4s:"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
	// Bounded: the log written is ops × (payload + key and framing); with
	// compaction every 500 entries and a 1 MiB memtable no node may keep
	// more than a fraction of it.
	logBytes := s.AckedWrites * (4096 + 32)
	if s.WALPeakBytes <= 0 || len(s.WALPeakBytesByNode) != 5 {
		t.Fatalf("wal_peak_bytes = %d by node %v, want a size for each of the 5 nodes", s.WALPeakBytes, s.WALPeakBytesByNode)
	}
	t.Logf("wal_peak_bytes %d (by node %v); log written about %d bytes", s.WALPeakBytes, s.WALPeakBytesByNode, logBytes)
	// What compaction allows, however fast the run went: two snapshot
	// intervals of log (500 entries and the 100 behind), two memtables,
	// and slack for Pebble's own files and the images. How much log the
	// run wrote depends on the machine's speed (half as much when the
	// rest of make test runs beside it), so it bounds the peak only when
	// there is plenty of it.
	const bound = 2*600*(4096+32) + 2<<20 + 2<<20
	if s.WALPeakBytes > bound || (logBytes > 3*bound && s.WALPeakBytes*3 > logBytes) {
		t.Errorf("wal_peak_bytes = %d, above what compaction allows (%d) or not far below the %d bytes of log written: compaction does not bound the WAL", s.WALPeakBytes, bound, logBytes)
	}
	for _, n := range s.Nodes {
		if n.Compactions == 0 {
			t.Errorf("node %d compacted its log %d times (snapshots %d): want compaction on every node", n.ID, n.Compactions, n.Snapshots)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, results.ReportFile))
	if err != nil || !strings.Contains(string(md), "### Membership changes") || !strings.Contains(string(md), "| WAL peak |") {
		t.Errorf("report.md lacks the membership changes or the WAL peak (%v)", err)
	}
	if !strings.Contains(stdout.String(), "membership add-node@1s") || !strings.Contains(stdout.String(), "WAL peak") {
		t.Errorf("summary table lacks membership or WAL peak:\n%s", stdout.String())
	}
}

// recommended extracts "--flag VALUE" from a recommendation line.
func recommended(t *testing.T, out, flag string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "Recommended: ")
	if !ok {
		t.Fatalf("no recommendation in:\n%s", out)
	}
	_, v, ok := strings.Cut(rest, flag+" ")
	if !ok {
		t.Fatalf("recommendation lacks %s:\n%s", flag, rest)
	}
	return strings.TrimRight(strings.Fields(v)[0], ":,")
}

// TestTuneBatchEndToEnd runs a tiny tune batch, each point twice, and
// checks the recommendation is one of the tried settings, made from the
// medians of both runs, flagged as sitting at the edge of the range (with
// two values it always does), and that the files exist.
func TestTuneBatchEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tune")
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), []string{"tune", "batch", "--batches", "1,64", "--inflights", "4", "--count", "2",
		"--duration", "200ms", "--warmup", "100ms", "--clients", "4", "--wal", "memory", "--snapshot-every", "0", "--slo-p99", "2s", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if b := recommended(t, stdout.String(), "--batch-entries"); b != "1" && b != "64" {
		t.Errorf("recommended --batch-entries %q, not a tried value", b)
	}
	if i := recommended(t, stdout.String(), "--max-inflight"); i != "4" {
		t.Errorf("recommended --max-inflight %q, not a tried value", i)
	}
	if !strings.Contains(stdout.String(), "medians of 2 runs") || !strings.Contains(stdout.String(), "edge of the range tried") {
		t.Errorf("recommendation does not say it is the median of 2 runs at the edge of the range:\n%s", stdout.String())
	}
	for _, f := range []string{"tune.md", "sweep.md", "sweep.csv", "plots/throughput_vs_batch-entries.png", "plots/p99_vs_throughput.png",
		"batch-entries=1,max-inflight=4/run-01/summary.json", "batch-entries=64,max-inflight=4/run-02/summary.json",
		"batch-entries=64,max-inflight=4/combined.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("tuning directory lacks %s (%v)", f, err)
		}
	}
	if md, err := os.ReadFile(filepath.Join(out, "tune.md")); err != nil || !strings.Contains(string(md), "Recommended:") {
		t.Errorf("tune.md lacks the recommendation (%v)", err)
	}
}

// TestTuneElectionEndToEnd runs a tiny tune election and checks the
// recommendation is one of the tried timeouts and the files exist.
func TestTuneElectionEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tune")
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), []string{"tune", "election", "--timeouts", "200ms,400ms", "--kills", "1",
		"--quiet", "300ms", "--jitter", "1ms~2ms", "--warmup", "100ms", "--clients", "4", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if to := recommended(t, stdout.String(), "--election-timeout"); to != "200ms" && to != "400ms" {
		t.Errorf("recommended --election-timeout %q, not a tried value", to)
	}
	for _, f := range []string{"tune.md", "plots/failover_vs_timeout.png", "plots/needless_vs_timeout.png",
		"timeout=200ms-kills/summary.json", "timeout=200ms-jitter/summary.json", "timeout=400ms-kills/summary.json", "timeout=400ms-jitter/summary.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("tuning directory lacks %s (%v)", f, err)
		}
	}
	if md, err := os.ReadFile(filepath.Join(out, "tune.md")); err != nil || !strings.Contains(string(md), "| 200ms | 1 |") {
		t.Errorf("tune.md lacks the table (%v)", err)
	}
}

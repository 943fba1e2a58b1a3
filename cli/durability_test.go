package cli

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

// runDurability runs raftbench with args under load with --check and
// returns the result directory's summary and config.json.
func runDurability(t *testing.T, args ...string) (*results.Summary, map[string]any) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	var stdout, stderr bytes.Buffer
	args = append([]string{"run", "--warmup", "300ms", "--clients", "8", "--keys", "50",
		"--tick", "5ms", "--election-timeout", "300ms", "--heartbeat", "30ms", "--check", "--out", out}, args...)
	if code := realMain(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(out, results.ConfigFile))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	s := &run.Summary
	if s.Linearizable == nil || !*s.Linearizable {
		t.Errorf("linearizable = %v (%s)", s.Linearizable, s.LinearizabilityCheck)
	}
	if !s.ReplicasAgree || !s.AckedOpsFound || s.AckedWrites == 0 {
		t.Errorf("replicas_agree %v, acked_ops_found %v (%d acked, lost %v)", s.ReplicasAgree, s.AckedOpsFound, s.AckedWrites, s.LostKeys)
	}
	if len(s.Problems) > 0 {
		t.Errorf("problems: %q", s.Problems)
	}
	for _, f := range s.Faults {
		if f.Error != "" {
			t.Errorf("fault %s: %s (error: %s)", f.Spec, f.What, f.Error)
		}
	}
	return s, cfg
}

// TestCrashFaultsEndToEnd crashes the leader and then a follower under
// load: each loses what it had not synced and restarts on the rest. The
// run must switch to the crashable WAL and say so in config.json, every
// crashed node must come back with every entry it reported durable (a
// shorter log or a refusal would be a problem), and the verdicts hold.
func TestCrashFaultsEndToEnd(t *testing.T) {
	s, cfg := runDurability(t, "--duration", "3s", "--fault", "crash-leader@1s", "--fault", "crash:2@2s+300ms")
	if cfg["wal"] != "crashable" {
		t.Errorf("config.json wal = %v, want crashable", cfg["wal"])
	}
	var crashed, restarted int
	for _, f := range s.Faults {
		crashed += strings.Count(f.What, "crashed node")
		restarted += strings.Count(f.What, "restarted node")
	}
	if crashed != 2 || restarted != 2 {
		t.Errorf("faults = %+v, want two crashes and two restarts", s.Faults)
	}
	if len(s.RefusedNodes) > 0 {
		t.Errorf("refused nodes after crashes: %v", s.RefusedNodes)
	}
	if len(s.Failovers) != 1 || s.Failovers[0].ToLeaderMS < 0 {
		t.Errorf("failovers = %+v, want the crashed leader's", s.Failovers)
	}
}

// TestWALDamageEndToEnd cuts node 2's live WAL short while it is stopped,
// then does what README.md tells an operator to do with a node that
// refuses its WAL: remove it, and add a fresh node, which catches up by
// snapshot. Later a bit of node 1's WAL is flipped. Each damaged node must
// either refuse to start (and say so in refused_nodes) or come back with
// nothing lost — never a silently shorter log — and the verdicts must hold
// for the members that run.
func TestWALDamageEndToEnd(t *testing.T) {
	s, cfg := runDurability(t, "--duration", "5s", "--snapshot-every", "300", "--snapshot-trailing", "50",
		"--fault", "truncate-wal:2@1s", "--fault", "remove:2@1500ms", "--fault", "add-node@2s", "--fault", "bitflip-wal:1@4s")
	if cfg["wal"] != "pebble" {
		t.Errorf("config.json wal = %v, want pebble", cfg["wal"])
	}
	for _, f := range s.Faults {
		if !strings.Contains(f.Spec, "-wal:") {
			continue
		}
		id := strings.Split(strings.Split(f.Spec, ":")[1], "@")[0]
		_, refused := s.RefusedNodes[id]
		switch {
		case strings.Contains(f.What, "refused to start") && refused:
		case strings.Contains(f.What, "restarted node") && !refused:
		default:
			t.Errorf("%s: %q with refused_nodes %v: want a refusal listed there, or a restart", f.Spec, f.What, s.RefusedNodes)
		}
	}
	if len(s.Membership) != 2 || s.Membership[0].Removed != 2 || s.Membership[1].Added != 4 {
		t.Fatalf("membership = %+v, want node 2 removed and node 4 added", s.Membership)
	}
	if add := s.Membership[1]; add.Error != "" || add.DoneMS < 0 || add.SnapshotIndex == 0 {
		t.Errorf("add-node = %+v, want node 4 in as a voter, caught up by snapshot", add)
	}
}

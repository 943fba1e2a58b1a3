package target_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/peers/target"
)

func init() {
	if err := target.Register(); err != nil {
		panic(err)
	}
}

// shortRun is a short run of system with a 300 ms election timeout (so a
// failover fits in it), a fifth of the operations linearizable reads, its
// data and result directory under the test's.
func shortRun(t *testing.T, system string) bench.Config {
	t.Helper()
	c := bench.Default()
	dir := t.TempDir()
	c.System, c.Dir, c.Out = system, filepath.Join(dir, "data"), filepath.Join(dir, "out")
	c.Clients, c.Keys, c.ReadRatio = 8, 50, 0.2
	c.Warmup, c.Duration = bench.Duration(300*time.Millisecond), bench.Duration(2500*time.Millisecond)
	c.ElectionTimeout = bench.Duration(300 * time.Millisecond)
	return c
}

// TestKillLeaderCheck runs every peer system through a leader kill and
// restart, then isolation of node 3, under message loss and delay, with
// --check: the run must see every fault applied without error, a new
// leader after the kill, a linearizable history, replicas that agree at one index and
// every acknowledged write on every replica, and must write the system
// and the library's version into summary.json and config.json.
func TestKillLeaderCheck(t *testing.T) {
	for _, sys := range []string{"etcd", target.EtcdAsync, "hashicorp", "dragonboat"} {
		t.Run(sys, func(t *testing.T) {
			c := shortRun(t, sys)
			c.Check = true
			c.Duration = bench.Duration(3 * time.Second)
			// The leader stays down for four election timeouts: with 800 ms
			// (under three), hashicorp under -race once elected no one
			// before the old leader came back, and the failover had no
			// new leader to report.
			c.Faults = []string{"kill-leader@500ms+1200ms", "isolate:3@2000ms+500ms", "loss=0.01", "delay=1ms~1ms"}
			o, err := bench.Run(context.Background(), c, bench.Options{NoPlots: true})
			if err != nil {
				t.Fatal(err)
			}
			s := o.Summaries[0]
			if bad := results.FailedVerdicts(s); bad != "" {
				t.Fatalf("verdicts failed: %s (problems %q)", bad, s.Problems)
			}
			if s.LinearizabilityCheck != "ok" || s.ReplicaCheck != bench.ReplicaAgree || s.LostWrites != 0 || s.AckedWrites == 0 {
				t.Fatalf("linearizability %q, replicas %q, %d acked, %d lost; want ok, agree, >0, 0",
					s.LinearizabilityCheck, s.ReplicaCheck, s.AckedWrites, s.LostWrites)
			}
			if len(s.Problems) != 0 {
				t.Fatalf("problems: %q", s.Problems)
			}
			applied := map[string]bool{}
			for _, f := range s.Faults {
				if f.Error != "" {
					t.Fatalf("fault %s: %s", f.Spec, f.Error)
				}
				applied[f.Spec] = true
			}
			for _, f := range c.Faults {
				if !applied[f] {
					t.Fatalf("fault %s not applied: %+v", f, s.Faults)
				}
			}
			if len(s.Failovers) == 0 || s.Failovers[0].Fault != c.Faults[0] || s.Failovers[0].NewLeader == 0 {
				t.Fatalf("failovers %+v, want the kill's first, with a new leader", s.Failovers)
			}
			if s.MessageFaults["dropped"] == 0 || s.MessageFaults["delayed"] == 0 {
				t.Fatalf("message faults %v: want drops and delays counted", s.MessageFaults)
			}
			if s.System != sys || s.SystemVersion == "" {
				t.Fatalf("summary system %q version %q, want %q and a version", s.System, s.SystemVersion, sys)
			}
			run, err := results.Read(o.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if run.Config["system"] != sys || run.Config["system-version"] != s.SystemVersion {
				t.Fatalf("config.json system %v version %v, want %s %s", run.Config["system"], run.Config["system-version"], sys, s.SystemVersion)
			}
		})
	}
}

// TestRefusesFlags: a knob a system has no setting for, and a fault it
// cannot inject, are refused before anything starts, in one line naming
// the system and the flag, as a configuration error (exit code 2).
func TestRefusesFlags(t *testing.T) {
	for _, tc := range []struct {
		system string
		set    func(c *bench.Config)
		want   []string
	}{
		{"hashicorp", func(c *bench.Config) { c.Heartbeat = bench.Duration(20 * time.Millisecond) }, []string{"hashicorp", "--heartbeat"}},
		{"hashicorp", func(c *bench.Config) { c.Faults = []string{"dup=0.1"} }, []string{"hashicorp", "dup=0.1"}},
		{"dragonboat", func(c *bench.Config) { c.MaxInflight = 64 }, []string{"dragonboat", "--max-inflight"}},
		{"etcd", func(c *bench.Config) { c.BatchEntries = 10 }, []string{"etcd", "--batch-entries"}},
		{"etcd", func(c *bench.Config) { c.Transport = "quic" }, []string{"etcd", "--transport"}},
		{"etcd", func(c *bench.Config) { c.Faults = []string{"crash-leader@1s"} }, []string{"etcd", "crash-leader@1s"}},
		{"etcd", func(c *bench.Config) { c.Faults = []string{"add-node@1s"} }, []string{"etcd", "add-node@1s"}},
		{"etcd", func(c *bench.Config) { c.Faults = []string{"slow-disk=1ms"} }, []string{"etcd", "slow-disk"}},
		{target.EtcdAsync, func(c *bench.Config) { c.Groups = 4 }, []string{"etcd", "--groups"}},
		{"hashicorp", func(c *bench.Config) { c.ReadMode = "lease" }, []string{"hashicorp", "--read-mode"}},
		{"raftbench", func(c *bench.Config) { c.Groups = 2 }, []string{"raftbench", "--groups"}},
		{target.RaftbenchQUIC, func(c *bench.Config) { c.Groups = 2 }, []string{target.RaftbenchQUIC, "--groups"}},
		// tcp is the default value, but asked for by name it is refused,
		// not silently replaced by QUIC.
		{target.RaftbenchQUIC, func(c *bench.Config) {
			k, _ := bench.KnobByName("transport")
			if err := k.Set(c, "tcp"); err != nil {
				t.Fatal(err)
			}
		}, []string{target.RaftbenchQUIC, "--transport tcp", "--system raftbench"}},
	} {
		c := shortRun(t, tc.system)
		tc.set(&c)
		err := c.Validate()
		if !errors.Is(err, bench.ErrBadConfig) {
			t.Errorf("%s %v: got %v, want an error wrapping ErrBadConfig", tc.system, tc.want, err)
			continue
		}
		msg := err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not name %q", tc.system, msg, w)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: %q is not one line", tc.system, msg)
		}
	}
}

// TestAcceptsMappedFlags: the knobs each library has are accepted, and a
// config that sets nothing is accepted by every system.
func TestAcceptsMappedFlags(t *testing.T) {
	for _, sys := range target.Names() {
		c := shortRun(t, sys)
		if err := c.Validate(); err != nil {
			t.Errorf("%s with no knob set: %v", sys, err)
		}
	}
	for _, tc := range []struct {
		system string
		set    func(c *bench.Config)
	}{
		{"etcd", func(c *bench.Config) { c.MaxInflight, c.MaxMsgBytes, c.Sync = 64, 64<<10, false }},
		{"hashicorp", func(c *bench.Config) { c.BatchEntries, c.MaxInflight, c.SnapshotEvery = 32, 8, 5000 }},
		{"dragonboat", func(c *bench.Config) {
			c.Heartbeat, c.Groups, c.CheckQuorum = bench.Duration(20*time.Millisecond), 4, false
		}},
		{"etcd", func(c *bench.Config) {
			c.Faults = []string{"isolate:2@1s+500ms", "partition-leader@1500ms+500ms", "dup=0.01", "delay=1ms~1ms"}
		}},
	} {
		c := shortRun(t, tc.system)
		tc.set(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.system, err)
		}
	}
	c := shortRun(t, target.RaftbenchQUIC)
	if err := c.Validate(); err != nil || c.Transport != "quic" {
		t.Errorf("raftbench-quic: transport %q, err %v; want quic, nil", c.Transport, err)
	}
}

// TestDragonboatGroups runs dragonboat with three shards through a leader
// kill with --check: the keys are spread over the shards, and every shard
// must agree on its own state and hold its own acknowledged writes, which
// summary.json reports per member and shard.
func TestDragonboatGroups(t *testing.T) {
	c := shortRun(t, "dragonboat")
	c.Groups, c.Check = 3, true
	c.Faults = []string{"kill-leader@500ms+800ms"}
	o, err := bench.Run(context.Background(), c, bench.Options{NoPlots: true})
	if err != nil {
		t.Fatal(err)
	}
	s := o.Summaries[0]
	if bad := results.FailedVerdicts(s); bad != "" || len(s.Problems) > 0 {
		t.Fatalf("verdicts %q, problems %q", bad, s.Problems)
	}
	if s.LinearizabilityCheck != "ok" || s.ReplicaCheck != bench.ReplicaAgree || s.AckedWrites == 0 {
		t.Fatalf("linearizability %q, replicas %q, %d acked", s.LinearizabilityCheck, s.ReplicaCheck, s.AckedWrites)
	}
	for _, id := range []string{"1/g0", "2/g1", "3/g2"} {
		if _, ok := s.ReplicaHashes[id]; !ok {
			t.Fatalf("replica hashes %v lack %s", s.ReplicaHashes, id)
		}
	}
	if len(s.ReplicaHashes) != 9 {
		t.Fatalf("%d replica hashes, want 3 nodes x 3 shards: %v", len(s.ReplicaHashes), s.ReplicaHashes)
	}
}

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/node"
)

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMergeFileThenFlags(t *testing.T) {
	p := writeYAML(t, "nodes: 5\ntransport: quic\npayload: 1KiB\nduration: 3s\nsync: false\nfault:\n  - kill-leader@1s\n  - loss=0.01\n")
	c, err := Merge(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes != 5 || c.Transport != "quic" || c.Payload != 1024 || c.Duration.D() != 3*time.Second || c.Sync || len(c.Faults) != 2 {
		t.Fatalf("file not applied: %+v", c)
	}
	if c.Clients != Default().Clients {
		t.Errorf("clients = %d, want the default %d", c.Clients, Default().Clients)
	}
	c, err = Merge(p, []Assignment{{"nodes", "3"}, {"fault", "kill:2@2s"}, {"sync", "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes != 3 || !c.Sync || c.Transport != "quic" {
		t.Errorf("flags must override the file and leave the rest: %+v", c)
	}
	if len(c.Faults) != 1 || c.Faults[0] != "kill:2@2s" {
		t.Errorf("--fault must replace the file's list, got %q", c.Faults)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid merged config: %v", err)
	}
}

// TestGiven: a knob set by the file or a flag is given even at its default
// value, one left alone is not, and marking a copy leaves the original as
// it was (a sweep copies its base config).
func TestGiven(t *testing.T) {
	p := writeYAML(t, "nodes: 3\n")
	c, err := Merge(p, []Assignment{{"transport", "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Given("nodes") || !c.Given("transport") {
		t.Errorf("nodes (file) and transport (flag) at their defaults must be given")
	}
	if c.Given("clients") {
		t.Errorf("clients was not set, but is given")
	}
	cp := c
	k, _ := KnobByName("clients")
	if err := k.Set(&cp, "8"); err != nil {
		t.Fatal(err)
	}
	if !cp.Given("clients") || c.Given("clients") {
		t.Errorf("marking a copy: copy %v, original %v; want true, false", cp.Given("clients"), c.Given("clients"))
	}
}

func TestMergeErrors(t *testing.T) {
	for _, tc := range []struct {
		file  string
		flags []Assignment
		want  string
	}{
		{"nodes: 3\nbogus: 1\n", nil, `unknown key "bogus"`},
		{"nodes: [1, 2]\n", nil, `key "nodes" wants a single value`},
		{"nodes: three\n", nil, `--nodes: "three" is not an integer`},
		{"- a\n", nil, "want a mapping"},
		{"", []Assignment{{"payload", "big"}}, `--payload: "big" is not an integer`},
		{"", []Assignment{{"duration", "10"}}, `--duration: "10" is not a duration`},
		{"", []Assignment{{"sync", "maybe"}}, `--sync: "maybe" is not true or false`},
		{"", []Assignment{{"nope", "1"}}, "unknown flag --nope"},
	} {
		p := writeYAML(t, tc.file)
		_, err := Merge(p, tc.flags)
		if err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Merge(%q, %v) = %v, want ErrBadConfig containing %q", tc.file, tc.flags, err, tc.want)
		}
	}
	if _, err := Merge(filepath.Join(t.TempDir(), "missing.yaml"), nil); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing config file: %v", err)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Default()
	c.Nodes, c.Transport, c.Payload, c.ReadRatio = 0, "udp", 8, 2
	c.Faults = []string{"kill-leader@1s", "meteor@1s"}
	err := c.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Validate = %v, want ErrBadConfig", err)
	}
	msg := err.Error()
	for _, want := range []string{"--nodes: 0", `--transport: "udp"`, "--payload: 8", "--read-ratio: 2", `--fault: bad fault spec "meteor@1s"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}

	c = Default()
	c.WAL, c.Faults = "memory", []string{"kill-leader@1s+1s"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--wal memory loses the log") {
		t.Errorf("restart with a memory WAL: %v", err)
	}
	c = Default()
	c.Faults = []string{"kill-leader@20s"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "after the run's --duration") {
		t.Errorf("fault after the end: %v", err)
	}
	c = Default()
	c.SnapshotEvery, c.SnapshotTrailing, c.WALMemtable, c.WALSpare = -1, 0, 1000, 1000
	err = c.Validate()
	for _, want := range []string{"--snapshot-every: -1", "--snapshot-trailing: 0", "--wal-memtable: 1000", "--wal-spare: 1000"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad snapshot settings: %v, want it to name %q", err, want)
		}
	}
	c = Default()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if c.SnapshotEvery != DefaultSnapshotEvery || c.SnapshotTrailing != DefaultSnapshotTrailing {
		t.Errorf("snapshots are not on by default: every %d, trailing %d", c.SnapshotEvery, c.SnapshotTrailing)
	}
	if c.Short() != "tcp-n3-pebble-p128-c64" {
		t.Errorf("Short = %q", c.Short())
	}
}

// Nodes that the schedule adds can be named by later faults: their IDs
// follow the initial ones, one per add-node or replace.
func TestNewNodeIDs(t *testing.T) {
	c := Default()
	c.Faults = []string{"add-node@1s", "kill:4@2s+1s", "replace:1@3s", "isolate:5@4s+1s"}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.MaxNodeID() != 5 {
		t.Errorf("MaxNodeID = %d, want 5", c.MaxNodeID())
	}
	c.Faults = []string{"add-node@1s", "kill:5@2s"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "between 1 and 4") {
		t.Errorf("naming a node never added: %v", err)
	}
}

func TestParseAxis(t *testing.T) {
	ax, err := ParseAxis("batch-entries=1,16,64")
	if err != nil || ax.Knob != "batch-entries" || strings.Join(ax.Values, " ") != "1 16 64" {
		t.Fatalf("ParseAxis = %+v, %v", ax, err)
	}
	for _, bad := range []string{"batch-entries", "batch-entries=", "out=a,b", "nope=1"} {
		if _, err := ParseAxis(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseAxis(%q) = %v, want ErrBadConfig", bad, err)
		}
	}
	sp := SweepSpec{Axes: []Axis{{"batch-entries", []string{"1", "16"}}, {"payload", []string{"128", "4"}}}}
	if _, err := sp.Points(); err == nil || !strings.Contains(err.Error(), "--payload: 4") {
		t.Errorf("a bad sweep value must fail before any run: %v", err)
	}
	sp.Axes[1].Values = []string{"128", "1024"}
	pts, err := sp.Points()
	if err != nil || len(pts) != 4 || pts[3].Name() != "batch-entries=16,payload=1024" || pts[3].Config.Payload != 1024 {
		t.Errorf("Points = %d points, %v", len(pts), err)
	}
}

// A run's config.json is a valid --config file giving back the same
// configuration, and the config.json of older runs (underscored keys,
// faults: null) still reads.
func TestConfigJSONFeedsBack(t *testing.T) {
	c := Default()
	c.Nodes, c.Transport, c.BatchBytes, c.ProposalPipeline, c.Rate, c.ReadRatio = 5, "quic", 1<<20, 2, 1500, 0.25
	c.Faults, c.CPUProfile, c.Out = []string{"kill-leader@1s+1s", "delay=2ms~1ms"}, "cpu.pprof", "somewhere"
	p := filepath.Join(t.TempDir(), "config.json")
	if err := results.WriteJSON(p, &c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if strings.Contains(string(b), "somewhere") {
		t.Errorf("config.json holds the output directory:\n%s", b)
	}
	got, err := Merge(p, nil)
	if err != nil {
		t.Fatalf("config.json as --config: %v", err)
	}
	c.Out = ""
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	// Every key of the file counts as given; that is where a setting came
	// from, not what it is, so the comparison leaves it out.
	got.given = nil
	if !reflect.DeepEqual(got, c) {
		t.Errorf("config.json read back as\n%+v\nwant\n%+v", got, c)
	}
	old := writeYAML(t, `{"nodes": 3, "batch_entries": 64, "election_timeout": "500ms", "faults": null}`)
	got, err = Merge(old, nil)
	if err != nil || got.BatchEntries != 64 || got.ElectionTimeout.D() != 500*time.Millisecond || len(got.Faults) != 0 {
		t.Errorf("old config.json: %+v, %v", got, err)
	}
}

// raftbench's Raft defaults are node's.
func TestDefaultsAreNodes(t *testing.T) {
	c := Default()
	if c.BatchEntries != node.DefaultMaxBatchEntries || c.BatchBytes != node.DefaultMaxBatchBytes || c.ProposalPipeline != node.DefaultMaxProposalPipeline ||
		c.MaxInflight != node.DefaultMaxInflight || c.MaxMsgBytes != node.DefaultMaxSizePerMsg || c.Tick.D() != node.DefaultTickInterval ||
		c.ElectionTimeout.D() != node.DefaultElectionTicks*node.DefaultTickInterval || c.Heartbeat.D() != node.DefaultHeartbeatTicks*node.DefaultTickInterval {
		t.Errorf("defaults %+v differ from node's", c)
	}
	k, _ := KnobByName("batch-bytes")
	if k.Kind != "bytes" || k.Show(&c) != "4MiB" {
		t.Errorf("batch-bytes: kind %q, shown %q; want bytes, 4MiB", k.Kind, k.Show(&c))
	}
	c.ProposalPipeline = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--proposal-pipeline: 0") {
		t.Errorf("proposal pipeline 0: %v", err)
	}
}

// Clusters beyond 9 nodes are allowed, with a warning when the machine is
// small for them; absurd sizes are refused.
func TestManyNodes(t *testing.T) {
	c := Default()
	c.Nodes = 4*cpusAtStart + 1
	if err := c.Validate(); err != nil {
		t.Fatalf("--nodes %d: %v", c.Nodes, err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], fmt.Sprintf("--nodes %d", c.Nodes)) {
		t.Errorf("warnings %q, want one about --nodes %d", w, c.Nodes)
	}
	c.Nodes = 3
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("3 nodes warned: %q", w)
	}
	c.Nodes = MaxNodes + 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--nodes") {
		t.Errorf("--nodes %d: %v", c.Nodes, err)
	}
}

// A sweep refuses a value given twice (in any spelling), a knob swept twice
// and a knob both swept and fixed, before anything runs.
func TestSweepRejectsDuplicates(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"batch-entries=1,16,1", `"1" is given twice`},
		{"payload=4KiB,4096", `"4KiB" and "4096" are the same value`},
		{"election-timeout=1s,1000ms", "are the same value"},
	} {
		if _, err := ParseAxis(tc.set); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAxis(%q) = %v, want %q", tc.set, err, tc.want)
		}
	}
	sp := SweepSpec{Axes: []Axis{{"clients", []string{"1", "2"}}, {"clients", []string{"4"}}}}
	if _, err := sp.Points(); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("a knob swept twice: %v", err)
	}
	sp = SweepSpec{Axes: []Axis{{"clients", []string{"1", "2"}}}, Flags: []Assignment{{"clients", "8"}}}
	if _, err := sp.Points(); err == nil || !strings.Contains(err.Error(), "both swept") {
		t.Errorf("a knob swept and fixed: %v", err)
	}
	sp = SweepSpec{Axes: []Axis{{"clients", []string{"1", "1"}}}}
	if _, err := sp.Points(); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("Points with a duplicate value: %v", err)
	}
	c := Default()
	fixed := FixedSettings([]Axis{{"clients", []string{"1"}}}, &c)
	if !strings.Contains(fixed, "| batch-bytes | 4MiB |") || strings.Contains(fixed, "| clients |") || strings.Contains(fixed, "| out |") {
		t.Errorf("fixed settings:\n%s", fixed)
	}
}

// tune batch says when its winner is at an end of a range tried.
func TestTuneEdges(t *testing.T) {
	axes := []Axis{{"batch-entries", []string{"1", "16", "256"}}, {"max-inflight", []string{"4", "64"}}, {"payload", []string{"128"}}}
	p := &Point{Settings: []Assignment{{"batch-entries", "16"}, {"max-inflight", "4"}, {"payload", "128"}}}
	if e := edges(axes, p); len(e) != 1 || !strings.Contains(e[0], "--max-inflight 4 is the smallest") {
		t.Errorf("edges = %q, want max-inflight's smallest only", e)
	}
	p.Settings[0].Value = "256"
	if e := edges(axes, p); len(e) != 2 || !strings.Contains(e[0], "--batch-entries 256 is the largest") {
		t.Errorf("edges = %q", e)
	}
	p.Settings[0].Value, p.Settings[1].Value = "16", "16"
	axes[1].Values = []string{"4", "16", "64"}
	if e := edges(axes, p); len(e) != 0 {
		t.Errorf("an interior winner: edges %q", e)
	}
}

// --cluster's list is the cluster: faults are checked against the IDs it
// lists (not 1..N), IDs are bounded, and --nodes or --dir saying
// otherwise is refused rather than overridden.
func TestClusterListIsTheCluster(t *testing.T) {
	for _, tc := range []struct {
		cluster, admin string
		nodes          int
		dir            string
		faults         []string
		want           string // "" means valid
	}{
		{"1=h:1,2=h:2,7=h:7", "1=h:3,2=h:4,7=h:8", 0, "", []string{"isolate:7@1s+1s"}, ""},
		{"1=h:1,2=h:2,7=h:7", "1=h:3,2=h:4,7=h:8", 0, "", []string{"isolate:3@1s+1s"}, "names node 3, which --cluster does not list"},
		{"1=h:1,2=h:2,7=h:7", "1=h:3,2=h:4,7=h:8", 0, "", []string{"loss:3=0.1"}, "names node 3"},
		{"1=h:1,2=h:2,3=h:3", "1=h:3,2=h:4,3=h:8", 5, "", nil, "--nodes: 5, but --cluster lists 3 nodes"},
		{"1=h:1,2=h:2,3=h:3", "1=h:3,2=h:4,3=h:8", 3, "", nil, ""},
		{"1=h:1,2=h:2,3=h:3", "1=h:3,2=h:4,3=h:8", 0, "/data", nil, `--dir: "/data"`},
		{"18446744073709551615=h:1", "18446744073709551615=h:2", 0, "", nil, "is not a node ID from 1 to 65535"},
	} {
		c := Default()
		c.Cluster, c.Admin, c.Dir, c.Faults = tc.cluster, tc.admin, tc.dir, tc.faults
		if tc.nodes != 0 {
			c.Nodes = tc.nodes
		}
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("--cluster %s --nodes %d %v: %v", tc.cluster, tc.nodes, tc.faults, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("--cluster %s --nodes %d --dir %q %v: Validate = %v, want ErrBadConfig naming %q", tc.cluster, tc.nodes, tc.dir, tc.faults, err, tc.want)
		}
	}
}

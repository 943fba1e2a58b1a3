package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	c.SnapshotEvery, c.SnapshotTrailing, c.WALMemtable = -1, 0, 1000
	err = c.Validate()
	for _, want := range []string{"--snapshot-every: -1", "--snapshot-trailing: 0", "--wal-memtable: 1000"} {
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

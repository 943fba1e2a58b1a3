package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/cluster"
)

// TestNodeKnobsClassified: every knob of raftbench run is either a node
// knob (a flag of raftbench node, same name and meaning) or run-only, never
// both, so a knob added to bench.Knobs must be classified here.
func TestNodeKnobsClassified(t *testing.T) {
	cmd := newNodeCmd()
	for _, k := range bench.Knobs {
		node, run := slices.Contains(bench.NodeKnobs, k.Name), slices.Contains(bench.RunKnobs, k.Name)
		if node == run {
			t.Errorf("knob %q is in bench.NodeKnobs %v and bench.RunKnobs %v: put it in exactly one", k.Name, node, run)
		}
		// --dir and the admin token flags are raftbench node's own too:
		// its data directory, the token its endpoint requires.
		own := k.Name == "dir" || k.Name == "admin-token" || k.Name == "admin-token-file"
		if got := cmd.Flags().Lookup(k.Name) != nil; got != node && !own {
			t.Errorf("raftbench node has flag --%s = %v, want %v", k.Name, got, node)
		}
	}
	for _, n := range append(slices.Clone(bench.NodeKnobs), bench.RunKnobs...) {
		if _, ok := bench.KnobByName(n); !ok {
			t.Errorf("%q is classified but is not a knob", n)
		}
	}
}

// parseNode parses a node command line without running it.
func parseNode(t *testing.T, args []string, hostname string) (*nodeSetup, error) {
	t.Helper()
	var f *nodeFlags
	cmd := newNodeCmdFlags(&f)
	if err := cmd.ParseFlags(args); err != nil {
		return nil, err
	}
	return f.setup(func() (string, error) { return hostname, nil })
}

func TestNodeSetup(t *testing.T) {
	s, err := parseNode(t, []string{"--id-from-hostname", "--peers", "1=a:7001/a:7100,2=b:7001/b:7100,3=c:7001",
		"--dir", "/d", "--cluster-id", "0x10", "--tick", "5ms", "--election-timeout", "300ms", "--heartbeat", "30ms",
		"--transport", "quic", "--sync=false", "--snapshot-every", "500", "--max-msg-bytes", "4MiB"}, "raftbench-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.id != 2 || s.raftListen != ":7001" || s.clientListen != ":7100" || *s.clusterID != 16 || s.peers[3] != (peerAddrs{raft: "c:7001"}) {
		t.Errorf("setup %+v", s)
	}
	tmpl := s.template(16, nil)
	n := tmpl.Node
	if tmpl.Transport != "quic" || n.TickInterval != 5*time.Millisecond || n.ElectionTicks != 60 || n.HeartbeatTicks != 6 ||
		!n.NoSync || n.SnapshotEntries != 500 || n.MaxSizePerMsg != 4<<20 || !tmpl.Snapshots || tmpl.ClusterID != 16 {
		t.Errorf("template %+v", tmpl)
	}
	if err := tmpl.Validate(); err != nil {
		t.Errorf("template does not validate: %v", err)
	}
}

// TestNodeBadInput: every bad flag, directory or port is a one-line error
// naming it, exit code 2.
func TestNodeBadInput(t *testing.T) {
	dir := t.TempDir()
	peers := "1=127.0.0.1:1/127.0.0.1:2"
	good := func(extra ...string) []string {
		return append([]string{"node", "--id", "1", "--peers", peers, "--dir", filepath.Join(dir, "fresh"), "--cluster-id", "7"}, extra...)
	}
	foreign := filepath.Join(dir, "foreign")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	d, err := cluster.OpenDataDir(other, 99, 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	locked := filepath.Join(dir, "locked")
	held, err := cluster.OpenDataDir(locked, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	memDir := filepath.Join(dir, "mem")
	d, err = cluster.OpenDataDir(memDir, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "--peers", peers, "--dir", dir}, "--id: missing"},
		{[]string{"node", "--id", "1", "--dir", dir}, "--peers: missing"},
		{good("--peers", "1=127.0.0.1:1,1=127.0.0.1:3"), "node 1 is listed twice"},
		{good("--peers", "1:127.0.0.1:1"), "is not ID=ADDR"},
		{good("--peers", "0=127.0.0.1:1"), "is not a non-zero node ID"},
		{good("--peers", "1=nowhere"), `"nowhere" is not host:port`},
		{good("--peers", "2=127.0.0.1:1/127.0.0.1:2"), "no entry for this node (1)"},
		{good("--peers", "1=127.0.0.1:1"), "--client-addr: missing"},
		{[]string{"node", "--id", "1", "--peers", peers}, "--dir: missing"},
		{good("--cluster-id", "blue"), `--cluster-id: "blue"`},
		{good("--log-level", "loud"), `--log-level: "loud"`},
		{good("--mutex-profile-fraction", "-1"), "--mutex-profile-fraction: -1, want >= 0"},
		{good("--block-profile-rate", "-5"), "--block-profile-rate: -5, want >= 0"},
		{good("--id-from-hostname"), "--id and --id-from-hostname"},
		{good("--transport", "carrier-pigeon"), `--transport: "carrier-pigeon", want tcp or quic`},
		{good("--election-timeout", "10ms"), "--election-timeout"},
		{good("--payload", "5"), "unknown flag: --payload"},
		{good("--admin-addr", "0.0.0.0:0"), "listens beyond loopback"},
		{good("--admin-token-file", filepath.Join(dir, "nope")), "--admin-token-file"},
		{good("--admin-token", "a", "--admin-token-file", "b"), "give one"},
		{good("--client-addr", busy.Addr().String()), "--client-addr " + busy.Addr().String() + ": address already in use"},
		{good("--raft-addr", busy.Addr().String()), "--raft-addr " + busy.Addr().String() + ": address already in use"},
		{[]string{"node", "--id", "1", "--peers", peers, "--dir", filepath.Join(dir, "new")}, "--cluster-id: required on a node's first start"},
		{good("--dir", foreign), "not a raftbench node directory"},
		{good("--dir", other), "created for cluster 0x63, this node is configured for cluster 0x7"},
		{good("--dir", locked), "data directory is in use"},
		{good("--dir", memDir, "--wal", "memory"), "cannot restart"},
		{good("extra"), "takes 0 argument"},
		{good("--tls-cert", "c.pem", "--tls-mutual"), "TLS.KeyFile is empty"},
		{good("--tls-cert", filepath.Join(dir, "no.pem"), "--tls-key", filepath.Join(dir, "no.key")), "no.pem"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(context.Background(), tc.args, &stdout, &stderr)
		msg := stderr.String()
		if code != exitBadInput || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "raftbench: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args[1:], code, msg, tc.want)
		}
	}
}

package crashsoak

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raftbench/raftbench/bench/procs"
	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/internal/testbin"
	"github.com/raftbench/raftbench/kv"
)

// TestMain fails the package if a soak leaves a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// raftbench is the binary the soaks start their nodes from.
func raftbench(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Raftbench()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// fast are node flags for quick elections in tests.
var fast = []string{"--tick=5ms", "--election-timeout=500ms", "--heartbeat=50ms", "--snapshot-every=300", "--snapshot-trailing=50"}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Dir: dir, Nodes: 2, Duration: -time.Second, Interval: time.Millisecond, Clients: 5000, Rounds: -1}
	err := c.Validate()
	for _, want := range []string{"Binary is empty", "is not empty", "Nodes 2 outside 3..7", "Duration -1s", "Interval 1ms outside", "Clients 5000 outside", "Rounds -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() does not say %q: %v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Validate() = %v, want ErrInvalidConfig", err)
	}
}

// TestSoak runs three rounds (one node, a minority, every node at once)
// on three node processes: every round completes its checks and nothing
// is lost or violated.
func TestSoak(t *testing.T) {
	var out strings.Builder
	res, err := Run(context.Background(), Config{
		Binary: raftbench(t), Dir: t.TempDir(), Duration: 5 * time.Minute, Rounds: 3,
		Interval: 300 * time.Millisecond, Clients: 4, Seed: 7, Flags: fast, Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s\n%s", out.String(), res.Line())
	if res.Rounds != 3 || res.Kills != 1+1+3 || res.Acked == 0 || res.Failed() {
		t.Errorf("%s, want 3 rounds, 5 kills, writes acknowledged, nothing lost or violated: %v", res.Line(), res.Violations)
	}
	for _, want := range []string{"round 1: kill9 one", "round 2: kill9 minority", "round 3: kill9 all [1 2 3]", "replicas agree at index", "linearizable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q", want)
		}
	}
}

// TestChecksFail: the checks catch what they are for — an acknowledged
// write that is not in the state (reported once, not every round), and a
// history that is not linearizable — on a real one-node cluster.
func TestChecksFail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	specs, err := procs.LoopbackNodes(1)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := procs.New(ctx, procs.Config{Binary: raftbench(t), ClusterID: 99, Dir: dir, Nodes: specs, Flags: fast})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s := &soak{cfg: Config{Dir: dir, Out: &out}, sup: sup, load: newLoad()}
	if s.eps, err = clientapi.Endpoints(sup.ClientAddrs(), clientapi.Options{ClusterID: 99}); err != nil {
		t.Fatal(err)
	}
	defer s.closeEndpoints()
	if s.checker, err = kv.NewClient(s.eps, kv.ClientOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.checker.Put(ctx, []byte("own-c0-k0"), []byte("c0-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.checker.Put(ctx, []byte("own-c0-k1"), []byte("c0-3")); err != nil {
		t.Fatal(err)
	}
	s.load.own = map[string][]write{
		"own-c0-k0": {{"c0-1", true}, {"c0-2", true}},  // c0-2 acknowledged, not there: lost
		"own-c0-k1": {{"c0-3", true}, {"c0-4", false}}, // holds its last acknowledged write
		"own-c0-k2": {{"c0-5", false}},                 // never acknowledged: nothing to check
		"own-c0-k3": {{"c0-6", true}},                  // acknowledged, absent: lost
	}
	// A history that is not linearizable: a put acknowledged, then a get
	// that does not see it.
	p := s.load.rec.Begin(0, kv.ModelInput{Op: kv.OpPut, Key: "r1-shared-0", Value: "v"})
	p.End(kv.ModelOutput{})
	s.load.rec.Begin(1, kv.ModelInput{Op: kv.OpGet, Key: "r1-shared-0"}).End(kv.ModelOutput{Found: false})

	line, ok := s.check(ctx, 1)
	if !ok {
		t.Errorf("check ended the soak on lost writes: %s", line)
	}
	if s.res.Lost != 2 || len(s.res.Violations) != 3 {
		t.Fatalf("lost %d, violations %q; want the two lost writes and the history", s.res.Lost, s.res.Violations)
	}
	for _, want := range []string{`key own-c0-k0 holds "c0-1", not its last acknowledged write "c0-2"`, "key own-c0-k3 holds nothing", "is not linearizable"} {
		if !strings.Contains(strings.Join(s.res.Violations, "\n"), want) {
			t.Errorf("violations do not say %q: %q", want, s.res.Violations)
		}
	}
	if !strings.Contains(line, "replicas agree") {
		t.Errorf("round line %q", line)
	}
	if _, err := os.Stat(filepath.Join(dir, "round-1-history.html")); err != nil {
		t.Errorf("no visualisation of the bad history: %v", err)
	}
	// The next round finds the same loss and does not count it again.
	s.check(ctx, 2)
	if s.res.Lost != 2 {
		t.Errorf("a loss already reported was counted again: lost %d", s.res.Lost)
	}
	// A node that dies on its own is a violation that ends the soak.
	if err := syscall.Kill(sup.PID(1), syscall.SIGKILL); err != nil { // the node this test started
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sup.Unexpected()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	before := len(s.res.Violations)
	if _, ok := s.check(ctx, 3); ok || len(s.res.Violations) == before || !strings.Contains(s.res.Violations[before], "on its own") {
		t.Errorf("a node that died on its own: ok %v, violations %q", ok, s.res.Violations[before:])
	}
}

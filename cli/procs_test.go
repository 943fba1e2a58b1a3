package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/netns"
	"github.com/raftbench/raftbench/bench/procs"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/internal/testbin"
)

// The node processes' Raft timing: short enough for a quick test, long
// enough that three node processes plus a -race test binary on two cores
// do not hold needless elections.
var procTiming = []string{"--tick", "5ms", "--election-timeout", "400ms", "--heartbeat", "40ms"}

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func buildRaftbench(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Raftbench()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// runCLI runs raftbench with args, its node processes (if any) from the
// built binary.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv(nodeBinaryEnv, buildRaftbench(t))
	var out, errb bytes.Buffer
	code = realMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// checkVerdicts fails t unless every end-of-run verdict of s holds.
func checkVerdicts(t *testing.T, s *results.Summary) {
	t.Helper()
	if s.Linearizable == nil || !*s.Linearizable || s.LinearizabilityCheck != "ok" {
		t.Errorf("linearizable = %v (%s)", s.Linearizable, s.LinearizabilityCheck)
	}
	if !s.ReplicasAgree || s.ReplicaCheck != bench.ReplicaAgree || !s.AckedOpsFound || s.AckedWrites == 0 || len(s.ReplicaHashes) != 3 {
		t.Errorf("replicas %s (hashes %v at %v), acked_ops_found %v (%d acked, lost %v); problems %v",
			s.ReplicaCheck, s.ReplicaHashes, s.ReplicaApplied, s.AckedOpsFound, s.AckedWrites, s.LostKeys, s.Problems)
	}
	for id, a := range s.ReplicaApplied {
		if a != s.AppliedIndex {
			t.Errorf("replica %s read at %d, not at the one index %d", id, a, s.AppliedIndex)
		}
	}
	if len(s.Problems) > 0 {
		t.Errorf("problems: %v", s.Problems)
	}
}

// failover returns the failover the fault spec caused.
func failover(s *results.Summary, spec string) (results.Failover, bool) {
	for _, f := range s.Failovers {
		if f.Fault == spec {
			return f, true
		}
	}
	return results.Failover{}, false
}

// TestProcsRunEndToEnd: raftbench run --procs under load SIGKILLs the
// leader's process and then node 2's, each restarted from its directory,
// and SIGSTOPs the leader for longer than the election timeout; every
// verdict must hold (no acknowledged write lost on any replica, replicas
// equal at one applied index, history linearizable), a new leader must
// take over from the killed and from the paused one, and the result
// directory must hold the nodes' logs, profiles and process figures.
//
// The pause outlasts the election timeout (400 ms) threefold, and the
// target's Resume fails (a fault error, which the test refuses) unless
// the old leader steps down once it runs again. The nodes' data
// directories come from --dir-template, and are gone after the run; the
// nodes' Raft metrics are served, labelled by node, at --metrics-addr.
func TestProcsRunEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	dataDir := t.TempDir()
	metricsAddr := freeAddr(t)
	// The schedule leaves the pause 2 s of the window to see a new
	// leader in: the injector applies events in turn, and each restart
	// waits for its node to serve, which on a loaded machine delays what
	// follows.
	args := append([]string{"run", "--procs", "--duration", "6s", "--warmup", "500ms", "--clients", "8", "--keys", "50",
		"--fault", "kill9-leader@500ms+700ms", "--fault", "kill9:2@1800ms+500ms", "--fault", "pause-leader@2600ms+1500ms",
		"--dir-template", filepath.Join(dataDir, "disk{id}", "raftbench"), "--metrics-addr", metricsAddr,
		"--check", "--cpuprofile", "--memprofile", "--out", out}, procTiming...)
	buildRaftbench(t) // before the scrapes begin: they wait for the run, not for the build
	done := make(chan struct{})
	scraped := make(chan error, 1)
	go func() { scraped <- scrapeNodes(metricsAddr, 3, done) }()
	code, stdout, stderr := runCLI(t, args...)
	close(done)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if err := <-scraped; err != nil {
		t.Errorf("--metrics-addr: %v", err)
	}
	for id := 1; id <= 3; id++ {
		if _, err := os.Stat(filepath.Join(dataDir, fmt.Sprintf("disk%d", id), "raftbench")); !os.IsNotExist(err) {
			t.Errorf("node %d's --dir-template directory outlived the run (%v)", id, err)
		}
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	s := &run.Summary
	checkVerdicts(t, s)
	if s.Mode != bench.ModeProcs || s.System != "raftbench" {
		t.Errorf("summary says mode %q system %q, want procs raftbench", s.Mode, s.System)
	}
	if run.Config["procs"] != true {
		t.Errorf("config.json does not say procs")
	}
	for _, spec := range []string{"kill9-leader@500ms+700ms", "pause-leader@2600ms+1500ms"} {
		f, ok := failover(s, spec)
		if !ok || f.NewLeader == 0 || f.NewLeader == f.OldLeader || f.ToLeaderMS < 0 {
			t.Errorf("%s: failover %+v (found %v), want a new leader other than the old", spec, f, ok)
		}
	}
	var did []string
	for _, f := range s.Faults {
		if f.Error != "" {
			t.Errorf("fault %s failed: %s", f.Spec, f.Error)
		}
		did = append(did, f.What)
	}
	for _, want := range []string{"SIGKILLed node", "restarted node", "paused node", "resumed node"} {
		if !slices.ContainsFunc(did, func(w string) bool { return strings.HasPrefix(w, want) }) {
			t.Errorf("faults %q lack %q", did, want)
		}
	}
	restarts := 0
	if len(s.Nodes) != 3 {
		t.Fatalf("nodes %+v, want 3", s.Nodes)
	}
	for _, n := range s.Nodes {
		restarts += n.Restarts
		if n.Process == nil || n.Process.PID == 0 || n.Process.CPUSeconds <= 0 || n.Process.MaxRSSBytes <= 0 || n.WALPeakBytes <= 0 {
			t.Errorf("node %d's figures %+v (process %+v)", n.ID, n, n.Process)
		}
	}
	if restarts != 2 {
		t.Errorf("%d restarts counted, want 2 (one per kill9)", restarts)
	}
	// The window is charged per node process, from each node's /stats
	// (a killed node's new incarnation from its restart), plus the
	// harness's own process, and the leaders' stage timings are there.
	if s.Cost == nil || s.CostHarness == nil || len(s.CostByNode) != 3 || s.CPUUSPerOp <= 0 {
		t.Errorf("cost %+v, harness %+v, by node %v, cpu_us_per_op %v: want the window charged to 3 node processes and the harness",
			s.Cost, s.CostHarness, s.CostByNode, s.CPUUSPerOp)
	}
	for id, c := range s.CostByNode {
		if c.Fsyncs == 0 || c.CPUUserSec+c.CPUSystemSec <= 0 {
			t.Errorf("node %s charged %+v: want its fsyncs and CPU", id, c)
		}
	}
	if st, ok := s.StagesUS["replication"]; !ok || st.Count == 0 {
		t.Errorf("stages_us %v: want the node processes' stage timings", s.StagesUS)
	}
	for id := 1; id <= 3; id++ {
		for _, f := range []string{fmt.Sprintf("nodes/node%d.log", id), fmt.Sprintf("node%d-mem.pprof", id)} {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
				t.Errorf("result directory lacks %s (%v)", f, err)
			}
		}
	}
	// The CPU profiles cover the whole window, so the killed nodes' are
	// cut short; the third node's, at least, is whole.
	cpu := 0
	for id := 1; id <= 3; id++ {
		if st, err := os.Stat(filepath.Join(out, fmt.Sprintf("node%d-cpu.pprof", id))); err == nil && st.Size() > 0 {
			cpu++
		}
	}
	if cpu == 0 {
		t.Errorf("no node CPU profile; node_profiles %v", s.NodeProfiles)
	}
	if _, err := os.Stat(filepath.Join(out, "cpu.pprof")); err != nil {
		t.Errorf("the harness's own CPU profile is missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, bench.NodesDir, "admin-token")); err == nil {
		t.Errorf("the admin token file was left in the result directory")
	}
}

// freeAddr returns a loopback address no one listens on (it just did).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeNodes scrapes addr's /metrics until one scrape holds the applied
// index and the transport's messages of each of nodes 1..n, labelled by
// node, or done is closed (the
// run ended).
func scrapeNodes(addr string, n int, done <-chan struct{}) error {
	hc := &http.Client{Timeout: 3 * time.Second}
	last := "no answer"
	for {
		select {
		case <-done:
			return fmt.Errorf("no scrape while the run went on had every node's metrics: %s", last)
		default:
		}
		resp, err := hc.Get("http://" + addr + "/metrics")
		if err != nil {
			last = err.Error()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		all := true
		for id := 1; id <= n; id++ {
			all = all && strings.Contains(b.String(), fmt.Sprintf("raftbench_applied_index{node=%q}", fmt.Sprint(id))) &&
				strings.Contains(b.String(), fmt.Sprintf("raftbench_transport_messages_total{direction=\"sent\",node=%q}", fmt.Sprint(id)))
		}
		if all && strings.Contains(b.String(), "go_goroutines") {
			return nil
		}
		last = "a scrape without every node's raftbench_applied_index"
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcsRefusals: what a mode cannot do is refused before anything
// starts, in one line naming the flag or fault and what to do instead —
// a process fault without --procs above all, and the in-process-only
// faults and knobs under --procs.
func TestProcsRefusals(t *testing.T) {
	full := t.TempDir()
	if err := os.MkdirAll(filepath.Join(full, "d1", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--fault", "kill9-leader@1s"}, []string{`"kill9-leader@1s"`, "needs --procs"}},
		{[]string{"--fault", "kill9:2@1s+1s"}, []string{`"kill9:2@1s+1s"`, "needs --procs"}},
		{[]string{"--fault", "pause-leader@1s+1s"}, []string{`"pause-leader@1s+1s"`, "needs --procs"}},
		{[]string{"--procs", "--fault", "crash:1@1s"}, []string{"crash:1@1s", "raftbench --procs cannot inject it", "kill9"}},
		{[]string{"--procs", "--fault", "bitflip-wal:1@1s"}, []string{"bitflip-wal:1@1s", "raftbench --procs cannot inject it", "without --procs"}},
		{[]string{"--procs", "--fault", "add-node@1s"}, []string{"add-node@1s", "raftbench --procs cannot inject it", "without --procs"}},
		{[]string{"--procs", "--wal", "crashable"}, []string{"--wal", "crashable"}},
		{[]string{"--netns"}, []string{"--netns", "needs --procs"}},
		{[]string{"--dir-template", "/tmp/x{id}"}, []string{"--dir-template", "needs --procs"}},
		{[]string{"--procs", "--dir-template", "/tmp/x"}, []string{"--dir-template", "has no {id}"}},
		{[]string{"--procs", "--dir-template", filepath.Join(full, "d{id}")}, []string{"--dir-template", "node 1's", "is not empty"}},
		{[]string{"--procs", "--cluster", "1=127.0.0.1:1", "--admin", "1=127.0.0.1:2"}, []string{"--cluster", "not both"}},
	} {
		args := append([]string{"run", "--duration", "1s", "--out", filepath.Join(t.TempDir(), "refused")}, tc.args...)
		code, _, stderr := runCLI(t, args...)
		if code != exitBadInput || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line", tc.args, code, stderr, exitBadInput)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q lacks %q", tc.args, stderr, w)
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(full, "d1")); len(ents) != 1 {
		t.Errorf("a refused --dir-template touched the directory it refused: %d entries", len(ents))
	}
}

// startNodes starts three raftbench node processes on loopback under the
// process supervisor (bench/procs), as someone else's cluster would be
// started, with an admin token, and returns the --cluster and --admin
// lists and the token file. The supervisor stops them (by PID) when the
// test ends.
func startNodes(t *testing.T) (clients, admins, tokenFile string) {
	t.Helper()
	bin := buildRaftbench(t)
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, err := procs.LoopbackNodes(3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sup, err := procs.New(context.Background(), procs.Config{Binary: bin, ClusterID: 0x7465737463, Dir: filepath.Join(dir, "nodes"),
		Nodes: specs, Token: "t0ken", LogLevel: "warn", Flags: append([]string{"--mutex-profile-fraction", "5"}, procTiming...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sup.Close(); err != nil {
			t.Errorf("stopping the nodes: %v", err)
		}
		if t.Failed() {
			for _, sp := range specs {
				b, _ := os.ReadFile(sup.LogPath(sp.ID))
				t.Logf("node %d's log:\n%s", sp.ID, b)
			}
		}
	})
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var cl, ad []string
	for _, sp := range specs {
		cl = append(cl, fmt.Sprintf("%d=%s", sp.ID, sp.ClientAddr))
		ad = append(ad, fmt.Sprintf("%d=%s", sp.ID, sp.AdminAddr))
	}
	return strings.Join(cl, ","), strings.Join(ad, ","), tokenFile
}

// TestClusterRunEndToEnd drives, with raftbench run --cluster, three node
// processes the test started itself: a partition of the leader, message
// loss and a slow disk through the admin endpoints, profiles from every
// node. Every verdict must hold, a new leader must take over from the
// partitioned one, and the run must leave no fault in force. Process
// faults are refused with how to do them under an orchestrator.
func TestClusterRunEndToEnd(t *testing.T) {
	clients, admins, tokenFile := startNodes(t)
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := runCLI(t, "run", "--cluster", clients, "--admin", admins, "--admin-token-file", tokenFile,
		"--duration", "3s", "--warmup", "500ms", "--clients", "8", "--keys", "50",
		"--fault", "partition-leader@500ms+1200ms", "--fault", "loss=0.2@2s+500ms", "--fault", "slow-disk:1=2ms@2s+500ms",
		"--check", "--cpuprofile", "--mutexprofile", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	s := &run.Summary
	checkVerdicts(t, s)
	if s.Mode != bench.ModeCluster {
		t.Errorf("summary says mode %q, want cluster", s.Mode)
	}
	// config.json records the knobs the nodes were started with
	// (procTiming), which are not this run's defaults.
	for k, want := range map[string]string{"tick": "5ms", "election-timeout": "400ms", "heartbeat": "40ms"} {
		if got := fmt.Sprint(run.Config[k]); got != want {
			t.Errorf("config.json %s = %s, want the nodes' %s", k, got, want)
		}
	}
	if f, ok := failover(s, "partition-leader@500ms+1200ms"); !ok || f.NewLeader == 0 || f.NewLeader == f.OldLeader || f.ToLeaderMS < 0 {
		t.Errorf("partition-leader: failover %+v (found %v), want a new leader", f, ok)
	}
	if s.MessageFaults["dropped"] == 0 || s.MessageFaults["partitioned_send"]+s.MessageFaults["partitioned_recv"] == 0 {
		t.Errorf("message_faults %v: want the loss's drops and the partition's cuts, summed from the nodes", s.MessageFaults)
	}
	for _, f := range s.Faults {
		if f.Error != "" {
			t.Errorf("fault %s failed: %s", f.Spec, f.Error)
		}
	}
	for _, n := range s.Nodes {
		if n.Process == nil || n.Process.PID == 0 {
			t.Errorf("node %d has no process figures: %+v", n.ID, n)
		}
	}
	for id := 1; id <= 3; id++ {
		for _, f := range []string{fmt.Sprintf("node%d-cpu.pprof", id), fmt.Sprintf("node%d-mutex.pprof", id)} {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
				t.Errorf("result directory lacks %s (%v)", f, err)
			}
		}
	}
	// Nothing left in force on the nodes.
	tok, _ := os.ReadFile(tokenFile)
	for _, e := range strings.Split(admins, ",") {
		_, addr, _ := strings.Cut(e, "=")
		c, err := admin.NewClient(addr, strings.TrimSpace(string(tok)), &http.Client{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Faults(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Rules != (admin.Rules{}) || f.DiskDelay != 0 || len(f.Network.Isolated) > 0 {
			t.Errorf("node at %s still has faults in force after the run: %+v", addr, f)
		}
	}

	// What --cluster cannot do is refused before anything runs.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--fault", "kill9-leader@1s"}, []string{"kill9-leader@1s", "raftbench --cluster", "kubectl delete pod", "systemctl kill"}},
		{[]string{"--fault", "pause:1@1s+1s"}, []string{"pause:1@1s+1s", "systemctl kill -s STOP", "kill -STOP"}},
		{[]string{"--fault", "crash:1@1s"}, []string{"crash:1@1s", "without --cluster"}},
		{[]string{"--fault", "add-node@1s"}, []string{"add-node@1s", "--join"}},
		{[]string{"--batch-entries", "7"}, []string{"--batch-entries: 7", "give it to raftbench node"}},
	} {
		args := append([]string{"run", "--cluster", clients, "--admin", admins, "--admin-token-file", tokenFile,
			"--duration", "1s", "--out", filepath.Join(t.TempDir(), "refused")}, tc.args...)
		code, _, stderr := runCLI(t, args...)
		if code != exitBadInput || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line", tc.args, code, stderr, exitBadInput)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q lacks %q", tc.args, stderr, w)
			}
		}
	}
	code, _, stderr = runCLI(t, "run", "--cluster", clients, "--duration", "1s")
	if code != exitBadInput || !strings.Contains(stderr, "--admin: missing") {
		t.Errorf("--cluster without --admin: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "run", "--cluster", clients, "--admin", admins, "--duration", "1s", "--out", filepath.Join(t.TempDir(), "x"))
	if code == 0 || !strings.Contains(stderr, "unauthorized") {
		t.Errorf("--cluster without the token: exit %d, %q; want a refusal saying unauthorized", code, stderr)
	}
}

// ours lists the network namespaces this process made (bench/netns names
// them after the PID of their maker).
func ours(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/var/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var mine []string
	for _, e := range ents {
		if pid, ok := netns.Owner(e.Name()); ok && pid == os.Getpid() {
			mine = append(mine, e.Name())
		}
	}
	return mine
}

// TestNetnsRun (root on Linux only): raftbench run --procs --netns puts
// each node in a namespace of its own; a partition of the leader is a real
// link cut, and a SIGKILL and restart work across namespaces; every
// verdict must hold. No namespace may outlive the run, nor a run that
// fails because its nodes do not start.
func TestNetnsRun(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skipf("no network namespaces here: %v", err)
	}
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"run", "--procs", "--netns", "--duration", "3s", "--warmup", "500ms", "--clients", "8", "--keys", "50",
		"--fault", "partition-leader@300ms+1200ms", "--fault", "kill9:1@2s+500ms", "--check", "--out", out}, procTiming...)
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if left := ours(t); len(left) > 0 {
		t.Errorf("namespaces left after the run: %v", left)
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	s := &run.Summary
	checkVerdicts(t, s)
	if run.Config["netns"] != true {
		t.Errorf("config.json does not say netns")
	}
	if f, ok := failover(s, "partition-leader@300ms+1200ms"); !ok || f.NewLeader == 0 || f.NewLeader == f.OldLeader {
		t.Errorf("partition-leader: failover %+v (found %v), want a new leader", f, ok)
	}

	// An interrupted run (Ctrl-C: its context ends) settles, checks what
	// it measured, and still removes every namespace and node process it
	// made.
	t.Setenv(nodeBinaryEnv, buildRaftbench(t))
	ictx, cancel := context.WithCancel(context.Background())
	intOut := filepath.Join(t.TempDir(), "interrupted")
	go func() {
		// Interrupt in the measured window: the nodes' logs appear as
		// they start; they are ready, and the warmup over, well within
		// 2.5 s of that.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(intOut+".partial", bench.NodesDir, "node3.log")); err == nil {
				time.Sleep(2500 * time.Millisecond)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	var iout, ie bytes.Buffer
	code = realMain(ictx, append([]string{"run", "--procs", "--netns", "--duration", "60s", "--warmup", "200ms", "--clients", "4",
		"--fault", "partition-leader@300ms", "--out", intOut}, procTiming...), &iout, &ie)
	cancel()
	if code != exitInterrupted {
		t.Errorf("an interrupted --netns run: exit %d, want %d\nstderr:\n%s", code, exitInterrupted, ie.String())
	}
	if left := ours(t); len(left) > 0 {
		t.Errorf("namespaces left after an interrupted run: %v", left)
	}
	if irun, err := results.Read(intOut); err != nil {
		t.Errorf("an interrupted run's result directory: %v", err)
	} else {
		if !irun.Summary.Interrupted {
			t.Errorf("the interrupted run's summary does not say interrupted")
		}
		for _, n := range irun.Summary.Nodes {
			if n.Process != nil && n.Process.PID != 0 && syscall.Kill(n.Process.PID, 0) == nil {
				t.Errorf("node %d's process %d outlived the interrupted run", n.ID, n.Process.PID)
			}
		}
	}

	// Nodes that cannot start: the run fails, naming why, and leaves no
	// namespace, process or directory behind.
	t.Setenv(nodeBinaryEnv, "/bin/false")
	var o, e bytes.Buffer
	dataDir := t.TempDir()
	code = realMain(context.Background(), []string{"run", "--procs", "--netns", "--duration", "1s", "--dir", dataDir,
		"--out", filepath.Join(t.TempDir(), "failed")}, &o, &e)
	if code == 0 || !strings.Contains(e.String(), "before serving") {
		t.Errorf("a run whose nodes cannot start: exit %d, %q; want a failure saying a node exited before serving", code, e.String())
	}
	if left := ours(t); len(left) > 0 {
		t.Errorf("namespaces left after a failed run: %v", left)
	}
	if ents, _ := os.ReadDir(dataDir); len(ents) > 0 {
		t.Errorf("the failed run left %d entries in --dir", len(ents))
	}
}

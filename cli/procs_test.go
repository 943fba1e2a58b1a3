package cli

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/kv"
)

// The processes' Raft timing: short enough for a quick test, long enough
// that three node processes plus a -race test binary on two cores do not
// hold needless elections.
const (
	procTick      = "5ms"
	procElection  = 500 * time.Millisecond
	procClusterID = 0x70726f6373 // "procs"
)

// buildRaftbench builds cmd/raftbench into dir once per test binary run
// (without -race: the nodes are the system under test, the test itself is
// what runs under the race detector).
func buildRaftbench(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the test builds raftbench and needs the go command on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "raftbench")
	out, err := exec.Command(goTool, "build", "-o", bin, "../cmd/raftbench").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// procCluster is three `raftbench node` processes on loopback. Only the
// processes it started are ever signalled, by their PIDs.
type procCluster struct {
	t      *testing.T
	bin    string
	dir    string
	peers  string
	client map[uint64]string
	adminA map[uint64]string
	admins map[uint64]*admin.Client

	mu    sync.Mutex
	procs map[uint64]*nodeProc
}

type nodeProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
	err  error         // its exit, once done
	log  string
}

func startProcCluster(t *testing.T, bin string) *procCluster {
	ports := freePorts(t, 9)
	pc := &procCluster{t: t, bin: bin, dir: t.TempDir(), client: map[uint64]string{}, adminA: map[uint64]string{}, admins: map[uint64]*admin.Client{}, procs: map[uint64]*nodeProc{}}
	var peers []string
	hc := &http.Client{Timeout: 2 * time.Second}
	for i := range 3 {
		id := uint64(i + 1)
		raft, cl, adm := ports[3*i], ports[3*i+1], ports[3*i+2]
		pc.client[id] = fmt.Sprintf("127.0.0.1:%d", cl)
		peers = append(peers, fmt.Sprintf("%d=127.0.0.1:%d/127.0.0.1:%d", id, raft, cl))
		pc.adminA[id] = fmt.Sprintf("127.0.0.1:%d", adm)
		c, err := admin.NewClient(pc.adminA[id], "", hc)
		if err != nil {
			t.Fatal(err)
		}
		pc.admins[id] = c
	}
	pc.peers = strings.Join(peers, ",")
	t.Cleanup(pc.cleanup)
	for id := uint64(1); id <= 3; id++ {
		pc.start(id)
	}
	return pc
}

// start starts (or restarts, on the same directory and ports) node id.
func (pc *procCluster) start(id uint64) {
	pc.t.Helper()
	adminAddr := pc.adminA[id]
	logPath := filepath.Join(pc.dir, fmt.Sprintf("node%d.log", id))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		pc.t.Fatal(err)
	}
	cmd := exec.Command(pc.bin, "node", "--id", fmt.Sprint(id), "--peers", pc.peers,
		"--dir", filepath.Join(pc.dir, fmt.Sprintf("node%d", id)), "--cluster-id", fmt.Sprint(procClusterID),
		"--admin-addr", adminAddr, "--tick", procTick, "--election-timeout", procElection.String(), "--heartbeat", "50ms",
		"--snapshot-every", "200", "--snapshot-trailing", "50", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		pc.t.Fatalf("start node %d: %v", id, err)
	}
	p := &nodeProc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	pc.mu.Lock()
	pc.procs[id] = p
	pc.mu.Unlock()
}

func (pc *procCluster) proc(id uint64) *nodeProc {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.procs[id]
}

// signal sends sig to node id's process.
func (pc *procCluster) signal(id uint64, sig syscall.Signal) {
	pc.t.Helper()
	if err := pc.proc(id).cmd.Process.Signal(sig); err != nil {
		pc.t.Fatalf("signal %v to node %d: %v", sig, id, err)
	}
}

// kill9 SIGKILLs node id and waits until it is gone.
func (pc *procCluster) kill9(id uint64) {
	pc.t.Helper()
	pc.signal(id, syscall.SIGKILL)
	<-pc.proc(id).done
}

// cleanup ends every process this test started that is still running: a
// SIGCONT (in case it is paused), then SIGKILL, by PID.
func (pc *procCluster) cleanup() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for id, p := range pc.procs {
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
		if pc.t.Failed() {
			pc.dumpLog(id, p)
		}
	}
	if pc.t.Failed() {
		for id, p := range pc.procs {
			pc.dumpLog(id, p)
		}
	}
}

func (pc *procCluster) dumpLog(id uint64, p *nodeProc) {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	pc.t.Logf("node %d log (tail):\n%s", id, b)
}

// status asks node id's admin endpoint; ok is false when it does not
// answer (killed, paused, restarting).
func (pc *procCluster) status(id uint64) (admin.Status, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := pc.admins[id].Status(ctx)
	return s, err == nil
}

// waitFor polls cond every 10 ms until it holds, failing at the deadline.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaderAmong waits until one of ids leads and every other of ids follows
// it, and returns it with its term.
func (pc *procCluster) leaderAmong(t *testing.T, timeout time.Duration, ids ...uint64) (lead, term uint64) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("a leader among %v that all of them follow", ids), func() bool {
		lead, term = 0, 0
		var sts []admin.Status
		for _, id := range ids {
			s, ok := pc.status(id)
			if !ok {
				return false
			}
			sts = append(sts, s)
			if s.Role == "Leader" {
				lead, term = s.ID, s.Term
			}
		}
		for _, s := range sts {
			if lead == 0 || s.Leader != lead {
				return false
			}
		}
		return true
	})
	return lead, term
}

// caughtUp waits until node id has applied what the leader had committed
// when the wait began.
func (pc *procCluster) caughtUp(t *testing.T, id, lead uint64) {
	t.Helper()
	ls, ok := pc.status(lead)
	if !ok {
		t.Fatalf("leader %d does not answer", lead)
	}
	waitFor(t, 15*time.Second, fmt.Sprintf("node %d to apply %d", id, ls.Commit), func() bool {
		s, ok := pc.status(id)
		return ok && s.Applied >= ls.Commit
	})
}

// loadGen drives closed-loop load through the client API: every client
// writes its own keys (each write's value unique) and reads and CASes
// shared ones, with every operation recorded for porcupine.
type loadGen struct {
	rec   *kv.Recorder
	acked atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup

	mu sync.Mutex
	// own[key] is the history of writes to key by its one writer, in
	// order: value and whether it was acknowledged.
	own map[string][]write
	err error
}

type write struct {
	value string
	acked bool
}

func startLoad(t *testing.T, eps []kv.Endpoint, clients int) *loadGen {
	g := &loadGen{rec: kv.NewRecorder(), stop: make(chan struct{}), own: map[string][]write{}}
	for c := range clients {
		cl, err := kv.NewClient(eps, kv.ClientOptions{AttemptTimeout: 400 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rc := g.rec.NewRecordingClient(cl)
		g.wg.Go(func() { g.run(c, rc) })
	}
	return g
}

func (g *loadGen) run(c int, rc *kv.RecordingClient) {
	rng := rand.New(rand.NewPCG(uint64(c), 42))
	for seq := 0; ; seq++ {
		select {
		case <-g.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		shared := []byte(fmt.Sprintf("shared-%d", rng.IntN(4)))
		val := []byte(fmt.Sprintf("c%d-%d", c, seq))
		var err error
		switch r := rng.IntN(10); {
		case r < 5:
			key := fmt.Sprintf("own-c%d-k%d", c, rng.IntN(8))
			err = rc.Put(ctx, []byte(key), val)
			g.mu.Lock()
			g.own[key] = append(g.own[key], write{value: string(val), acked: err == nil})
			g.mu.Unlock()
		case r < 7:
			err = rc.Put(ctx, shared, val)
		case r < 9:
			_, _, err = rc.Get(ctx, shared)
		default:
			cur, _, gerr := rc.Get(ctx, shared)
			if gerr == nil {
				_, err = rc.CAS(ctx, shared, cur, val)
			} else {
				err = gerr
			}
		}
		cancel()
		if err == nil {
			g.acked.Add(1)
		} else if !errors.Is(err, kv.ErrOutcomeUnknown) {
			g.mu.Lock()
			if g.err == nil {
				g.err = fmt.Errorf("client %d: %w", c, err)
			}
			g.mu.Unlock()
		}
	}
}

// progress waits until n more operations were acknowledged.
func (g *loadGen) progress(t *testing.T, n int64, what string) {
	t.Helper()
	target := g.acked.Load() + n
	waitFor(t, 20*time.Second, fmt.Sprintf("%d more acknowledged operations %s", n, what), func() bool { return g.acked.Load() >= target })
}

func (g *loadGen) halt() {
	close(g.stop)
	g.wg.Wait()
}

// TestProcessCluster runs three `raftbench node` processes on loopback
// under load through the client API: SIGKILL of the leader, then of a
// follower, each restarted from its directory; then a SIGSTOP of the
// leader for longer than the election timeout and a SIGCONT. The old
// leader must step down, no acknowledged write may be lost, the replicas'
// state hashes at one applied index must agree, the history must be
// linearizable, and SIGTERM must stop every node cleanly.
func TestProcessCluster(t *testing.T) {
	bin := buildRaftbench(t)
	pc := startProcCluster(t, bin)
	all := []uint64{1, 2, 3}
	lead, _ := pc.leaderAmong(t, 20*time.Second, all...)

	eps, err := clientapi.Endpoints(pc.client, clientapi.Options{ClusterID: procClusterID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		defer ep.(*clientapi.Endpoint).Close()
	}
	g := startLoad(t, eps, 6)
	defer func() {
		select {
		case <-g.stop:
		default:
			g.halt()
		}
	}()
	g.progress(t, 100, "before any fault")

	// SIGKILL the leader; the others elect one and go on; the old leader
	// restarts from its directory and catches up.
	pc.kill9(lead)
	others := without(all, lead)
	lead2, _ := pc.leaderAmong(t, 20*time.Second, others...)
	g.progress(t, 100, "after the leader's SIGKILL")
	pc.start(lead)
	pc.caughtUp(t, lead, lead2)

	// SIGKILL a follower, restart it.
	follower := without(all, lead2)[0]
	pc.kill9(follower)
	g.progress(t, 100, "after a follower's SIGKILL")
	pc.start(follower)
	lead3, _ := pc.leaderAmong(t, 20*time.Second, all...)
	pc.caughtUp(t, follower, lead3)

	// SIGSTOP the leader for longer than the election timeout.
	ls, _ := pc.status(lead3)
	pc.signal(lead3, syscall.SIGSTOP)
	paused := time.Now()
	rest := without(all, lead3)
	lead4, term4 := pc.leaderAmong(t, 20*time.Second, rest...)
	if term4 <= ls.Term {
		t.Fatalf("new leader %d in term %d, not above the paused leader's %d", lead4, term4, ls.Term)
	}
	g.progress(t, 100, "while the leader is paused")
	if d := time.Since(paused); d < procElection {
		time.Sleep(procElection - d) // the pause must outlast the election timeout
	}
	pc.signal(lead3, syscall.SIGCONT)
	waitFor(t, 15*time.Second, fmt.Sprintf("the paused leader %d to step down", lead3), func() bool {
		s, ok := pc.status(lead3)
		return ok && s.Role != "Leader" && s.Term >= term4 && s.Leader != lead3 && s.Leader != 0
	})
	g.progress(t, 50, "after the paused leader came back")

	g.halt()
	if g.err != nil {
		t.Errorf("load: %v", g.err)
	}

	// Quiesce: every node has applied the same commit index.
	var index uint64
	waitFor(t, 20*time.Second, "every node to apply one commit index", func() bool {
		index = 0
		for _, id := range all {
			s, ok := pc.status(id)
			if !ok || s.Applied != s.Commit || (index != 0 && s.Commit != index) {
				return false
			}
			index = s.Commit
		}
		return index > 0
	})
	var ref string
	for _, id := range all {
		h, err := pc.admins[id].Hash(context.Background(), index, 5*time.Second)
		if err != nil {
			t.Fatalf("hash of node %d at %d: %v", id, index, err)
		}
		if ref == "" {
			ref = h.Hash
		} else if h.Hash != ref {
			t.Errorf("node %d's state at %d hashes to %s, node 1's to %s", id, index, h.Hash, ref)
		}
	}

	// No acknowledged write lost: each own key holds its last
	// acknowledged value or a later write whose outcome was unknown.
	cl, err := kv.NewClient(eps, kv.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	acked, lost := 0, 0
	for key, ws := range g.own {
		last := -1
		for i, w := range ws {
			if w.acked {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		acked++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, found, err := cl.Get(ctx, []byte(key))
		cancel()
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		okv := map[string]bool{ws[last].value: true}
		for _, w := range ws[last+1:] {
			okv[w.value] = true // unknown outcome: may have run
		}
		if !found || !okv[string(v)] {
			lost++
			t.Errorf("key %s = %q (found %v), want its last acknowledged write %q", key, v, found, ws[last].value)
		}
	}
	t.Logf("%d operations acknowledged; %d keys checked, %d lost; replicas agree at index %d", g.acked.Load(), acked, lost, index)

	res, info := g.rec.Check(30 * time.Second)
	if res != porcupine.Ok {
		path, _ := kv.Visualize(info, filepath.Join(t.TempDir(), "history.html"))
		t.Errorf("history of %d operations is %v (visualisation: %s)", len(g.rec.Operations()), res, path)
	}

	// SIGTERM: every node shuts down cleanly (exit 0).
	for _, id := range all {
		pc.signal(id, syscall.SIGTERM)
	}
	for _, id := range all {
		p := pc.proc(id)
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("node %d after SIGTERM: %v", id, p.err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("node %d did not exit within 15s of SIGTERM", id)
		}
	}
}

func without(ids []uint64, x uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if id != x {
			out = append(out, id)
		}
	}
	return out
}

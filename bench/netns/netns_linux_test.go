package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoPort is where the echo helpers listen, in every node's namespace
// (each has ports of its own).
const echoPort = 7400

// Deadlines of the connectivity checks: a cut connection is a silent drop,
// so "cannot reach" means a dial or an echo that times out; a healed one
// must work again within reach (TCP retransmits back off, hence seconds).
const (
	dropWait  = 300 * time.Millisecond
	reachWait = 10 * time.Second
)

func needRoot(t *testing.T) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}
}

// startEcho runs the echo helper in node id's namespace through `ip netns
// exec` and waits until it listens; the test's cleanup kills it by PID.
func startEcho(t *testing.T, n *Net, id uint64) *exec.Cmd {
	t.Helper()
	ns, err := n.Namespace(id)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(n.ip, "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=:%d", echoEnv, echoPort))
	cmd.Stderr = os.Stderr
	// No Pdeathsig: it would fire when the thread that started the helper
	// ends, and this test ends threads (within) on purpose.
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("echo helper in %s: %v", ns, err)
		}
	case <-time.After(reachWait):
		t.Fatalf("echo helper in %s not ready within %v", ns, reachWait)
	}
	return cmd
}

// hub is the dialling side "the hub"; other sides are node IDs.
const hub = 0

// dial connects from side from (hub or a node's namespace) to node to's
// echo helper.
func dial(n *Net, from, to uint64, timeout time.Duration) (net.Conn, error) {
	addr, err := n.Addr(to)
	if err != nil {
		return nil, err
	}
	target := fmt.Sprintf("%s:%d", addr, echoPort)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if from == hub {
		return n.DialContext(ctx, "tcp", target)
	}
	ns, err := n.Namespace(from)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(runDir, ns))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var c net.Conn
	err = within(f, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp", target)
		return err
	})
	return c, err
}

// echoOnce sends a line over c and reads it back within timeout.
func echoOnce(c net.Conn, br *bufio.Reader, msg string, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if line != msg+"\n" {
		return fmt.Errorf("echoed %q, want %q", line, msg)
	}
	return nil
}

// reach reports whether from can open a connection to to and echo over it
// (retrying until reachWait when want is true; one try of dropWait when
// want is false, which must time out).
func reach(n *Net, from, to uint64, want bool) error {
	if !want {
		c, err := dial(n, from, to, dropWait)
		if err == nil {
			err = echoOnce(c, bufio.NewReader(c), "ping", dropWait)
			c.Close()
		}
		var ne net.Error
		switch {
		case err == nil:
			return fmt.Errorf("%s reaches node %d, want it cut off", side(from), to)
		case !errors.As(err, &ne) || !ne.Timeout():
			return fmt.Errorf("%s to node %d failed with %v, want a timeout (a silent drop)", side(from), to, err)
		}
		return nil
	}
	deadline := time.Now().Add(reachWait)
	for {
		c, err := dial(n, from, to, time.Second)
		if err == nil {
			err = echoOnce(c, bufio.NewReader(c), "ping", time.Second)
			c.Close()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cannot reach node %d within %v: %v", side(from), to, reachWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func side(id uint64) string {
	if id == hub {
		return "the hub"
	}
	return fmt.Sprintf("node %d", id)
}

// expect checks, all at once, that from reaches to exactly when
// cut(from, to) is false, for every ordered pair of sides.
func expect(t *testing.T, n *Net, phase string, cut func(from, to uint64) bool) {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for _, from := range append([]uint64{hub}, n.Nodes()...) {
		for _, to := range n.Nodes() {
			if from == to {
				continue
			}
			wg.Go(func() {
				if err := reach(n, from, to, !cut(from, to)); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	slices.Sort(errs)
	for _, e := range errs {
		t.Errorf("%s: %s", phase, e)
	}
}

// stream is a connection kept open across a fault, to check that
// established connections are cut and recover, not only new ones.
type stream struct {
	c  net.Conn
	br *bufio.Reader
}

func openStream(t *testing.T, n *Net, from, to uint64) *stream {
	t.Helper()
	c, err := dial(n, from, to, reachWait)
	if err != nil {
		t.Fatalf("%s to node %d: %v", side(from), to, err)
	}
	t.Cleanup(func() { c.Close() })
	s := &stream{c: c, br: bufio.NewReader(c)}
	if err := echoOnce(c, s.br, "hello", reachWait); err != nil {
		t.Fatalf("%s to node %d: %v", side(from), to, err)
	}
	return s
}

// stalls checks that a line sent over s is not echoed within dropWait; the
// line stays queued and comes back after the heal (resumes).
func (s *stream) stalls(t *testing.T, what string) {
	t.Helper()
	err := echoOnce(s.c, s.br, "stalled", dropWait)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: an established connection echoed or failed (%v), want it to stall", what, err)
	}
}

func (s *stream) resumes(t *testing.T, what string) {
	t.Helper()
	_ = s.c.SetReadDeadline(time.Now().Add(reachWait))
	line, err := s.br.ReadString('\n')
	if err != nil || line != "stalled\n" {
		t.Errorf("%s: the stalled line came back as %q, %v", what, line, err)
		return
	}
	if err := echoOnce(s.c, s.br, "again", reachWait); err != nil {
		t.Errorf("%s: after the heal: %v", what, err)
	}
}

// TestNet builds three namespaces, runs an echo server in each through `ip
// netns exec`, and checks with real TCP connections that everyone reaches
// everyone; that an isolated node is cut off from its peers and the hub,
// new connections and established ones, while the others still reach each
// other; that a cut pair cannot reach each other and still reaches the
// rest; that Heal restores it all; and that Close removes every namespace.
func TestNet(t *testing.T) {
	needRoot(t)
	n, err := New(Config{Nodes: []uint64{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	names := n.Names()
	closed := false
	defer func() {
		if !closed {
			_ = n.Close()
		}
	}()
	if len(names) != 4 {
		t.Fatalf("Names() = %v, want a hub and three nodes", names)
	}
	for _, name := range names {
		if pid, ok := Owner(name); !ok || pid != os.Getpid() {
			t.Errorf("namespace %q does not name this process as its owner", name)
		}
	}
	var echoes []*exec.Cmd
	for _, id := range n.Nodes() {
		echoes = append(echoes, startEcho(t, n, id))
	}

	none := func(from, to uint64) bool { return false }
	expect(t, n, "at the start", none)
	hubTo3 := openStream(t, n, hub, 3)
	oneTo3 := openStream(t, n, 1, 3)
	oneTo2 := openStream(t, n, 1, 2)

	if err := n.Isolate(3); err != nil {
		t.Fatal(err)
	}
	expect(t, n, "node 3 isolated", func(from, to uint64) bool { return from == 3 || to == 3 })
	hubTo3.stalls(t, "hub to isolated node 3")
	oneTo3.stalls(t, "node 1 to isolated node 3")
	if got := n.Isolated(); !slices.Equal(got, []uint64{3}) {
		t.Errorf("Isolated() = %v, want [3]", got)
	}
	if err := n.Unisolate(3); err != nil {
		t.Fatal(err)
	}
	expect(t, n, "node 3 back", none)
	hubTo3.resumes(t, "hub to node 3")
	oneTo3.resumes(t, "node 1 to node 3")

	if err := n.Cut(2, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Cut(1, 2); err != nil {
		t.Fatalf("a second cut of the same pair: %v, want nothing to do", err)
	}
	expect(t, n, "1-2 cut", func(from, to uint64) bool { return (from == 1 && to == 2) || (from == 2 && to == 1) })
	oneTo2.stalls(t, "cut pair 1-2")
	if got := n.Cuts(); len(got) != 1 || got[0] != [2]uint64{1, 2} {
		t.Errorf("Cuts() = %v, want [[1 2]]", got)
	}
	if err := n.Isolate(3); err != nil {
		t.Fatal(err)
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if len(n.Cuts()) != 0 || len(n.Isolated()) != 0 {
		t.Errorf("after Heal: cuts %v, isolated %v", n.Cuts(), n.Isolated())
	}
	expect(t, n, "healed", none)
	oneTo2.resumes(t, "pair 1-2 after the heal")

	for _, bad := range []error{n.Cut(1, 1), n.Cut(1, 9), n.Isolate(9)} {
		if bad == nil {
			t.Error("a cut of a node from itself or an unknown node succeeded")
		}
	}

	// Close: every namespace gone by name, even with the hub streams
	// still open (their sockets keep the namespace alive, not its name).
	for _, c := range echoes {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(runDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Close (%v)", name, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Isolate(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Isolate after Close: %v, want ErrClosed", err)
	}
	if _, err := n.DialContext(context.Background(), "tcp", "198.18.0.1:1"); !errors.Is(err, ErrClosed) {
		t.Errorf("DialContext after Close: %v, want ErrClosed", err)
	}
}

// TestCloseReportsProcesses: Close with a process still in a namespace
// removes the name and says which process keeps the namespace alive.
func TestCloseReportsProcesses(t *testing.T) {
	needRoot(t)
	n, err := New(Config{Nodes: []uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	names := n.Names()
	echo := startEcho(t, n, 1)
	err = n.Close()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), fmt.Sprint(echo.Process.Pid)) {
		t.Errorf("Close with a process in the namespace: %v, want ErrBusy naming pid %d", err, echo.Process.Pid)
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(runDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still named after Close (%v)", name, err)
		}
	}
}

// TestSweep: Sweep removes a namespace of this package whose owner is
// gone, and leaves alone one whose owner runs and one of another name.
func TestSweep(t *testing.T) {
	needRoot(t)
	ip, _ := exec.LookPath("ip")
	// A PID that ran a moment ago and is gone now.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%s%d-deadbeef-hub", Prefix, gone.Process.Pid)
	live := fmt.Sprintf("%s%d-deadbeef-n1", Prefix, os.Getpid())
	foreign := fmt.Sprintf("rbtest-%d-deadbeef-hub", gone.Process.Pid)
	for _, name := range []string{dead, live, foreign} {
		if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() {
			if _, err := os.Stat(filepath.Join(runDir, name)); err == nil {
				_ = exec.Command(ip, "netns", "del", name).Run()
			}
		})
	}
	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, dead) {
		t.Errorf("Sweep removed %v, want %s among them", removed, dead)
	}
	if slices.Contains(removed, live) || slices.Contains(removed, foreign) {
		t.Errorf("Sweep removed %v, which holds a live owner's or a foreign namespace", removed)
	}
	for name, want := range map[string]bool{dead: false, live: true, foreign: true} {
		_, err := os.Stat(filepath.Join(runDir, name))
		if exists := err == nil; exists != want {
			t.Errorf("after Sweep, %s exists = %v, want %v", name, exists, want)
		}
	}
}

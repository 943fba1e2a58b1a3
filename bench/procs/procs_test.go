package procs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{
		Binary: notExec, Dir: dir, DirTemplate: filepath.Join(dir, "data"),
		Nodes: []NodeSpec{
			{ID: 1, RaftAddr: "127.0.0.1:1", ClientAddr: "127.0.0.1:2", AdminAddr: "127.0.0.1:3"},
			{ID: 1, RaftAddr: "127.0.0.1:1", ClientAddr: "nowhere", AdminAddr: ":4", Flags: []string{"--id=3"}},
			{ID: 0, RaftAddr: "127.0.0.1:5", ClientAddr: "127.0.0.1:6", AdminAddr: "127.0.0.1:7", Netns: "ns"},
		},
		Flags:        []string{"--tick", "5ms", "--peers", "x", "-dir=y"},
		Token:        "two words",
		ReadyTimeout: -time.Second,
		TailLines:    5000,
		IP:           "",
	}
	c.EnsureDefaults()
	c.IP = "" // as if ip were not installed
	err := c.Validate()
	for _, want := range []string{
		"is not an executable file",
		"ClusterID is 0",
		"has no {id}",
		"node 1 is listed twice",
		"RaftAddr 127.0.0.1:1 is also node 1's RaftAddr",
		`ClientAddr "nowhere" is not host:port`,
		`AdminAddr ":4" is not host:port`,
		"node 1: Flags: --id is set by the supervisor",
		"Nodes[2] has ID 0",
		"ip command is not on PATH",
		"Flags: --peers is set by the supervisor; --dir is set by the supervisor",
		"Token contains white space",
		"ReadyTimeout -1s, want > 0",
		"TailLines 5000 outside 1..1000",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() does not say %q:\n%v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Validate() = %v, want ErrInvalidConfig", err)
	}
	if err := (&Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "Binary is empty") || !strings.Contains(err.Error(), "no Nodes") {
		t.Errorf("empty Config: %v", err)
	}
}

func TestExitString(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	refused := Exit{ID: 2, PID: 42, Started: t0, At: t0.Add(300 * time.Millisecond), Code: 2, Log: "/r/node2.log",
		Tail: []string{"time=... level=INFO msg=starting", "raftbench: node 2: wal: corrupt entry at index 7", "trailing noise"}}
	want := "node 2 (pid 42) exited with code 2 before serving, 300ms after its start: raftbench: node 2: wal: corrupt entry at index 7 (log: /r/node2.log)"
	if got := refused.String(); got != want {
		t.Errorf("refused start:\n got %s\nwant %s", got, want)
	}
	if got := (&ExitError{refused}).Error(); got != "procs: "+want || !errors.Is(&ExitError{refused}, ErrExited) {
		t.Errorf("ExitError = %q (Is ErrExited %v)", got, errors.Is(&ExitError{refused}, ErrExited))
	}
	killed := Exit{ID: 1, PID: 7, Started: t0, At: t0.Add(time.Second), Code: -1, Signal: syscall.SIGKILL, Cause: CauseKill9, Served: true, Tail: []string{"x"}}
	if got, want := killed.String(), "node 1 (pid 7) was killed by SIGKILL (kill9), 1s after its start"; got != want {
		t.Errorf("kill9:\n got %s\nwant %s", got, want)
	}
	panicked := Exit{ID: 3, PID: 9, Started: t0, At: t0.Add(time.Second), Code: 2, Served: true,
		Tail: []string{"panic: runtime error: index out of range", "", "goroutine 1 [running]:", "main.main()"}}
	if got := panicked.String(); !strings.Contains(got, "on its own") || !strings.Contains(got, ": panic: runtime error") {
		t.Errorf("panic: %s", got)
	}
	stopped := Exit{ID: 3, PID: 9, Started: t0, At: t0.Add(time.Second), Code: -1, Signal: syscall.SIGKILL, Cause: CauseStop, Escalated: true, Served: true}
	if got := stopped.String(); !strings.Contains(got, "ignored SIGTERM") || stopped.Clean() || !stopped.Expected() {
		t.Errorf("escalated stop: %s", got)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	before := "old run line 1\nold run line 2\n"
	var b strings.Builder
	b.WriteString(before)
	for i := range 30 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tail(path, int64(len(before)), 3)
	if want := []string{"line 27", "line 28", "line 29"}; !slices.Equal(got, want) {
		t.Errorf("tail = %q, want %q", got, want)
	}
	if got := tail(path, int64(len(before)), 100); len(got) != 30 || got[0] != "line 0" {
		t.Errorf("tail of the whole incarnation = %d lines from %q, want 30 from line 0", len(got), got[0])
	}
	if got := tail(path, int64(len(b.String())), 3); got != nil {
		t.Errorf("tail of nothing written = %q", got)
	}
	// Past the 64 KiB window only whole lines come back.
	big := strings.Repeat("y", 100) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(big, 1000)+"last\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = tail(path, 0, 1000)
	if got[len(got)-1] != "last" || len(got[0]) != 100 {
		t.Errorf("tail over the window: first %q, last %q", got[0], got[len(got)-1])
	}
}

func TestLoopbackNodes(t *testing.T) {
	specs, err := LoopbackNodes(3)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := portRange()
	seen := map[string]bool{}
	for i, s := range specs {
		if s.ID != uint64(i+1) {
			t.Errorf("spec %d has ID %d", i, s.ID)
		}
		for _, a := range []string{s.RaftAddr, s.ClientAddr, s.AdminAddr} {
			var port int
			if _, err := fmt.Sscanf(a, "127.0.0.1:%d", &port); err != nil || seen[a] {
				t.Errorf("address %q is not a fresh 127.0.0.1 port", a)
			}
			if hi > lo && (port < lo || port >= hi) {
				t.Errorf("port %d outside [%d, %d), the room below the ephemeral range", port, lo, hi)
			}
			seen[a] = true
		}
	}
	if _, err := LoopbackNodes(0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("LoopbackNodes(0) = %v", err)
	}
}

// exitLog collects what OnExit reports.
type exitLog struct {
	mu    sync.Mutex
	exits []Exit
}

func (l *exitLog) add(e Exit) {
	l.mu.Lock()
	l.exits = append(l.exits, e)
	l.mu.Unlock()
}

func (l *exitLog) all() []Exit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.exits)
}

// newTestSupervisor makes a Supervisor of n loopback nodes (or of the nodes
// edit sets, for n 0) that the test's cleanup closes.
func newTestSupervisor(t *testing.T, ctx context.Context, n int, edit func(*Config)) (*Supervisor, *exitLog) {
	t.Helper()
	var specs []NodeSpec
	if n > 0 { // else edit gives the nodes
		var err error
		if specs, err = LoopbackNodes(n); err != nil {
			t.Fatal(err)
		}
	}
	log := &exitLog{}
	cfg := Config{Binary: raftbench(t), ClusterID: testClusterID, Dir: t.TempDir(), Nodes: specs, Flags: testFlags, OnExit: log.add}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			for _, id := range s.IDs() {
				b, _ := os.ReadFile(s.LogPath(id))
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("node %d log (tail):\n%s", id, b)
			}
		}
	})
	return s, log
}

// waitLeader waits until the supervisor sees a leader that is not in
// avoid.
func waitLeader(t *testing.T, s *Supervisor, avoid ...uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		id, _, err := s.Leader(context.Background())
		if err == nil && !slices.Contains(avoid, id) {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader other than %v within 20s (last: %d, %v)", avoid, id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gone reports whether pid no longer runs (a zombie nobody reaped yet
// counts as gone).
func gone(pid int) bool {
	if st, ok := procState(pid); ok {
		return st == 'Z' || st == 'X'
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func isGzip(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 20 || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("profile %s: %d bytes (%v), want a gzipped pprof profile", path, len(b), err)
	}
}

// TestSupervisor drives three real `raftbench node` processes: start and
// readiness, SIGKILL of the leader (recorded as a kill9 by SIGKILL, the
// others elect a new leader), restart from the directory as a new PID,
// SIGSTOP of a follower (the kernel reports it stopped, it answers
// nothing) and SIGCONT, profiles from every node, a clean SIGTERM stop
// and restart, and StopAll; every exit expected and reported to OnExit,
// every incarnation in the node's log.
func TestSupervisor(t *testing.T) {
	ctx := context.Background()
	s, log := newTestSupervisor(t, ctx, 3, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	all := s.IDs()
	lead := waitLeader(t, s)
	pid := s.PID(lead)
	if err := s.Kill9(lead); err != nil {
		t.Fatal(err)
	}
	if s.Running(lead) || !gone(pid) {
		t.Fatalf("node %d (pid %d) still runs after Kill9", lead, pid)
	}
	ex := s.Exits()
	if len(ex) != 1 || ex[0].ID != lead || ex[0].PID != pid || ex[0].Cause != CauseKill9 || ex[0].Signal != syscall.SIGKILL || !ex[0].Served {
		t.Fatalf("exits after Kill9: %+v", ex)
	}
	if err := s.Kill9(lead); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill9 of a dead node: %v, want ErrNotRunning", err)
	}
	lead2 := waitLeader(t, s, lead)
	if err := s.Restart(ctx, lead); err != nil {
		t.Fatal(err)
	}
	if p := s.PID(lead); p == 0 || p == pid {
		t.Fatalf("restarted node %d has pid %d (was %d)", lead, p, pid)
	}
	if err := s.Restart(ctx, lead); !errors.Is(err, ErrRunning) {
		t.Errorf("Restart of a running node: %v, want ErrRunning", err)
	}
	if err := s.WaitReady(ctx, all...); err != nil {
		t.Fatal(err)
	}

	// A follower that was never killed, so the kill9ed node's log shows
	// exactly its two starts.
	follower := slices.DeleteFunc(slices.Clone(all), func(id uint64) bool { return id == lead || id == lead2 })[0]
	if err := s.Pause(follower); err != nil {
		t.Fatal(err)
	}
	if st, _ := procState(s.PID(follower)); st != 'T' || !s.Paused(follower) {
		t.Errorf("paused node %d in state %q (Paused %v)", follower, st, s.Paused(follower))
	}
	if _, err := s.status(ctx, follower); err == nil {
		t.Errorf("paused node %d answered /status", follower)
	}
	if _, ok := s.Statuses(ctx)[follower]; ok {
		t.Errorf("Statuses asked the paused node %d", follower)
	}
	if err := s.Resume(follower); err != nil {
		t.Fatal(err)
	}
	if _, err := s.status(ctx, follower); err != nil {
		t.Errorf("resumed node %d: %v", follower, err)
	}

	dir := t.TempDir()
	for _, p := range []Profile{{Name: "heap", Path: filepath.Join(dir, "node{id}-heap.pprof")}, {Name: "profile", Seconds: 1, Path: filepath.Join(dir, "node{id}-cpu.pprof")}} {
		paths, err := s.Profile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 3 {
			t.Errorf("%s profiles: %v, want one per node", p.Name, paths)
		}
		for _, path := range paths {
			isGzip(t, path)
		}
	}
	if _, err := s.Profile(ctx, Profile{Name: "heap", Path: filepath.Join(dir, "one.pprof")}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("profile path without {id}: %v", err)
	}

	if err := s.Stop(follower); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if e := s.Exits()[len(s.Exits())-1]; e.ID != follower || e.Cause != CauseStop || e.Code != 0 || e.Escalated {
		t.Errorf("exit after Stop: %+v", e)
	}
	if err := s.Restart(ctx, follower); err != nil {
		t.Fatal(err)
	}
	if err := s.StopAll(); err != nil {
		t.Fatalf("StopAll: %v", err)
	}
	tok, err := os.ReadFile(filepath.Join(filepath.Dir(s.LogPath(1)), "admin-token"))
	if err != nil || strings.TrimSpace(string(tok)) != s.Token() || len(s.Token()) != 32 {
		t.Errorf("token file holds %q (%v), want the 32-digit token %q", tok, err, s.Token())
	}
	for _, id := range all {
		if s.Running(id) {
			t.Errorf("node %d runs after StopAll", id)
		}
	}
	if u := s.Unexpected(); len(u) != 0 {
		t.Errorf("unexpected exits: %v", u)
	}
	if got := len(s.Exits()); got != 5 || len(log.all()) != 5 {
		t.Errorf("%d exits recorded, %d reported to OnExit; want 5 (a kill9, a stop, three at StopAll)", got, len(log.all()))
	}
	b, err := os.ReadFile(s.LogPath(lead))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.LogPath(1)), "admin-token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the token file outlived Close: %v", err)
	}
	if n := strings.Count(string(b), fmt.Sprintf("--- procs: node %d, start ", lead)); n != 2 {
		t.Errorf("node %d's log shows %d starts, want 2", lead, n)
	}
	if !strings.Contains(string(b), "raftbench node serving") {
		t.Errorf("node %d's log holds none of its own output", lead)
	}
}

// TestRefusedStart: a node that refuses to start (its directory is not a
// raftbench node directory) makes Start fail with an *ExitError that says
// which node, that it never served, and the node's own reason.
func TestRefusedStart(t *testing.T) {
	ctx := context.Background()
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "precious.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, log := newTestSupervisor(t, ctx, 1, func(c *Config) { c.DirTemplate = foreign })
	err := s.Start(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExited) {
		t.Fatalf("Start on a foreign directory: %v, want an *ExitError", err)
	}
	msg := err.Error()
	for _, want := range []string{"node 1 (pid ", "exited with code 2 before serving", "not a raftbench node directory", s.LogPath(1)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if u := s.Unexpected(); len(u) != 1 || u[0].Served || u[0].Expected() || len(log.all()) != 1 {
		t.Errorf("unexpected exits %+v, reported %d", u, len(log.all()))
	}
	if b, err := os.ReadFile(filepath.Join(foreign, "precious.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the foreign directory was touched: %q, %v", b, err)
	}
}

// TestDiedOnItsOwn: a node killed behind the supervisor's back is an
// unexpected exit, reported; it restarts from its directory; and the
// cancellation of New's context stops every node and closes the
// supervisor.
func TestDiedOnItsOwn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, log := newTestSupervisor(t, ctx, 1, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := s.PID(1)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil { // the process this test's supervisor started
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Unexpected()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the killed node's exit was not recorded within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	u := s.Unexpected()[0]
	if u.PID != pid || u.Cause != "" || u.Signal != syscall.SIGKILL || !u.Served || !strings.Contains(u.String(), "on its own") {
		t.Errorf("unexpected exit: %+v (%s)", u, u)
	}
	if got := log.all(); len(got) != 1 || got[0].PID != pid {
		t.Errorf("OnExit saw %+v", got)
	}
	if err := s.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pid2 := s.PID(1)
	cancel()
	deadline = time.Now().Add(20 * time.Second)
	for !gone(pid2) || s.Running(1) {
		if time.Now().After(deadline) {
			t.Fatalf("node (pid %d) still runs 20s after the context ended", pid2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Restart(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after the context ended: %v, want ErrClosed", err)
	}
}

// TestHarnessKilled: a harness killed by SIGKILL leaves no node behind
// (Pdeathsig).
func TestHarnessKilled(t *testing.T) {
	if !canSeeStops {
		t.Skip("Pdeathsig is Linux only")
	}
	bin := raftbench(t)
	h := exec.Command(os.Args[0], "-test.run=^$")
	h.Env = append(os.Environ(), harnessEnv+"="+t.TempDir(), harnessBinEnv+"="+bin)
	h.Stderr = os.Stderr
	out, err := h.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = h.Process.Kill()
		_ = h.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	var pid int
	if _, serr := fmt.Sscanf(line, "pid %d", &pid); err != nil || serr != nil || pid <= 0 {
		t.Fatalf("harness said %q (%v)", line, err)
	}
	defer func() {
		if !gone(pid) { // the test's own node, by the PID its harness reported
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	if gone(pid) {
		t.Fatalf("node pid %d is not running before the harness is killed", pid)
	}
	if err := h.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("node pid %d still runs 10s after its harness was SIGKILLed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

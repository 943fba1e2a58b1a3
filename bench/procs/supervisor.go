package procs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/raftbench/raftbench/admin"
)

// Errors of the Supervisor's operations; each is wrapped with the node.
var (
	ErrUnknownNode = errors.New("procs: unknown node")
	ErrRunning     = errors.New("procs: node is running")
	ErrNotRunning  = errors.New("procs: node is not running")
	ErrClosed      = errors.New("procs: supervisor closed")
	ErrTimeout     = errors.New("procs: timed out")
	ErrNoLeader    = errors.New("procs: no leader")
)

// pollInterval is how often the waits ask a node's admin endpoint.
const pollInterval = 20 * time.Millisecond

// statusTimeout bounds one /status request (a paused node never answers).
const statusTimeout = time.Second

// Supervisor runs a cluster's node processes. Its methods are safe for
// concurrent use; operations on one node run one at a time.
type Supervisor struct {
	cfg       Config
	token     string
	tokenFile string
	peers     string
	ids       []uint64
	nodes     map[uint64]*nodeProc
	admins    map[uint64]*admin.Client
	transport *http.Transport
	fork      *forker
	stopAfter func() bool
	waiters   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	closed bool
	exits  []Exit
}

// nodeProc is one node across its incarnations.
type nodeProc struct {
	spec NodeSpec
	dir  string
	log  string
	op   sync.Mutex // held by the operation in progress on this node

	// Guarded by Supervisor.mu.
	starts int
	cur    *incarnation // nil before the first start
}

// incarnation is one process of a node.
type incarnation struct {
	n        int
	cmd      *exec.Cmd
	pid      int
	started  time.Time
	logStart int64
	done     chan struct{} // closed once the exit is recorded
	exit     Exit          // valid once done is closed

	// Guarded by Supervisor.mu.
	served    bool
	paused    bool
	cause     string
	escalated bool
}

func (inc *incarnation) exited() bool {
	select {
	case <-inc.done:
		return true
	default:
		return false
	}
}

// New validates cfg and prepares Dir and the token; it starts nothing.
// When ctx ends, the Supervisor closes itself (stopping every node), as
// Close does.
func New(ctx context.Context, cfg Config) (*Supervisor, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("procs: %w", err)
	}
	token := cfg.Token
	if token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("procs: admin token: %w", err)
		}
		token = hex.EncodeToString(b[:])
	}
	tokenFile := filepath.Join(cfg.Dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("procs: admin token: %w", err)
	}
	s := &Supervisor{
		cfg: cfg, token: token, tokenFile: tokenFile, peers: cfg.peers(),
		nodes: map[uint64]*nodeProc{}, admins: map[uint64]*admin.Client{},
		transport: &http.Transport{DialContext: cfg.Dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
	}
	hc := &http.Client{Transport: s.transport, Timeout: 30 * time.Second}
	for _, n := range cfg.Nodes {
		s.ids = append(s.ids, n.ID)
		s.nodes[n.ID] = &nodeProc{spec: n, dir: cfg.dataDir(n.ID), log: filepath.Join(cfg.Dir, fmt.Sprintf("node%d.log", n.ID))}
		c, err := admin.NewClient(n.AdminAddr, token, hc)
		if err != nil {
			return nil, fmt.Errorf("procs: node %d: %w", n.ID, err)
		}
		s.admins[n.ID] = c
	}
	slices.Sort(s.ids)
	s.fork = newForker()
	s.stopAfter = context.AfterFunc(ctx, func() { _ = s.Close() })
	return s, nil
}

// IDs are the node IDs, in order.
func (s *Supervisor) IDs() []uint64 { return slices.Clone(s.ids) }

// Spec is node id's spec.
func (s *Supervisor) Spec(id uint64) (NodeSpec, error) {
	np, err := s.node(id)
	if err != nil {
		return NodeSpec{}, err
	}
	return np.spec, nil
}

// Admin is the admin client of node id (nil for an unknown node).
func (s *Supervisor) Admin(id uint64) *admin.Client { return s.admins[id] }

// Token is the admin token the nodes require.
func (s *Supervisor) Token() string { return s.token }

// ClientAddrs maps every node ID to its client API address, as
// clientapi.Endpoints takes it.
func (s *Supervisor) ClientAddrs() map[uint64]string {
	m := map[uint64]string{}
	for id, np := range s.nodes {
		m[id] = np.spec.ClientAddr
	}
	return m
}

// DataDir is node id's data directory.
func (s *Supervisor) DataDir(id uint64) string {
	if np, ok := s.nodes[id]; ok {
		return np.dir
	}
	return ""
}

// LogPath is the file node id's output goes to.
func (s *Supervisor) LogPath(id uint64) string {
	if np, ok := s.nodes[id]; ok {
		return np.log
	}
	return ""
}

// PID is the PID of node id's running process, 0 when none runs.
func (s *Supervisor) PID(id uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if np, ok := s.nodes[id]; ok && np.cur != nil && !np.cur.exited() {
		return np.cur.pid
	}
	return 0
}

// Running reports whether node id has a live process (paused counts).
func (s *Supervisor) Running(id uint64) bool { return s.PID(id) != 0 }

// Paused reports whether node id's process is stopped by Pause.
func (s *Supervisor) Paused(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	np, ok := s.nodes[id]
	return ok && np.cur != nil && !np.cur.exited() && np.cur.paused
}

// Exits are every exit so far, in the order they happened.
func (s *Supervisor) Exits() []Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.exits)
}

// Unexpected are the exits the supervisor did not cause: nodes that died
// on their own or refused to start.
func (s *Supervisor) Unexpected() []Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Exit
	for _, e := range s.exits {
		if !e.Expected() {
			out = append(out, e)
		}
	}
	return out
}

func (s *Supervisor) node(id uint64) (*nodeProc, error) {
	np, ok := s.nodes[id]
	if !ok {
		return nil, fmt.Errorf("%w %d (the cluster has %v)", ErrUnknownNode, id, s.ids)
	}
	return np, nil
}

// lockNodes looks ids up (dropping repeats) and takes their operation
// locks in ID order, so two multi-node operations cannot deadlock.
func (s *Supervisor) lockNodes(ids []uint64) ([]*nodeProc, func(), error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	var nps []*nodeProc
	for _, id := range ids {
		np, err := s.node(id)
		if err != nil {
			return nil, nil, err
		}
		nps = append(nps, np)
	}
	for _, np := range nps {
		np.op.Lock()
	}
	return nps, func() {
		for _, np := range nps {
			np.op.Unlock()
		}
	}, nil
}

// args is node np's command line.
func (s *Supervisor) args(np *nodeProc) []string {
	sp := np.spec
	var argv []string
	if sp.Netns != "" {
		argv = append(argv, s.cfg.IP, "netns", "exec", sp.Netns)
	}
	argv = append(argv, s.cfg.Binary, "node",
		"--id", strconv.FormatUint(sp.ID, 10),
		"--cluster-id", strconv.FormatUint(s.cfg.ClusterID, 10),
		"--peers", s.peers,
		"--dir", np.dir,
		"--raft-addr", sp.RaftAddr,
		"--client-addr", sp.ClientAddr,
		"--admin-addr", sp.AdminAddr,
		"--admin-token-file", s.tokenFile,
		"--log-level", s.cfg.LogLevel,
	)
	argv = append(argv, s.cfg.Flags...)
	return append(argv, sp.Flags...)
}

// launch starts a new process of np, which must not be running. np.op is
// held.
func (s *Supervisor) launch(np *nodeProc) (*incarnation, error) {
	id := np.spec.ID
	argv := s.args(np)
	logf, err := os.OpenFile(np.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("procs: node %d: log: %w", id, err)
	}
	defer logf.Close() // the process has its own descriptor

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if np.cur != nil && !np.cur.exited() {
		return nil, fmt.Errorf("%w: node %d (pid %d)", ErrRunning, id, np.cur.pid)
	}
	np.starts++
	inc := &incarnation{n: np.starts, started: time.Now(), done: make(chan struct{})}
	fmt.Fprintf(logf, "--- procs: node %d, start %d, at %s: %q\n", id, inc.n, inc.started.Format(time.RFC3339Nano), argv)
	if fi, err := logf.Stat(); err == nil {
		inc.logStart = fi.Size()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	// The forker's thread, for Pdeathsig. It is started under s.mu so
	// Close cannot stop the forker in between.
	if err := s.fork.start(cmd); err != nil {
		fmt.Fprintf(logf, "--- procs: node %d did not start: %v\n", id, err)
		return nil, fmt.Errorf("procs: start node %d: %w", id, err)
	}
	inc.cmd, inc.pid = cmd, cmd.Process.Pid
	np.cur = inc
	s.waiters.Add(1)
	go s.reap(np, inc)
	return inc, nil
}

// reap waits for inc's process, records its exit and reports it.
func (s *Supervisor) reap(np *nodeProc, inc *incarnation) {
	defer s.waiters.Done()
	_ = inc.cmd.Wait()
	ex := Exit{
		ID: np.spec.ID, Incarnation: inc.n, PID: inc.pid, Started: inc.started, At: time.Now(),
		Code: -1, Log: np.log, Tail: tail(np.log, inc.logStart, s.cfg.TailLines),
	}
	if ws, ok := inc.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.Signal = ws.Signal()
	} else {
		ex.Code = inc.cmd.ProcessState.ExitCode()
	}
	s.mu.Lock()
	ex.Cause, ex.Escalated, ex.Served = inc.cause, inc.escalated, inc.served
	if ex.Cause == CauseKill9 && ex.Signal != syscall.SIGKILL {
		// It ended on its own just before the SIGKILL reached it.
		ex.Cause = ""
	}
	inc.exit = ex
	s.exits = append(s.exits, ex)
	s.mu.Unlock()
	if f, err := os.OpenFile(np.log, os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(f, "--- procs: %s\n", ex)
		f.Close()
	}
	// OnExit before done: whoever waits on this exit (Kill9, Stop, a
	// Restart that sees the node refuse to start) returns after the
	// report.
	if s.cfg.OnExit != nil {
		s.cfg.OnExit(ex)
	}
	close(inc.done)
}

// live returns np's running incarnation, or ErrNotRunning.
func (s *Supervisor) live(np *nodeProc) (*incarnation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if np.cur == nil || np.cur.exited() {
		return nil, fmt.Errorf("%w: node %d", ErrNotRunning, np.spec.ID)
	}
	return np.cur, nil
}

// Start starts every node that is not running and waits until each serves
// and is ready (knows a leader). On an error the nodes it started keep
// running: Close stops them.
func (s *Supervisor) Start(ctx context.Context) error {
	var ids []uint64
	for _, id := range s.ids {
		if !s.Running(id) {
			ids = append(ids, id)
		}
	}
	if err := s.Restart(ctx, ids...); err != nil {
		return err
	}
	return s.WaitReady(ctx, s.ids...)
}

// Restart starts nodes ids again from their data directories (all at
// once) and waits until each serves: its admin endpoint answers as the
// new process. A node that exits first is an *ExitError saying why ("node
// 2 refused to start: ..."). It does not wait for readiness; see
// WaitReady.
func (s *Supervisor) Restart(ctx context.Context, ids ...uint64) error {
	nps, unlock, err := s.lockNodes(ids)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	var incs []*incarnation
	var started []*nodeProc
	for _, np := range nps {
		inc, err := s.launch(np)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		incs = append(incs, inc)
		started = append(started, np)
	}
	errs = append(errs, s.each(len(incs), func(i int) error { return s.waitServing(ctx, started[i], incs[i]) })...)
	return errors.Join(errs...)
}

// each runs f(0..n-1) concurrently and returns the errors.
func (s *Supervisor) each(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errs
}

// waitServing waits until inc's process answers /status as itself.
func (s *Supervisor) waitServing(ctx context.Context, np *nodeProc, inc *incarnation) error {
	id := np.spec.ID
	var last error
	err := s.poll(ctx, inc, func() (bool, error) {
		st, err := s.status(ctx, id)
		switch {
		case err != nil:
			last = err
			return false, nil
		case st.ID != id || st.PID != inc.pid:
			last = fmt.Errorf("%s answers as node %d, pid %d", np.spec.AdminAddr, st.ID, st.PID)
			return false, nil
		}
		s.mu.Lock()
		inc.served = true
		s.mu.Unlock()
		return true, nil
	})
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%w: node %d (pid %d) did not serve on %s within %v (last: %v; log: %s)", ErrTimeout, id, inc.pid, np.spec.AdminAddr, s.cfg.ReadyTimeout, last, np.log)
	}
	return err
}

// WaitReady waits until every node of ids runs and is ready (knows a
// leader), up to ReadyTimeout. A node that exits meanwhile is an
// *ExitError.
func (s *Supervisor) WaitReady(ctx context.Context, ids ...uint64) error {
	errs := s.each(len(ids), func(i int) error {
		np, err := s.node(ids[i])
		if err != nil {
			return err
		}
		inc, err := s.live(np)
		if err != nil {
			return err
		}
		var last string
		err = s.poll(ctx, inc, func() (bool, error) {
			st, err := s.status(ctx, np.spec.ID)
			if err != nil {
				last = err.Error()
				return false, nil
			}
			last = fmt.Sprintf("role %s, term %d, leader %d", st.Role, st.Term, st.Leader)
			return st.Ready, nil
		})
		if errors.Is(err, ErrTimeout) {
			return fmt.Errorf("%w: node %d not ready within %v (last: %s; log: %s)", ErrTimeout, np.spec.ID, s.cfg.ReadyTimeout, last, np.log)
		}
		return err
	})
	return errors.Join(errs...)
}

// poll calls cond every pollInterval until it holds, fails, the process
// exits (an *ExitError), ctx ends, or ReadyTimeout passes (ErrTimeout).
func (s *Supervisor) poll(ctx context.Context, inc *incarnation, cond func() (bool, error)) error {
	deadline := time.NewTimer(s.cfg.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if inc.exited() {
			return &ExitError{inc.exit}
		}
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-inc.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return ErrTimeout
		case <-tick.C:
		}
	}
}

// status asks node id's admin endpoint, within statusTimeout.
func (s *Supervisor) status(ctx context.Context, id uint64) (admin.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return s.admins[id].Status(ctx)
}

// Statuses asks every running, unpaused node for its status at once and
// returns the answers it got.
func (s *Supervisor) Statuses(ctx context.Context) map[uint64]admin.Status {
	var ids []uint64
	for _, id := range s.ids {
		if s.Running(id) && !s.Paused(id) {
			ids = append(ids, id)
		}
	}
	sts := make([]*admin.Status, len(ids))
	s.each(len(ids), func(i int) error {
		if st, err := s.status(ctx, ids[i]); err == nil {
			sts[i] = &st
		}
		return nil
	})
	out := map[uint64]admin.Status{}
	for i, st := range sts {
		if st != nil {
			out[ids[i]] = *st
		}
	}
	return out
}

// Leader returns the node that leads in the highest term among the
// running, unpaused nodes' answers, or ErrNoLeader.
func (s *Supervisor) Leader(ctx context.Context) (id, term uint64, err error) {
	for nid, st := range s.Statuses(ctx) {
		if st.Role == "Leader" && st.Term > term {
			id, term = nid, st.Term
		}
	}
	if id == 0 {
		return 0, 0, ErrNoLeader
	}
	return id, term, nil
}

// Kill9 SIGKILLs nodes ids, all at once, and waits until every one has
// exited (up to KillTimeout).
func (s *Supervisor) Kill9(ids ...uint64) error {
	nps, unlock, err := s.lockNodes(ids)
	if err != nil {
		return err
	}
	defer unlock()
	if s.isClosed() {
		return ErrClosed
	}
	var errs []error
	var incs []*incarnation
	for _, np := range nps {
		inc, err := s.live(np)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		inc.cause = CauseKill9
		s.mu.Unlock()
		if err := inc.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("procs: kill9 node %d (pid %d): %w", np.spec.ID, inc.pid, err))
			continue
		}
		incs = append(incs, inc)
	}
	errs = append(errs, s.each(len(incs), func(i int) error { return s.awaitExit(incs[i], s.cfg.KillTimeout, "SIGKILL") })...)
	return errors.Join(errs...)
}

// awaitExit waits up to d for inc's process to exit.
func (s *Supervisor) awaitExit(inc *incarnation, d time.Duration, after string) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-inc.done:
		return nil
	case <-t.C:
		st, _ := procState(inc.pid)
		return fmt.Errorf("%w: pid %d had not exited %v after %s (state %q)", ErrTimeout, inc.pid, d, after, st)
	}
}

// Pause SIGSTOPs nodes ids and returns once the kernel reports every one
// stopped (where it can tell). Pausing a paused node does nothing.
func (s *Supervisor) Pause(ids ...uint64) error {
	return s.stopCont(ids, true)
}

// Resume SIGCONTs paused nodes ids and returns once every one runs again.
func (s *Supervisor) Resume(ids ...uint64) error {
	return s.stopCont(ids, false)
}

func (s *Supervisor) stopCont(ids []uint64, pause bool) error {
	nps, unlock, err := s.lockNodes(ids)
	if err != nil {
		return err
	}
	defer unlock()
	if s.isClosed() {
		return ErrClosed
	}
	sig, what := syscall.SIGCONT, "resume"
	if pause {
		sig, what = syscall.SIGSTOP, "pause"
	}
	var errs []error
	var incs []*incarnation
	var nodes []uint64
	for _, np := range nps {
		inc, err := s.live(np)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		already := inc.paused == pause
		s.mu.Unlock()
		if already {
			continue
		}
		if err := inc.cmd.Process.Signal(sig); err != nil {
			errs = append(errs, fmt.Errorf("procs: %s node %d (pid %d): %w", what, np.spec.ID, inc.pid, err))
			continue
		}
		s.mu.Lock()
		inc.paused = pause
		s.mu.Unlock()
		incs = append(incs, inc)
		nodes = append(nodes, np.spec.ID)
	}
	errs = append(errs, s.each(len(incs), func(i int) error {
		if !canSeeStops {
			return nil
		}
		inc, id := incs[i], nodes[i]
		deadline := time.Now().Add(s.cfg.KillTimeout)
		for {
			st, ok := procState(inc.pid)
			if !ok || inc.exited() {
				return fmt.Errorf("%w: node %d (pid %d) exited during %s", ErrNotRunning, id, inc.pid, what)
			}
			if (st == 'T') == pause {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: node %d (pid %d) still in state %q %v after %v", ErrTimeout, id, inc.pid, st, s.cfg.KillTimeout, sig)
			}
			time.Sleep(time.Millisecond)
		}
	})...)
	return errors.Join(errs...)
}

// Stop stops nodes ids, all at once: SIGTERM (and SIGCONT, should one be
// paused), then, for a process still running after StopTimeout, SIGKILL.
// A node that did not exit with code 0 is an *ExitError.
func (s *Supervisor) Stop(ids ...uint64) error {
	nps, unlock, err := s.lockNodes(ids)
	if err != nil {
		return err
	}
	defer unlock()
	if s.isClosed() {
		return ErrClosed
	}
	var errs []error
	var live []*nodeProc
	for _, np := range nps {
		if _, err := s.live(np); err != nil {
			errs = append(errs, err)
			continue
		}
		live = append(live, np)
	}
	return errors.Join(append(errs, s.stop(live)...)...)
}

// StopAll stops every running node as Stop does.
func (s *Supervisor) StopAll() error {
	nps, unlock, err := s.lockNodes(s.ids)
	if err != nil {
		return err
	}
	defer unlock()
	return errors.Join(s.stop(nps)...)
}

// stop stops the running ones of nps (without their operation locks,
// which Close does not take).
func (s *Supervisor) stop(nps []*nodeProc) []error {
	return s.each(len(nps), func(i int) error {
		np := nps[i]
		inc, err := s.live(np)
		if err != nil {
			return nil // not running: nothing to stop
		}
		s.mu.Lock()
		inc.cause = CauseStop
		s.mu.Unlock()
		_ = inc.cmd.Process.Signal(syscall.SIGTERM)
		_ = inc.cmd.Process.Signal(syscall.SIGCONT) // a paused process acts on the SIGTERM only once running
		if s.awaitExit(inc, s.cfg.StopTimeout, "SIGTERM") != nil {
			s.mu.Lock()
			inc.escalated = true
			s.mu.Unlock()
			_ = inc.cmd.Process.Signal(syscall.SIGKILL)
			if err := s.awaitExit(inc, s.cfg.KillTimeout, "SIGTERM and SIGKILL"); err != nil {
				return fmt.Errorf("procs: stop node %d: %w", np.spec.ID, err)
			}
		}
		if ex := inc.exit; !ex.Clean() {
			return &ExitError{ex}
		}
		return nil
	})
}

func (s *Supervisor) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every node (as StopAll, without waiting for operations in
// progress, which then fail), releases the supervisor and removes the
// token file; it returns the nodes that did not stop cleanly. Idempotent;
// the cancellation of New's context calls it too.
func (s *Supervisor) Close() error {
	s.closeOnce.Do(func() {
		s.stopAfter()
		s.mu.Lock()
		s.closed = true
		nps := make([]*nodeProc, 0, len(s.ids))
		for _, id := range s.ids {
			nps = append(nps, s.nodes[id])
		}
		s.mu.Unlock()
		s.closeErr = errors.Join(s.stop(nps)...)
		s.waiters.Wait()
		s.fork.stop()
		s.transport.CloseIdleConnections()
		// No process will read it again, and Dir may be a result
		// directory that gets shared.
		if err := os.Remove(s.tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.closeErr = errors.Join(s.closeErr, fmt.Errorf("procs: %w", err))
		}
	})
	return s.closeErr
}

package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/netns"
	"github.com/raftbench/raftbench/bench/procs"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/cluster"
)

// NodesDir is the subdirectory of a --procs run's result directory that
// holds each node process's log (node<ID>.log).
const NodesDir = "nodes"

// Ports of a node in a network namespace of its own (each namespace has
// its own address, so every node uses the same ones).
const (
	netnsRaftPort   = 7001
	netnsClientPort = 7100
	netnsAdminPort  = 7200
)

// procsTarget runs each node as a `raftbench node` process of its own on
// this machine (bench/procs), optionally each in a network namespace of
// its own (bench/netns), and drives them as a remote cluster: the load
// over their client APIs, status, states, message faults and profiles over
// their admin endpoints. Process faults are signals: kill9 (SIGKILL, then
// a restart from the data directory), pause (SIGSTOP, SIGCONT), kill (a
// clean SIGTERM stop). With --netns a partition is a real link cut between
// the nodes' namespaces; without, the nodes' fault wrappers enforce it,
// told through their admin endpoints.
type procsTarget struct {
	*remote
	cfg *Config
	sup *procs.Supervisor
	nw  *netns.Net // nil without --netns
	// dataRoot is the temporary directory holding the nodes' data
	// directories (removed at Close); made are the --dir-template
	// directories this run created (removed too).
	dataRoot string
	made     []string
	logDir   string

	// emptied are the --dir-template directories that existed, empty:
	// Close empties them again.
	emptied []string

	mu       sync.Mutex
	problems []string // nodes that died on their own
	cuts     map[uint64]bool
	peaks    map[uint64]int64
}

var (
	_ Target          = (*procsTarget)(nil)
	_ Stopper         = (*procsTarget)(nil)
	_ Killer          = (*procsTarget)(nil)
	_ Pauser          = (*procsTarget)(nil)
	_ Partitioner     = (*procsTarget)(nil)
	_ MessageFaulter  = (*procsTarget)(nil)
	_ DiskSlower      = (*procsTarget)(nil)
	_ Profiler        = (*procsTarget)(nil)
	_ DiskSampler     = (*procsTarget)(nil)
	_ ProblemReporter = (*procsTarget)(nil)
	_ Attributor      = (*procsTarget)(nil)
)

// procsFault is CheckFault of the --procs target.
func procsFault(cfg *Config, f faultspec.Fault) error {
	const name = "raftbench --procs"
	switch {
	case f.IsCrash():
		return UnsupportedFault(name, f.Spec, "crash is the in-process model of a power cut (a filesystem that loses what was not synced); "+
			"a node process's crash is kill9:N or kill9-leader (SIGKILL), or run it without --procs")
	case f.DamagesWAL():
		return UnsupportedFault(name, f.Spec, "the in-process harness damages a stopped node's WAL and checks what it keeps: run it without --procs")
	case f.IsMembership():
		return UnsupportedFault(name, f.Spec, "membership changes need nodes started on demand, which the process supervisor does not do: run it without --procs")
	}
	return nil
}

// startProcs starts the node processes and waits until every one is ready.
// On any failure it removes everything it made: processes, namespaces,
// directories.
func startProcs(ctx context.Context, cfg *Config, env Env) (_ Target, err error) {
	if env.Binary == "" {
		return nil, fmt.Errorf("%w: --procs: no raftbench executable to run the nodes with (bench.Options.Binary)", ErrBadConfig)
	}
	logf := env.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	t := &procsTarget{cfg: cfg, logDir: filepath.Join(env.Dir, NodesDir), cuts: map[uint64]bool{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
		}
	}()
	ids := nodeIDs(cfg.Nodes)
	var specs []procs.NodeSpec
	var dial func(ctx context.Context, network, addr string) (net.Conn, error)
	if cfg.Netns {
		if removed, err := netns.Sweep(); err != nil {
			logf("netns: sweeping namespaces of earlier runs: %v", err)
		} else if len(removed) > 0 {
			logf("netns: removed %d namespaces earlier runs left: %s", len(removed), strings.Join(removed, " "))
		}
		if t.nw, err = netns.New(netns.Config{Nodes: ids}); err != nil {
			return nil, fmt.Errorf("--netns: %w", err)
		}
		for _, id := range ids {
			addr, _ := t.nw.Addr(id)
			ns, _ := t.nw.Namespace(id)
			at := func(port int) string { return net.JoinHostPort(addr.String(), strconv.Itoa(port)) }
			specs = append(specs, procs.NodeSpec{ID: id, RaftAddr: at(netnsRaftPort), ClientAddr: at(netnsClientPort), AdminAddr: at(netnsAdminPort), Netns: ns})
		}
		dial = t.nw.DialContext
	} else {
		if specs, err = procs.LoopbackNodes(cfg.Nodes); err != nil {
			return nil, err
		}
	}
	dirTemplate := cfg.DirTemplate
	if dirTemplate == "" {
		if cfg.Dir != "" {
			if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
				return nil, fmt.Errorf("%w: --dir: %v", ErrBadConfig, err)
			}
		}
		if t.dataRoot, err = os.MkdirTemp(cfg.Dir, "raftbench-procs-"); err != nil {
			return nil, fmt.Errorf("--procs: data directories: %w", err)
		}
		dirTemplate = filepath.Join(t.dataRoot, "node"+procs.IDPlaceholder)
	} else if err := t.claimDirs(dirTemplate, ids); err != nil {
		return nil, err
	}
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("--procs: cluster ID: %w", err)
	}
	clusterID := binary.BigEndian.Uint64(b[:]) | 1
	flags := cfg.NodeFlags()
	if cfg.MutexProfile != "" {
		flags = append(flags, "--mutex-profile-fraction=5")
	}
	if cfg.BlockProfile != "" {
		flags = append(flags, "--block-profile-rate=10000")
	}
	t.sup, err = procs.New(context.WithoutCancel(ctx), procs.Config{
		Binary: env.Binary, ClusterID: clusterID, Dir: t.logDir, DirTemplate: dirTemplate, Nodes: specs,
		Flags: flags, Dial: dial, LogLevel: "warn", OnExit: t.noteExit,
	})
	if err != nil {
		return nil, fmt.Errorf("--procs: %w", err)
	}
	if err := t.sup.Start(ctx); err != nil {
		return nil, fmt.Errorf("--procs: start the node processes: %w", err)
	}
	var nodes []remoteNode
	for _, s := range specs {
		nodes = append(nodes, remoteNode{ID: s.ID, Client: s.ClientAddr, Admin: s.AdminAddr})
	}
	t.remote, err = newRemote(ctx, remoteSpec{name: "raftbench --procs", nodes: nodes, clusterID: clusterID, token: t.sup.Token(),
		dial: dial, maxFrameSize: cluster.FrameSize(uint64(cfg.MaxMsgBytes)),
		skip: func(id uint64) bool { return !t.sup.Running(id) || t.sup.Paused(id) }, logf: logf})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// claimDirs checks that every --dir-template directory is empty or absent
// (a node refuses another run's directory anyway, since each run has a
// cluster ID of its own) and notes those it will create, for Close.
func (t *procsTarget) claimDirs(tmpl string, ids []uint64) error {
	var probs []string
	for _, id := range ids {
		dir := strings.ReplaceAll(tmpl, procs.IDPlaceholder, strconv.FormatUint(id, 10))
		ents, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			t.made = append(t.made, dir)
		case err != nil:
			probs = append(probs, fmt.Sprintf("node %d's %s: %v", id, dir, err))
		case len(ents) > 0:
			probs = append(probs, fmt.Sprintf("node %d's %s is not empty (give each run empty directories)", id, dir))
		default:
			t.emptied = append(t.emptied, dir)
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: --dir-template: %s", ErrBadConfig, strings.Join(probs, "; "))
	}
	return nil
}

// noteExit records a node process that died on its own.
func (t *procsTarget) noteExit(e procs.Exit) {
	if e.Expected() {
		return
	}
	t.mu.Lock()
	t.problems = append(t.problems, fmt.Sprintf("node %d died on its own: %s", e.ID, e.Reason()))
	t.mu.Unlock()
}

// Problems are the node processes that died on their own.
func (t *procsTarget) Problems() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.problems)
}

func (t *procsTarget) Info() TargetInfo {
	where := fmt.Sprintf("%d raftbench node processes on loopback", t.cfg.Nodes)
	if t.nw != nil {
		where = fmt.Sprintf("%d raftbench node processes, each in a network namespace of its own on %s", t.cfg.Nodes, t.nw.Subnet())
	}
	var pids []string
	for _, id := range t.ids {
		pids = append(pids, fmt.Sprintf("%d=pid %d", id, t.sup.PID(id)))
	}
	where += fmt.Sprintf(" (%s), data in %s, logs in the result directory's %s/", strings.Join(pids, ", "), t.dataDirs(), NodesDir)
	return TargetInfo{Mode: ModeProcs, System: DefaultSystem, Version: results.Commit(), Nodes: slices.Clone(t.ids), Groups: 1, Where: where}
}

// dataDirs describes where the nodes' data directories are.
func (t *procsTarget) dataDirs() string {
	if t.dataRoot != "" {
		return t.dataRoot
	}
	return t.cfg.DirTemplate
}

func (t *procsTarget) Group(int) Group { return t.remote }

func (t *procsTarget) CheckFault(f faultspec.Fault) error { return procsFault(t.cfg, f) }

func (t *procsTarget) Running(id uint64) bool { return t.sup.Running(id) }

func (t *procsTarget) Stopped() []uint64 {
	var out []uint64
	for _, id := range t.ids {
		if !t.sup.Running(id) {
			out = append(out, id)
		}
	}
	return out
}

// Restart starts node id's process again from its directory, then gives it
// the faults in force.
func (t *procsTarget) Restart(ctx context.Context, id uint64) error {
	if err := t.sup.Restart(ctx, id); err != nil {
		return err
	}
	t.mu.Lock()
	t.remote.restartCnt[id]++
	t.mu.Unlock()
	return t.resync(ctx, id, t.nw == nil)
}

func (t *procsTarget) Stop(_ context.Context, id uint64) error {
	t.forget(id)
	return t.sup.Stop(id)
}

func (t *procsTarget) Kill9(_ context.Context, id uint64) error {
	t.forget(id)
	return t.sup.Kill9(id)
}

func (t *procsTarget) Pause(_ context.Context, id uint64) error {
	if err := t.sup.Pause(id); err != nil {
		return err
	}
	t.forget(id)
	return nil
}

// Resume sends SIGCONT, gives the node the faults in force, and waits for
// it to catch up with the cluster's leadership: a node paused as leader
// for longer than the election timeout has been replaced, and must step
// down once it hears of the newer term (the first heartbeat it sends or
// receives tells it). Resume fails when it still leads in an older term
// after two election timeouts and a second, so a schedule's pause-leader
// also checks that the old leader steps down. An isolated node cannot hear
// of the newer term, and is not waited for.
func (t *procsTarget) Resume(ctx context.Context, id uint64) error {
	if err := t.sup.Resume(id); err != nil {
		return err
	}
	if err := t.resync(ctx, id, t.nw == nil); err != nil {
		return err
	}
	t.mu.Lock()
	cut := t.cuts[id]
	t.mu.Unlock()
	t.remote.mu.Lock()
	cut = cut || t.remote.isolated[id]
	t.remote.mu.Unlock()
	if cut {
		return nil
	}
	return t.awaitStepDown(ctx, id, 2*t.cfg.ElectionTimeout.D()+time.Second)
}

// awaitStepDown waits up to timeout until node id answers and does not
// lead in a term older than the newest any node was seen in.
func (t *procsTarget) awaitStepDown(ctx context.Context, id uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v := t.views[id].Load()
		stale := v != nil && v.ok && v.leads && v.term < t.MaxTerm()
		if v != nil && v.ok && !stale {
			return nil
		}
		if time.Now().After(deadline) {
			if stale {
				return fmt.Errorf("node %d still leads in term %d %v after SIGCONT, while term %d is under way: it did not step down", id, v.term, timeout, t.MaxTerm())
			}
			return fmt.Errorf("node %d did not answer its admin endpoint within %v of SIGCONT", id, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(leadershipPoll):
		}
	}
}

// Partitions: real link cuts between the namespaces with --netns (the
// isolated node still reaches the hub, so its clients and admin endpoint),
// else the nodes' fault wrappers.

func (t *procsTarget) Isolate(ctx context.Context, id uint64) error {
	if t.nw == nil {
		return t.remote.Isolate(ctx, id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cuts[id] = true
	var errs []error
	for _, other := range t.ids {
		if other != id {
			errs = append(errs, t.nw.Cut(id, other))
		}
	}
	return errors.Join(errs...)
}

func (t *procsTarget) Unisolate(ctx context.Context, id uint64) error {
	if t.nw == nil {
		return t.remote.Unisolate(ctx, id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.cuts, id)
	var errs []error
	for _, other := range t.ids {
		if other != id && !t.cuts[other] { // a link to a node still isolated stays cut
			errs = append(errs, t.nw.Uncut(id, other))
		}
	}
	return errors.Join(errs...)
}

func (t *procsTarget) HealNetwork(ctx context.Context) error {
	if t.nw == nil {
		return t.remote.HealNetwork(ctx)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.cuts)
	return t.nw.Heal()
}

// Heal resumes the paused nodes and lifts every fault.
func (t *procsTarget) Heal(ctx context.Context) error {
	var errs []error
	for _, id := range t.ids {
		if t.sup.Paused(id) {
			errs = append(errs, t.sup.Resume(id))
		}
	}
	if t.nw != nil {
		errs = append(errs, t.HealNetwork(ctx))
	}
	errs = append(errs, t.healAll(ctx))
	return errors.Join(errs...)
}

func (t *procsTarget) NodeStats(ctx context.Context) []results.NodeStats {
	out := t.nodeStats(ctx)
	peaks := t.DiskPeaks()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range out {
		out[i].Restarts = t.remote.restartCnt[out[i].ID]
		out[i].WALPeakBytes = peaks[out[i].ID]
	}
	return out
}

// SampleDisk and DiskPeaks measure the nodes' data directories.
func (t *procsTarget) SampleDisk() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peaks == nil {
		t.peaks = map[uint64]int64{}
	}
	for _, id := range t.ids {
		t.peaks[id] = max(t.peaks[id], cluster.DirSize(t.sup.DataDir(id)))
	}
}

func (t *procsTarget) DiskPeaks() map[uint64]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.peaks)
}

// Close stops the node processes, removes the namespaces and the data
// directories, and reports what did not go cleanly. It is safe on a
// partly started target.
func (t *procsTarget) Close() error {
	var errs []error
	if t.remote != nil {
		t.close()
	}
	if t.sup != nil {
		if err := t.sup.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--procs: stopping the nodes: %w", err))
		}
	}
	if t.nw != nil {
		if err := t.nw.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--netns: %w", err))
		}
	}
	if t.dataRoot != "" {
		if err := os.RemoveAll(t.dataRoot); err != nil {
			errs = append(errs, fmt.Errorf("--procs: %w", err))
		}
	}
	for _, d := range t.made {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("--dir-template: %w", err))
		}
	}
	for _, d := range t.emptied {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("--dir-template: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

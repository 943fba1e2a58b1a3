package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/results"
	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/transport/fault"
)

// Polling a remote node.
const (
	// leadershipPoll is how often each node's leadership is asked for
	// (GET /leadership, which does not wait on the Raft loop).
	leadershipPoll = 10 * time.Millisecond
	// leadershipTimeout bounds one such poll: a paused or partitioned
	// node stops counting as leader this soon after it stops answering.
	leadershipTimeout = 250 * time.Millisecond
	// statusTimeout bounds one /status of the quiescence check.
	statusTimeout = 2 * time.Second
	// stateWait is how long /state waits for a replica to apply the index
	// (it already has, at quiescence; the wait covers a slow answer).
	stateWait = 2 * time.Second
	// adminOpTimeout bounds one fault call to an admin endpoint.
	adminOpTimeout = 5 * time.Second
)

// remote is a cluster the harness reaches over the network: the load goes
// through each node's client API (clientapi), everything else through its
// admin endpoint. It is the --cluster target, and the part of the --procs
// target that talks to its node processes.
//
// Leadership is polled in the background, one goroutine per node, into a
// snapshot per node that Leader and MaxTerm read without locks or
// allocation. The message faults, slow disks and isolations it set are
// kept, so a node that restarts or resumes (and so forgot, or missed,
// them) is brought back in line (resync).
type remote struct {
	name string // in messages: "raftbench --cluster"
	// version is the first node's build, as its /status said when the
	// target started (asked once: Info is called often, and a node down
	// mid-run must not stall it or change the answer).
	version   string
	ids       []uint64
	clusterID uint64
	admins    map[uint64]*admin.Client
	eps       []kv.Endpoint
	hc        *http.Client
	token     string
	addrs     map[uint64]string // admin addresses
	// skip reports the nodes not to ask (a node process that is down or
	// paused: it cannot answer); nil asks every node.
	skip func(id uint64) bool

	views      []atomic.Pointer[view] // by node ID
	stopPoll   context.CancelFunc
	pollDone   sync.WaitGroup
	closeOnce  sync.Once
	mu         sync.Mutex
	isolated   map[uint64]bool
	rules      map[uint64]fault.Rules
	disks      map[uint64]time.Duration
	profMu     sync.Mutex
	profiles   *profileRun
	restartCnt map[uint64]int
	// faultBase are the nodes' fault counters when the run began
	// (--cluster: nodes someone else runs have counted earlier runs);
	// nil for fresh node processes.
	faultBase map[uint64]faultCounts
	// faultGaps is what the last FaultCounters could not count in full
	// (FaultCountGaps); guarded by mu.
	faultGaps []uint64
	// knobs are the node knobs every node said it runs with (/status),
	// nil when some node said none.
	knobs map[string]string
	// downs counts, per node, the times the schedule took its process
	// down or froze it (kill, kill9, pause): a profile it could not
	// finish then is the fault's doing, not a failure.
	downs map[uint64]*atomic.Int64
	logf  func(format string, args ...any)
}

// view is what one node last said of its leadership.
type view struct {
	ok           bool // it answered the last poll
	leads        bool
	term, leader uint64
	maxTerm      uint64 // the highest term it was ever seen in
}

// remoteSpec says how to reach a remote cluster.
type remoteSpec struct {
	name      string
	nodes     []remoteNode
	clusterID uint64 // 0: ask the nodes
	token     string
	// dial connects to the nodes (nil: the default dialer).
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	maxFrameSize int
	skip         func(id uint64) bool
	logf         func(format string, args ...any)
}

// newRemote connects to the cluster (checking that each admin endpoint is
// the node it is listed as, all of one cluster) and starts the leadership
// polls.
func newRemote(ctx context.Context, sp remoteSpec) (*remote, error) {
	dial := sp.dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	r := &remote{
		name: sp.name, clusterID: sp.clusterID, admins: map[uint64]*admin.Client{}, addrs: map[uint64]string{},
		hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, token: sp.token, skip: sp.skip,
		isolated: map[uint64]bool{}, rules: map[uint64]fault.Rules{}, disks: map[uint64]time.Duration{},
		restartCnt: map[uint64]int{}, downs: map[uint64]*atomic.Int64{}, logf: sp.logf,
	}
	if r.logf == nil {
		r.logf = func(string, ...any) {}
	}
	maxID := uint64(0)
	for _, n := range sp.nodes {
		r.ids = append(r.ids, n.ID)
		maxID = max(maxID, n.ID)
		c, err := admin.NewClient(n.Admin, sp.token, r.hc)
		if err != nil {
			return nil, fmt.Errorf("%w: --admin: node %d: %v", ErrBadConfig, n.ID, err)
		}
		r.admins[n.ID], r.addrs[n.ID] = c, n.Admin
		r.downs[n.ID] = &atomic.Int64{}
	}
	slices.Sort(r.ids)
	r.views = make([]atomic.Pointer[view], maxID+1)
	// Who each admin endpoint is, and what it runs with.
	var probs []string
	knobs := map[uint64]map[string]string{}
	for _, id := range r.ids {
		st, err := r.firstStatus(ctx, id)
		switch {
		case err != nil:
			probs = append(probs, fmt.Sprintf("node %d's admin endpoint %s: %v", id, r.addrs[id], err))
			continue
		case st.ID != id:
			probs = append(probs, fmt.Sprintf("the admin endpoint %s listed as node %d answers as node %d", r.addrs[id], id, st.ID))
		case r.clusterID == 0:
			r.clusterID = st.ClusterID
		case st.ClusterID != r.clusterID:
			probs = append(probs, fmt.Sprintf("node %d is of cluster %#x, node %d of %#x", id, st.ClusterID, r.ids[0], r.clusterID))
		}
		if r.version == "" {
			r.version = st.Version
		}
		knobs[id] = st.Knobs
	}
	if len(probs) == 0 {
		r.knobs, probs = agreedKnobs(r.ids, knobs)
	}
	if len(probs) > 0 {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("%s: %s", r.name, strings.Join(probs, "; "))
	}
	clients := map[uint64]string{}
	for _, n := range sp.nodes {
		clients[n.ID] = n.Client
	}
	opts := clientapi.Options{ClusterID: r.clusterID, MaxFrameSize: sp.maxFrameSize,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }}
	eps, err := clientapi.Endpoints(clients, opts)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("%s: client endpoints: %w", r.name, err)
	}
	r.eps = eps
	pctx, stop := context.WithCancel(context.Background())
	r.stopPoll = stop
	for _, id := range r.ids {
		r.pollDone.Add(1)
		go r.poll(pctx, id)
	}
	return r, nil
}

// agreedKnobs is the node knobs every node reports (admin Status.Knobs),
// when they all report the same; nil when any reports none (whoever
// started it gave none). Nodes that disagree are a problem, one per knob:
// a run's config.json could not say which of them ran.
func agreedKnobs(ids []uint64, knobs map[uint64]map[string]string) (map[string]string, []string) {
	var agreed map[string]string
	for _, id := range ids {
		if knobs[id] == nil {
			return nil, nil
		}
		if agreed == nil {
			agreed = knobs[id]
		}
	}
	first := ids[0]
	var probs []string
	names := slices.Sorted(maps.Keys(agreed))
	for _, id := range ids[1:] {
		for _, name := range names {
			if v, ok := knobs[id][name]; ok && v != agreed[name] {
				probs = append(probs, fmt.Sprintf("node %d runs --%s=%s but node %d --%s=%s (start every node with the same knobs)", first, name, agreed[name], id, name, v))
			}
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return agreed, nil
}

// connectWait is how long the first /status of a node may be refused: a
// cluster started a moment before the run may not listen yet.
const connectWait = 10 * time.Second

// firstStatus asks node id for its status, retrying for connectWait while
// the connection is refused or the node is not ready (it knows no leader
// yet).
func (r *remote) firstStatus(ctx context.Context, id uint64) (admin.Status, error) {
	deadline := time.Now().Add(connectWait)
	for {
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := r.admins[id].Status(sctx)
		cancel()
		if (err == nil && st.Ready) || time.Now().After(deadline) || ctx.Err() != nil {
			return st, err
		}
		var ae *admin.Error
		if errors.As(err, &ae) {
			return st, err // the node answered: it is not a matter of time
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poll keeps node id's view fresh until ctx ends.
func (r *remote) poll(ctx context.Context, id uint64) {
	defer r.pollDone.Done()
	tk := time.NewTicker(leadershipPoll)
	defer tk.Stop()
	for {
		prev := r.views[id].Load()
		v := &view{}
		if prev != nil {
			v.maxTerm = prev.maxTerm
		}
		if r.skip == nil || !r.skip(id) {
			pctx, cancel := context.WithTimeout(ctx, leadershipTimeout)
			l, err := r.admins[id].Leadership(pctx)
			cancel()
			if err == nil {
				v.ok, v.leads, v.term, v.leader = true, l.Role == "Leader", l.Term, l.Leader
				v.maxTerm = max(v.maxTerm, l.Term)
			}
		}
		r.views[id].Store(v)
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// forget marks node id's view unknown at once (it was just killed or
// paused), so Leader does not wait for the next poll to stop naming it.
func (r *remote) forget(id uint64) {
	if d := r.downs[id]; d != nil {
		d.Add(1)
	}
	if prev := r.views[id].Load(); prev != nil {
		r.views[id].Store(&view{maxTerm: prev.maxTerm})
	}
}

// Group.

func (r *remote) Endpoints() []kv.Endpoint { return r.eps }

func (r *remote) Leader() (id, term uint64) {
	for i := 1; i < len(r.views); i++ {
		if v := r.views[i].Load(); v != nil && v.ok && v.leads && v.term >= term {
			id, term = uint64(i), v.term
		}
	}
	return id, term
}

func (r *remote) MaxTerm() uint64 {
	var t uint64
	for i := 1; i < len(r.views); i++ {
		if v := r.views[i].Load(); v != nil {
			t = max(t, v.maxTerm)
		}
	}
	return t
}

func (r *remote) WaitLeader(ctx context.Context, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		if id, _ := r.Leader(); id != 0 {
			agree := true
			for i := 1; i < len(r.views); i++ {
				if v := r.views[i].Load(); v != nil && v.ok && v.leader != id {
					agree = false
				}
			}
			if agree {
				return id, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no leader that every node answering follows after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// statuses asks every node that can answer for its status, at once.
func (r *remote) statuses(ctx context.Context) map[uint64]admin.Status {
	var mu sync.Mutex
	out := map[uint64]admin.Status{}
	var wg sync.WaitGroup
	for _, id := range r.ids {
		if r.skip != nil && r.skip(id) {
			continue
		}
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			if st, err := r.admins[id].Status(sctx); err == nil {
				mu.Lock()
				out[id] = st
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

func (r *remote) Quiescent(ctx context.Context) (Quiescence, string) {
	sts := r.statuses(ctx)
	var lead, term uint64
	for id, st := range sts {
		if st.Role == "Leader" && st.Term >= term {
			lead, term = id, st.Term
		}
	}
	if lead == 0 {
		return Quiescence{}, "no leader"
	}
	st := sts[lead]
	q := Quiescence{Leader: lead, Term: term, Index: st.Commit}
	for id := range st.Progress {
		q.Members = append(q.Members, id)
	}
	slices.Sort(q.Members)
	switch {
	case st.QueuedProposals > 0:
		return q, fmt.Sprintf("leader %d holds %d queued proposals", lead, st.QueuedProposals)
	case st.LogEnd != st.Commit:
		return q, fmt.Sprintf("leader %d's last index %d is past its commit index %d", lead, st.LogEnd, st.Commit)
	}
	for _, id := range slices.Sorted(maps.Keys(sts)) {
		if n := sts[id].QueuedProposals; n > 0 {
			return q, fmt.Sprintf("node %d holds %d queued proposals", id, n)
		}
	}
	for _, m := range q.Members {
		ms, ok := sts[m]
		if !ok {
			return q, fmt.Sprintf("member %d does not answer", m)
		}
		if ms.Applied != q.Index {
			return q, fmt.Sprintf("member %d applied %d of %d", m, ms.Applied, q.Index)
		}
	}
	return q, ""
}

func (r *remote) ReplicaState(ctx context.Context, id, index uint64) (ReplicaState, error) {
	c, ok := r.admins[id]
	if !ok {
		return ReplicaState{}, fmt.Errorf("member %d has no admin endpoint (--admin)", id)
	}
	img, info, err := c.State(ctx, index, stateWait)
	switch {
	case errors.Is(err, admin.ErrMovedPast):
		return ReplicaState{}, fmt.Errorf("%w: member %d: %v", ErrStateMoved, id, err)
	case errors.Is(err, admin.ErrBehind):
		return ReplicaState{}, fmt.Errorf("%w: member %d: %v", ErrStateBehind, id, err)
	case err != nil:
		return ReplicaState{}, fmt.Errorf("member %d: %w", id, err)
	}
	return ReplicaState{ID: id, Index: info.Index, Applied: info.Applied, Image: img}, nil
}

// Faults through the admin endpoints.

// each runs f against every node that can answer, at once, and joins the
// errors.
func (r *remote) each(ctx context.Context, f func(ctx context.Context, id uint64, c *admin.Client) error) error {
	errs := make([]error, len(r.ids))
	var wg sync.WaitGroup
	for i, id := range r.ids {
		if r.skip != nil && r.skip(id) {
			continue
		}
		wg.Go(func() {
			octx, cancel := context.WithTimeout(ctx, adminOpTimeout)
			defer cancel()
			if err := f(octx, id, r.admins[id]); err != nil {
				errs[i] = fmt.Errorf("node %d: %w", id, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// one runs f against node id.
func (r *remote) one(ctx context.Context, id uint64, f func(ctx context.Context, c *admin.Client) error) error {
	c, ok := r.admins[id]
	if !ok {
		return fmt.Errorf("%s has no node %d", r.name, id)
	}
	if r.skip != nil && r.skip(id) {
		return nil // down or paused: resync sets it when it is back
	}
	octx, cancel := context.WithTimeout(ctx, adminOpTimeout)
	defer cancel()
	if err := f(octx, c); err != nil {
		return fmt.Errorf("node %d: %w", id, err)
	}
	return nil
}

// Isolate sends the isolation to every node: each node's fault wrapper
// enforces a cut where its sender or its receiver sees it, and sending it
// to all keeps every node's view the same, as an in-process cluster's
// shared network is.
func (r *remote) Isolate(ctx context.Context, id uint64) error {
	r.mu.Lock()
	r.isolated[id] = true
	r.mu.Unlock()
	return r.each(ctx, func(ctx context.Context, _ uint64, c *admin.Client) error { return c.Isolate(ctx, id) })
}

func (r *remote) Unisolate(ctx context.Context, id uint64) error {
	r.mu.Lock()
	delete(r.isolated, id)
	r.mu.Unlock()
	return r.each(ctx, func(ctx context.Context, _ uint64, c *admin.Client) error { return c.Unisolate(ctx, id) })
}

func (r *remote) HealNetwork(ctx context.Context) error {
	r.mu.Lock()
	clear(r.isolated)
	r.mu.Unlock()
	return r.each(ctx, func(ctx context.Context, _ uint64, c *admin.Client) error { return c.HealNetwork(ctx) })
}

func (r *remote) SetRules(ctx context.Context, id uint64, ru fault.Rules) error {
	r.mu.Lock()
	r.rules[id] = ru
	r.mu.Unlock()
	return r.one(ctx, id, func(ctx context.Context, c *admin.Client) error { return c.SetRules(ctx, ru) })
}

func (r *remote) SetDiskDelay(ctx context.Context, id uint64, d time.Duration) error {
	r.mu.Lock()
	r.disks[id] = d
	r.mu.Unlock()
	return r.one(ctx, id, func(ctx context.Context, c *admin.Client) error { return c.SetDiskDelay(ctx, d) })
}

// healAll lifts every fault on every node that answers (partitions, rules,
// slow disks) and forgets them.
func (r *remote) healAll(ctx context.Context) error {
	r.mu.Lock()
	clear(r.isolated)
	clear(r.rules)
	clear(r.disks)
	r.mu.Unlock()
	return r.each(ctx, func(ctx context.Context, _ uint64, c *admin.Client) error { return c.Heal(ctx) })
}

// resync gives node id, just restarted or resumed, the faults in force:
// its own rules and slow disk, and, unless partitions are not the admin
// endpoints' (withNetwork false), every isolation.
func (r *remote) resync(ctx context.Context, id uint64, withNetwork bool) error {
	r.mu.Lock()
	ru, d := r.rules[id], r.disks[id]
	var iso []uint64
	for n := range r.isolated {
		iso = append(iso, n)
	}
	r.mu.Unlock()
	slices.Sort(iso)
	return r.one(ctx, id, func(ctx context.Context, c *admin.Client) error {
		var errs []error
		if withNetwork {
			// From a clean slate: a resumed node may hold an isolation
			// lifted while it was paused. The other nodes enforce the
			// isolations meanwhile.
			errs = append(errs, c.HealNetwork(ctx))
			for _, n := range iso {
				errs = append(errs, c.Isolate(ctx, n))
			}
		}
		errs = append(errs, c.SetRules(ctx, ru), c.SetDiskDelay(ctx, d))
		return errors.Join(errs...)
	})
}

// nodeStats reads every answering node's counters and process.
func (r *remote) nodeStats(ctx context.Context) []results.NodeStats {
	var mu sync.Mutex
	var out []results.NodeStats
	_ = r.each(ctx, func(ctx context.Context, id uint64, c *admin.Client) error {
		s, err := c.Stats(ctx)
		if err != nil {
			return err
		}
		ns := nodeStatsOf(id, s.Node)
		p := s.Process
		ns.Process = &results.ProcessStats{PID: p.PID, CPUSeconds: p.CPUSeconds, MaxRSSBytes: p.MaxRSSBytes,
			HeapBytes: p.HeapBytes, Goroutines: p.Goroutines, GCCycles: p.GCCycles, UptimeSec: time.Since(p.Started).Seconds()}
		mu.Lock()
		out = append(out, ns)
		mu.Unlock()
		return nil
	})
	slices.SortFunc(out, func(a, b results.NodeStats) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ReadAttribution implements Attributor: one /stats per answering node,
// at once, each a node process's own reading of its stage timings, fsyncs
// and process counters (so the edge needs no ordering here: every node
// reads itself in one request). A node that cannot answer (down, paused,
// unreachable) is left out of the reading and named in the error; the
// harness charges the nodes that answered at the window's close and says
// the others are not charged.
func (r *remote) ReadAttribution(ctx context.Context, _ WindowEdge) (AttributionReading, error) {
	var mu sync.Mutex
	out := AttributionReading{Nodes: make(map[uint64]NodeAttribution, len(r.ids))}
	err := r.each(ctx, func(ctx context.Context, id uint64, c *admin.Client) error {
		st, err := c.Stats(ctx)
		if err != nil {
			return fmt.Errorf("attribution: %w", err)
		}
		mu.Lock()
		out.Nodes[id] = attributionFromStats(st)
		mu.Unlock()
		return nil
	})
	return out, err
}

// close stops the polls and closes the client endpoints (before the node
// processes stop, so their clean shutdown does not wait on our
// connections).
func (r *remote) close() {
	r.closeOnce.Do(func() {
		r.stopPoll()
		r.pollDone.Wait()
		for _, ep := range r.eps {
			if e, ok := ep.(*clientapi.Endpoint); ok {
				_ = e.Close()
			}
		}
		if t, ok := r.hc.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
	})
}

// Profiles from the nodes' admin endpoints.

// profileRun is one run's node profiles in progress.
type profileRun struct {
	r *remote
	// end is when the windowed profiles end; cancel cuts them short (an
	// interrupted run does not wait out the window).
	end    time.Time
	cancel context.CancelFunc
	dir    string
	cfg    *Config
	wg     sync.WaitGroup
	mu     sync.Mutex
	files  []string
	errs   []error
}

// profileFile is node id's file of a profile the run asked for as name.
func profileFile(dir string, id uint64, name string) string {
	return filepath.Join(dir, fmt.Sprintf("node%d-%s", id, name))
}

// StartProfiles starts the CPU profile and the trace of every node that
// answers, each for window (whole seconds, rounded up).
func (r *remote) StartProfiles(ctx context.Context, cfg *Config, dir string, window time.Duration) error {
	secs := int((window + time.Second - 1) / time.Second)
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pr := &profileRun{r: r, dir: dir, cfg: cfg, end: time.Now().Add(time.Duration(secs) * time.Second), cancel: cancel}
	r.profMu.Lock()
	r.profiles = pr
	r.profMu.Unlock()
	hc := &http.Client{Transport: r.hc.Transport, Timeout: time.Duration(secs)*time.Second + 30*time.Second}
	for _, p := range []struct{ pprof, file string }{{"profile", cfg.CPUProfile}, {"trace", cfg.Trace}} {
		if p.file == "" {
			continue
		}
		for _, id := range r.ids {
			if r.skip != nil && r.skip(id) {
				continue
			}
			c, err := admin.NewClient(r.addrs[id], r.token, hc)
			if err != nil {
				return err
			}
			pr.wg.Go(func() { pr.fetch(pctx, c, id, p.pprof, secs, p.file) })
		}
	}
	return nil
}

// fetch writes node id's profile name (window secs) to its file, whole or
// not at all.
func (pr *profileRun) fetch(ctx context.Context, c *admin.Client, id uint64, name string, secs int, file string) {
	path := profileFile(pr.dir, id, file)
	downs := pr.r.downs[id].Load()
	err := func() error {
		f, err := os.CreateTemp(pr.dir, filepath.Base(path)+".*.tmp")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name()) // gone after the rename
		if err := c.Profile(ctx, name, secs, f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(f.Name(), path)
	}()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	what := name + " profile"
	switch name {
	case "profile":
		what = "CPU profile"
	case "trace":
		what = "trace"
	}
	switch {
	case err != nil && pr.r.downs[id].Load() != downs:
		pr.r.logf("node %d's %s ended with its process (a fault took it down): none from it", id, what)
	case err != nil:
		pr.errs = append(pr.errs, fmt.Errorf("node %d's %s: %w", id, what, err))
	default:
		pr.files = append(pr.files, path)
	}
}

// FinishProfiles takes the heap, mutex and block profiles of every node
// that answers and waits for the CPU profiles and traces.
func (r *remote) FinishProfiles(ctx context.Context) ([]string, error) {
	r.profMu.Lock()
	pr := r.profiles
	r.profMu.Unlock()
	if pr == nil {
		return nil, nil
	}
	defer pr.cancel()
	if time.Until(pr.end) > time.Second {
		// The run ended early (interrupted): the windowed profiles are
		// cut short, and lost.
		pr.r.logf("the run ended before the nodes' CPU profiles and traces did: none from them")
		pr.cancel()
	}
	for _, p := range []struct{ pprof, file string }{{"heap", pr.cfg.MemProfile}, {"mutex", pr.cfg.MutexProfile}, {"block", pr.cfg.BlockProfile}} {
		if p.file == "" {
			continue
		}
		for _, id := range r.ids {
			if r.skip != nil && r.skip(id) {
				continue
			}
			pr.wg.Go(func() { pr.fetch(ctx, r.admins[id], id, p.pprof, 0, p.file) })
		}
	}
	pr.wg.Wait()
	slices.Sort(pr.files)
	return pr.files, errors.Join(pr.errs...)
}

// The --cluster target.

// clusterTarget drives a cluster someone else started (on other hosts,
// under systemd, in Kubernetes): faults through the nodes' admin
// endpoints; stopping, killing and pausing processes is the
// orchestrator's.
type clusterTarget struct {
	*remote
	cfg *Config
}

var (
	_ Target         = (*clusterTarget)(nil)
	_ Attributor     = (*clusterTarget)(nil)
	_ Partitioner    = (*clusterTarget)(nil)
	_ MessageFaulter = (*clusterTarget)(nil)
	_ DiskSlower     = (*clusterTarget)(nil)
	_ Profiler       = (*clusterTarget)(nil)
)

// orchestratorHint says how to inject a process fault on a cluster the
// harness does not run (deploy/README.md has the table).
const orchestratorHint = "the cluster's processes are its orchestrator's: kill or pause them there while the run goes on " +
	"(Kubernetes: kubectl delete pod raftbench-N --grace-period=0 --force for SIGKILL and restart, kubectl debug ... -- kill -STOP 1 / -CONT 1 for a pause; " +
	"systemd: systemctl kill -s KILL raftbench-node, systemctl kill -s STOP / -s CONT raftbench-node; see deploy/README.md), " +
	"or run the nodes here with --procs"

// clusterFault is CheckFault of the --cluster target.
func clusterFault(f faultspec.Fault) error {
	const name = "raftbench --cluster"
	switch {
	case f.IsProcess(), f.Kind == faultspec.Kill, f.Kind == faultspec.KillLeader, f.Kind == faultspec.Restart:
		return UnsupportedFault(name, f.Spec, orchestratorHint)
	case f.IsCrash(), f.DamagesWAL():
		return UnsupportedFault(name, f.Spec, "it needs the in-process harness's crashable filesystem and its nodes' WAL files: run it without --cluster")
	case f.IsMembership():
		return UnsupportedFault(name, f.Spec, "membership changes start and stop nodes, which are the orchestrator's: add a node with raftbench node --join and POST /members on the leader (deploy/README.md), or run it without --cluster")
	}
	return nil
}

// startRemote connects to the cluster of --cluster and --admin.
func startRemote(ctx context.Context, cfg *Config, env Env) (Target, error) {
	token := cfg.AdminToken
	if cfg.AdminTokenFile != "" {
		b, err := os.ReadFile(cfg.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --admin-token-file: %v", ErrBadConfig, err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("%w: --admin-token-file: %s is empty", ErrBadConfig, cfg.AdminTokenFile)
		}
	}
	r, err := newRemote(ctx, remoteSpec{name: "raftbench --cluster", nodes: cfg.remote, token: token,
		maxFrameSize: cluster.FrameSize(uint64(cfg.MaxMsgBytes)), logf: env.Logf})
	if err != nil {
		return nil, err
	}
	r.faultBase = r.faultCounters()
	t := &clusterTarget{remote: r, cfg: cfg}
	// Whatever an earlier run left in force would skew this one.
	if err := r.healAll(ctx); err != nil {
		t.close()
		return nil, fmt.Errorf("raftbench --cluster: lift the faults in force: %w", err)
	}
	return t, nil
}

func (t *clusterTarget) Info() TargetInfo {
	var parts []string
	for _, n := range t.cfg.remote {
		parts = append(parts, fmt.Sprintf("%d=%s", n.ID, n.Client))
	}
	return TargetInfo{Mode: ModeCluster, System: DefaultSystem, Version: t.remote.version, Nodes: slices.Clone(t.ids), Groups: 1, NodeKnobs: maps.Clone(t.remote.knobs),
		Where: fmt.Sprintf("%d nodes of cluster %#x run by someone else: %s", len(t.ids), t.clusterID, strings.Join(parts, ","))}
}

func (t *clusterTarget) Group(int) Group { return t.remote }

func (t *clusterTarget) CheckFault(f faultspec.Fault) error { return clusterFault(f) }

func (t *clusterTarget) Running(uint64) bool { return true }

func (t *clusterTarget) Stopped() []uint64 { return nil }

func (t *clusterTarget) Restart(_ context.Context, id uint64) error {
	return fmt.Errorf("raftbench --cluster cannot restart node %d: %s", id, orchestratorHint)
}

func (t *clusterTarget) Heal(ctx context.Context) error { return t.healAll(ctx) }

func (t *clusterTarget) NodeStats(ctx context.Context) []results.NodeStats { return t.nodeStats(ctx) }

// Close lifts the faults the run set and closes the connections; the
// nodes go on running.
func (t *clusterTarget) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := t.healAll(ctx)
	t.close()
	return err
}

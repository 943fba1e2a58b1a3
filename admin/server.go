package admin

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/procstat"
	"github.com/raftbench/raftbench/transport/fault"
)

// StateHasher is what GET /hash needs of a state machine (kv.Store has
// it): a digest of the replicated state and the log index of the last
// command that state reflects, read atomically.
type StateHasher interface {
	StateHash() (hash [32]byte, index uint64)
}

// StateImager is what GET /state needs of a state machine (kv.Store has
// it): the whole replicated state, as its snapshot encodes it, and the log
// index of the last command it reflects, read atomically.
type StateImager interface {
	StateImage() (image []byte, index uint64)
}

// ErrExposed is returned by CheckExposure for an admin address beyond
// loopback without a token.
var ErrExposed = errors.New("admin: an admin endpoint beyond loopback needs a token")

// ErrInvalidConfig is wrapped by every Config problem.
var ErrInvalidConfig = errors.New("admin: invalid config")

// Config configures the admin handler.
type Config struct {
	// Replica is the node served, with its state machine, fault wrapper,
	// slow disk and log.
	Replica *cluster.Replica
	// ClusterID, RaftAddr, ClientAddr and Dir are reported by /status.
	ClusterID  uint64
	RaftAddr   string
	ClientAddr string
	Dir        string
	// Knobs are reported by /status as the node's settings (Status.Knobs);
	// nil reports none. The handler keeps its own copy.
	Knobs map[string]string
	// Token, when set, must be presented as "Authorization: Bearer
	// <token>" on every request but GET /status (which a readiness probe
	// reads). CheckExposure decides when it is required.
	Token string
	// Collectors are exported by /metrics besides the node's, the
	// transport's, and Go's and the process's.
	Collectors []prometheus.Collector
	// MaxHashWait caps the wait= of /hash. Default DefaultMaxHashWait.
	MaxHashWait time.Duration
}

// DefaultMaxHashWait is Config.MaxHashWait's default.
const DefaultMaxHashWait = 30 * time.Second

// EnsureDefaults fills zero fields with their defaults. It never
// validates, and calling it again changes nothing.
func (c *Config) EnsureDefaults() {
	if c.MaxHashWait == 0 {
		c.MaxHashWait = DefaultMaxHashWait
	}
}

// Validate reports every invalid field, joined into one error wrapping
// ErrInvalidConfig. It expects defaults applied and does not change c.
func (c *Config) Validate() error {
	var errs []error
	if c.Replica == nil || c.Replica.Node == nil {
		errs = append(errs, fmt.Errorf("%w: Replica is nil or has no Node", ErrInvalidConfig))
	}
	if c.MaxHashWait < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxHashWait is %v, must not be negative", ErrInvalidConfig, c.MaxHashWait))
	}
	return errors.Join(errs...)
}

// CheckExposure reports ErrExposed when addr (a listen address) is not a
// loopback one and token is empty: fault controls and profiles must not
// be open to the network.
func CheckExposure(addr, token string) error {
	if token != "" || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%w: %q listens beyond loopback; give --admin-token or --admin-token-file, or listen on 127.0.0.1", ErrExposed, addr)
}

// IsLoopback reports whether the listen address addr binds loopback only
// ("localhost", 127.0.0.0/8, ::1). An empty host or 0.0.0.0 binds every
// interface and is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// handler serves the admin API of one node.
type handler struct {
	cfg     Config
	started time.Time
	version string
	mux     *http.ServeMux
}

// NewHandler returns the admin API of one node:
//
//	GET  /status                  Status (JSON); ?ready=1 answers 503 while not Ready
//	GET  /leadership              Leadership (JSON): role, term, leader, without waiting on the Raft loop
//	GET  /stats                   Stats (JSON): the node's counters, stage timings and its process's
//	GET  /metrics                 Prometheus text format
//	GET  /debug/pprof/...         net/http/pprof
//	GET  /hash?index=N&wait=D     Hash of the state at exactly index N (see below)
//	GET  /state?index=N&wait=D    the state itself at exactly index N (StateImager), same rule
//	GET  /faults                  Faults in force
//	POST /faults/network          NetworkOp: isolate, cut, split, heal ...
//	PUT  /faults/rules            Rules: loss, dup, reorder, delay, jitter
//	PUT  /faults/disk             DiskFault: slow disk
//	POST /faults/heal             lift every fault
//	POST /transfer-leadership     Transfer (send to the leader)
//	POST /members                 MemberOp (send to the leader)
//	POST /snapshot                take a snapshot now
//
// /hash answers for index N only when the node's state is exactly the state
// at N: every command up to N applied and none after it. It reads the
// node's applied index A, then the state machine's hash with the index S of
// its last command under one lock: S ≤ N ≤ A means exactly that. It waits
// (up to wait) for A to reach N, and answers 409 (reason moved-past) when
// S > N, since the state cannot go back. A harness that stops the load and
// waits until every replica applied the same commit index gets, for that
// index, hashes it can compare. Without index it answers for the current
// applied index. /state answers by the same rule with the state's image
// (application/octet-stream; the headers Raftbench-Index,
// Raftbench-Applied and Raftbench-State-Index carry N, A and S), so a
// harness can look up every acknowledged write on every replica.
//
// GET /status and GET /leadership need no token: they are what readiness
// probes and a harness's leadership polls read, and change nothing.
//
// Errors are JSON {"reason": ..., "error": ...} with a fitting HTTP status.
// cfg's defaults are filled, then it is validated.
func NewHandler(cfg Config) (http.Handler, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Knobs = maps.Clone(cfg.Knobs)
	h := &handler{cfg: cfg, started: time.Now().UTC(), mux: http.NewServeMux()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		h.version = bi.Main.Version
	}
	reg := prometheus.NewRegistry()
	for _, c := range append([]prometheus.Collector{
		cfg.Replica.Node.Collector(),
		transportCollector{cfg.Replica},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		procstat.Collector(),
	}, cfg.Collectors...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("%w: metrics: %v", ErrInvalidConfig, err)
		}
	}
	m := h.mux
	m.HandleFunc("GET /status", h.status)
	m.HandleFunc("GET /leadership", h.leadership)
	m.HandleFunc("GET /stats", h.stats)
	m.HandleFunc("GET /state", h.state)
	m.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /debug/pprof/", pprof.Index)
	m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	m.HandleFunc("GET /hash", h.hash)
	m.HandleFunc("GET /faults", h.faults)
	m.HandleFunc("POST /faults/network", h.network)
	m.HandleFunc("PUT /faults/rules", h.rules)
	m.HandleFunc("PUT /faults/disk", h.disk)
	m.HandleFunc("POST /faults/heal", h.heal)
	m.HandleFunc("POST /transfer-leadership", h.transfer)
	m.HandleFunc("POST /members", h.members)
	m.HandleFunc("POST /snapshot", h.snapshot)
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	open := r.Method == http.MethodGet && (r.URL.Path == "/status" || r.URL.Path == "/leadership")
	if h.cfg.Token != "" && !open && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="raftbench admin"`)
		writeError(w, http.StatusUnauthorized, errorBody{Reason: reasonUnauthorized, Message: "admin: a valid bearer token is required"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, e errorBody) { writeJSON(w, code, e) }

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, errorBody{Reason: reasonBadRequest, Message: fmt.Sprintf(format, args...)})
}

// decodeBody reads a JSON body into v, refusing unknown fields and
// trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		badRequest(w, "admin: body: %v", err)
		return false
	}
	if dec.More() {
		badRequest(w, "admin: body: trailing data after the JSON value")
		return false
	}
	return true
}

// statusOf builds the /status body.
func (h *handler) statusOf() Status {
	rep := h.cfg.Replica
	n := rep.Node
	st := n.Status()
	s := Status{
		ID: st.ID, ClusterID: h.cfg.ClusterID, Role: st.Role.String(), Term: st.Term, Leader: st.Leader,
		Commit: st.Commit, Applied: st.Applied, LogEnd: st.LastIndex, QueuedProposals: st.QueuedProposals,
		Voters: st.Conf.Voters, VotersOutgoing: st.Conf.VotersOutgoing, Learners: st.Conf.Learners,
		RaftAddr: h.cfg.RaftAddr, ClientAddr: h.cfg.ClientAddr, Dir: h.cfg.Dir, Knobs: h.cfg.Knobs,
		PID: os.Getpid(), Version: h.version, Started: h.started,
	}
	if rep.Log != nil {
		s.FirstIndex, _ = rep.Log.FirstIndex()
		s.LastIndex, _ = rep.Log.LastIndex()
	}
	if len(st.Progress) > 0 {
		s.Progress = make(map[uint64]Progress, len(st.Progress))
		for id, p := range st.Progress {
			s.Progress[id] = Progress{Match: p.Match, Next: p.Next, State: p.State, Inflight: p.Inflight, Learner: p.Learner}
		}
	}
	select {
	case <-n.Done():
		if err := n.Err(); err != nil {
			s.Err = err.Error()
		} else {
			s.Err = "stopped"
		}
	default:
		s.Ready = st.Leader != core.None
	}
	return s
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	s := h.statusOf()
	code := http.StatusOK
	if r.URL.Query().Has("ready") && !s.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, s)
}

func (h *handler) leadership(w http.ResponseWriter, _ *http.Request) {
	n := h.cfg.Replica.Node
	l := n.Leadership()
	writeJSON(w, http.StatusOK, Leadership{ID: n.ID(), Role: l.Role.String(), Term: l.Term, Leader: l.Leader})
}

func (h *handler) stats(w http.ResponseWriter, _ *http.Request) {
	n := h.cfg.Replica.Node
	st := Stats{Node: n.Metrics(), Process: processStats(h.started), Stages: n.StageTimings()}
	st.Sample = procstat.Read()
	writeJSON(w, http.StatusOK, st)
}

func (h *handler) hash(w http.ResponseWriter, r *http.Request) {
	hs, ok := h.cfg.Replica.StateMachine.(StateHasher)
	if !ok {
		writeError(w, http.StatusNotImplemented, errorBody{Reason: reasonNoHasher,
			Message: fmt.Sprintf("admin: the state machine (%T) has no StateHash", h.cfg.Replica.StateMachine)})
		return
	}
	var sum [32]byte
	h.atIndex(w, r, func() uint64 {
		var last uint64
		sum, last = hs.StateHash()
		return last
	}, func(index, applied, stateIndex uint64) {
		writeJSON(w, http.StatusOK, Hash{Index: index, Hash: hex.EncodeToString(sum[:]), Applied: applied, StateIndex: stateIndex})
	})
}

// Headers of a /state answer.
const (
	headerIndex      = "Raftbench-Index"
	headerApplied    = "Raftbench-Applied"
	headerStateIndex = "Raftbench-State-Index"
)

func (h *handler) state(w http.ResponseWriter, r *http.Request) {
	si, ok := h.cfg.Replica.StateMachine.(StateImager)
	if !ok {
		writeError(w, http.StatusNotImplemented, errorBody{Reason: reasonNoHasher,
			Message: fmt.Sprintf("admin: the state machine (%T) has no StateImage", h.cfg.Replica.StateMachine)})
		return
	}
	var img []byte
	h.atIndex(w, r, func() uint64 {
		var last uint64
		img, last = si.StateImage()
		return last
	}, func(index, applied, stateIndex uint64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.Header().Set(headerIndex, strconv.FormatUint(index, 10))
		w.Header().Set(headerApplied, strconv.FormatUint(applied, 10))
		w.Header().Set(headerStateIndex, strconv.FormatUint(stateIndex, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(img)
	})
}

// atIndex answers for the state at exactly the request's index= (the
// applied index without one), waiting up to its wait= (see NewHandler):
// read takes the state machine's state and returns the index of the last
// command it reflects, atomically; answer writes the success.
func (h *handler) atIndex(w http.ResponseWriter, r *http.Request, read func() uint64, answer func(index, applied, stateIndex uint64)) {
	q := r.URL.Query()
	var index uint64
	hasIndex := q.Has("index")
	if hasIndex {
		var err error
		if index, err = strconv.ParseUint(q.Get("index"), 10, 64); err != nil {
			badRequest(w, "admin: index=%q is not an unsigned integer", q.Get("index"))
			return
		}
	}
	var wait time.Duration
	if q.Has("wait") {
		var err error
		if wait, err = time.ParseDuration(q.Get("wait")); err != nil || wait < 0 {
			badRequest(w, "admin: wait=%q is not a duration like 5s", q.Get("wait"))
			return
		}
		wait = min(wait, h.cfg.MaxHashWait)
	}
	n := h.cfg.Replica.Node
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		applied := n.Status().Applied // first: see the rule in NewHandler
		stateIndex := read()
		if !hasIndex {
			index = applied
		}
		switch {
		case stateIndex > index:
			writeError(w, http.StatusConflict, errorBody{Reason: reasonMovedPast, Applied: applied, StateIndex: stateIndex,
				Message: fmt.Sprintf("admin: node %d's state holds a command at index %d, after %d: stop the load before comparing", n.ID(), stateIndex, index)})
			return
		case applied >= index:
			answer(index, applied, stateIndex)
			return
		}
		if !time.Now().Before(deadline) {
			writeError(w, http.StatusServiceUnavailable, errorBody{Reason: reasonBehind, Applied: applied, StateIndex: stateIndex,
				Message: fmt.Sprintf("admin: node %d has applied %d, not yet %d (waited %v)", n.ID(), applied, index, wait)})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-n.Done():
			writeError(w, http.StatusServiceUnavailable, errorBody{Reason: reasonStopped, Message: fmt.Sprintf("admin: node %d stopped", n.ID())})
			return
		case <-tick.C:
		}
	}
}

func (h *handler) faultsOf() Faults {
	rep := h.cfg.Replica
	return Faults{Network: rep.Fault.Network().State(), Rules: RulesOf(rep.Fault.Rules()), DiskDelay: Duration(rep.Disk.Delay())}
}

func (h *handler) faults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.faultsOf())
}

func (h *handler) network(w http.ResponseWriter, r *http.Request) {
	var op NetworkOp
	if !decodeBody(w, r, &op) {
		return
	}
	if err := op.apply(h.cfg.Replica.Fault.Network()); err != nil {
		badRequest(w, "admin: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, h.faultsOf())
}

func (h *handler) rules(w http.ResponseWriter, r *http.Request) {
	var rules Rules
	if !decodeBody(w, r, &rules) {
		return
	}
	if err := h.cfg.Replica.Fault.SetRules(rules.Fault()); err != nil {
		badRequest(w, "admin: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, h.faultsOf())
}

func (h *handler) disk(w http.ResponseWriter, r *http.Request) {
	var d DiskFault
	if !decodeBody(w, r, &d) {
		return
	}
	if d.Delay < 0 || time.Duration(d.Delay) > time.Minute {
		badRequest(w, "admin: disk delay %v outside [0, 1m]", time.Duration(d.Delay))
		return
	}
	h.cfg.Replica.Disk.SetDelay(time.Duration(d.Delay))
	writeJSON(w, http.StatusOK, h.faultsOf())
}

func (h *handler) heal(w http.ResponseWriter, _ *http.Request) {
	rep := h.cfg.Replica
	rep.Fault.Network().Heal()
	_ = rep.Fault.SetRules(fault.Rules{})
	rep.Disk.SetDelay(0)
	writeJSON(w, http.StatusOK, h.faultsOf())
}

// nodeError answers a node call's error.
func nodeError(w http.ResponseWriter, err error) {
	var nle *node.NotLeaderError
	switch {
	case errors.As(err, &nle):
		writeError(w, http.StatusConflict, errorBody{Reason: reasonNotLeader, Leader: nle.Leader, Message: err.Error()})
	case errors.Is(err, node.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, errorBody{Reason: reasonStopped, Message: err.Error()})
	case errors.Is(err, core.ErrInvalidConfChange):
		writeError(w, http.StatusBadRequest, errorBody{Reason: reasonBadRequest, Message: err.Error()})
	default:
		writeError(w, http.StatusInternalServerError, errorBody{Reason: reasonFailed, Message: err.Error()})
	}
}

// opTimeout bounds the node calls the admin API makes.
const opTimeout = 30 * time.Second

func (h *handler) transfer(w http.ResponseWriter, r *http.Request) {
	var t Transfer
	if !decodeBody(w, r, &t) {
		return
	}
	if t.To == 0 {
		badRequest(w, "admin: transfer needs a node to hand leadership to")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	if err := h.cfg.Replica.Node.TransferLeadership(ctx, t.To); err != nil {
		nodeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.statusOf())
}

func (h *handler) members(w http.ResponseWriter, r *http.Request) {
	var op MemberOp
	if !decodeBody(w, r, &op) {
		return
	}
	if op.ID == 0 {
		badRequest(w, "admin: %s needs a node ID", op.Op)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	n := h.cfg.Replica.Node
	var err error
	switch op.Op {
	case "add-learner", "add-voter":
		if op.Addr == "" {
			badRequest(w, "admin: %s needs the new node's transport address", op.Op)
			return
		}
		if op.Op == "add-learner" {
			err = n.AddLearner(ctx, op.ID, op.Addr)
		} else {
			err = n.AddVoter(ctx, op.ID, op.Addr)
		}
	case "promote":
		err = n.PromoteLearner(ctx, op.ID)
	case "remove":
		err = n.RemoveNode(ctx, op.ID)
	default:
		badRequest(w, "admin: unknown member op %q, want add-learner, add-voter, promote or remove", op.Op)
		return
	}
	if err != nil {
		nodeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.statusOf())
}

func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	if err := h.cfg.Replica.Node.Snapshot(ctx); err != nil {
		nodeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.statusOf())
}

// Serve serves h on ln until ctx ends (then it shuts down within a few
// seconds) or the listener fails. It is what `raftbench node` runs.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-done
		return nil
	}
}

// drainBody discards what is left of a response body so the connection
// can be reused.
func drainBody(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	_ = r.Close()
}

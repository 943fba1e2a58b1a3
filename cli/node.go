package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/wal"
)

// nodeFlags are `raftbench node`'s own flags (the knobs are in set).
type nodeFlags struct {
	id             uint64
	idFromHostname bool
	peers          string
	dir            string
	raftAddr       string
	clientAddr     string
	adminAddr      string
	adminToken     string
	adminTokenFile string
	clusterID      string
	join           bool
	logLevel       string
	mutexFraction  int
	blockRate      int
	tls            transport.TLSFiles
	config         *string
	set            []bench.Assignment
}

// peerAddrs are one peer's addresses from --peers.
type peerAddrs struct {
	raft, client string
}

// nodeSetup is a validated node command line, before anything is opened.
type nodeSetup struct {
	id           uint64
	peers        map[uint64]peerAddrs
	dir          string
	raftListen   string
	clientListen string
	adminListen  string
	// clusterID is nil when --cluster-id was not given (the directory's
	// identity supplies it on a restart).
	clusterID *uint64
	join      bool
	tokenFlag string
	tokenFile string
	knobs     bench.Config
	logLevel  slog.Level
	tls       *transport.TLSFiles // nil: no TLS between nodes
	// mutexFraction and blockRate switch on the sampling of the mutex and
	// block profiles (/debug/pprof/mutex and block are empty without).
	mutexFraction int
	blockRate     int
}

const nodeLong = `Node runs one Raft node with the kv state machine as a long-lived server: the
Raft transport on its --peers address, the client API (put/get/delete/CAS with
sessions, pipelined) on --client-addr, and the admin HTTP endpoint (/status,
/leadership, /stats, /metrics, /debug/pprof, /hash and /state at an applied
index, fault controls, leadership transfer, membership, snapshots) on
--admin-addr.

  raftbench node --id 2 --cluster-id 0x7261667462 --dir /var/lib/raftbench \
    --peers 1=node1:7001/node1:7100,2=node2:7001/node2:7100,3=node3:7001/node3:7100 \
    --client-addr :7100 --admin-addr :7200 --admin-token-file /etc/raftbench/token

--peers lists every initial voter as ID=RAFT-ADDR[/CLIENT-ADDR]: the address
its peers reach its Raft transport on and, after a slash, the address clients
reach its client API on. The client addresses are what a not-leader answer
redirects to and what clients discover (clientapi.Discover); a peer without
one is redirected to by ID only. This node listens on the port of its own
entries unless --raft-addr or --client-addr says otherwise.

The data directory keeps the WAL, snapshots and the node's identity (cluster
and node ID, written on the first start); restarting with the same --dir
resumes the node. A directory in use, one that is not a raftbench node
directory, one of another node or of another cluster, a port in use, or a bad
flag is a one-line error and exit code 2. SIGTERM or SIGINT shuts the node
down cleanly: requests in progress are answered, the WAL is closed.

The admin endpoint needs --admin-token (or --admin-token-file) when it
listens beyond loopback; GET /status and GET /leadership stay open for
readiness probes and leader discovery.

Every Raft knob of raftbench run is a flag here too (and a key of --config).`

func newNodeCmd() *cobra.Command { return newNodeCmdFlags(nil) }

// newNodeCmdFlags is newNodeCmd, also handing out its flags (through out,
// when not nil) so tests can parse a command line without running it.
func newNodeCmdFlags(out **nodeFlags) *cobra.Command {
	f := &nodeFlags{}
	if out != nil {
		*out = f
	}
	cmd := &cobra.Command{
		Use:   "node --id N --peers ID=ADDR[/CLIENT],... --dir DIR --cluster-id ID [flags]",
		Short: "Serve one Raft node (client API and admin endpoint) as a long-lived process",
		Long:  nodeLong,
		Args:  exactArgs(0),
	}
	skip := map[string]bool{}
	for _, k := range bench.RunKnobs {
		skip[k] = true
	}
	f.config = addKnobFlags(cmd, &f.set, skip, bench.Default())
	fl := cmd.Flags()
	fl.Uint64Var(&f.id, "id", 0, "this node's ID (non-zero; one of --peers)")
	fl.BoolVar(&f.idFromHostname, "id-from-hostname", false, "take the ID from the hostname's trailing -N, plus one (a StatefulSet's pod raftbench-0 is node 1)")
	fl.StringVar(&f.peers, "peers", "", "every initial voter as ID=RAFT-HOST:PORT[/CLIENT-HOST:PORT], comma-separated")
	fl.StringVar(&f.dir, "dir", "", "data directory (WAL, snapshots, identity); created on the first start")
	fl.StringVar(&f.raftAddr, "raft-addr", "", "address the Raft transport listens on (default: the port of this node's --peers entry, on every interface)")
	fl.StringVar(&f.clientAddr, "client-addr", "", "address the client API listens on (default: the port of this node's client address in --peers)")
	fl.StringVar(&f.adminAddr, "admin-addr", "", "address the admin HTTP endpoint listens on (default: none)")
	fl.StringVar(&f.adminToken, "admin-token", "", "bearer token the admin endpoint requires (needed beyond loopback)")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin token (instead of --admin-token, which shows in ps)")
	fl.StringVar(&f.clusterID, "cluster-id", "", "cluster ID (decimal or 0x hex), checked in every handshake; recorded in --dir on the first start and required to match after")
	fl.BoolVar(&f.join, "join", false, "start empty as a learner joining a running cluster (the leader must then add it; --peers lists the current members and this node)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	fl.IntVar(&f.mutexFraction, "mutex-profile-fraction", 0, "sample 1 in N mutex contention events for /debug/pprof/mutex (0: off)")
	fl.IntVar(&f.blockRate, "block-profile-rate", 0, "sample one blocking event per N ns blocked for /debug/pprof/block (0: off)")
	fl.StringVar(&f.tls.CertFile, "tls-cert", "", "PEM certificate chain this node presents to its peers (TLS between nodes; QUIC makes a self-signed one without it)")
	fl.StringVar(&f.tls.KeyFile, "tls-key", "", "PEM key of --tls-cert")
	fl.StringVar(&f.tls.CAFile, "tls-ca", "", "PEM CA certificates peers' certificates must chain to (default: the system roots)")
	fl.BoolVar(&f.tls.Mutual, "tls-mutual", false, "require every connecting peer to present a certificate chaining to --tls-ca")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := f.setup(os.Hostname)
		if err != nil {
			return err
		}
		return runNode(cmd.Context(), s, cmd.ErrOrStderr())
	}
	return cmd
}

// inputError marks an error the operator must fix (exit code 2) without
// changing its message.
type inputError struct{ err error }

func (e *inputError) Error() string        { return e.err.Error() }
func (e *inputError) Unwrap() error        { return e.err }
func (e *inputError) Is(target error) bool { return target == errUsage }

func badInput(format string, args ...any) error {
	return &inputError{fmt.Errorf(format, args...)}
}

// setup validates the command line; it opens nothing.
func (f *nodeFlags) setup(hostname func() (string, error)) (*nodeSetup, error) {
	knobs, err := bench.Merge(*f.config, f.set)
	if err != nil {
		return nil, err
	}
	if err := knobs.Validate(); err != nil {
		return nil, err
	}
	if knobs.WAL == bench.WALCrashable {
		return nil, fmt.Errorf("%w: --wal crashable is the in-process harness's in-memory filesystem; a node process runs pebble (or memory), and SIGKILL is its crash", bench.ErrBadConfig)
	}
	s := &nodeSetup{knobs: knobs, dir: f.dir, join: f.join, tokenFlag: f.adminToken, tokenFile: f.adminTokenFile, adminListen: f.adminAddr}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	switch {
	case f.idFromHostname && f.id != 0:
		bad("--id and --id-from-hostname: give one")
	case f.idFromHostname:
		h, err := hostname()
		if err != nil {
			bad("--id-from-hostname: %v", err)
			break
		}
		i := strings.LastIndexByte(h, '-')
		n, err := strconv.ParseUint(h[i+1:], 10, 64)
		if i < 0 || err != nil {
			bad("--id-from-hostname: hostname %q does not end in -N", h)
			break
		}
		s.id = n + 1
	case f.id == 0:
		bad("--id: missing (a non-zero node ID)")
	default:
		s.id = f.id
	}
	if s.peers, err = parsePeers(f.peers); err != nil {
		bad("--peers: %v", err)
	}
	own, ok := s.peers[s.id]
	if s.id != 0 && s.peers != nil && !ok {
		bad("--peers: has no entry for this node (%d)", s.id)
	}
	if f.dir == "" {
		bad("--dir: missing (the node's data directory)")
	}
	if f.clusterID != "" {
		id, err := strconv.ParseUint(f.clusterID, 0, 64)
		if err != nil {
			bad("--cluster-id: %q is not a decimal or 0x-hex 64-bit number", f.clusterID)
		}
		s.clusterID = &id
	}
	s.raftListen, s.clientListen = f.raftAddr, f.clientAddr
	if s.raftListen == "" && ok {
		s.raftListen = anyHost(own.raft)
	}
	if s.clientListen == "" && ok {
		if own.client == "" {
			bad("--client-addr: missing, and this node's --peers entry has no /CLIENT-ADDR to take the port from")
		}
		s.clientListen = anyHost(own.client)
	}
	for _, a := range []struct{ flag, v string }{{"raft-addr", s.raftListen}, {"client-addr", s.clientListen}, {"admin-addr", s.adminListen}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			bad("--%s: %q is not host:port", a.flag, a.v)
		}
	}
	if f.adminToken != "" && f.adminTokenFile != "" {
		bad("--admin-token and --admin-token-file: give one")
	}
	if f.tls != (transport.TLSFiles{}) {
		tls := f.tls
		if err := tls.Validate(); err != nil {
			bad("--tls-*: %v", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		s.tls = &tls
	}
	if err := s.logLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		bad("--log-level: %q, want debug, info, warn or error", f.logLevel)
	}
	if f.mutexFraction < 0 {
		bad("--mutex-profile-fraction: %d, want >= 0", f.mutexFraction)
	}
	if f.blockRate < 0 {
		bad("--block-profile-rate: %d, want >= 0", f.blockRate)
	}
	s.mutexFraction, s.blockRate = f.mutexFraction, f.blockRate
	if len(probs) > 0 {
		return nil, fmt.Errorf("%w: %s", bench.ErrBadConfig, strings.Join(probs, "; "))
	}
	return s, nil
}

// anyHost is addr's port on every interface.
func anyHost(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return ":" + port
}

// parsePeers parses ID=RAFT-ADDR[/CLIENT-ADDR],...
func parsePeers(s string) (map[uint64]peerAddrs, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("missing (every initial voter as ID=RAFT-HOST:PORT[/CLIENT-HOST:PORT])")
	}
	peers := map[uint64]peerAddrs{}
	for _, e := range strings.Split(s, ",") {
		idStr, addrs, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not ID=ADDR", e)
		}
		id, err := strconv.ParseUint(idStr, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q: %q is not a non-zero node ID", e, idStr)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("node %d is listed twice", id)
		}
		raft, client, _ := strings.Cut(addrs, "/")
		if raft == "" {
			return nil, fmt.Errorf("%q: no Raft address", e)
		}
		for _, a := range []string{raft, client} {
			if a == "" {
				continue
			}
			if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
				return nil, fmt.Errorf("%q: %q is not host:port", e, a)
			}
		}
		peers[id] = peerAddrs{raft: raft, client: client}
	}
	return peers, nil
}

// template is the node's cluster template: bench's one mapping of the
// knobs (the in-process harness builds its nodes from the same function),
// with this node's TLS.
func (s *nodeSetup) template(clusterID uint64, logger *slog.Logger) cluster.Template {
	t := s.knobs.Template(clusterID, logger)
	t.TLS = s.tls
	return t
}

// listen opens a TCP listener for flag, naming it in the error (a port in
// use is the operator's to fix).
func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, badInput("--%s %s: address already in use", flag, addr)
		}
		return nil, badInput("--%s %s: %v", flag, addr, err)
	}
	return ln, nil
}

// runNode runs the node until ctx ends (a signal) or the node dies.
func runNode(ctx context.Context, s *nodeSetup, stderr io.Writer) (err error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: s.logLevel}))
	if s.mutexFraction > 0 {
		old := runtime.SetMutexProfileFraction(s.mutexFraction)
		defer runtime.SetMutexProfileFraction(old)
	}
	if s.blockRate > 0 {
		runtime.SetBlockProfileRate(s.blockRate)
		defer runtime.SetBlockProfileRate(0)
	}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	token := s.tokenFlag
	if s.tokenFile != "" {
		b, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return badInput("--admin-token-file: %v", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return badInput("--admin-token-file: %s is empty", s.tokenFile)
		}
	}
	if s.adminListen != "" {
		if err := admin.CheckExposure(s.adminListen, token); err != nil {
			return &inputError{err}
		}
	}
	id, known, err := cluster.ReadIdentity(s.dir)
	if err != nil {
		return &inputError{fmt.Errorf("node %d: %w", s.id, err)}
	}
	var clusterID uint64
	switch {
	case s.clusterID != nil:
		clusterID = *s.clusterID
	case known:
		clusterID = id.ClusterID
	default:
		return badInput("--cluster-id: required on a node's first start (%s is new)", s.dir)
	}
	tmpl := s.template(clusterID, logger)
	if known && !tmpl.Durable() {
		return badInput("--wal %s: node %d's log did not survive its last run, so it cannot restart from %s (it could vote twice in a term); remove the directory to start it afresh", s.knobs.WAL, s.id, s.dir)
	}
	clientLn, err := listen("client-addr", s.clientListen)
	if err != nil {
		return err
	}
	closers = append(closers, func() { _ = clientLn.Close() })
	var adminLn net.Listener
	if s.adminListen != "" {
		if adminLn, err = listen("admin-addr", s.adminListen); err != nil {
			return err
		}
		closers = append(closers, func() { _ = adminLn.Close() })
	}
	tr, err := tmpl.Listen(s.id, s.raftListen, cluster.Faults{Seed: s.knobs.Seed})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return badInput("--raft-addr %s: address already in use", s.raftListen)
		}
		if errors.Is(err, transport.ErrTLS) || errors.Is(err, transport.ErrInvalidConfig) {
			return &inputError{err}
		}
		return err
	}
	raftPeers := map[uint64]string{}
	clientAddrs := map[uint64]string{}
	for pid, p := range s.peers {
		raftPeers[pid] = p.raft
		if p.client != "" {
			clientAddrs[pid] = p.client
		}
	}
	rep, err := tmpl.Start(cluster.NodeSpec{ID: s.id, Peers: raftPeers, Transport: tr, Dir: s.dir, Join: s.join})
	if err != nil {
		if isDirProblem(err) {
			return &inputError{err}
		}
		return err
	}
	stopped := false
	stopNode := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return rep.Stop()
	}
	closers = append(closers, func() { _ = stopNode() })

	api, err := clientapi.NewServer(clientapi.ServerConfig{
		ClusterID: clusterID, NodeID: s.id, Backend: rep.Node,
		ClientAddrs:  func() map[uint64]string { return clientAddrs },
		MaxFrameSize: cluster.FrameSize(uint64(s.knobs.MaxMsgBytes)),
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	apiDone := make(chan error, 1)
	go func() { apiDone <- api.Serve(clientLn) }()
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	var adminDone chan error // nil without an admin endpoint: never ready
	if adminLn != nil {
		adminDone = make(chan error, 1)
		h, err := admin.NewHandler(admin.Config{Replica: rep, ClusterID: clusterID, RaftAddr: tr.Addr(), ClientAddr: clientAddrs[s.id],
			Dir: s.dir, Knobs: s.knobs.NodeKnobValues(), Token: token, Collectors: []prometheus.Collector{admin.ClientAPICollector(api)}})
		if err != nil {
			stopAdmin()
			_ = api.Close()
			return err
		}
		go func() { adminDone <- admin.Serve(adminCtx, adminLn, h) }()
	}
	logger.Info("raftbench node serving", "node", s.id, "cluster", fmt.Sprintf("%#x", clusterID), "raft", tr.Addr(),
		"client", clientLn.Addr().String(), "admin", s.adminListen, "dir", s.dir, "transport", s.knobs.Transport, "wal", s.knobs.WAL)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "node", s.id)
	case <-rep.Node.Done():
		runErr = fmt.Errorf("node %d stopped: %w", s.id, rep.Node.Err())
		logger.Error("node stopped on its own", "node", s.id, "err", rep.Node.Err())
	case err := <-apiDone:
		runErr = fmt.Errorf("client API: %w", err)
		apiDone <- err
	case err := <-adminDone:
		runErr = fmt.Errorf("admin endpoint: %w", err)
		adminDone <- err
	}
	// Answer what is in progress, then stop the node, then the admin
	// endpoint (which still shows the node stopping).
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = api.Shutdown(sctx)
	cancel()
	<-apiDone
	if err := stopNode(); err != nil && runErr == nil {
		runErr = err
	}
	stopAdmin()
	if adminDone != nil {
		<-adminDone
	}
	if runErr == nil {
		logger.Info("stopped", "node", s.id)
	}
	return runErr
}

// isDirProblem reports the data-directory errors an operator fixes: the
// directory in use, foreign, or another node's or cluster's.
func isDirProblem(err error) bool {
	return slices.ContainsFunc([]error{cluster.ErrLocked, cluster.ErrForeignDir, cluster.ErrWrongCluster, cluster.ErrWrongNode, wal.ErrLocked, wal.ErrFormatVersion},
		func(target error) bool { return errors.Is(err, target) })
}

package clientapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/clientapi/wire"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
)

// Backend is what the server serves: *node.Node satisfies it (and a
// benchmark's no-op stand-in does).
type Backend interface {
	Propose(ctx context.Context, cmd []byte) (any, error)
	Read(ctx context.Context, query []byte) (any, error)
}

// Server defaults.
const (
	// DefaultMaxInflight bounds the requests one connection has in
	// progress. Beyond it the server stops reading that connection, so TCP
	// flow control pushes back on the client. 4096 is far above what one
	// load-generator connection needs to saturate a cluster (the leader
	// batches a few hundred commands per round) and bounds the goroutines
	// and memory one client can tie up.
	DefaultMaxInflight = 4096
	// DefaultMaxTimeout caps a request's time at the node, whatever the
	// client asks (and is the time of a request that asks none), so a
	// request never holds its goroutine forever.
	DefaultMaxTimeout = time.Minute
	// DefaultHandshakeTimeout bounds the hello.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultWriteTimeout bounds one write of coalesced responses; a
	// client that stops reading is cut off after it.
	DefaultWriteTimeout = 10 * time.Second
)

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("clientapi: server closed")

// ErrInvalidConfig is wrapped by every ServerConfig and Options problem.
var ErrInvalidConfig = errors.New("clientapi: invalid config")

// ServerConfig configures a Server. Zero fields take the defaults named.
type ServerConfig struct {
	// ClusterID must match the client's hello; a client of another
	// cluster is refused with the reason.
	ClusterID uint64
	// NodeID is the node served, told to clients in the welcome.
	NodeID uint64
	// Backend is the node.
	Backend Backend
	// Results encodes the state machine's results. Default KVResults.
	Results ResultCodec
	// ClientAddrs returns every node's advertised client address, for
	// redirects (a not-leader answer names the leader's) and for a
	// client's members request. nil: redirects carry the leader's ID only.
	ClientAddrs func() map[uint64]string
	// MaxFrameSize bounds a frame body in both directions. Default
	// transport.DefaultMaxFrameSize; it should be at least the node's
	// largest proposal plus a few bytes.
	MaxFrameSize int
	// MaxInflight bounds the requests in progress per connection. Default
	// DefaultMaxInflight.
	MaxInflight int
	// MaxTimeout caps each request's time at the node. Default
	// DefaultMaxTimeout.
	MaxTimeout time.Duration
	// HandshakeTimeout and WriteTimeout: see the defaults.
	HandshakeTimeout time.Duration
	WriteTimeout     time.Duration
	// Logger receives connection events (refused and broken connections).
	// nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *ServerConfig) EnsureDefaults() {
	if c.Results == nil {
		c.Results = KVResults{}
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = transport.DefaultMaxFrameSize
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field with its value and limit.
func (c *ServerConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.NodeID == 0 {
		bad("NodeID is 0")
	}
	if c.Backend == nil {
		bad("Backend is nil")
	}
	if c.MaxFrameSize < transport.MinMaxFrameSize || c.MaxFrameSize > transport.MaxMaxFrameSize {
		bad("MaxFrameSize %d outside [%d, %d]", c.MaxFrameSize, transport.MinMaxFrameSize, transport.MaxMaxFrameSize)
	}
	if c.MaxInflight < 1 {
		bad("MaxInflight %d, want at least 1", c.MaxInflight)
	}
	if c.MaxTimeout <= 0 || c.MaxTimeout > wire.MaxTimeout {
		bad("MaxTimeout %v outside (0, %v]", c.MaxTimeout, wire.MaxTimeout)
	}
	if c.HandshakeTimeout <= 0 {
		bad("HandshakeTimeout %v, want > 0", c.HandshakeTimeout)
	}
	if c.WriteTimeout <= 0 {
		bad("WriteTimeout %v, want > 0", c.WriteTimeout)
	}
	return errors.Join(errs...)
}

// ServerStats are a server's counters since it was made.
type ServerStats struct {
	// Accepted counts connections that passed the handshake; Open is how
	// many are open now.
	Accepted, Open uint64
	// Refused counts connections refused at the handshake (bad magic,
	// another version or cluster); BadFrames those closed for a frame
	// that did not decode or was too large.
	Refused, BadFrames uint64
	// Requests counts requests by kind (propose, read, members); Errors
	// error answers by code (index Code).
	Proposes, Reads, Members uint64
	Errors                   [wire.MaxCode + 1]uint64
}

// Server serves the client API of one node. Every connection has a reader
// goroutine (which starts one goroutine per request, up to MaxInflight, so
// requests are answered as they complete, in any order) and a writer
// goroutine (which writes every response pending in one call).
type Server struct {
	cfg ServerConfig

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*serverConn]struct{}
	closed   bool
	shutdown chan struct{} // closed by Close/Shutdown

	wg sync.WaitGroup // connection goroutines

	accepted, open, refused, badFrames atomic.Uint64
	proposes, reads, members           atomic.Uint64
	errs                               [wire.MaxCode + 1]atomic.Uint64
}

// NewServer validates cfg and returns a server; Serve starts it on a
// listener.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, lns: map[net.Listener]struct{}{}, conns: map[*serverConn]struct{}{}, shutdown: make(chan struct{})}, nil
}

// Serve accepts connections on ln until Close or Shutdown (then it returns
// ErrServerClosed) or until ln fails.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.shutdown:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("clientapi: accept: %w", err)
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.wg.Add(1) // under mu, so never after Close's Wait began
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	st := ServerStats{
		Accepted: s.accepted.Load(), Open: s.open.Load(), Refused: s.refused.Load(), BadFrames: s.badFrames.Load(),
		Proposes: s.proposes.Load(), Reads: s.reads.Load(), Members: s.members.Load(),
	}
	for i := range s.errs {
		st.Errors[i] = s.errs[i].Load()
	}
	return st
}

// Close stops accepting, closes every connection at once (requests in
// progress are abandoned: their clients see a broken connection, outcome
// unknown) and waits for the server's goroutines.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Shutdown stops accepting and reading new requests, lets the requests in
// progress finish and their answers be written, tells each client the
// server is going away, and closes the connections; if ctx ends first it
// closes them at once, like Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = s.Close()
		return ctx.Err()
	}
}

// stop closes the listeners and marks the server closed.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.shutdown)
	}
	for ln := range s.lns {
		_ = ln.Close()
	}
}

// serverConn is one client connection.
type serverConn struct {
	s      *Server
	nc     net.Conn
	ctx    context.Context // ends when the connection is torn down
	cancel context.CancelFunc
	// work hands requests to the connection's workers: goroutines that
	// each run one request at a time and then wait for the next, started
	// as the load needs them (up to MaxInflight) and kept until the
	// connection ends, so a busy connection does not pay for a fresh
	// goroutine (and its stack growth) per request.
	work    chan wire.Request
	workers int // started so far (reader goroutine only)
	reqs    sync.WaitGroup

	mu      sync.Mutex
	out     []byte // encoded responses waiting for the writer
	spare   []byte
	closing bool // no more responses are queued after a goaway
	wake    chan struct{}
	// draining: the reader stops taking requests; the writer says goodbye
	// once the requests in progress are answered.
	draining chan struct{}
	drainOne sync.Once
}

func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	br := bufio.NewReaderSize(nc, 64<<10)
	if !s.handshake(nc, br) {
		s.refused.Add(1)
		_ = nc.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &serverConn{s: s, nc: nc, ctx: ctx, cancel: cancel, work: make(chan wire.Request),
		wake: make(chan struct{}, 1), draining: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.accepted.Add(1)
	s.open.Add(1)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writeLoop() }()
	if !c.readLoop(br) {
		// The client is gone or sent garbage: nobody will read the
		// answers, so the requests in progress are abandoned.
		cancel()
	}
	close(c.work)
	// Let the requests in progress answer (at once when abandoned), then
	// the writer flush the goodbye and finish.
	c.reqs.Wait()
	c.finish("")
	<-writerDone
	cancel()
	_ = nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.open.Add(^uint64(0))
}

// handshake reads the hello and answers it; false means the connection was
// refused (and told why, when it spoke the protocol at all).
func (s *Server) handshake(nc net.Conn, br *bufio.Reader) bool {
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	defer nc.SetDeadline(time.Time{})
	var hello [wire.HelloSize]byte
	if _, err := io.ReadFull(br, hello[:]); err != nil {
		s.cfg.Logger.Warn("client API: no hello", "remote", nc.RemoteAddr().String(), "err", err)
		return false
	}
	w := wire.Welcome{Status: wire.StatusOK, ClusterID: s.cfg.ClusterID, NodeID: s.cfg.NodeID, MaxFrame: uint64(s.cfg.MaxFrameSize)}
	cid, _, err := wire.DecodeHello(hello[:])
	switch {
	case errors.Is(err, ErrVersion):
		w.Status = wire.StatusVersion
	case err != nil:
		s.cfg.Logger.Warn("client API: refused a connection", "remote", nc.RemoteAddr().String(), "err", err)
		return false
	case cid != s.cfg.ClusterID:
		w.Status = wire.StatusCluster
	}
	if _, err := nc.Write(wire.AppendWelcome(nil, w)); err != nil {
		return false
	}
	if w.Status != wire.StatusOK {
		s.cfg.Logger.Warn("client API: refused a client", "remote", nc.RemoteAddr().String(), "client_cluster", cid, "status", w.Status)
		return false
	}
	return true
}

// drain makes the connection stop taking requests; it finishes once those
// in progress are answered.
func (c *serverConn) drain() {
	c.drainOne.Do(func() {
		close(c.draining)
		// Unblock the reader's Read; what it was reading is dropped
		// (the client sees the goaway and retries elsewhere).
		_ = c.nc.SetReadDeadline(time.Now())
	})
}

// readLoop reads requests and starts each, until the connection ends. It
// reports true when it stopped because the server is draining (the
// requests in progress should still be answered), false when the client
// went away or sent a bad frame.
func (c *serverConn) readLoop(br *bufio.Reader) bool {
	s := c.s
	for {
		body, err := wire.ReadFrame(br, s.cfg.MaxFrameSize)
		if err != nil {
			select {
			case <-c.draining:
				return true
			default:
			}
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrBadFrame) {
				s.badFrames.Add(1)
				s.cfg.Logger.Warn("client API: closing a connection on a bad frame", "remote", c.nc.RemoteAddr().String(), "err", err)
				c.finish(fmt.Sprintf("node %d: %v", s.cfg.NodeID, err))
			}
			return false
		}
		req, err := wire.DecodeRequest(body)
		if err != nil {
			s.badFrames.Add(1)
			s.cfg.Logger.Warn("client API: closing a connection on a bad request", "remote", c.nc.RemoteAddr().String(), "err", err)
			c.finish(fmt.Sprintf("node %d: %v", s.cfg.NodeID, err))
			return false
		}
		select {
		case c.work <- req: // an idle worker takes it
			continue
		default:
		}
		if c.workers < s.cfg.MaxInflight {
			c.workers++
			c.reqs.Add(1)
			go c.worker(req)
			continue
		}
		select { // every worker is busy: wait for one (TCP pushes back)
		case c.work <- req:
		case <-c.draining:
			return true
		}
	}
}

// worker runs req, then every request handed to it, until the connection's
// reader stops.
func (c *serverConn) worker(req wire.Request) {
	defer c.reqs.Done()
	for {
		c.handle(req)
		var ok bool
		if req, ok = <-c.work; !ok {
			return
		}
	}
}

// handle runs one request and queues its answer.
func (c *serverConn) handle(req wire.Request) {
	s := c.s
	timeout := s.cfg.MaxTimeout
	if req.Timeout > 0 {
		timeout = min(timeout, req.Timeout)
	}
	var v any
	var err error
	switch req.Kind {
	case wire.KindMembers:
		s.members.Add(1)
		c.queue(func(dst []byte) []byte { return wire.AppendMembersResponse(dst, req.ID, s.clientAddrs()) })
		return
	case wire.KindPropose:
		s.proposes.Add(1)
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		v, err = s.cfg.Backend.Propose(ctx, req.Payload)
		cancel()
	case wire.KindRead:
		s.reads.Add(1)
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		v, err = s.cfg.Backend.Read(ctx, req.Payload)
		cancel()
	}
	if err != nil {
		c.queueError(req.ID, req.Kind, err)
		return
	}
	c.mu.Lock()
	if !c.closing {
		var encErr error
		if c.out, encErr = wire.AppendResultResponse(c.out, req.ID, s.cfg.Results, v); encErr != nil {
			s.errs[CodeInternal].Add(1)
			c.out = wire.AppendErrorResponse(c.out, req.ID, CodeInternal, 0, "", fmt.Sprintf("node %d: result of type %T does not encode: %v", s.cfg.NodeID, v, encErr))
		}
	}
	c.mu.Unlock()
	c.signal()
}

// clientAddrs returns the advertised client addresses (nil without them).
func (s *Server) clientAddrs() map[uint64]string {
	if s.cfg.ClientAddrs == nil {
		return nil
	}
	return maps.Clone(s.cfg.ClientAddrs())
}

// queueError answers a request with the error's code.
func (c *serverConn) queueError(id uint64, kind byte, err error) {
	s := c.s
	code, leader := codeOf(err, kind)
	addr := ""
	if code == CodeNotLeader && leader != 0 && s.cfg.ClientAddrs != nil {
		addr = s.cfg.ClientAddrs()[leader]
	}
	s.errs[code].Add(1)
	msg := err.Error()
	c.queue(func(dst []byte) []byte { return wire.AppendErrorResponse(dst, id, code, leader, addr, msg) })
}

// codeOf maps a node or state-machine error to its code, and for a
// not-leader error the leader it names. An error it does not know is the
// state machine's for a read, and internal for a command.
func codeOf(err error, kind byte) (Code, uint64) {
	var nle *node.NotLeaderError
	switch {
	case errors.As(err, &nle):
		return CodeNotLeader, nle.Leader
	case errors.Is(err, node.ErrNotLeader):
		return CodeNotLeader, 0
	case errors.Is(err, node.ErrProposalTooLarge):
		return CodeTooLarge, 0
	case errors.Is(err, node.ErrLeadershipLost):
		return CodeLeadershipLost, 0
	case errors.Is(err, node.ErrTimeout):
		return CodeTimeout, 0
	case errors.Is(err, node.ErrStopped):
		return CodeStopped, 0
	case errors.Is(err, kv.ErrBadEncoding):
		return CodeBadEncoding, 0
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return CodeTimeout, 0
	case kind == wire.KindRead:
		return CodeStateMachine, 0
	}
	return CodeInternal, 0
}

// queue appends a response (encoded by enc into the pending buffer) for
// the writer. After the goaway nothing more is queued.
func (c *serverConn) queue(enc func([]byte) []byte) {
	c.mu.Lock()
	if !c.closing {
		c.out = enc(c.out)
	}
	c.mu.Unlock()
	c.signal()
}

// signal wakes the writer without ever blocking.
func (c *serverConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// finish queues the goodbye (a goaway with msg, or with "shutting down"
// while draining; nothing on a connection the client closed) and marks the
// connection closing, so the writer flushes and exits.
func (c *serverConn) finish(msg string) {
	c.mu.Lock()
	if !c.closing {
		if msg == "" {
			select {
			case <-c.draining:
				msg = fmt.Sprintf("node %d: server shutting down", c.s.cfg.NodeID)
			default:
			}
		}
		if msg != "" {
			c.out = wire.AppendGoAway(c.out, msg)
		}
		c.closing = true
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes everything queued in one write per wake-up, until it
// has flushed a closing connection or a write fails.
func (c *serverConn) writeLoop() {
	for range c.wake {
		// Let the requests that are about to answer queue first, so one
		// write carries them all.
		runtime.Gosched()
		c.mu.Lock()
		buf, closing := c.out, c.closing
		c.out, c.spare = c.spare, nil
		c.mu.Unlock()
		if len(buf) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				if !closing {
					c.s.cfg.Logger.Warn("client API: write failed", "remote", c.nc.RemoteAddr().String(), "err", err)
				}
				c.cancel() // abandons the requests in progress
				c.mu.Lock()
				c.closing = true
				c.mu.Unlock()
				_ = c.nc.Close()
				return
			}
		}
		if closing {
			return
		}
		if cap(buf) <= 1<<20 { // keep a buffer of common size for reuse
			c.mu.Lock()
			c.spare = buf[:0]
			c.mu.Unlock()
		}
	}
}

package clientapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/raftbench/raftbench/clientapi/wire"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
)

// Client errors. Each is wrapped with the endpoint and the detail.
var (
	// ErrConnLost: the connection broke (or the server went away) while
	// the request was in flight, so its outcome is unknown.
	ErrConnLost = errors.New("clientapi: connection lost")
	// ErrUnreachable: the node could not be dialled. It also wraps
	// kv.ErrNotSent: the request never left.
	ErrUnreachable = errors.New("clientapi: node unreachable")
	// ErrStateMachine: the node's state machine failed a read; the
	// message says why.
	ErrStateMachine = errors.New("clientapi: state machine error")
	// ErrRemote: the node failed the request for another reason (a result
	// that would not encode, a fatal node error).
	ErrRemote = errors.New("clientapi: remote error")
	// ErrClosed: the endpoint was closed.
	ErrClosed = errors.New("clientapi: endpoint closed")
	// ErrWrongCluster: the node belongs to another cluster (the handshake
	// carries the cluster ID).
	ErrWrongCluster = errors.New("clientapi: wrong cluster")
	// ErrWrongNode: the address serves another node than the endpoint was
	// configured for.
	ErrWrongNode = errors.New("clientapi: wrong node")
)

// Redirect is the error of a request a non-leader refused: it unwraps to
// the *node.NotLeaderError naming the leader (so kv.Client follows it as
// it follows an in-process node), and carries the leader's client address
// when the node knows it.
type Redirect struct {
	// NotLeader names the leader (Leader 0: unknown).
	NotLeader *node.NotLeaderError
	// Addr is the leader's client address, "" when unknown.
	Addr string
}

// Error names the leader and its address.
func (r *Redirect) Error() string {
	if r.Addr == "" {
		return r.NotLeader.Error()
	}
	return fmt.Sprintf("%v at %s", r.NotLeader, r.Addr)
}

// Unwrap gives errors.As the *node.NotLeaderError.
func (r *Redirect) Unwrap() error { return r.NotLeader }

// Options configure client endpoints. Zero fields take the defaults named.
type Options struct {
	// ClusterID is sent in the hello; a node of another cluster refuses
	// the connection (ErrWrongCluster).
	ClusterID uint64
	// Results decodes the state machine's results. Default KVResults.
	Results ResultCodec
	// DialTimeout bounds one dial and handshake (also bounded by the
	// caller's context). Default 1s.
	DialTimeout time.Duration
	// RedialBackoff is how long after a failed dial further calls fail at
	// once (with the same error) instead of dialling again, so many
	// clients sharing a dead endpoint do not flood it. Default 20ms.
	RedialBackoff time.Duration
	// MaxFrameSize bounds the responses this client accepts; requests are
	// bounded by the smaller of it and the server's. Default
	// transport.DefaultMaxFrameSize.
	MaxFrameSize int
	// WriteTimeout bounds one write of coalesced requests. Default 10s.
	WriteTimeout time.Duration
	// Dial dials the node; default a net.Dialer with TCP_NODELAY (Go's
	// default for TCP).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Results == nil {
		o.Results = KVResults{}
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = time.Second
	}
	if o.RedialBackoff == 0 {
		o.RedialBackoff = 20 * time.Millisecond
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = transport.DefaultMaxFrameSize
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
}

// Validate reports every invalid field with its value and limit.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if o.DialTimeout < 0 {
		bad("DialTimeout %v, want >= 0", o.DialTimeout)
	}
	if o.RedialBackoff < 0 {
		bad("RedialBackoff %v, want >= 0", o.RedialBackoff)
	}
	if o.MaxFrameSize < transport.MinMaxFrameSize || o.MaxFrameSize > transport.MaxMaxFrameSize {
		bad("MaxFrameSize %d outside [%d, %d]", o.MaxFrameSize, transport.MinMaxFrameSize, transport.MaxMaxFrameSize)
	}
	if o.WriteTimeout <= 0 {
		bad("WriteTimeout %v, want > 0", o.WriteTimeout)
	}
	return errors.Join(errs...)
}

// Endpoint is one node's client API as a kv.Endpoint: kv.Client drives a
// remote cluster through Endpoints exactly as it drives in-process nodes.
// It keeps one connection, shared by every caller and pipelined (requests
// carry IDs; answers come back in any order), and dials again after the
// connection breaks, so it follows its node across restarts. Safe for
// concurrent use; share one Endpoint per node among all clients.
type Endpoint struct {
	id   uint64
	addr string
	opts Options

	mu       sync.Mutex
	cur      *conn
	dialing  chan struct{} // closed when the dial in progress ends
	dialErr  error         // the last dial's error, returned until retryAt
	retryAt  time.Time
	closed   bool
	serverID uint64 // learnt from the welcome (for id 0)
}

var _ kv.Endpoint = (*Endpoint)(nil)

// NewEndpoint returns the endpoint of node id at addr (host:port). It does
// not connect until the first call (or Connect). id 0 accepts whichever
// node answers (Discover uses that); kv.Client needs the real IDs.
func NewEndpoint(id uint64, addr string, opts Options) (*Endpoint, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: node %d has no address", ErrInvalidConfig, id)
	}
	return &Endpoint{id: id, addr: addr, opts: opts}, nil
}

// Endpoints returns an endpoint per node of addrs (node ID to client
// address), in ID order, as kv.NewClient takes them.
func Endpoints(addrs map[uint64]string, opts Options) ([]kv.Endpoint, error) {
	var eps []kv.Endpoint
	for _, id := range sortedIDs(addrs) {
		if id == 0 {
			return nil, fmt.Errorf("%w: node ID 0 in the address map", ErrInvalidConfig)
		}
		ep, err := NewEndpoint(id, addrs[id], opts)
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("%w: no addresses", ErrInvalidConfig)
	}
	return eps, nil
}

// Discover asks the node at addr for every node's client address (as its
// --peers gave them).
func Discover(ctx context.Context, addr string, opts Options) (map[uint64]string, error) {
	ep, err := NewEndpoint(0, addr, opts)
	if err != nil {
		return nil, err
	}
	defer ep.Close()
	return ep.Members(ctx)
}

// ID is the node's ID (for id 0, the ID of the node that answered, once
// connected).
func (e *Endpoint) ID() uint64 {
	if e.id != 0 {
		return e.id
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.serverID
}

// Addr is the node's client address.
func (e *Endpoint) Addr() string { return e.addr }

// Propose sends cmd to the node's Propose and returns the decoded result.
// Errors are the node's (a *Redirect unwrapping to *node.NotLeaderError,
// node.ErrTimeout, ErrLeadershipLost, ErrProposalTooLarge, ErrStopped),
// ErrConnLost (outcome unknown), or an error wrapping kv.ErrNotSent when
// the request never left (the node is unreachable, refused the hello, or
// the command is larger than a frame — that one also wraps
// node.ErrProposalTooLarge).
func (e *Endpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	return e.do(ctx, wire.KindPropose, cmd)
}

// Read sends query to the node's linearizable Read.
func (e *Endpoint) Read(ctx context.Context, query []byte) (any, error) {
	return e.do(ctx, wire.KindRead, query)
}

// Members returns every node's client address as the node knows them.
func (e *Endpoint) Members(ctx context.Context) (map[uint64]string, error) {
	v, err := e.do(ctx, wire.KindMembers, nil)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[uint64]string)
	if !ok {
		return nil, fmt.Errorf("node %d at %s: %w: a members request answered with a %T", e.id, e.addr, ErrBadFrame, v)
	}
	return m, nil
}

// Connect dials the node now (if not connected) and reports what stands in
// the way: unreachable, another cluster, another node.
func (e *Endpoint) Connect(ctx context.Context) error {
	_, err := e.conn(ctx)
	return err
}

// Close closes the connection; calls in flight fail with ErrClosed, later
// calls too.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	e.closed = true
	c := e.cur
	e.cur = nil
	e.mu.Unlock()
	if c != nil {
		c.fail(ErrClosed)
	}
	return nil
}

func (e *Endpoint) do(ctx context.Context, kind byte, payload []byte) (any, error) {
	c, err := e.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.call(ctx, kind, payload)
}

// conn returns the live connection, dialling one when there is none. One
// caller dials while the others wait for it.
func (e *Endpoint) conn(ctx context.Context) (*conn, error) {
	for {
		e.mu.Lock()
		switch {
		case e.closed:
			e.mu.Unlock()
			return nil, fmt.Errorf("node %d at %s: %w: %w", e.id, e.addr, kv.ErrNotSent, ErrClosed)
		case e.cur != nil && !e.cur.broken():
			c := e.cur
			e.mu.Unlock()
			return c, nil
		case e.dialErr != nil && time.Now().Before(e.retryAt):
			err := e.dialErr
			e.mu.Unlock()
			return nil, err
		case e.dialing != nil:
			wait := e.dialing
			e.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("node %d at %s: %w: %w while dialling", e.id, e.addr, kv.ErrNotSent, ctx.Err())
			}
		}
		e.dialing = make(chan struct{})
		e.mu.Unlock()
		c, err := e.dial(ctx)
		e.mu.Lock()
		close(e.dialing)
		e.dialing = nil
		if err != nil {
			e.dialErr, e.retryAt = err, time.Now().Add(e.opts.RedialBackoff)
			e.mu.Unlock()
			return nil, err
		}
		e.dialErr = nil
		if e.closed {
			e.mu.Unlock()
			c.fail(ErrClosed)
			continue
		}
		e.cur = c
		e.mu.Unlock()
		return c, nil
	}
}

// dial connects and performs the handshake. Every error wraps
// kv.ErrNotSent.
func (e *Endpoint) dial(ctx context.Context) (*conn, error) {
	fail := func(err error) (*conn, error) {
		return nil, fmt.Errorf("node %d at %s: %w: %w", e.id, e.addr, kv.ErrNotSent, err)
	}
	dctx, cancel := context.WithTimeout(ctx, e.opts.DialTimeout)
	defer cancel()
	nc, err := e.opts.Dial(dctx, e.addr)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrUnreachable, err))
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	if _, err := nc.Write(wire.AppendHello(nil, e.opts.ClusterID)); err != nil {
		nc.Close()
		return fail(fmt.Errorf("%w: hello: %w", ErrUnreachable, err))
	}
	w, err := wire.ReadWelcome(br)
	if err != nil {
		nc.Close()
		return fail(err)
	}
	switch {
	case w.Status == wire.StatusCluster:
		nc.Close()
		return fail(fmt.Errorf("%w: the node belongs to cluster %#x, this client to %#x", ErrWrongCluster, w.ClusterID, e.opts.ClusterID))
	case w.Status == wire.StatusVersion:
		nc.Close()
		return fail(fmt.Errorf("%w: the node does not speak wire.Version %d", ErrVersion, wire.Version))
	case e.id != 0 && w.NodeID != e.id:
		nc.Close()
		return fail(fmt.Errorf("%w: the address serves node %d", ErrWrongNode, w.NodeID))
	case w.MaxFrame < transport.MinMaxFrameSize:
		nc.Close()
		return fail(fmt.Errorf("%w: the node announces a max frame of %d bytes", ErrBadFrame, w.MaxFrame))
	}
	_ = nc.SetDeadline(time.Time{})
	e.mu.Lock()
	e.serverID = w.NodeID
	e.mu.Unlock()
	c := &conn{
		ep: e, nc: nc, nodeID: w.NodeID,
		maxReq:  int(min(w.MaxFrame, uint64(transport.MaxMaxFrameSize))),
		pending: map[uint64]*call{}, wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go c.writeLoop()
	go c.readLoop(br)
	return c, nil
}

// conn is one connection to a node.
type conn struct {
	ep     *Endpoint
	nc     net.Conn
	nodeID uint64
	maxReq int // the server's max frame

	mu      sync.Mutex
	pending map[uint64]*call
	nextID  uint64
	out     []byte // encoded requests waiting for the writer
	spare   []byte
	err     error // why the connection broke; set once
	wake    chan struct{}
	done    chan struct{} // closed when err is set
}

// call is one request waiting for its answer.
type call struct {
	done chan reply
}

type reply struct {
	v   any
	err error
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan reply, 1)} }}

func (c *conn) broken() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *conn) call(ctx context.Context, kind byte, payload []byte) (any, error) {
	e := c.ep
	if n := wire.RequestSize(len(payload)); n > c.maxReq {
		return nil, fmt.Errorf("node %d at %s: %w: %w: %w: a request of %d bytes, the node's limit is %d",
			e.id, e.addr, kv.ErrNotSent, node.ErrProposalTooLarge, ErrFrameTooLarge, n, c.maxReq)
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, fmt.Errorf("%w: %w", node.ErrTimeout, context.DeadlineExceeded)
		}
		timeout = min(timeout, wire.MaxTimeout)
	}
	cl := callPool.Get().(*call)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		callPool.Put(cl)
		// Nothing was written on this connection for this request.
		return nil, fmt.Errorf("node %d at %s: %w: %w", e.id, e.addr, kv.ErrNotSent, err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = cl
	c.out = wire.AppendRequest(c.out, &wire.Request{Kind: kind, ID: id, Timeout: timeout, Payload: payload})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case r := <-cl.done:
		callPool.Put(cl)
		return r.v, r.err
	case <-ctx.Done():
		c.mu.Lock()
		_, waiting := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !waiting {
			// The answer is being delivered: take it, so the call can
			// be reused.
			r := <-cl.done
			callPool.Put(cl)
			return r.v, r.err
		}
		return nil, fmt.Errorf("%w: %w", node.ErrTimeout, ctx.Err())
	}
}

// fail breaks the connection: every request waiting gets err (wrapped as
// ErrConnLost unless it is ErrClosed).
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close()
	e := c.ep
	werr := fmt.Errorf("node %d at %s: %w: %w", e.id, e.addr, ErrConnLost, err)
	if errors.Is(err, ErrClosed) {
		werr = fmt.Errorf("node %d at %s: %w", e.id, e.addr, err)
	}
	for _, cl := range pending {
		cl.done <- reply{err: werr}
	}
}

func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the callers that are ready to queue a request do so first,
		// so one write carries them all.
		runtime.Gosched()
		c.mu.Lock()
		buf := c.out
		c.out, c.spare = c.spare, nil
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.ep.opts.WriteTimeout))
		if _, err := c.nc.Write(buf); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		if cap(buf) <= 1<<20 {
			c.mu.Lock()
			c.spare = buf[:0]
			c.mu.Unlock()
		}
	}
}

func (c *conn) readLoop(br *bufio.Reader) {
	maxFrame := c.ep.opts.MaxFrameSize
	for {
		body, err := wire.ReadFrame(br, maxFrame)
		if err != nil {
			c.fail(err)
			return
		}
		r, err := wire.DecodeResponse(body)
		if err != nil {
			c.fail(err)
			return
		}
		if r.Kind == wire.RespGoAway {
			c.fail(fmt.Errorf("the node closed the connection: %s", r.Msg))
			return
		}
		c.mu.Lock()
		cl := c.pending[r.ID]
		delete(c.pending, r.ID)
		c.mu.Unlock()
		if cl == nil {
			continue // its caller gave up
		}
		cl.done <- c.decode(&r)
	}
}

// decode turns a response into the caller's result or error.
func (c *conn) decode(r *wire.Response) reply {
	e := c.ep
	switch r.Kind {
	case wire.RespMembers:
		if r.Members == nil {
			r.Members = map[uint64]string{}
		}
		return reply{v: r.Members}
	case wire.RespResult:
		if !r.HasResult {
			return reply{}
		}
		v, err := e.opts.Results.DecodeResult(r.Result)
		if err != nil {
			return reply{err: fmt.Errorf("node %d at %s: %w: result does not decode: %w", e.id, e.addr, ErrRemote, err)}
		}
		return reply{v: v}
	}
	var err error
	switch r.Code {
	case CodeNotLeader:
		err = &Redirect{NotLeader: &node.NotLeaderError{Leader: r.Leader}, Addr: r.LeaderAddr}
	case CodeStopped:
		err = node.ErrStopped
	case CodeTimeout:
		err = node.ErrTimeout
	case CodeLeadershipLost:
		err = node.ErrLeadershipLost
	case CodeTooLarge:
		err = node.ErrProposalTooLarge
	case CodeBadEncoding:
		err = kv.ErrBadEncoding
	case CodeStateMachine:
		err = ErrStateMachine
	default:
		err = ErrRemote
	}
	if r.Code == CodeNotLeader {
		return reply{err: fmt.Errorf("node %d at %s: %w", e.id, e.addr, err)}
	}
	return reply{err: fmt.Errorf("node %d at %s: %w: %s", e.id, e.addr, err, r.Msg)}
}

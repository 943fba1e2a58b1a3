package hashicorp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftbench/raftbench/peers"
)

// hashicorp/raft's NetworkTransport is request/response RPCs over pooled
// streams, so faults go in at two seams:
//
//   - loss and partitions per RPC, in faultTransport around the
//     NetworkTransport: a lost request is an RPC that fails before it is
//     sent; a lost response is an RPC that ran on the receiver but fails
//     at the sender. On a pipeline, a response can only be lost the way a
//     stream loses one, with the connection: the append arrives as a
//     failure and the pipeline breaks (later appends fail), as after a
//     broken connection. (Losing one response and keeping the stream would
//     deadlock hashicorp/raft's pipeline: its consumer stops at the
//     failure while the sender blocks on the in-flight bound.) The
//     request obeys the sender's rules and the network's cut from sender
//     to receiver, the response the receiver's rules and the cut back;
//   - delay and jitter per write, in delayConn under the StreamLayer: the
//     bytes a node writes (its requests, and its responses on accepted
//     connections) leave after the delay, in order. A stream keeps order,
//     so jitter varies the latency but never reorders, and there is no
//     way to duplicate or reorder an RPC: those rules are refused.

// errLost is the error of an RPC a fault lost.
var errLost = errors.New("hashicorp: message lost to an injected fault")

// serverID is the raft.ServerID of node id.
func serverID(id uint64) raft.ServerID { return raft.ServerID(strconv.FormatUint(id, 10)) }

// nodeID parses a raft.ServerID made by serverID (0 if it is not one).
func nodeID(s raft.ServerID) uint64 {
	id, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// faultTransport is the NetworkTransport with loss and partitions applied
// per RPC. Consumer, LocalAddr, the peer encoding, the heartbeat handler
// and Close are the NetworkTransport's own.
type faultTransport struct {
	*raft.NetworkTransport
	self uint64
	link *peers.Link
	// peer returns node id's link, for the rules of its responses.
	peer func(id uint64) *peers.Link
}

var (
	_ raft.Transport   = (*faultTransport)(nil)
	_ raft.WithPreVote = (*faultTransport)(nil)
	_ raft.WithClose   = (*faultTransport)(nil)
)

// around runs rpc to target under the faults of both directions.
func (t *faultTransport) around(target raft.ServerID, rpc func() error) error {
	to := nodeID(target)
	if t.link.Lose(to) {
		return fmt.Errorf("hashicorp: rpc to %s: %w", target, errLost)
	}
	if err := rpc(); err != nil {
		return err
	}
	if l := t.peer(to); l != nil && l.Lose(t.self) {
		return fmt.Errorf("hashicorp: response from %s: %w", target, errLost)
	}
	return nil
}

// AppendEntries implements raft.Transport.
func (t *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.around(id, func() error { return t.NetworkTransport.AppendEntries(id, target, args, resp) })
}

// RequestVote implements raft.Transport.
func (t *faultTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.around(id, func() error { return t.NetworkTransport.RequestVote(id, target, args, resp) })
}

// RequestPreVote implements raft.WithPreVote.
func (t *faultTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.around(id, func() error { return t.NetworkTransport.RequestPreVote(id, target, args, resp) })
}

// InstallSnapshot implements raft.Transport.
func (t *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.around(id, func() error { return t.NetworkTransport.InstallSnapshot(id, target, args, resp, data) })
}

// TimeoutNow implements raft.Transport.
func (t *faultTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.around(id, func() error { return t.NetworkTransport.TimeoutNow(id, target, args, resp) })
}

// AppendEntriesPipeline implements raft.Transport.
func (t *faultTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	inner, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	p := &faultPipeline{inner: inner, t: t, to: nodeID(id), out: make(chan raft.AppendFuture), done: make(chan struct{}), exited: make(chan struct{})}
	go p.forward()
	return p, nil
}

// faultPipeline applies the faults to a pipeline of appends: a lost
// request fails AppendEntries (which ends the pipeline), a lost response
// reaches the consumer as a failed, unsuccessful one and breaks the
// pipeline.
type faultPipeline struct {
	inner raft.AppendPipeline
	t     *faultTransport
	to    uint64
	out   chan raft.AppendFuture

	broken atomic.Bool

	once   sync.Once
	done   chan struct{}
	exited chan struct{}
}

// AppendEntries implements raft.AppendPipeline.
func (p *faultPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if p.broken.Load() {
		return nil, fmt.Errorf("hashicorp: pipelined append to %d: connection lost with a response: %w", p.to, errLost)
	}
	if p.t.link.Lose(p.to) {
		return nil, fmt.Errorf("hashicorp: pipelined append to %d: %w", p.to, errLost)
	}
	return p.inner.AppendEntries(args, resp)
}

// Consumer implements raft.AppendPipeline.
func (p *faultPipeline) Consumer() <-chan raft.AppendFuture { return p.out }

func (p *faultPipeline) forward() {
	defer close(p.exited)
	in := p.inner.Consumer()
	for {
		select {
		case f := <-in:
			if l := p.t.peer(p.to); l != nil && l.Lose(p.t.self) {
				*f.Response() = raft.AppendEntriesResponse{} // unsuccessful, as after a failed decode
				f = lostFuture{f}
				p.broken.Store(true)
				_ = p.inner.Close() // wakes an AppendEntries blocked on the in-flight bound
			}
			select {
			case p.out <- f:
			case <-p.done:
				return
			}
		case <-p.done:
			return
		}
	}
}

// Close implements raft.AppendPipeline.
func (p *faultPipeline) Close() error {
	p.once.Do(func() { close(p.done) })
	err := p.inner.Close()
	<-p.exited
	return err
}

// lostFuture is a pipelined append whose response a fault lost.
type lostFuture struct{ raft.AppendFuture }

func (lostFuture) Error() error { return errLost }

// streamLayer is raft.StreamLayer on a loopback listener, with every
// connection's writes delayed by the node's link.
type streamLayer struct {
	ln   net.Listener
	link *peers.Link

	mu     sync.Mutex
	conns  map[*delayConn]struct{} // every connection made, for closeAll
	closed bool
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// track wraps c and remembers it, or closes it after closeAll.
func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	d := newDelayConn(c, s.link)
	d.owner = s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	s.conns[d] = struct{}{}
	return d, nil
}

func (s *streamLayer) forget(d *delayConn) {
	s.mu.Lock()
	delete(s.conns, d)
	s.mu.Unlock()
}

// closeAll closes every connection, as a crash does.
func (s *streamLayer) closeAll() {
	s.mu.Lock()
	s.closed = true
	cs := s.conns
	s.conns = map[*delayConn]struct{}{}
	s.mu.Unlock()
	for d := range cs {
		_ = d.Close()
	}
}

func (s *streamLayer) Close() error   { return s.ln.Close() }
func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// maxDelayed bounds the bytes a delayConn holds; a writer past it waits,
// as on a full socket buffer.
const maxDelayed = 16 << 20

// delayConn is a net.Conn whose writes leave after the link's delay, in
// order. With no delay in force and nothing held, a write goes straight
// to the socket.
type delayConn struct {
	net.Conn
	link  *peers.Link
	owner *streamLayer

	mu      sync.Mutex
	cond    *sync.Cond
	q       []held
	bytes   int
	lastDue time.Time
	err     error // the first failed delayed write; later writes return it
	closed  bool
	writing bool // the writer goroutine runs
}

type held struct {
	due time.Time
	b   []byte
}

func newDelayConn(c net.Conn, link *peers.Link) *delayConn {
	d := &delayConn{Conn: c, link: link}
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *delayConn) Write(p []byte) (int, error) {
	delay := d.link.Delay()
	d.mu.Lock()
	if d.err != nil {
		defer d.mu.Unlock()
		return 0, d.err
	}
	if delay == 0 && len(d.q) == 0 {
		d.mu.Unlock()
		return d.Conn.Write(p)
	}
	for d.bytes > maxDelayed && !d.closed && d.err == nil {
		d.cond.Wait()
	}
	if d.closed || d.err != nil {
		defer d.mu.Unlock()
		if d.err != nil {
			return 0, d.err
		}
		return 0, net.ErrClosed
	}
	due := time.Now().Add(delay)
	if due.Before(d.lastDue) {
		due = d.lastDue // a stream keeps order
	}
	d.lastDue = due
	d.q = append(d.q, held{due: due, b: append([]byte(nil), p...)})
	d.bytes += len(p)
	if !d.writing {
		d.writing = true
		go d.drain()
	}
	d.mu.Unlock()
	return len(p), nil
}

// drain writes held bytes when due, and ends when nothing is held.
func (d *delayConn) drain() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.q) > 0 && !d.closed {
		h := d.q[0]
		if w := time.Until(h.due); w > 0 {
			d.mu.Unlock()
			time.Sleep(w)
			d.mu.Lock()
			continue
		}
		d.mu.Unlock()
		_, err := d.Conn.Write(h.b)
		d.mu.Lock()
		if d.closed {
			break // Close dropped the rest
		}
		d.q = d.q[1:]
		d.bytes -= len(h.b)
		if err != nil && d.err == nil {
			d.err = err
		}
		d.cond.Broadcast()
	}
	d.writing = false
}

// Close closes the connection; held bytes are lost, as on a crash.
func (d *delayConn) Close() error {
	d.mu.Lock()
	d.closed = true
	d.q, d.bytes = nil, 0
	d.cond.Broadcast()
	d.mu.Unlock()
	if d.owner != nil {
		d.owner.forget(d)
	}
	return d.Conn.Close()
}

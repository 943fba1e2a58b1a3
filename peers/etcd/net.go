package etcd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/raftbench/raftbench/peers"
)

// etcd raft ships no transport (etcd's rafthttp lives in the server), so
// the adapter has its own: one TCP connection per ordered pair of nodes,
// each message a frame, faults applied per message through a peers.Link
// — the seam where fault.Transport works for raftbench's own nodes.
//
//	connection := magic("rbe1") senderID(8, big endian) frame*
//	frame      := length(4, big endian) raftpb.Message(protobuf)
//
// Messages are marshalled when sent, on the Ready loop (etcd raft's docs
// ask for that: entries in a message must not change while it is
// encoded). A message whose link is cut, dropped, or finds its peer's
// queue full is lost and the peer reported unreachable, as with any
// Raft transport; Raft retries.

var magic = [4]byte{'r', 'b', 'e', '1'}

const (
	// peerQueue bounds the frames waiting for one peer's writer. Past it
	// messages are dropped: a peer that cannot keep up is treated like an
	// unreachable one instead of stalling the Ready loop.
	peerQueue = 8192
	// maxFrame bounds a received frame, so a bad length cannot make a
	// reader allocate gigabytes. An append message is at most
	// MaxSizePerMsg (1 MiB by default) plus headers.
	maxFrame    = 256 << 20
	dialTimeout = time.Second
	maxBackoff  = 500 * time.Millisecond
)

// netConfig configures a node's transport.
type netConfig struct {
	id     uint64
	addrs  map[uint64]string // every node's address, this one's included
	ln     net.Listener      // listening on addrs[id]; the transport owns it
	link   *peers.Link
	logger *slog.Logger
	// deliver steps a received message into the node; an error that
	// wraps errStopped ends the connection.
	deliver func(m *pb.Message) error
	// unreachable reports a peer a message could not be sent to.
	unreachable func(id uint64)
}

var errStopped = errors.New("etcd: node stopped")

// transport is one node's side of the network.
type transport struct {
	cfg   netConfig
	peers map[uint64]*peerConn
	delay *peers.Delayer[frame]

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted connections, closed by close
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// frame is one encoded message on its way to a peer.
type frame struct {
	to uint64
	b  []byte
}

func newTransport(cfg netConfig) *transport {
	t := &transport{cfg: cfg, peers: map[uint64]*peerConn{}, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	for id, addr := range cfg.addrs {
		if id != cfg.id {
			t.peers[id] = &peerConn{t: t, id: id, addr: addr, wake: make(chan struct{}, 1)}
		}
	}
	t.delay = peers.NewDelayer(t.release)
	t.wg.Add(1 + len(t.peers))
	go t.accept()
	for _, p := range t.peers {
		go p.run()
	}
	return t
}

// send encodes msgs and hands each to its peer's writer, now or after the
// delay its link decides. It never blocks.
func (t *transport) send(msgs []*pb.Message) {
	for _, m := range msgs {
		to := m.GetTo()
		p := t.peers[to]
		if p == nil {
			continue
		}
		copies, delays := t.cfg.link.Decide(to)
		if copies == 0 {
			continue // lost: Raft retries, as after any lost message
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.cfg.logger.Error("etcd: encode message", "to", to, "type", m.GetType().String(), "err", err)
			continue
		}
		for i := range copies {
			if delays[i] == 0 {
				p.enqueue(b)
			} else {
				t.delay.After(delays[i], frame{to: to, b: b})
			}
		}
	}
}

// release sends delayed frames whose link is still up when their delay
// ends.
func (t *transport) release(fs []frame) {
	for _, f := range fs {
		if !t.cfg.link.Blocked(f.to) {
			t.peers[f.to].enqueue(f.b)
		}
	}
}

func (t *transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.cfg.ln.Accept()
		if err != nil {
			return // closed
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			_ = c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.read(c)
	}
}

// read delivers the frames of one inbound connection until it fails.
func (t *transport) read(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		_ = c.Close()
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}()
	br := bufio.NewReaderSize(c, 256<<10)
	var hello [12]byte
	if _, err := io.ReadFull(br, hello[:]); err != nil {
		return
	}
	from := binary.BigEndian.Uint64(hello[4:])
	if [4]byte(hello[:4]) != magic || t.peers[from] == nil {
		t.cfg.logger.Warn("etcd: refusing a connection", "node", t.cfg.id, "remote", c.RemoteAddr().String(), "sender", from)
		return
	}
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			t.cfg.logger.Warn("etcd: frame too large; closing", "node", t.cfg.id, "from", from, "bytes", n)
			return
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(buf, m); err != nil {
			t.cfg.logger.Warn("etcd: bad frame; closing", "node", t.cfg.id, "from", from, "err", err)
			return
		}
		if m.GetFrom() != from || m.GetTo() != t.cfg.id {
			t.cfg.logger.Warn("etcd: misaddressed message; closing", "node", t.cfg.id, "conn_from", from, "msg_from", m.GetFrom(), "msg_to", m.GetTo())
			return
		}
		if t.cfg.link.BlockedFrom(from) {
			continue // cut while on the wire
		}
		if err := t.cfg.deliver(m); errors.Is(err, errStopped) {
			return
		}
	}
}

// close stops every goroutine and closes every connection; frames still
// queued or delayed are lost, as in a crash.
func (t *transport) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	close(t.done)
	_ = t.cfg.ln.Close()
	t.delay.Close()
	for _, p := range t.peers {
		p.closeConn()
	}
	t.wg.Wait()
}

// peerConn is the outbound connection to one peer, with its writer.
type peerConn struct {
	t    *transport
	id   uint64
	addr string

	mu    sync.Mutex
	queue [][]byte
	conn  net.Conn
	wake  chan struct{}
}

// enqueue queues one frame, or drops it when the queue is full.
func (p *peerConn) enqueue(b []byte) {
	p.mu.Lock()
	if len(p.queue) >= peerQueue {
		p.mu.Unlock()
		p.t.cfg.unreachable(p.id)
		return
	}
	p.queue = append(p.queue, b)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peerConn) closeConn() {
	p.mu.Lock()
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.mu.Unlock()
}

// run writes queued frames, everything queued in one flush, dialling (with
// capped backoff) whenever there is no connection. Frames queued while
// the peer cannot be reached are dropped and the peer reported
// unreachable.
func (p *peerConn) run() {
	defer p.t.wg.Done()
	backoff := 10 * time.Millisecond
	var bw *bufio.Writer
	var conn net.Conn
	var hdr [4]byte
	for {
		select {
		case <-p.wake:
		case <-p.t.done:
			return
		}
		if conn == nil {
			c, err := p.dial()
			if err != nil {
				p.drop()
				select {
				case <-time.After(backoff):
				case <-p.t.done:
					return
				}
				backoff = min(2*backoff, maxBackoff)
				continue // the next message wakes it
			}
			// closed is the transport's, under its lock; holding it while
			// p.conn is set means close either sees this connection (and
			// closes it with closeConn) or has already marked the
			// transport closed here.
			p.t.mu.Lock()
			if p.t.closed {
				p.t.mu.Unlock()
				_ = c.Close()
				return
			}
			p.mu.Lock()
			p.conn, conn = c, c
			p.mu.Unlock()
			p.t.mu.Unlock()
			bw = bufio.NewWriterSize(conn, 256<<10)
			backoff = 10 * time.Millisecond
		}
		p.mu.Lock()
		q := p.queue
		p.queue = nil
		p.mu.Unlock()
		var err error
		for _, b := range q {
			binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
			if _, err = bw.Write(hdr[:]); err != nil {
				break
			}
			if _, err = bw.Write(b); err != nil {
				break
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			_ = conn.Close()
			p.mu.Lock()
			p.conn = nil
			p.mu.Unlock()
			conn = nil
			p.t.cfg.unreachable(p.id)
		}
	}
}

func (p *peerConn) dial() (net.Conn, error) {
	c, err := net.DialTimeout("tcp", p.addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.(*net.TCPConn).SetNoDelay(true)
	var hello [12]byte
	copy(hello[:], magic[:])
	binary.BigEndian.PutUint64(hello[4:], p.t.cfg.id)
	if _, err := c.Write(hello[:]); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("etcd: handshake with %s: %w", p.addr, err)
	}
	return c, nil
}

// drop discards the queue after a failed dial.
func (p *peerConn) drop() {
	p.mu.Lock()
	dropped := len(p.queue) > 0
	p.queue = nil
	p.mu.Unlock()
	if dropped {
		p.t.cfg.unreachable(p.id)
	}
}

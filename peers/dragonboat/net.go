package dragonboat

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/raftbench/raftbench/peers"
)

// dragonboat's own TCP transport is internal to it, so the adapter plugs
// in at its transport seam (config.TransportFactory / raftio.ITransport):
// dragonboat keeps its own per-target send queues, batching, circuit
// breakers and snapshot chunking above this, and this moves the batches
// and chunks over TCP, applying the faults per Raft message — the seam
// where fault.Transport works for raftbench's own nodes. Partitions and
// loss drop messages without failing the connection (a failed connection
// would trip dragonboat's circuit breaker, which a lost message does
// not).
//
//	connection := magic("rbd1") senderNode(8, big endian) frame*
//	frame      := length(4, big endian) kind(1) payload
//	kind 1: a raftpb.MessageBatch; kind 2: a raftpb.Chunk
//
// Snapshot chunks obey partitions on every chunk and loss on the first
// (a lost first chunk fails the transfer, which dragonboat retries), but
// are not delayed.

var magic = [4]byte{'r', 'b', 'd', '1'}

const (
	kindBatch = 1
	kindChunk = 2
	// maxFrame bounds a received frame; dragonboat's batches and chunks
	// stay well below it (its chunks are 2 MiB).
	maxFrame    = 256 << 20
	dialTimeout = time.Second
	writeTimout = 5 * time.Second
)

var errLost = errors.New("dragonboat: message lost to an injected fault")

// transportFactory makes one NodeHost's transport.
type transportFactory struct {
	id     uint64
	nodeOf map[string]uint64 // address -> node ID, for the links
	ln     net.Listener      // the first incarnation's reserved listener, or nil
	link   *peers.Link
	logger *slog.Logger
}

var _ config.TransportFactory = (*transportFactory)(nil)

func (f *transportFactory) Create(nh config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	return &transport{f: f, addr: nh.RaftAddress, handler: h, chunks: ch, conns: map[net.Conn]struct{}{}}
}

func (f *transportFactory) Validate(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

// transport is one NodeHost's raftio.ITransport.
type transport struct {
	f       *transportFactory
	addr    string
	handler raftio.MessageHandler
	chunks  raftio.ChunkHandler

	ln    net.Listener
	delay *peers.Delayer[delayed]

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // every connection, closed by Close
	closed bool
	wg     sync.WaitGroup
}

var _ raftio.ITransport = (*transport)(nil)

// delayed is one message held by the link, encoded as a frame of its own
// when it was sent (dragonboat may reuse what it handed over), with the
// connection it goes on.
type delayed struct {
	c     *conn
	frame []byte
}

func (t *transport) Name() string { return "raftbench-peers-tcp" }

func (t *transport) Start() error {
	ln := t.f.ln
	t.f.ln = nil
	if ln == nil {
		var err error
		if ln, err = peers.Listen(t.addr); err != nil {
			return err
		}
	}
	t.ln = ln
	t.delay = peers.NewDelayer(t.release)
	t.wg.Add(1)
	go t.accept()
	return nil
}

func (t *transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	var err error
	if t.ln != nil {
		err = t.ln.Close()
	}
	if t.delay != nil {
		t.delay.Close()
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (t *transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *transport) forget(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

func (t *transport) dial(ctx context.Context, target string) (*conn, error) {
	to, ok := t.f.nodeOf[target]
	if !ok {
		return nil, fmt.Errorf("dragonboat: %s is no node of this cluster", target)
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	_ = nc.(*net.TCPConn).SetNoDelay(true)
	var hello [12]byte
	copy(hello[:], magic[:])
	binary.BigEndian.PutUint64(hello[4:], t.f.id)
	if _, err := nc.Write(hello[:]); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("dragonboat: handshake with %s: %w", target, err)
	}
	if !t.track(nc) {
		return nil, net.ErrClosed
	}
	return &conn{t: t, nc: nc, to: to, bw: bufio.NewWriterSize(nc, 256<<10)}, nil
}

func (t *transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	return t.dial(ctx, target)
}

func (t *transport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	return t.dial(ctx, target)
}

// release sends delayed messages whose link is still up.
func (t *transport) release(ds []delayed) {
	for _, d := range ds {
		if t.f.link.Blocked(d.c.to) {
			continue
		}
		_ = d.c.writeFrame(d.frame) // a closed connection loses it, as in flight
	}
}

func (t *transport) accept() {
	defer t.wg.Done()
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			return
		}
		if !t.track(nc) {
			return
		}
		t.wg.Add(1)
		go t.read(nc)
	}
}

// read hands the batches and chunks of one inbound connection to
// dragonboat until it fails.
func (t *transport) read(nc net.Conn) {
	defer t.wg.Done()
	defer func() { _ = nc.Close(); t.forget(nc) }()
	br := bufio.NewReaderSize(nc, 256<<10)
	var hello [12]byte
	if _, err := io.ReadFull(br, hello[:]); err != nil {
		return
	}
	from := binary.BigEndian.Uint64(hello[4:])
	if [4]byte(hello[:4]) != magic {
		t.f.logger.Warn("dragonboat: refusing a connection without the handshake", "remote", nc.RemoteAddr().String())
		return
	}
	var hdr [5]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			t.f.logger.Warn("dragonboat: frame too large; closing", "from", from, "bytes", n)
			return
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		cut := t.f.link.BlockedFrom(from)
		switch hdr[4] {
		case kindBatch:
			var b pb.MessageBatch
			if err := b.Unmarshal(buf); err != nil {
				t.f.logger.Warn("dragonboat: bad batch; closing", "from", from, "err", err)
				return
			}
			if !cut {
				t.handler(b)
			}
		case kindChunk:
			var c pb.Chunk
			if err := c.Unmarshal(buf); err != nil {
				t.f.logger.Warn("dragonboat: bad chunk; closing", "from", from, "err", err)
				return
			}
			if cut || !t.chunks(c) {
				return // the transfer fails; dragonboat retries it
			}
		default:
			t.f.logger.Warn("dragonboat: unknown frame kind; closing", "from", from, "kind", hdr[4])
			return
		}
	}
}

// conn is one outbound connection, for messages or for snapshot chunks.
type conn struct {
	t  *transport
	nc net.Conn
	to uint64

	mu     sync.Mutex // serialises writes: dragonboat's sender and the delayer
	bw     *bufio.Writer
	buf    []byte
	broken error
}

var (
	_ raftio.IConnection         = (*conn)(nil)
	_ raftio.ISnapshotConnection = (*conn)(nil)
)

type marshaler interface {
	Size() int
	MarshalTo([]byte) (int, error)
}

// appendFrame appends m's frame to dst.
func appendFrame(dst []byte, kind byte, m marshaler) ([]byte, error) {
	n := m.Size()
	start := len(dst)
	dst = append(dst, make([]byte, 5+n)...)
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	dst[start+4] = kind
	if _, err := m.MarshalTo(dst[start+5:]); err != nil {
		return dst[:start], fmt.Errorf("dragonboat: encode frame: %w", err)
	}
	return dst, nil
}

func (c *conn) write(kind byte, m marshaler) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := appendFrame(c.buf[:0], kind, m)
	c.buf = b
	if err != nil {
		return err
	}
	return c.writeLocked(b)
}

func (c *conn) writeFrame(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(b)
}

func (c *conn) writeLocked(b []byte) error {
	if c.broken != nil {
		return c.broken
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimout))
	if _, err := c.bw.Write(b); err != nil {
		c.broken = err
		return err
	}
	if err := c.bw.Flush(); err != nil {
		c.broken = err
		return err
	}
	return nil
}

// SendMessageBatch applies the link to each message: lost ones are left
// out, delayed ones held by the delayer, the rest sent now in one frame.
func (c *conn) SendMessageBatch(batch pb.MessageBatch) error {
	now := batch.Requests[:0:0]
	for _, m := range batch.Requests {
		copies, delays := c.t.f.link.Decide(c.to)
		for i := range copies {
			if delays[i] == 0 {
				now = append(now, m)
				continue
			}
			one := pb.MessageBatch{Requests: []pb.Message{m}, DeploymentId: batch.DeploymentId, SourceAddress: batch.SourceAddress, BinVer: batch.BinVer}
			f, err := appendFrame(nil, kindBatch, &one)
			if err != nil {
				return err
			}
			c.t.delay.After(delays[i], delayed{c: c, frame: f})
		}
	}
	if len(now) == 0 {
		return nil
	}
	batch.Requests = now
	return c.write(kindBatch, &batch)
}

// SendChunk sends one snapshot chunk, or fails the transfer when the
// network cuts the link or the first chunk is lost.
func (c *conn) SendChunk(chunk pb.Chunk) error {
	if chunk.ChunkId == 0 && c.t.f.link.Lose(c.to) {
		return errLost
	}
	if c.t.f.link.Blocked(c.to) {
		return errLost
	}
	return c.write(kindChunk, &chunk)
}

func (c *conn) Close() {
	_ = c.nc.Close()
	c.t.forget(c.nc)
}

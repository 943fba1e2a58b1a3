package transport

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
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
)

// Stream is one reliable, ordered byte stream the Engine frames messages
// over: a TCP or TLS connection, or one QUIC stream. It is the seam between
// the shared wire layer and a concrete network (hashicorp/raft calls its
// version StreamLayer).
type Stream interface {
	io.Reader
	io.Writer
	// Close releases the stream and must unblock a Read or Write in
	// progress in another goroutine: that is how the Engine stops readers
	// and writers.
	io.Closer
	SetDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Class is a traffic class. A transport with one stream per peer sends
// every message class on it; one with several keeps latency-critical
// control messages off the stream that carries bulk appends. Snapshots
// never share a stream with messages: each transfer gets its own.
type Class uint8

const (
	// ClassBulk: appends and append responses.
	ClassBulk Class = iota
	// ClassControl: votes, heartbeats, timeout-now (core.MessageType.IsControl).
	ClassControl
	// ClassSnapshot: one snapshot transfer (MsgSnap), on a stream opened
	// for it and closed after it, so a snapshot of any size never sits in
	// front of a heartbeat or an append.
	ClassSnapshot
)

// String names the class for logs.
func (c Class) String() string {
	switch c {
	case ClassControl:
		return "control"
	case ClassSnapshot:
		return "snapshot"
	}
	return "bulk"
}

// Dialer opens outbound streams; the concrete transport implements it.
type Dialer interface {
	// DialStream opens a stream to peer at addr for traffic class c. The
	// Engine performs the handshake on it. ctx bounds the dial. A
	// ClassSnapshot stream must be independent of the message streams (a
	// new TCP connection, a new QUIC stream): the Engine opens one per
	// snapshot transfer and closes it when the transfer ends.
	DialStream(ctx context.Context, peer uint64, addr string, c Class) (Stream, error)
	// Forget is called when peer is removed or re-addressed, so a dialer
	// that shares state between streams (one QUIC connection for both
	// classes) can drop it. A stream that merely failed is only closed: the
	// dialer is expected to notice a dead shared connection by itself on
	// the next DialStream.
	Forget(peer uint64)
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Options
	// Dialer opens outbound streams (required).
	Dialer Dialer
	// SplitClasses gives control traffic its own stream per peer (and its
	// own queue and writer goroutine), so a large append cannot delay a
	// heartbeat. Only worth it where streams do not block each other
	// (QUIC); over one TCP connection it would just add a second socket.
	SplitClasses bool
}

// Write coalescing: a writer appends pending frames into one pooled buffer
// and writes it when it holds flushBytes or the batch ends. One syscall per
// flush moves many small messages; the limit keeps a burst of large
// messages from growing one buffer without bound.
const flushBytes = 512 << 10

// maxDeliverBatch bounds how many messages a reader hands to the Handler
// in one call, so one busy connection still lets the runtime see messages
// promptly.
const maxDeliverBatch = 256

// Engine is the socket-independent half of a transport: per-peer bounded
// queues and writer goroutines (dial, handshake, coalesced writes,
// reconnect with capped exponential backoff), inbound readers (handshake,
// frame decoding, delivery) and counters. The tcp and quic packages supply
// a Dialer and feed accepted streams to Serve; everything else is here,
// once.
//
// Goroutines: one writer per peer and message class and one snapshot
// sender per peer (exit when the peer is removed or the Engine closed),
// one reader per inbound stream, which also receives the snapshot when the
// stream is a snapshot stream (exits when the stream ends or the Engine
// closed). Close waits for all of them.
type Engine struct {
	opts   Options
	dialer Dialer
	split  bool
	log    *slog.Logger

	handler atomic.Pointer[Handler]

	mu      sync.RWMutex
	closed  bool
	peers   map[uint64]*peer
	inbound map[Stream]struct{}
	wg      sync.WaitGroup

	cmu      sync.Mutex
	counters map[uint64]*counters
	rejects  [NumRejectReasons]atomic.Uint64
}

// NewEngine checks cfg (after filling defaults) and returns an idle Engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	cfg.EnsureDefaults()
	err := cfg.Validate()
	if cfg.Dialer == nil {
		err = errors.Join(err, fmt.Errorf("%w: Dialer is nil", ErrInvalidConfig))
	}
	if err != nil {
		return nil, err
	}
	return &Engine{
		opts:     cfg.Options,
		dialer:   cfg.Dialer,
		split:    cfg.SplitClasses,
		log:      cfg.Logger,
		peers:    make(map[uint64]*peer),
		inbound:  make(map[Stream]struct{}),
		counters: make(map[uint64]*counters),
	}, nil
}

// Options returns the options in force (defaults filled in).
func (e *Engine) Options() Options { return e.opts }

// SetHandler installs h; until then received messages are still read but
// dropped, and Unreachable reports are lost. Transports call it from Start,
// before accepting.
func (e *Engine) SetHandler(h Handler) { e.handler.Store(&h) }

func (e *Engine) getHandler() Handler {
	if p := e.handler.Load(); p != nil {
		return *p
	}
	return nil
}

// counters holds one peer's counters; they outlive the peer itself.
type counters struct {
	msgsSent, bytesSent, msgsRecv, bytesRecv atomic.Uint64
	dials, reconnects, dialFailures          atomic.Uint64
	drops                                    [NumDropReasons]atomic.Uint64

	snapSent, snapSendFail, snapSuperseded, snapRecv atomic.Uint64
	snapBytesSent, snapBytesRecv                     atomic.Uint64
	snapRecvFail                                     [NumSnapshotFailReasons]atomic.Uint64
}

func (e *Engine) counter(id uint64) *counters {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	c := e.counters[id]
	if c == nil {
		c = &counters{}
		e.counters[id] = c
	}
	return c
}

// Stats returns a snapshot of all counters.
func (e *Engine) Stats() Stats {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	s := Stats{Peers: make(map[uint64]PeerStats, len(e.counters))}
	for id, c := range e.counters {
		ps := PeerStats{
			MsgsSent:     c.msgsSent.Load(),
			BytesSent:    c.bytesSent.Load(),
			MsgsRecv:     c.msgsRecv.Load(),
			BytesRecv:    c.bytesRecv.Load(),
			Dials:        c.dials.Load(),
			Reconnects:   c.reconnects.Load(),
			DialFailures: c.dialFailures.Load(),
		}
		for i := range c.drops {
			ps.Drops[i] = c.drops[i].Load()
		}
		ps.Snap = SnapshotStats{
			Sent:         c.snapSent.Load(),
			SendFailures: c.snapSendFail.Load(),
			Superseded:   c.snapSuperseded.Load(),
			Recv:         c.snapRecv.Load(),
			BytesSent:    c.snapBytesSent.Load(),
			BytesRecv:    c.snapBytesRecv.Load(),
		}
		for i := range c.snapRecvFail {
			ps.Snap.RecvFailures[i] = c.snapRecvFail[i].Load()
		}
		s.Peers[id] = ps
	}
	for i := range e.rejects {
		s.Rejects[i] = e.rejects[i].Load()
	}
	return s
}

// classOf picks the queue for m.
func (e *Engine) classOf(m *core.Message) Class {
	if e.split && m.Type.IsControl() {
		return ClassControl
	}
	return ClassBulk
}

// Send queues each message on its peer's queue, and hands each MsgSnap to
// the peer's snapshot sender instead; see Transport.Send. It takes only a
// read lock and one short per-queue lock, so it never waits on I/O.
func (e *Engine) Send(msgs []core.Message) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for i := range msgs {
		m := &msgs[i]
		p := e.peers[m.To]
		switch {
		case e.closed:
			e.counter(m.To).drops[DropClosed].Add(1)
		case p == nil:
			e.counter(m.To).drops[DropUnknownPeer].Add(1)
		case m.Type == core.MsgSnap:
			p.snap.offer(m)
		default:
			p.lanes[e.classOf(m)].push(m)
		}
	}
}

// AddPeer starts a queue and writer(s) for id at addr; see
// Transport.AddPeer.
func (e *Engine) AddPeer(id uint64, addr string) error {
	if id == 0 || id == e.opts.ID || addr == "" {
		return fmt.Errorf("%w: id %d addr %q (self is %d)", ErrInvalidPeer, id, addr, e.opts.ID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if old := e.peers[id]; old != nil {
		if old.addr == addr {
			return nil
		}
		old.stop()
		e.dialer.Forget(id)
	}
	p := newPeer(e, id, addr)
	e.peers[id] = p
	for _, l := range p.lanes {
		e.wg.Add(1)
		go l.run()
	}
	e.wg.Add(1)
	go p.snap.run()
	return nil
}

// RemovePeer stops id's writers and drops its queue; see
// Transport.RemovePeer. It does not wait for the writers to exit (Close
// does).
func (e *Engine) RemovePeer(id uint64) {
	e.mu.Lock()
	p := e.peers[id]
	delete(e.peers, id)
	e.mu.Unlock()
	if p != nil {
		p.stop()
		e.dialer.Forget(id)
	}
}

// Close stops every writer and reader and waits for them. Streams handed
// to Serve are closed; the caller closes its own listener first so no new
// stream arrives.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.wg.Wait()
		return
	}
	e.closed = true
	peers := e.peers
	e.peers = map[uint64]*peer{}
	for s := range e.inbound {
		_ = s.Close()
	}
	e.mu.Unlock()
	for id, p := range peers {
		p.stop()
		e.dialer.Forget(id)
	}
	e.wg.Wait()
}

// Serve takes ownership of an accepted stream and runs its reader in a new
// goroutine: handshake, then frames until the stream ends. It returns false
// (and closes s) if the Engine is closed.
func (e *Engine) Serve(s Stream, remote string) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = s.Close()
		return false
	}
	e.inbound[s] = struct{}{}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		e.serve(s, remote)
		e.mu.Lock()
		delete(e.inbound, s)
		e.mu.Unlock()
		_ = s.Close()
	}()
	return true
}

func (e *Engine) isClosed() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.closed
}

func (e *Engine) reject(remote string, err error) {
	r := rejectReason(err)
	e.rejects[r].Add(1)
	e.log.Warn("transport: closing inbound connection", "remote", remote, "reason", r.String(), "err", err)
}

// serve is one inbound stream's reader.
func (e *Engine) serve(s Stream, remote string) {
	br := bufio.NewReaderSize(s, 64<<10)
	_ = s.SetDeadline(time.Now().Add(e.opts.HandshakeTimeout))
	var hb [HelloSize]byte
	if _, err := io.ReadFull(br, hb[:]); err != nil {
		if !e.isClosed() {
			e.reject(remote, fmt.Errorf("%w: reading hello: %w", ErrBadHandshake, err))
		}
		return
	}
	h, err := ParseHello(hb[:])
	if err == nil {
		err = h.Check(e.opts.ClusterID, e.opts.ID, 0)
	}
	if err != nil {
		e.reject(remote, err)
		return
	}
	reply := AppendHello(hb[:0], Hello{Version: ProtocolVersion, ClusterID: e.opts.ClusterID, From: e.opts.ID, To: h.From})
	if _, err := s.Write(reply); err != nil {
		e.log.Info("transport: writing hello reply", "remote", remote, "peer", h.From, "err", err)
		return
	}
	_ = s.SetDeadline(time.Time{})
	c := e.counter(h.From)
	first := true
	var batch []core.Message
	deliver := func() {
		if h := e.getHandler(); h != nil {
			h.Deliver(batch)
		}
		batch = nil
	}
	for {
		if len(batch) > 0 && br.Buffered() == 0 {
			deliver()
		}
		n, err := readUvarint(br)
		if err == nil && n > uint64(e.opts.MaxFrameSize) {
			err = fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, e.opts.MaxFrameSize)
		}
		if err == nil && n == 0 {
			err = fmt.Errorf("%w: empty frame", ErrBadFrame)
		}
		if err != nil {
			e.endRead(remote, h.From, err)
			return
		}
		// Hand over what we have before waiting for the rest of a frame,
		// so a large append does not hold back the messages before it.
		if len(batch) > 0 && br.Buffered() < int(n) {
			deliver()
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			e.endRead(remote, h.From, fmt.Errorf("%w: body of %d bytes: %w", ErrBadFrame, n, err))
			return
		}
		if first && body[0] == recSnapBegin {
			// A snapshot stream: one transfer, then the stream ends.
			e.receiveSnapshot(s, br, remote, h.From, body)
			return
		}
		first = false
		m, err := DecodeMessage(body)
		if err != nil {
			e.endRead(remote, h.From, err)
			return
		}
		c.msgsRecv.Add(1)
		c.bytesRecv.Add(uint64(uvarintLen(n)) + n)
		batch = append(batch, m)
		if len(batch) >= maxDeliverBatch {
			deliver()
		}
	}
}

// endRead classifies why a reader stopped: a clean close (EOF, our own
// Close) is logged quietly; bad input is counted and logged as a warning.
// A frame cut short by the peer closing is counted as a bad frame: the
// sender may have crashed mid-write, which is worth seeing in the counters.
// (A snapshot stream cut inside a record counts instead as an interrupted
// transfer, on purpose: there a cut is what removing a peer or stopping a
// transfer does, and a bad record must mean damaged data.)
func (e *Engine) endRead(remote string, from uint64, err error) {
	switch {
	case e.isClosed(), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrBadFrame):
		e.reject(remote, err)
	default:
		e.log.Debug("transport: inbound connection ended", "remote", remote, "peer", from, "err", err)
	}
}

// peer is one remote node: a lane (queue + writer) per message class, and
// a snapshot sender.
type peer struct {
	e      *Engine
	id     uint64
	addr   string
	c      *counters
	ctx    context.Context // cancelled by stop; bounds dials
	cancel context.CancelFunc
	done   chan struct{} // closed by stop; ends backoff waits
	lanes  []*lane
	snap   *snapSender
}

func newPeer(e *Engine, id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &peer{e: e, id: id, addr: addr, c: e.counter(id), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	n := 1
	if e.split {
		n = 2
	}
	for i := 0; i < n; i++ {
		p.lanes = append(p.lanes, &lane{p: p, class: Class(i), max: e.opts.QueueLen, notify: make(chan struct{}, 1)})
	}
	p.snap = &snapSender{p: p, notify: make(chan struct{}, 1)}
	return p
}

// stop ends the peer's writers: it closes their streams (unblocking a
// write or handshake in progress), cancels dials and a snapshot transfer
// (whose stream closes with its context), and wakes backoff waits.
func (p *peer) stop() {
	p.cancel()
	close(p.done)
	for _, l := range p.lanes {
		l.mu.Lock()
		l.stopped = true
		if l.cur != nil {
			_ = l.cur.Close()
		}
		l.mu.Unlock()
	}
}

// lane is one bounded queue and the writer goroutine that drains it.
type lane struct {
	p      *peer
	class  Class
	max    int
	notify chan struct{} // capacity 1: "the queue is not empty"

	mu      sync.Mutex
	q       []core.Message
	spare   []core.Message // the writer's previous batch, reused to avoid allocation
	stopped bool
	cur     Stream // the open stream, so stop can close it

	// wbuf is the writer's encoding buffer, kept from write to write;
	// only the writer goroutine (run) touches it. A pooled buffer was
	// mostly lost between writes: at 256 clients with the memory WAL its
	// regrowth was 15% of the bytes the process allocated (130k
	// allocations of 6.6 KB on average in 8 s).
	wbuf []byte
}

// maxKeptWriteBuffer is the largest encoding buffer a lane keeps for its
// next write. Data of zeroCopyMin or more is not copied into it, and it is
// written out once it holds flushBytes, but that is checked between
// messages: one append of many small entries (a catch-up, up to the
// node's MaxSizePerMsg) can carry it past this. Such a buffer is let go
// rather than held by every lane, at the price of growing it again for
// the next such append; at a steady load the buffer stays well below.
const maxKeptWriteBuffer = flushBytes + zeroCopyMin

// push queues m, or drops and counts it when the lane is full or stopped.
func (l *lane) push(m *core.Message) {
	l.mu.Lock()
	if l.stopped || len(l.q) >= l.max {
		reason := DropQueueFull
		if l.stopped {
			reason = DropClosed
		}
		l.mu.Unlock()
		l.p.c.drops[reason].Add(1)
		return
	}
	l.q = append(l.q, *m)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// take removes and returns everything queued.
func (l *lane) take() []core.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.q
	l.q = l.spare[:0]
	l.spare = nil
	return b
}

// recycle returns a processed batch's backing array for reuse, cleared so
// it does not keep the messages' data alive.
func (l *lane) recycle(b []core.Message) {
	clear(b)
	l.mu.Lock()
	if l.spare == nil {
		l.spare = b[:0]
	}
	l.mu.Unlock()
}

// setCur publishes the stream so stop can close it; false if already
// stopped (the caller then closes s itself).
func (l *lane) setCur(s Stream) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.cur = s
	return true
}

func (l *lane) drop(reason DropReason, n int) {
	if n > 0 {
		l.p.c.drops[reason].Add(uint64(n))
	}
}

func (l *lane) reportUnreachable() {
	if h := l.p.e.getHandler(); h != nil {
		h.Unreachable(l.p.id)
	}
}

// run is the writer: wait for messages, connect if needed, write them all,
// repeat. Dial failures back off exponentially (BackoffMin doubling up to
// BackoffMax); messages that arrive meanwhile wait in the queue (and are
// dropped by push once it is full), the batch that failed is dropped:
// Raft will resend what still matters.
func (l *lane) run() {
	e, p := l.p.e, l.p
	defer e.wg.Done()
	var s Stream
	defer func() {
		if s != nil {
			_ = s.Close()
		}
		l.drop(DropClosed, len(l.take()))
	}()
	backoff := e.opts.BackoffMin
	failures := 0
	for {
		select {
		case <-l.notify:
		case <-p.done:
			return
		}
		batch := l.take()
		if len(batch) == 0 {
			continue
		}
		if s == nil {
			var err error
			s, err = l.connect()
			if err != nil {
				l.drop(DropUnreachable, len(batch))
				l.recycle(batch)
				if p.ctx.Err() != nil {
					return
				}
				failures++
				p.c.dialFailures.Add(1)
				e.log.Info("transport: dial failed", "peer", p.id, "addr", p.addr, "class", l.class.String(),
					"failures", failures, "retry_in", backoff, "err", err)
				if failures >= e.opts.UnreachableAfter {
					l.reportUnreachable()
				}
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-p.done:
					t.Stop()
					return
				}
				backoff = min(2*backoff, e.opts.BackoffMax)
				continue
			}
			if p.c.dials.Add(1) > 1 {
				p.c.reconnects.Add(1)
			}
			failures, backoff = 0, e.opts.BackoffMin
		}
		if err := l.write(s, batch); err != nil {
			_ = s.Close()
			s = nil
			if p.ctx.Err() == nil {
				e.log.Info("transport: write failed", "peer", p.id, "addr", p.addr, "class", l.class.String(), "err", err)
				l.reportUnreachable()
			}
		}
		l.recycle(batch)
		// Some messages may have come in while we wrote; the notify
		// channel already says so, and the select above picks them up.
	}
}

// connect dials and performs the client side of the handshake.
func (l *lane) connect() (Stream, error) {
	s, err := l.p.dial(l.p.ctx, l.class)
	if err != nil {
		return nil, err
	}
	if !l.setCur(s) {
		_ = s.Close()
		return nil, ErrClosed
	}
	if err := l.p.handshake(s); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// dial opens a stream of class c to the peer, within DialTimeout.
func (p *peer) dial(ctx context.Context, c Class) (Stream, error) {
	e := p.e
	ctx, cancel := context.WithTimeout(ctx, e.opts.DialTimeout)
	s, err := e.dialer.DialStream(ctx, p.id, p.addr, c)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("dial %s (%s): %w", p.addr, c, err)
	}
	return s, nil
}

// handshake performs the client side of the handshake on s; the caller
// closes s if it fails.
func (p *peer) handshake(s Stream) error {
	e := p.e
	_ = s.SetDeadline(time.Now().Add(e.opts.HandshakeTimeout))
	var hb [HelloSize]byte
	if _, err := s.Write(AppendHello(hb[:0], Hello{Version: ProtocolVersion, ClusterID: e.opts.ClusterID, From: e.opts.ID, To: p.id})); err != nil {
		return fmt.Errorf("sending hello to %s: %w", p.addr, err)
	}
	if _, err := io.ReadFull(s, hb[:]); err != nil {
		return fmt.Errorf("%w: reading hello reply from %s (the peer may have refused ours): %w", ErrBadHandshake, p.addr, err)
	}
	h, err := ParseHello(hb[:])
	if err == nil {
		err = h.Check(e.opts.ClusterID, e.opts.ID, p.id)
	}
	if err != nil {
		e.rejects[rejectReason(err)].Add(1)
		return fmt.Errorf("handshake with %s: %w", p.addr, err)
	}
	_ = s.SetDeadline(time.Time{})
	return nil
}

// zeroCopyMin is the data size from which the writer references a
// message's entry (or snapshot) data instead of copying it into the write
// buffer. Below it, copying is cheaper than an extra iovec (and, on TLS or
// QUIC, an extra Write call).
const zeroCopyMin = 64 << 10

// write encodes batch into the lane's buffer and writes it, flushing every
// flushBytes, so a batch of small messages costs one write call. Large data
// is not copied but written from the caller's slices in the same vectored
// write (net.Buffers: one writev on a TCP connection). Messages too large
// for a frame are dropped here, before anything is sent.
func (l *lane) write(s Stream, batch []core.Message) error {
	e, c := l.p.e, l.p.c
	enc := encoder{buf: l.wbuf[:0], zeroCopyMin: zeroCopyMin}
	defer func() {
		enc.reset()
		l.wbuf = enc.buf
		if cap(l.wbuf) > maxKeptWriteBuffer {
			l.wbuf = nil
		}
	}()
	pending := 0
	flush := func() error {
		n := enc.size()
		if n == 0 {
			return nil
		}
		_ = s.SetWriteDeadline(time.Now().Add(e.opts.WriteTimeout))
		var err error
		if len(enc.segs) == 0 {
			_, err = s.Write(enc.buf)
		} else {
			enc.cut()
			bufs := net.Buffers(enc.segs)
			_, err = bufs.WriteTo(s)
		}
		if err != nil {
			return err
		}
		c.msgsSent.Add(uint64(pending))
		c.bytesSent.Add(uint64(n))
		enc.reset()
		pending = 0
		return nil
	}
	for i := range batch {
		m := &batch[i]
		size := MessageSize(m)
		if size > e.opts.MaxFrameSize {
			c.drops[DropTooLarge].Add(1)
			e.log.Warn("transport: message exceeds MaxFrameSize, dropped", "peer", l.p.id, "type", m.Type.String(),
				"size", size, "limit", e.opts.MaxFrameSize)
			continue
		}
		enc.buf = binary.AppendUvarint(enc.buf, uint64(size))
		enc.message(m)
		pending++
		if enc.size() >= flushBytes {
			if err := flush(); err != nil {
				l.drop(DropWriteError, pending+len(batch)-i-1)
				return err
			}
		}
	}
	if err := flush(); err != nil {
		l.drop(DropWriteError, pending)
		return err
	}
	return nil
}

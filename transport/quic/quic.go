// Package quic is the QUIC transport (quic-go, TLS 1.3).
//
// One QUIC connection per peer carries two streams, one per traffic class:
// control (votes, heartbeats, timeout-now; core.MessageType.IsControl) and
// bulk (appends, snapshots). Each stream has its own queue and writer, and
// the control stream is sent at a higher QUIC priority, so a 1 MiB append
// in flight never delays a heartbeat — the head-of-line blocking one TCP
// connection cannot avoid. Ordering holds per peer within a class.
//
// Each stream is framed exactly like a TCP connection (handshake, then
// frames; see package transport), by the same transport.Engine.
//
// A snapshot (MsgSnap) travels in chunks on a third stream, opened on the
// same connection for that one transfer and closed after it, at a lower
// priority than the bulk stream, so neither heartbeats nor appends wait
// behind it.
//
// TLS: with Config.TLS the node's certificate is loaded from files, and
// Mutual makes both sides verify each other. Without it a self-signed
// certificate is generated at start and peers' certificates are not
// verified: traffic is encrypted but nobody is authenticated, and only the
// cluster ID in the handshake keeps strangers out.
//
// One UDP socket serves both accepting and dialling.
package quic

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// alpn is the TLS application protocol QUIC requires both sides to agree on.
const alpn = "raftbench/1"

// Defaults and limits of Config's own fields.
const (
	DefaultIdleTimeout  = 10 * time.Second
	DefaultStreamWindow = 16 << 20
	// MinStreamWindow keeps bulk throughput (StreamWindow/RTT) from being
	// throttled to nothing by a unit typo.
	MinStreamWindow = 64 << 10
)

// Config configures a QUIC transport. Zero fields take defaults
// (EnsureDefaults); Validate then reports every remaining problem.
type Config struct {
	transport.Options
	// ListenAddr is the UDP host:port to listen on (port 0 picks one).
	ListenAddr string
	// TLS loads the certificate from files; nil generates a self-signed
	// one and skips peer verification (see the package comment).
	TLS *transport.TLSFiles
	// IdleTimeout closes a connection that heard nothing from its peer for
	// this long; keep-alives go out at a third of it, so only a dead peer
	// hits it. Zero means DefaultIdleTimeout (10 s).
	IdleTimeout time.Duration
	// StreamWindow is the maximum per-stream receive window in bytes; it
	// caps the bytes in flight on one stream, so it bounds bulk throughput
	// at StreamWindow/RTT. Zero means DefaultStreamWindow (16 MiB); at
	// least MinStreamWindow.
	StreamWindow uint64
	// StatelessResetKey lets a restarted node tell its peers at once that
	// their old connection is gone, instead of them waiting IdleTimeout.
	// For that it must survive restarts, so when nil it is derived from the
	// cluster ID and node ID. That derivation is public: on a hostile
	// network, where someone on the path could forge resets (a denial of
	// service, not a break-in), set a secret key here.
	StatelessResetKey *[32]byte
}

// EnsureDefaults fills zero fields with their defaults, the shared
// Options' included.
func (c *Config) EnsureDefaults() {
	c.Options.EnsureDefaults()
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = DefaultStreamWindow
	}
}

// Validate reports every invalid field, each naming the field, its value
// and the limit, joined into one error wrapping transport.ErrInvalidConfig.
// It does not change c.
func (c *Config) Validate() error {
	errs := []error{c.Options.Validate()}
	if c.ListenAddr == "" {
		errs = append(errs, fmt.Errorf("%w: ListenAddr is empty, must be host:port", transport.ErrInvalidConfig))
	}
	if c.TLS != nil {
		errs = append(errs, c.TLS.Validate())
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: IdleTimeout = %v, must be > 0", transport.ErrInvalidConfig, c.IdleTimeout))
	}
	if c.StreamWindow < MinStreamWindow {
		errs = append(errs, fmt.Errorf("%w: StreamWindow = %d, must be >= %d", transport.ErrInvalidConfig, c.StreamWindow, MinStreamWindow))
	}
	return errors.Join(errs...)
}

// Transport is the QUIC implementation of transport.Transport.
type Transport struct {
	eng  *transport.Engine
	udp  *net.UDPConn
	qt   *quicgo.Transport
	ln   *quicgo.Listener
	qcfg *quicgo.Config
	cli  *tls.Config

	ctx    context.Context // cancelled by Close; ends accept loops
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops

	mu      sync.Mutex
	closed  bool
	conns   map[*quicgo.Conn]struct{} // every live connection, both directions
	outPeer map[uint64]*outConn

	started   atomic.Bool
	closeOnce sync.Once
}

var _ transport.Transport = (*Transport)(nil)

// outConn is the shared outbound connection to one peer. Its mutex
// serialises dialling so both streams of a peer share one connection.
type outConn struct {
	mu   sync.Mutex
	conn *quicgo.Conn
}

// New fills cfg's defaults, validates it, prepares TLS and binds the UDP
// socket.
func New(cfg Config) (*Transport, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var srvTLS, cliTLS *tls.Config
	if cfg.TLS != nil {
		var err error
		if srvTLS, cliTLS, err = cfg.TLS.Load([]string{alpn}); err != nil {
			return nil, fmt.Errorf("quic: %w", err)
		}
	} else {
		cert, err := transport.SelfSignedCert("localhost", "127.0.0.1")
		if err != nil {
			return nil, fmt.Errorf("quic: %w", err)
		}
		srvTLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}}
		cliTLS = &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{alpn}, InsecureSkipVerify: true}
	}
	key := cfg.StatelessResetKey
	if key == nil {
		k := deriveResetKey(cfg.ClusterID, cfg.ID)
		key = &k
	}
	t := &Transport{
		cli:     cliTLS,
		conns:   make(map[*quicgo.Conn]struct{}),
		outPeer: make(map[uint64]*outConn),
		qcfg: &quicgo.Config{
			HandshakeIdleTimeout:       cfg.DialTimeout,
			MaxIdleTimeout:             cfg.IdleTimeout,
			KeepAlivePeriod:            cfg.IdleTimeout / 3,
			MaxStreamReceiveWindow:     cfg.StreamWindow,
			MaxConnectionReceiveWindow: 2 * cfg.StreamWindow,
		},
	}
	eng, err := transport.NewEngine(transport.EngineConfig{Options: cfg.Options, Dialer: (*dialer)(t), SplitClasses: true})
	if err != nil {
		return nil, err
	}
	t.eng = eng
	uaddr, err := net.ResolveUDPAddr("udp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("quic: resolve %s: %w", cfg.ListenAddr, err)
	}
	if t.udp, err = net.ListenUDP("udp", uaddr); err != nil {
		return nil, fmt.Errorf("quic: listen on %s: %w", cfg.ListenAddr, err)
	}
	sk := quicgo.StatelessResetKey(*key)
	t.qt = &quicgo.Transport{Conn: t.udp, StatelessResetKey: &sk}
	if t.ln, err = t.qt.Listen(srvTLS, t.qcfg); err != nil {
		_ = t.qt.Close()
		_ = t.udp.Close()
		return nil, fmt.Errorf("quic: listen: %w", err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// deriveResetKey makes the default stateless-reset key; see
// Config.StatelessResetKey for why it is deterministic.
func deriveResetKey(cluster, id uint64) [32]byte {
	b := []byte("raftbench quic stateless reset\x00")
	b = binary.BigEndian.AppendUint64(b, cluster)
	b = binary.BigEndian.AppendUint64(b, id)
	return sha256.Sum256(b)
}

// Start installs h and starts accepting connections.
func (t *Transport) Start(h transport.Handler) error {
	if !t.started.CompareAndSwap(false, true) {
		return transport.ErrStarted
	}
	t.eng.SetHandler(h)
	t.wg.Add(1)
	go t.accept()
	return nil
}

// track registers a connection so Close can close it; false if closed.
func (t *Transport) track(c *quicgo.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c *quicgo.Conn) {
	t.mu.Lock()
	delete(t.conns, c) // a no-op once Close has taken the map
	t.mu.Unlock()
}

func (t *Transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept(t.ctx)
		if err != nil {
			return // listener closed or ctx cancelled: we are closing
		}
		if !t.track(c) {
			_ = c.CloseWithError(0, "closing")
			return
		}
		t.wg.Add(1)
		go t.acceptStreams(c)
	}
}

// acceptStreams hands each stream the peer opens to the engine.
func (t *Transport) acceptStreams(c *quicgo.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	remote := c.RemoteAddr().String()
	for {
		s, err := c.AcceptStream(t.ctx)
		if err != nil {
			return
		}
		if !t.eng.Serve(stream{s}, remote) {
			return
		}
	}
}

// Send implements transport.Transport.
func (t *Transport) Send(msgs []core.Message) { t.eng.Send(msgs) }

// AddPeer implements transport.Transport.
func (t *Transport) AddPeer(id uint64, addr string) error { return t.eng.AddPeer(id, addr) }

// RemovePeer implements transport.Transport.
func (t *Transport) RemovePeer(id uint64) { t.eng.RemovePeer(id) }

// Addr implements transport.Transport.
func (t *Transport) Addr() string { return t.udp.LocalAddr().String() }

// Stats implements transport.Transport.
func (t *Transport) Stats() transport.Stats { return t.eng.Stats() }

// MaxFrameSize implements transport.Transport: Options.MaxFrameSize with
// defaults applied.
func (t *Transport) MaxFrameSize() int { return t.eng.Options().MaxFrameSize }

// Close implements transport.Transport. Connections are closed with a
// CONNECTION_CLOSE so peers notice at once, then the UDP socket.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		// Take the connection list first: cancelling ctx makes the
		// goroutines that watch each connection untrack it.
		t.mu.Lock()
		t.closed = true
		conns := t.conns
		t.conns = nil
		t.mu.Unlock()
		t.cancel()
		_ = t.ln.Close()
		t.eng.Close()
		for c := range conns {
			_ = c.CloseWithError(0, "closing")
		}
		t.wg.Wait()
		_ = t.qt.Close()
		_ = t.udp.Close()
	})
	return nil
}

// dialer is the Transport seen as a transport.Dialer.
type dialer Transport

// DialStream opens a stream for class c on the peer's connection, dialling
// that connection first if there is none or it died.
func (d *dialer) DialStream(ctx context.Context, peer uint64, addr string, c transport.Class) (transport.Stream, error) {
	t := (*Transport)(d)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, transport.ErrClosed
	}
	oc := t.outPeer[peer]
	if oc == nil {
		oc = &outConn{}
		t.outPeer[peer] = oc
	}
	t.mu.Unlock()

	oc.mu.Lock()
	conn := oc.conn
	if conn == nil || conn.Context().Err() != nil {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			oc.mu.Unlock()
			return nil, err
		}
		conn, err = t.qt.Dial(ctx, ua, transport.ClientConfig(t.cli, addr), t.qcfg)
		if err != nil {
			oc.mu.Unlock()
			return nil, err
		}
		if !t.track(conn) {
			oc.mu.Unlock()
			_ = conn.CloseWithError(0, "closing")
			return nil, transport.ErrClosed
		}
		oc.conn = conn
		// Untrack once it dies, so the map does not grow with every
		// reconnect.
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			select {
			case <-conn.Context().Done():
			case <-t.ctx.Done():
			}
			t.untrack(conn)
		}()
	}
	oc.mu.Unlock()
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	switch c {
	case transport.ClassControl:
		s.SetPriority(0, false) // ahead of bulk's default urgency 3
	case transport.ClassSnapshot:
		// Behind bulk: appends and their responses to this peer keep
		// flowing while a snapshot streams.
		s.SetPriority(5, false)
	}
	return stream{s}, nil
}

// Forget closes the peer's connection (removed or re-addressed peer).
func (d *dialer) Forget(peer uint64) {
	t := (*Transport)(d)
	t.mu.Lock()
	oc := t.outPeer[peer]
	delete(t.outPeer, peer)
	t.mu.Unlock()
	if oc == nil {
		return
	}
	oc.mu.Lock()
	if oc.conn != nil {
		_ = oc.conn.CloseWithError(0, "peer removed")
		oc.conn = nil
	}
	oc.mu.Unlock()
}

// stream adapts a quic-go stream to transport.Stream. Close aborts both
// directions: the engine closes a stream only to stop using it (or to
// unblock a Write), never to deliver what is still buffered.
type stream struct{ *quicgo.Stream }

func (s stream) Close() error {
	s.CancelWrite(0)
	s.CancelRead(0)
	return nil
}

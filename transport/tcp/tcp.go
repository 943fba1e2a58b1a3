// Package tcp is the TCP transport: one outbound connection per peer,
// optionally TLS (and mutual TLS) from certificate files.
//
// Each peer has a bounded queue drained by one writer goroutine, which
// encodes everything pending into one pooled buffer and writes it with one
// call (so a Ready's worth of messages costs one syscall), reconnecting
// with capped exponential backoff. Every accepted connection gets a reader
// goroutine. TCP_NODELAY is set on every connection: the writer already
// coalesces, so Nagle would only add latency to heartbeats and votes.
//
// Framing, handshake, queues and counters are shared with the QUIC
// transport through transport.Engine; see package transport for the wire
// format. One TCP connection carries both control and bulk traffic, so a
// large append can delay a heartbeat behind it (use QUIC to avoid that).
//
// A snapshot (MsgSnap) never travels on that connection: each transfer
// opens a TCP connection of its own (with its own handshake, and TLS when
// configured), streams the snapshot in chunks and closes it, so however
// large the snapshot, heartbeats and appends on the main connection do not
// queue behind it. A new connection per transfer costs one round trip (and
// a TLS handshake), nothing next to a snapshot's size, and keeps a broken
// transfer from leaving a half-read connection behind.
package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// DefaultKeepAlive is Config.KeepAlive's default.
const DefaultKeepAlive = 15 * time.Second

// Config configures a TCP transport. Zero fields take defaults
// (EnsureDefaults); Validate then reports every remaining problem.
type Config struct {
	transport.Options
	// ListenAddr is the host:port to listen on; port 0 picks a free port
	// (see Transport.Addr).
	ListenAddr string
	// TLS, when set, wraps every connection in TLS 1.3 using these files.
	TLS *transport.TLSFiles
	// KeepAlive is the TCP keep-alive period; it is what eventually notices
	// a peer that vanished without closing. Zero means DefaultKeepAlive
	// (15 s); negative disables keep-alives.
	KeepAlive time.Duration
}

// EnsureDefaults fills zero fields with their defaults, the shared
// Options' included.
func (c *Config) EnsureDefaults() {
	c.Options.EnsureDefaults()
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
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
	return errors.Join(errs...)
}

// Transport is the TCP implementation of transport.Transport.
type Transport struct {
	eng       *transport.Engine
	ln        net.Listener
	serverTLS *tls.Config
	d         dialer

	started    atomic.Bool
	closeOnce  sync.Once
	acceptDone chan struct{}
}

var _ transport.Transport = (*Transport)(nil)

// New fills cfg's defaults, validates it and binds the listener; call
// Start to accept.
func New(cfg Config) (*Transport, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{acceptDone: make(chan struct{})}
	t.d.net = net.Dialer{KeepAlive: cfg.KeepAlive}
	if cfg.TLS != nil {
		srv, cli, err := cfg.TLS.Load(nil)
		if err != nil {
			return nil, fmt.Errorf("tcp: %w", err)
		}
		t.serverTLS, t.d.tls = srv, cli
	}
	eng, err := transport.NewEngine(transport.EngineConfig{Options: cfg.Options, Dialer: &t.d})
	if err != nil {
		return nil, err
	}
	t.eng = eng
	lc := net.ListenConfig{KeepAlive: cfg.KeepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen on %s: %w", cfg.ListenAddr, err)
	}
	t.ln = ln
	return t, nil
}

// Start installs h and starts accepting connections.
func (t *Transport) Start(h transport.Handler) error {
	if !t.started.CompareAndSwap(false, true) {
		return transport.ErrStarted
	}
	t.eng.SetHandler(h)
	go t.accept()
	return nil
}

func (t *Transport) accept() {
	defer close(t.acceptDone)
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little and retry
			// rather than spin or give up.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.eng.Options().Logger.Warn("tcp: accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		setNoDelay(c)
		var s net.Conn = c
		if t.serverTLS != nil {
			// The TLS handshake runs on the first Read, inside the
			// engine's handshake deadline.
			s = tls.Server(c, t.serverTLS)
		}
		t.eng.Serve(s, c.RemoteAddr().String())
	}
}

func setNoDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

// Send implements transport.Transport.
func (t *Transport) Send(msgs []core.Message) { t.eng.Send(msgs) }

// AddPeer implements transport.Transport.
func (t *Transport) AddPeer(id uint64, addr string) error { return t.eng.AddPeer(id, addr) }

// RemovePeer implements transport.Transport.
func (t *Transport) RemovePeer(id uint64) { t.eng.RemovePeer(id) }

// Addr implements transport.Transport.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Stats implements transport.Transport.
func (t *Transport) Stats() transport.Stats { return t.eng.Stats() }

// MaxFrameSize implements transport.Transport: Options.MaxFrameSize with
// defaults applied.
func (t *Transport) MaxFrameSize() int { return t.eng.Options().MaxFrameSize }

// Close implements transport.Transport: listener first (no new inbound),
// then every peer and reader.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		err = t.ln.Close()
		if t.started.Load() {
			<-t.acceptDone
		}
		t.eng.Close()
	})
	return err
}

// dialer opens one TCP (or TLS) connection per stream.
type dialer struct {
	net net.Dialer
	tls *tls.Config // client template; nil for plain TCP
}

// DialStream implements transport.Dialer.
func (d *dialer) DialStream(ctx context.Context, _ uint64, addr string, _ transport.Class) (transport.Stream, error) {
	c, err := d.net.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	setNoDelay(c)
	if d.tls == nil {
		return c, nil
	}
	tc := tls.Client(c, transport.ClientConfig(d.tls, addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// Forget implements transport.Dialer; TCP keeps no state between streams.
func (d *dialer) Forget(uint64) {}

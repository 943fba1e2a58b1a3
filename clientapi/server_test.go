package clientapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/clientapi/wire"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// funcBackend answers with functions.
type funcBackend struct {
	propose func(ctx context.Context, cmd []byte) (any, error)
	read    func(ctx context.Context, q []byte) (any, error)
}

func (b funcBackend) Propose(ctx context.Context, cmd []byte) (any, error) {
	return b.propose(ctx, cmd)
}
func (b funcBackend) Read(ctx context.Context, q []byte) (any, error) { return b.read(ctx, q) }

// echo answers every request with a kv.Result whose Value is the payload.
var echo = funcBackend{
	propose: func(_ context.Context, cmd []byte) (any, error) {
		return kv.Result{Status: kv.StatusOK, Found: true, Value: append([]byte(nil), cmd...)}, nil
	},
	read: func(_ context.Context, q []byte) (any, error) {
		return kv.Result{Status: kv.StatusOK, Value: append([]byte("read:"), q...)}, nil
	},
}

// serve starts a server on loopback; it is closed when the test ends.
func serve(t testing.TB, cfg ServerConfig) (*Server, string) {
	t.Helper()
	if cfg.NodeID == 0 {
		cfg.NodeID = 1
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

func endpoint(t testing.TB, id uint64, addr string, o Options) *Endpoint {
	t.Helper()
	ep, err := NewEndpoint(id, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	return ep
}

func TestRoundTrip(t *testing.T) {
	_, addr := serve(t, ServerConfig{ClusterID: 5, Backend: echo, ClientAddrs: func() map[uint64]string {
		return map[uint64]string{1: "a:1", 2: "b:2"}
	}})
	ep := endpoint(t, 1, addr, Options{ClusterID: 5})
	ctx := context.Background()
	v, err := ep.Propose(ctx, []byte("cmd"))
	if r, ok := v.(kv.Result); err != nil || !ok || string(r.Value) != "cmd" || !r.Found || r.Status != kv.StatusOK {
		t.Fatalf("Propose = %#v, %v", v, err)
	}
	v, err = ep.Read(ctx, []byte("q"))
	if r, ok := v.(kv.Result); err != nil || !ok || string(r.Value) != "read:q" {
		t.Fatalf("Read = %#v, %v", v, err)
	}
	m, err := ep.Members(ctx)
	if err != nil || len(m) != 2 || m[2] != "b:2" {
		t.Fatalf("Members = %v, %v", m, err)
	}
	m, err = Discover(ctx, addr, Options{ClusterID: 5})
	if err != nil || m[1] != "a:1" {
		t.Fatalf("Discover = %v, %v", m, err)
	}
}

// TestPipelined: many requests in flight on one connection, answered out
// of order (later requests first), each get their own answer.
func TestPipelined(t *testing.T) {
	const n = 200
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	backend := funcBackend{propose: func(ctx context.Context, cmd []byte) (any, error) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		// Nobody is answered before every request has arrived: they
		// are all in flight at once on the one connection.
		select {
		case <-all:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		i := binary.BigEndian.Uint32(cmd)
		time.Sleep(time.Duration(n-i) * 20 * time.Microsecond) // later ones answer first
		return kv.Result{Status: kv.StatusOK, Value: cmd}, nil
	}}
	srv, addr := serve(t, ServerConfig{Backend: backend})
	ep := endpoint(t, 1, addr, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := binary.BigEndian.AppendUint32(nil, uint32(i))
			v, err := ep.Propose(ctx, cmd)
			if err != nil {
				errs <- err
				return
			}
			if got := v.(kv.Result).Value; string(got) != string(cmd) {
				errs <- fmt.Errorf("request %d got the answer %x", i, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := srv.Stats(); st.Accepted != 1 || st.Proposes != n {
		t.Errorf("stats %+v: want one connection carrying %d proposals", st, n)
	}
}

func TestErrorsCrossTheWire(t *testing.T) {
	fail := func(err error) funcBackend {
		f := func(context.Context, []byte) (any, error) { return nil, err }
		return funcBackend{propose: f, read: f}
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{&node.NotLeaderError{Leader: 2}, node.ErrNotLeader},
		{node.ErrStopped, node.ErrStopped},
		{fmt.Errorf("%w: ctx", node.ErrTimeout), node.ErrTimeout},
		{node.ErrLeadershipLost, node.ErrLeadershipLost},
		{fmt.Errorf("%w: 9 bytes", node.ErrProposalTooLarge), node.ErrProposalTooLarge},
		{fmt.Errorf("kv: read: %w", kv.ErrBadEncoding), kv.ErrBadEncoding},
		{errors.New("disk on fire"), ErrRemote},
	} {
		_, addr := serve(t, ServerConfig{Backend: fail(tc.err), ClientAddrs: func() map[uint64]string { return map[uint64]string{2: "leader:7100"} }})
		ep := endpoint(t, 1, addr, Options{})
		_, err := ep.Propose(context.Background(), []byte("x"))
		if !errors.Is(err, tc.want) {
			t.Errorf("backend error %v arrived as %v, want %v", tc.err, err, tc.want)
		}
		if errors.Is(err, kv.ErrNotSent) {
			t.Errorf("%v wraps ErrNotSent, but the request was sent", err)
		}
	}
	_, addr := serve(t, ServerConfig{Backend: fail(&node.NotLeaderError{Leader: 2}),
		ClientAddrs: func() map[uint64]string { return map[uint64]string{2: "leader:7100"} }})
	_, err := endpoint(t, 1, addr, Options{}).Propose(context.Background(), nil)
	var nle *node.NotLeaderError
	var rd *Redirect
	if !errors.As(err, &nle) || nle.Leader != 2 || !errors.As(err, &rd) || rd.Addr != "leader:7100" {
		t.Errorf("redirect = %v, want leader 2 at leader:7100", err)
	}
	_, addr = serve(t, ServerConfig{Backend: fail(errors.New("no such key space"))})
	if _, err := endpoint(t, 1, addr, Options{}).Read(context.Background(), nil); !errors.Is(err, ErrStateMachine) || !strings.Contains(err.Error(), "no such key space") {
		t.Errorf("a read's state-machine error = %v", err)
	}
}

// TestTimeoutReachesTheNode: the node's context ends when the client's
// does.
func TestTimeoutReachesTheNode(t *testing.T) {
	got := make(chan time.Duration, 1)
	_, addr := serve(t, ServerConfig{Backend: funcBackend{propose: func(ctx context.Context, _ []byte) (any, error) {
		dl, _ := ctx.Deadline()
		got <- time.Until(dl)
		<-ctx.Done()
		return nil, fmt.Errorf("%w: %w", node.ErrTimeout, ctx.Err())
	}}})
	ep := endpoint(t, 1, addr, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := ep.Propose(ctx, nil)
	if !errors.Is(err, node.ErrTimeout) {
		t.Errorf("Propose = %v, want ErrTimeout", err)
	}
	if d := <-got; d <= 0 || d > 300*time.Millisecond {
		t.Errorf("the node's deadline was %v away, want within the client's 300ms", d)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	srv, addr := serve(t, ServerConfig{ClusterID: 1, NodeID: 3, Backend: echo})
	ctx := context.Background()
	err := endpoint(t, 3, addr, Options{ClusterID: 2}).Connect(ctx)
	if !errors.Is(err, ErrWrongCluster) || !errors.Is(err, kv.ErrNotSent) || !strings.Contains(err.Error(), "cluster 0x1, this client to 0x2") {
		t.Errorf("another cluster's client: %v", err)
	}
	err = endpoint(t, 2, addr, Options{ClusterID: 1}).Connect(ctx)
	if !errors.Is(err, ErrWrongNode) || !strings.Contains(err.Error(), "serves node 3") {
		t.Errorf("wrong node: %v", err)
	}
	if _, err := endpoint(t, 3, addr, Options{ClusterID: 1}).Propose(ctx, nil); err != nil {
		t.Errorf("the right client: %v", err)
	}
	// Not a client at all: the server closes without a welcome.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(nc); len(b) != 0 {
		t.Errorf("a non-client got %q back", b)
	}
	// The server refused two (the other cluster's client and the
	// stranger); the client refused the wrong node itself. The counter is
	// bumped just after the refusal is written.
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Refused < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := srv.Stats(); st.Refused != 2 {
		t.Errorf("Refused = %d, want 2", st.Refused)
	}
	// A dead address: not sent, unreachable.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	if _, err := endpoint(t, 1, dead, Options{}).Propose(ctx, nil); !errors.Is(err, ErrUnreachable) || !errors.Is(err, kv.ErrNotSent) {
		t.Errorf("dead address: %v", err)
	}
}

// rawConn is a client connection below Endpoint, for sending garbage.
func rawConn(t *testing.T, addr string, clusterID uint64) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(wire.AppendHello(nil, clusterID)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	if w, err := wire.ReadWelcome(br); err != nil || w.Status != wire.StatusOK {
		t.Fatalf("welcome %+v, %v", w, err)
	}
	return nc, br
}

// TestBadFrames: a bad or oversized frame gets a goaway naming the problem
// and the connection closes; the server goes on serving others.
func TestBadFrames(t *testing.T) {
	srv, addr := serve(t, ServerConfig{Backend: echo, MaxFrameSize: 4096})
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"unknown kind", wire.AppendRequest(nil, &wire.Request{Kind: 255, ID: 1}), "request kind 255 unknown"},
		{"garbage", []byte{3, 0xff, 0xff, 0xff}, "truncated varint request id"},
		{"oversized", binary.AppendUvarint(nil, 1<<20), "frame too large: 1048576 bytes announced, limit 4096"},
		{"id zero", wire.AppendRequest(nil, &wire.Request{Kind: wire.KindPropose}), "request id 0"},
		{"trailing", func() []byte {
			f := wire.AppendRequest(nil, &wire.Request{Kind: wire.KindRead, ID: 1, Payload: []byte("q")})
			f[0]++
			return append(f, 0)
		}(), "1 trailing bytes"},
		{"empty", []byte{0}, "empty frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawConn(t, addr, 0)
			if _, err := nc.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			body, err := wire.ReadFrame(br, 1<<20)
			if err != nil {
				t.Fatalf("no goaway: %v", err)
			}
			r, err := wire.DecodeResponse(body)
			if err != nil || r.Kind != wire.RespGoAway || !strings.Contains(r.Msg, tc.want) {
				t.Fatalf("answer %+v (%v), want a goaway with %q", r, err, tc.want)
			}
			if _, err := wire.ReadFrame(br, 1<<20); !errors.Is(err, io.EOF) {
				t.Errorf("after the goaway: %v, want the connection closed", err)
			}
		})
	}
	if st := srv.Stats(); st.BadFrames != 6 {
		t.Errorf("BadFrames = %d, want 6", st.BadFrames)
	}
	if _, err := endpoint(t, 1, addr, Options{}).Propose(context.Background(), []byte("still here")); err != nil {
		t.Errorf("server stopped serving: %v", err)
	}
	// The client refuses, without sending, a command larger than the
	// server's frames.
	_, err := endpoint(t, 1, addr, Options{}).Propose(context.Background(), make([]byte, 5000))
	if !errors.Is(err, node.ErrProposalTooLarge) || !errors.Is(err, kv.ErrNotSent) || !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized command: %v", err)
	}
}

// TestBadResponses: a server that answers garbage breaks the client's
// connection with a clear error; nothing panics.
func TestBadResponses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		hello := make([]byte, wire.HelloSize)
		_, _ = io.ReadFull(nc, hello)
		_, _ = nc.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.StatusOK, NodeID: 1, MaxFrame: 1 << 20}))
		_, _ = wire.ReadFrame(bufio.NewReader(nc), 1<<20)
		_, _ = nc.Write([]byte{4, 9, 9, 9, 9}) // response kind 9
		<-hold                                 // keep the connection open: the client must close it
	}()
	_, err = endpoint(t, 1, ln.Addr().String(), Options{}).Propose(context.Background(), nil)
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), "response kind 9 unknown") {
		t.Errorf("garbage answer: %v", err)
	}
}

// TestReconnect: the endpoint dials again after its server went away, and
// Shutdown answers what is in progress before saying goodbye.
func TestReconnect(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	backend := funcBackend{propose: func(_ context.Context, cmd []byte) (any, error) {
		if string(cmd) == "slow" {
			started <- struct{}{}
			<-release
		}
		return kv.Result{Status: kv.StatusOK, Value: cmd}, nil
	}}
	s1, err := NewServer(ServerConfig{NodeID: 1, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() { _ = s1.Serve(ln) }()
	ep := endpoint(t, 1, addr, Options{RedialBackoff: time.Millisecond})
	ctx := context.Background()
	slow := make(chan error, 1)
	go func() {
		v, err := ep.Propose(ctx, []byte("slow"))
		if err == nil && string(v.(kv.Result).Value) != "slow" {
			err = fmt.Errorf("slow got %v", v)
		}
		slow <- err
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s1.Shutdown(ctx) }()
	// Shutdown closes the listener before it drains the connections.
	for {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		nc.Close()
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("the request in progress at Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// The server is gone: calls fail as unreachable (never sent).
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := ep.Propose(ctx, []byte("x"))
		if errors.Is(err, ErrUnreachable) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Shutdown: %v, want unreachable", err)
		}
		time.Sleep(time.Millisecond)
	}
	_, addr2 := serveOn(t, addr, backend)
	if addr2 != addr {
		t.Fatalf("new server on %s, want %s", addr2, addr)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		v, err := ep.Propose(ctx, []byte("again"))
		if err == nil {
			if string(v.(kv.Result).Value) != "again" {
				t.Fatalf("got %v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func serveOn(t *testing.T, addr string, b Backend) (*Server, string) {
	t.Helper()
	s, err := NewServer(ServerConfig{NodeID: 1, Backend: b, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String()
}

// point is a user's result type for BinaryResults.
type point struct{ X, Y int32 }

func (p point) MarshalBinary() ([]byte, error) {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(p.X)), uint32(p.Y)), nil
}

func (p *point) UnmarshalBinary(b []byte) error {
	if len(b) != 8 {
		return fmt.Errorf("point: %d bytes", len(b))
	}
	p.X, p.Y = int32(binary.BigEndian.Uint32(b)), int32(binary.BigEndian.Uint32(b[4:]))
	return nil
}

func TestBinaryResults(t *testing.T) {
	codec := BinaryResults[point, *point]{}
	_, addr := serve(t, ServerConfig{Results: codec, Backend: funcBackend{propose: func(_ context.Context, cmd []byte) (any, error) {
		if len(cmd) == 0 {
			return nil, nil // a state machine may answer nothing
		}
		if cmd[0] == 'k' {
			return kv.Result{}, nil // the wrong type: does not encode
		}
		return point{int32(cmd[0]), -7}, nil
	}}})
	ep := endpoint(t, 1, addr, Options{Results: codec})
	v, err := ep.Propose(context.Background(), []byte{3})
	if err != nil || v != (point{3, -7}) {
		t.Errorf("Propose = %#v, %v", v, err)
	}
	if v, err := ep.Propose(context.Background(), nil); v != nil || err != nil {
		t.Errorf("a nil result arrived as %#v, %v", v, err)
	}
	if _, err := ep.Propose(context.Background(), []byte("k")); !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "does not encode") {
		t.Errorf("unencodable result: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := NewServer(ServerConfig{MaxInflight: -1, MaxFrameSize: 10})
	for _, want := range []string{"NodeID is 0", "Backend is nil", "MaxFrameSize 10", "MaxInflight -1"} {
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("NewServer error %v lacks %q", err, want)
		}
	}
	if _, err := NewEndpoint(1, "", Options{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewEndpoint without an address: %v", err)
	}
	if _, err := NewEndpoint(1, "x:1", Options{MaxFrameSize: 3}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewEndpoint with a tiny frame: %v", err)
	}
}

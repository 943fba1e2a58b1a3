package tcp_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const cluster = 7

func startNode(t *testing.T, id uint64, mod func(*tcp.Config)) (*tcp.Transport, *transporttest.Recorder) {
	t.Helper()
	cfg := testConfig(transporttest.Options{ID: id, ClusterID: cluster, MaxFrameSize: 4096})
	cfg.HandshakeTimeout = 300 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	tr, err := tcp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := transporttest.NewRecorder()
	if err := tr.Start(rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr, rec
}

func hello(cluster, from, to uint64, version uint16) []byte {
	return transport.AppendHello(nil, transport.Hello{Version: version, ClusterID: cluster, From: from, To: to})
}

// Each kind of bad input closes only its own connection, with the right
// counter, while a well-behaved peer keeps talking to the same node.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	b, brec := startNode(t, 2, nil)
	a, _ := startNode(t, 1, nil)
	if err := a.AddPeer(2, b.Addr()); err != nil {
		t.Fatal(err)
	}
	good := hello(cluster, 9, 2, transport.ProtocolVersion)
	frame := func(body []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(body))), body...) }
	cases := []struct {
		name  string
		input []byte
		want  transport.RejectReason
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), transport.RejectHandshake},
		{"other cluster", hello(cluster+1, 9, 2, transport.ProtocolVersion), transport.RejectCluster},
		{"other version", hello(cluster, 9, 2, transport.ProtocolVersion+1), transport.RejectVersion},
		{"wrong node", hello(cluster, 9, 3, transport.ProtocolVersion), transport.RejectWrongNode},
		{"silent client", nil, transport.RejectHandshake},
		{"frame over the limit", append(good, binary.AppendUvarint(nil, 4097)...), transport.RejectFrameTooLarge},
		{"garbled frame", append(good, frame([]byte{200, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0})...), transport.RejectBadFrame},
		{"truncated frame", append(good, 50, 1, 0, 1), transport.RejectBadFrame},
	}
	seq := uint64(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := b.Stats().Rejects
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(c.input); err != nil {
				t.Fatal(err)
			}
			if c.name == "truncated frame" {
				_ = conn.(*net.TCPConn).CloseWrite() // the peer "crashes" mid-frame
			}
			// The node must close the connection: reading ends (after the
			// hello reply, if the handshake was good) within the deadline.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("connection not closed by the node")
				}
			}
			transporttest.Eventually(t, 10*time.Second, "reject counter", func() bool {
				return b.Stats().Rejects[c.want] == before[c.want]+1
			})
			if got, want := b.Stats().Rejects.Total(), before.Total()+1; got != want {
				t.Errorf("rejects total %d, want %d: %v", got, want, b.Stats().Rejects)
			}
			// Nothing else affected: a's messages still arrive.
			seq++
			s := seq
			a.Send([]core.Message{transporttest.Heartbeat(1, 2, s)})
			brec.WaitFor(t, 10*time.Second, "good peer still delivered", func() bool {
				return brec.Count(func(m *core.Message) bool { return m.Context == s }) == 1
			})
		})
	}
	if n := brec.Count(func(m *core.Message) bool { return m.From != 1 }); n != 0 {
		t.Errorf("%d messages delivered from bad connections", n)
	}
}

// A peer that completes the handshake and then never reads: its queue
// fills and drops, the stuck write times out and is reported, and another
// peer of the same node is unaffected.
func TestPeerThatNeverReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			var hb [transport.HelloSize]byte
			if _, err := io.ReadFull(c, hb[:]); err == nil {
				_, _ = c.Write(hello(cluster, 3, 1, transport.ProtocolVersion))
			}
			accepted <- c // keep it open, never read again
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	a, arec := startNode(t, 1, func(c *tcp.Config) {
		c.QueueLen = 16
		c.WriteTimeout = 200 * time.Millisecond
		c.MaxFrameSize = 1 << 20
	})
	c, crec := startNode(t, 2, nil)
	if err := a.AddPeer(3, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := a.AddPeer(2, c.Addr()); err != nil {
		t.Fatal(err)
	}
	i := uint64(0)
	arec.WaitFor(t, 10*time.Second, "queue-full drops and an Unreachable for the stuck peer", func() bool {
		for k := 0; k < 16; k++ {
			a.Send([]core.Message{transporttest.App(1, 3, i, 1, 256<<10)})
			i++
		}
		s := a.Stats().Peers[3]
		return s.Drops[transport.DropQueueFull] > 0 && arec.UnreachableCount(3) > 0
	})
	if d := a.Stats().Peers[3].Drops[transport.DropWriteError]; d == 0 {
		t.Errorf("the timed-out write dropped nothing")
	}
	a.Send([]core.Message{transporttest.Heartbeat(1, 2, 1)})
	crec.WaitFor(t, 10*time.Second, "the healthy peer still gets messages", func() bool { return crec.Count(nil) == 1 })
}

// A TLS client without the cluster's certificate is refused by a
// mutual-TLS node.
func TestMutualTLSRefusesStrangers(t *testing.T) {
	files := transporttest.WriteCerts(t)
	b, brec := startNode(t, 2, func(c *tcp.Config) { c.TLS = &files })
	other := transporttest.WriteCerts(t) // a different CA
	a, arec := startNode(t, 1, func(c *tcp.Config) { c.TLS = &other })
	if err := a.AddPeer(2, b.Addr()); err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	arec.WaitFor(t, 10*time.Second, "Unreachable from failed TLS dials", func() bool {
		a.Send([]core.Message{transporttest.Heartbeat(1, 2, seq)})
		seq++
		return arec.UnreachableCount(2) > 0
	})
	if n := brec.Count(nil); n != 0 {
		t.Errorf("%d messages accepted from a stranger", n)
	}
}

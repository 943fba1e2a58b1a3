package transport_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/transport/transporttest"
)

// Loopback throughput, reported not asserted:
//
//	go test -run '^$' -bench BenchmarkLoopback -benchtime 2s ./transport/
//
// Each transport moves MsgApp messages from one endpoint to another over
// 127.0.0.1, next to a raw TCP stream that writes the same frames with no
// transport at all (the ceiling). The sender keeps a bounded window of
// messages in flight, as Raft's pipelining does, so nothing is dropped;
// MB/s counts frame bytes.

type payload struct {
	name   string
	msg    core.Message
	window int
}

func payloads() []payload {
	return []payload{
		{"small-64x128B", transporttest.App(1, 2, 1, 64, 128), 256},
		{"1MiB", transporttest.App(1, 2, 1, 1, 1<<20), 16},
	}
}

func benchOptions(id uint64) transport.Options {
	return transport.Options{ID: id, MaxFrameSize: 4 << 20, QueueLen: 1024}
}

type maker func(b *testing.B, id uint64) transport.Transport

func BenchmarkLoopback(b *testing.B) {
	files := transporttest.WriteCerts(b)
	makers := []struct {
		name string
		mk   maker
	}{
		{"tcp", func(b *testing.B, id uint64) transport.Transport {
			t, err := tcp.New(tcp.Config{Options: benchOptions(id), ListenAddr: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
		{"tcp-tls", func(b *testing.B, id uint64) transport.Transport {
			t, err := tcp.New(tcp.Config{Options: benchOptions(id), ListenAddr: "127.0.0.1:0", TLS: &files})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
		{"quic", func(b *testing.B, id uint64) transport.Transport {
			t, err := quic.New(quic.Config{Options: benchOptions(id), ListenAddr: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
	}
	for _, p := range payloads() {
		b.Run("raw-tcp/"+p.name, func(b *testing.B) { benchRaw(b, p, false) })
		b.Run("raw-tcp-owned/"+p.name, func(b *testing.B) { benchRaw(b, p, true) })
		for _, m := range makers {
			b.Run(m.name+"/"+p.name, func(b *testing.B) { benchTransport(b, m.mk, p) })
		}
	}
}

func benchTransport(b *testing.B, mk maker, p payload) {
	src, dst := mk(b, 1), mk(b, 2)
	defer src.Close()
	defer dst.Close()
	var got atomic.Int64
	poke := make(chan struct{}, 1)
	if err := dst.Start(transport.HandlerFuncs{OnDeliver: func(msgs []core.Message) {
		got.Add(int64(len(msgs)))
		select {
		case poke <- struct{}{}:
		default:
		}
	}}); err != nil {
		b.Fatal(err)
	}
	if err := src.Start(transport.HandlerFuncs{}); err != nil {
		b.Fatal(err)
	}
	if err := src.AddPeer(2, dst.Addr()); err != nil {
		b.Fatal(err)
	}
	waitUntil := func(n int64) {
		for got.Load() < n {
			select {
			case <-poke:
			case <-time.After(10 * time.Second):
				b.Fatalf("stalled at %d of %d messages; stats %+v", got.Load(), n, src.Stats().Peers[2])
			}
		}
	}
	// Warm up: connect and let buffers and windows grow.
	for i := 0; i < p.window; i++ {
		src.Send([]core.Message{p.msg})
	}
	waitUntil(int64(p.window))
	base := int64(p.window)

	b.SetBytes(int64(transport.FrameSize(&p.msg)))
	b.ResetTimer()
	start := time.Now()
	batch := []core.Message{p.msg}
	for i := 0; i < b.N; i++ {
		waitUntil(base + int64(i) - int64(p.window) + 1)
		src.Send(batch)
	}
	waitUntil(base + int64(b.N))
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	if d := src.Stats().Drops().Total(); d != 0 {
		b.Fatalf("%d messages dropped: %v", d, src.Stats().Drops())
	}
}

// benchRaw is the ceiling: the same frames written back to back on one
// TCP connection and read into a reused buffer. With owned, the reader
// instead reads each frame into a new buffer of its own, as a transport
// must when it hands received data to Raft to keep: the difference between
// the two is the garbage collector's share, which the raw stream never pays.
func benchRaw(b *testing.B, p payload, owned bool) {
	frame := transport.AppendFrame(nil, &p.msg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		if !owned {
			_, err = io.Copy(io.Discard, c) // reads in 32 KiB chunks until EOF
			done <- err
			return
		}
		for {
			buf := make([]byte, len(frame))
			if _, err := io.ReadFull(c, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// snapReporter is a sender-side handler that passes snapshot outcomes on.
type snapReporter struct {
	transport.HandlerFuncs
	status chan bool
}

func (r snapReporter) SnapshotStatus(_ uint64, ok bool) { r.status <- ok }

// Snapshot streaming throughput, reported not asserted:
//
//	go test -run '^$' -bench BenchmarkSnapshot -benchtime 5x ./transport/
//
// One 64 MiB MsgSnap per iteration, from Send to the sender's
// SnapshotStatus(true): chunking, the checksum on both sides, reassembly
// and the ack round trip are all inside. MB/s counts snapshot data.
func BenchmarkSnapshot(b *testing.B) {
	const size = 64 << 20
	for _, m := range []struct {
		name string
		mk   maker
	}{
		{"tcp", func(b *testing.B, id uint64) transport.Transport {
			t, err := tcp.New(tcp.Config{Options: benchOptions(id), ListenAddr: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
		{"quic", func(b *testing.B, id uint64) transport.Transport {
			t, err := quic.New(quic.Config{Options: benchOptions(id), ListenAddr: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
	} {
		b.Run(m.name+"/64MiB", func(b *testing.B) {
			src, dst := m.mk(b, 1), m.mk(b, 2)
			defer src.Close()
			defer dst.Close()
			var got atomic.Int64
			if err := dst.Start(transport.HandlerFuncs{OnDeliver: func(msgs []core.Message) {
				for i := range msgs {
					if msgs[i].Snapshot != nil {
						got.Add(int64(len(msgs[i].Snapshot.Data)))
					}
				}
			}}); err != nil {
				b.Fatal(err)
			}
			rep := snapReporter{status: make(chan bool, 1)}
			if err := src.Start(rep); err != nil {
				b.Fatal(err)
			}
			if err := src.AddPeer(2, dst.Addr()); err != nil {
				b.Fatal(err)
			}
			snap := transporttest.Snap(1, 2, 1, size)
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				src.Send([]core.Message{snap})
				select {
				case ok := <-rep.status:
					if !ok {
						b.Fatal("snapshot transfer failed")
					}
				case <-time.After(time.Minute):
					b.Fatal("no SnapshotStatus within a minute")
				}
			}
			b.StopTimer()
			if got.Load() != int64(b.N)*size {
				b.Fatalf("delivered %d bytes, want %d", got.Load(), int64(b.N)*size)
			}
		})
	}
}

package transporttest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// wait is the deadline for conditions that should hold within
// milliseconds on loopback; generous because -race on two busy cores is
// slow, and a deadline, not a sleep, so it costs nothing when things work.
const wait = 15 * time.Second

// node is a started transport with its recorder.
type node struct {
	tr  transport.Transport
	rec *Recorder
	o   Options
}

func start(t *testing.T, f Factory, o Options, rec *Recorder) *node {
	t.Helper()
	if rec == nil {
		rec = NewRecorder()
	}
	tr := f(t, o)
	if err := tr.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return &node{tr: tr, rec: rec, o: o}
}

func connect(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := a.tr.AddPeer(b.o.ID, b.tr.Addr()); err != nil {
					t.Fatalf("AddPeer(%d): %v", b.o.ID, err)
				}
			}
		}
	}
}

// establish makes sure every link between nodes is connected before a test
// relies on one burst of messages arriving: a batch sent while a dial fails
// (say, a handshake timing out on a loaded machine) is dropped by design,
// and Raft would simply send again. So does this: heartbeats go out on every
// link until each has delivered one.
func establish(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, b := range nodes {
		for _, a := range nodes {
			if a == b {
				continue
			}
			from := a.o.ID
			heard := func(m *core.Message) bool { return m.Type == core.MsgHeartbeat && m.From == from }
			b.rec.WaitFor(t, wait, fmt.Sprintf("link %d->%d", from, b.o.ID), func() bool {
				if b.rec.Count(heard) > 0 {
					return true
				}
				sendNoBlock(t, a.tr, Heartbeat(from, b.o.ID, 0))
				return false
			})
		}
	}
}

// closeWithin closes tr and fails if that takes longer than d.
func closeWithin(t *testing.T, tr transport.Transport, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tr.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("Close did not return within %v", d)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// sendNoBlock calls Send and fails if it does not return promptly: Send
// must never wait on the network.
func sendNoBlock(t *testing.T, tr transport.Transport, msgs ...core.Message) {
	t.Helper()
	done := make(chan struct{})
	go func() { tr.Send(msgs); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("Send blocked for %v", wait)
	}
}

// Run runs the conformance suite against f. Each subtest checks that the
// transports it started leave no goroutine behind once closed.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"DeliveryAndOrder", testDeliveryAndOrder},
		{"LargeMessages", testLargeMessages},
		{"ManyPeers", testManyPeers},
		{"PeerRestart", testPeerRestart},
		{"RemovePeer", testRemovePeer},
		{"CloseWithPending", testCloseWithPending},
		{"SlowReceiver", testSlowReceiver},
		{"ClusterMismatch", testClusterMismatch},
		{"API", testAPI},
		{"SnapshotLarge", testSnapshotLarge},
		{"SnapshotBesideMessages", testSnapshotBesideMessages},
		{"SnapshotInterrupted", testSnapshotInterrupted},
		{"SnapshotRefused", testSnapshotRefused},
		{"SnapshotSuperseded", testSnapshotSuperseded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			tc.fn(t, f)
		})
	}
}

// Messages arrive complete and in order per peer and class; counters on
// both sides agree.
func testDeliveryAndOrder(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1, QueueLen: 8192}, nil)
	b := start(t, f, Options{ID: 2, QueueLen: 8192}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)

	const n = 3000
	var sent []core.Message
	for i := 0; i < n; {
		// Batches of varying size, apps and heartbeats interleaved, as a
		// Ready would produce them.
		var batch []core.Message
		for k := 0; k < 1+i%37 && i < n; k++ {
			if i%5 == 0 {
				batch = append(batch, Heartbeat(1, 2, uint64(i)))
			} else {
				batch = append(batch, App(1, 2, uint64(i), i%4, 16+i%300))
			}
			i++
		}
		sent = append(sent, batch...)
		sendNoBlock(t, a.tr, batch...)
	}
	b.rec.WaitFor(t, wait, "all messages delivered", func() bool { return b.rec.Count(nil) >= n })

	got := b.rec.Msgs()
	if len(got) != n {
		t.Fatalf("delivered %d messages, sent %d", len(got), n)
	}
	// Order per class: filter both sides by class and compare in order.
	for _, control := range []bool{false, true} {
		var want, have []core.Message
		for i := range sent {
			if sent[i].Type.IsControl() == control {
				want = append(want, sent[i])
			}
		}
		for i := range got {
			if got[i].Type.IsControl() == control {
				have = append(have, got[i])
			}
		}
		if len(want) != len(have) {
			t.Fatalf("control=%v: %d delivered, %d sent", control, len(have), len(want))
		}
		for i := range want {
			if ok, diff := EqualMessages(&want[i], &have[i]); !ok {
				t.Fatalf("control=%v message %d: %s", control, i, diff)
			}
		}
	}
	as, bs := a.tr.Stats(), b.tr.Stats()
	Eventually(t, wait, "sender counters", func() bool { return a.tr.Stats().Peers[2].MsgsSent == n })
	as = a.tr.Stats()
	if got := bs.Peers[1].MsgsRecv; got != n {
		t.Errorf("receiver counts %d messages from 1, want %d", got, n)
	}
	if as.Peers[2].BytesSent != bs.Peers[1].BytesRecv || as.Peers[2].BytesSent == 0 {
		t.Errorf("bytes sent %d != bytes received %d", as.Peers[2].BytesSent, bs.Peers[1].BytesRecv)
	}
	if d := as.Drops().Total(); d != 0 {
		t.Errorf("drops on an idle loopback: %v", as.Drops())
	}
	if as.Peers[2].Dials == 0 || as.Rejects.Total()+bs.Rejects.Total() != 0 {
		t.Errorf("dials %d, rejects %v / %v", as.Peers[2].Dials, as.Rejects, bs.Rejects)
	}
}

// A message exactly at the frame limit goes through intact; one byte more
// is dropped and counted before it leaves, and the connection stays usable.
// MaxFrameSize reports that limit.
func testLargeMessages(t *testing.T, f Factory) {
	const limit = 1 << 20
	a := start(t, f, Options{ID: 1, MaxFrameSize: limit}, nil)
	b := start(t, f, Options{ID: 2, MaxFrameSize: limit}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)
	if got := a.tr.MaxFrameSize(); got != limit {
		t.Fatalf("MaxFrameSize() = %d, want the configured %d that Send enforces", got, limit)
	}

	exact := App(1, 2, 7, 1, limit)
	exact.Entries[0].Data = exact.Entries[0].Data[:limit-(transport.MessageSize(&exact)-limit)]
	if s := transport.MessageSize(&exact); s != limit {
		t.Fatalf("test bug: built %d bytes, want %d", s, limit)
	}
	over := App(1, 2, 8, 1, len(exact.Entries[0].Data)+1)
	if transport.MessageSize(&over) != limit+1 {
		t.Fatalf("test bug: over is %d bytes", transport.MessageSize(&over))
	}
	after := Heartbeat(1, 2, 99)
	after.Type = core.MsgAppResp // same class as the appends, so order is defined
	sendNoBlock(t, a.tr, exact, over, after)
	b.rec.WaitFor(t, wait, "large message and the one after it", func() bool { return b.rec.Count(nil) >= 2 })
	got := b.rec.Msgs()
	if len(got) != 2 {
		t.Fatalf("delivered %d messages, want 2 (the oversized one must be dropped)", len(got))
	}
	if ok, diff := EqualMessages(&exact, &got[0]); !ok {
		t.Fatalf("large message corrupted: %s", diff)
	}
	if got[1].Context != 99 {
		t.Fatalf("second delivered message is %+v, want the marker", got[1])
	}
	if d := a.tr.Stats().Peers[2].Drops[transport.DropTooLarge]; d != 1 {
		t.Errorf("DropTooLarge = %d, want 1", d)
	}
	if r := b.tr.Stats().Rejects.Total(); r != 0 {
		t.Errorf("receiver rejected connections: %v", b.tr.Stats().Rejects)
	}
}

// Six nodes, all to all, each with its own ordered stream of appends.
func testManyPeers(t *testing.T, f Factory) {
	const nodes, per = 6, 40
	var ns []*node
	for i := 1; i <= nodes; i++ {
		ns = append(ns, start(t, f, Options{ID: uint64(i)}, nil))
	}
	defer func() {
		for _, n := range ns {
			closeWithin(t, n.tr, wait)
		}
	}()
	connect(t, ns...)
	establish(t, ns...)
	isApp := func(m *core.Message) bool { return m.Type == core.MsgApp }
	for k := 0; k < per; k++ {
		for _, from := range ns {
			var batch []core.Message
			for _, to := range ns {
				if to != from {
					batch = append(batch, App(from.o.ID, to.o.ID, uint64(k), 1, 64))
				}
			}
			sendNoBlock(t, from.tr, batch...)
		}
	}
	for _, n := range ns {
		n.rec.WaitFor(t, wait, "all-to-all delivery", func() bool { return n.rec.Count(isApp) >= (nodes-1)*per })
		next := map[uint64]uint64{}
		for _, m := range n.rec.Msgs() {
			if m.Type != core.MsgApp {
				continue
			}
			if m.To != n.o.ID || m.Index != next[m.From] {
				t.Fatalf("node %d got %d->%d index %d, want index %d", n.o.ID, m.From, m.To, m.Index, next[m.From])
			}
			next[m.From]++
		}
		if len(next) != nodes-1 {
			t.Fatalf("node %d heard from %d peers, want %d", n.o.ID, len(next), nodes-1)
		}
	}
}

// A peer that goes away is reported unreachable; once it is back on the
// same address, messages flow again over a new connection.
func testPeerRestart(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1}, nil)
	defer closeWithin(t, a.tr, wait)
	b := start(t, f, Options{ID: 2}, nil)
	connect(t, a, b)
	addr := b.tr.Addr()

	sendNoBlock(t, a.tr, Heartbeat(1, 2, 1))
	b.rec.WaitFor(t, wait, "first message", func() bool { return b.rec.Count(nil) == 1 })
	closeWithin(t, b.tr, wait)

	// Keep sending, as Raft would, until the transport gives up on b.
	seq := uint64(2)
	a.rec.WaitFor(t, wait, "Unreachable(2)", func() bool {
		sendNoBlock(t, a.tr, Heartbeat(1, 2, seq))
		seq++
		return a.rec.UnreachableCount(2) > 0
	})

	b2 := start(t, f, Options{ID: 2, Addr: addr}, nil)
	defer closeWithin(t, b2.tr, wait)
	b2.rec.WaitFor(t, wait, "delivery after restart", func() bool {
		sendNoBlock(t, a.tr, Heartbeat(1, 2, seq))
		seq++
		return b2.rec.Count(nil) > 0
	})
	s := a.tr.Stats().Peers[2]
	if s.Reconnects == 0 {
		t.Errorf("after a restart: reconnects = 0")
	}
	// The outage shows as failed dials or as a broken connection (or both,
	// depending on timing).
	if s.DialFailures+s.Drops[transport.DropWriteError]+s.Drops[transport.DropUnreachable] == 0 {
		t.Errorf("outage left no trace in the counters: %+v", s)
	}
}

// A removed peer gets nothing (drops are counted as unknown peer); adding
// it back restores delivery.
func testRemovePeer(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1}, nil)
	b := start(t, f, Options{ID: 2}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)
	sendNoBlock(t, a.tr, Heartbeat(1, 2, 1))
	b.rec.WaitFor(t, wait, "first message", func() bool { return b.rec.Count(nil) == 1 })

	a.tr.RemovePeer(2)
	a.tr.RemovePeer(2) // idempotent
	sendNoBlock(t, a.tr, Heartbeat(1, 2, 2), Heartbeat(1, 2, 3), Heartbeat(1, 3, 4))
	st := a.tr.Stats()
	if d := st.Peers[2].Drops[transport.DropUnknownPeer]; d != 2 {
		t.Errorf("drops to removed peer = %d, want 2", d)
	}
	if d := st.Peers[3].Drops[transport.DropUnknownPeer]; d != 1 {
		t.Errorf("drops to never-added peer = %d, want 1", d)
	}

	if err := a.tr.AddPeer(2, b.tr.Addr()); err != nil {
		t.Fatal(err)
	}
	sendNoBlock(t, a.tr, Heartbeat(1, 2, 5))
	b.rec.WaitFor(t, wait, "delivery after re-adding", func() bool { return b.rec.Count(nil) == 2 })
	if got := b.rec.Msgs()[1].Context; got != 5 {
		t.Errorf("after re-adding got message %d, want 5 (2 and 3 were sent while removed)", got)
	}
}

// Close returns promptly with messages queued to a stuck receiver and to a
// peer that cannot be reached, and leaves no goroutine.
func testCloseWithPending(t *testing.T, f Factory) {
	stuck := NewRecorder()
	stuck.Block = make(chan struct{})
	a := start(t, f, Options{ID: 1, QueueLen: 4096}, nil)
	b := start(t, f, Options{ID: 2}, stuck)
	defer closeWithin(t, b.tr, wait)
	defer close(stuck.Block) // release b's reader so b can close
	gone := start(t, f, Options{ID: 3}, nil)
	goneAddr := gone.tr.Addr()
	closeWithin(t, gone.tr, wait)
	connect(t, a, b)
	if err := a.tr.AddPeer(3, goneAddr); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		sendNoBlock(t, a.tr, App(1, 2, uint64(i), 4, 32<<10), App(1, 3, uint64(i), 1, 16))
	}
	stuck.WaitFor(t, wait, "the stuck receiver got something", func() bool { return stuck.Count(nil) > 0 })
	closeWithin(t, a.tr, 5*time.Second)
	sendNoBlock(t, a.tr, Heartbeat(1, 2, 1)) // after Close: dropped, not a panic
	if d := a.tr.Stats().Peers[2].Drops[transport.DropClosed]; d == 0 {
		t.Errorf("no DropClosed counted for messages sent after Close")
	}
	if err := a.tr.AddPeer(4, "127.0.0.1:1"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("AddPeer after Close = %v, want ErrClosed", err)
	}
}

// A receiver whose handler is stuck throttles only its own link: Send keeps
// returning, the excess is dropped as queue-full, other peers are
// unaffected, and the slow peer recovers once it reads again.
func testSlowReceiver(t *testing.T, f Factory) {
	slow := NewRecorder()
	slow.Block = make(chan struct{})
	a := start(t, f, Options{ID: 1, QueueLen: 32}, nil)
	b := start(t, f, Options{ID: 2}, slow)
	c := start(t, f, Options{ID: 3}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	defer closeWithin(t, c.tr, wait)
	connect(t, a, b, c)

	// Fill every buffer between a and the stuck handler (queue, socket
	// buffers, stream windows) until a starts dropping.
	i := uint64(0)
	Eventually(t, wait, "queue-full drops towards the slow peer", func() bool {
		for k := 0; k < 32; k++ {
			sendNoBlock(t, a.tr, App(1, 2, i, 4, 64<<10))
			i++
		}
		return a.tr.Stats().Peers[2].Drops[transport.DropQueueFull] > 0
	})
	sendNoBlock(t, a.tr, Heartbeat(1, 3, 1))
	c.rec.WaitFor(t, wait, "delivery to the healthy peer while another is stuck", func() bool { return c.rec.Count(nil) == 1 })

	close(slow.Block) // a closed channel never blocks Deliver again
	const marker = 1 << 40
	slow.WaitFor(t, wait, "the slow peer recovers", func() bool {
		sendNoBlock(t, a.tr, Heartbeat(1, 2, marker))
		return slow.Count(func(m *core.Message) bool { return m.Context == marker }) > 0
	})
}

// Nodes of different clusters refuse each other at the handshake: nothing
// is delivered, both sides count it, the dialler reports Unreachable.
func testClusterMismatch(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1, ClusterID: 10}, nil)
	b := start(t, f, Options{ID: 2, ClusterID: 20}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)
	seq := uint64(0)
	a.rec.WaitFor(t, wait, "Unreachable after refused handshakes", func() bool {
		sendNoBlock(t, a.tr, Heartbeat(1, 2, seq))
		seq++
		return a.rec.UnreachableCount(2) > 0
	})
	Eventually(t, wait, "receiver counts the cluster mismatch", func() bool {
		return b.tr.Stats().Rejects[transport.RejectCluster] > 0
	})
	if n := b.rec.Count(nil); n != 0 {
		t.Errorf("%d messages delivered across clusters", n)
	}
	if d := a.tr.Stats().Peers[2].Drops[transport.DropUnreachable]; d == 0 {
		t.Errorf("no DropUnreachable counted")
	}
}

// API edge cases: a second Start, bad peers.
func testAPI(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1}, nil)
	defer closeWithin(t, a.tr, wait)
	if err := a.tr.Start(NewRecorder()); !errors.Is(err, transport.ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	for _, bad := range []struct {
		id   uint64
		addr string
	}{{0, "127.0.0.1:1"}, {1, "127.0.0.1:1"}, {2, ""}} {
		if err := a.tr.AddPeer(bad.id, bad.addr); !errors.Is(err, transport.ErrInvalidPeer) {
			t.Errorf("AddPeer(%d, %q) = %v, want ErrInvalidPeer", bad.id, bad.addr, err)
		}
	}
	if a.tr.Addr() == "" {
		t.Errorf("Addr is empty")
	}
	if got := a.tr.MaxFrameSize(); got != transport.DefaultMaxFrameSize {
		t.Errorf("MaxFrameSize() = %d without a configured limit, want the default %d", got, transport.DefaultMaxFrameSize)
	}
}

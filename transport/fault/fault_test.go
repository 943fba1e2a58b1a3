package fault_test

import (
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/fault"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is an in-memory inner transport that records what it is asked to
// send, so the wrapper's decisions can be counted exactly.
type fake struct {
	mu   sync.Mutex
	sent []core.Message
	h    transport.Handler
}

func (f *fake) Start(h transport.Handler) error { f.h = h; return nil }
func (f *fake) Send(msgs []core.Message) {
	f.mu.Lock()
	f.sent = append(f.sent, msgs...)
	f.mu.Unlock()
}
func (f *fake) AddPeer(uint64, string) error { return nil }
func (f *fake) RemovePeer(uint64)            {}
func (f *fake) Addr() string                 { return "fake" }
func (f *fake) MaxFrameSize() int            { return 12345 }
func (f *fake) Stats() transport.Stats       { return transport.Stats{} }
func (f *fake) Close() error                 { return nil }
func (f *fake) Sent() []core.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]core.Message(nil), f.sent...)
}

func wrap(t *testing.T, id uint64, seed uint64, net *fault.Network, r fault.Rules) (*fault.Transport, *fake) {
	t.Helper()
	in := &fake{}
	w, err := fault.Wrap(in, fault.Config{ID: id, Seed: seed, Network: net, Rules: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w, in
}

func seq(from, to uint64, n int) []core.Message {
	msgs := make([]core.Message, n)
	for i := range msgs {
		msgs[i] = transporttest.Heartbeat(from, to, uint64(i))
	}
	return msgs
}

// within checks that got/n is within tol of want.
func within(t *testing.T, what string, got, n int, want, tol float64) {
	t.Helper()
	if r := float64(got) / float64(n); math.Abs(r-want) > tol {
		t.Errorf("%s: rate %.4f (%d of %d), want %.2f ± %.2f", what, r, got, n, want, tol)
	}
}

// With n = 20000 the standard deviation of a rate p is at most 0.0036, so
// a tolerance of 0.02 is more than 5 sigma: a failure means the rule is
// wrong, not unlucky (and with a fixed seed the outcome never varies).
const n = 20000

func TestDropRate(t *testing.T) {
	w, in := wrap(t, 1, 42, nil, fault.Rules{DropRate: 0.3})
	w.Send(seq(1, 2, n))
	sent := in.Sent()
	within(t, "drop", n-len(sent), n, 0.3, 0.02)
	c := w.Counters()
	if int(c.Dropped)+len(sent) != n {
		t.Errorf("dropped %d + sent %d != %d", c.Dropped, len(sent), n)
	}
	if d := w.Stats().Peers[2].Drops[transport.DropFault]; d != c.Dropped {
		t.Errorf("Stats DropFault %d != Counters.Dropped %d", d, c.Dropped)
	}
	// Survivors keep their order.
	for i := 1; i < len(sent); i++ {
		if sent[i].Context <= sent[i-1].Context {
			t.Fatalf("order broken at %d", i)
		}
	}
}

func TestSameSeedSameDecisions(t *testing.T) {
	run := func(seed uint64) []uint64 {
		w, in := wrap(t, 1, seed, nil, fault.Rules{DropRate: 0.5, DuplicateRate: 0.1})
		w.Send(seq(1, 2, 1000))
		var ctx []uint64
		for _, m := range in.Sent() {
			ctx = append(ctx, m.Context)
		}
		return ctx
	}
	a, b, c := run(7), run(7), run(8)
	if len(a) != len(b) {
		t.Fatalf("same seed, different outcomes: %d vs %d messages", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different outcome at %d", i)
		}
	}
	if len(a) == len(c) {
		same := true
		for i := range a {
			same = same && a[i] == c[i]
		}
		if same {
			t.Errorf("different seeds gave identical decisions")
		}
	}
}

func TestDuplicateRate(t *testing.T) {
	w, in := wrap(t, 1, 43, nil, fault.Rules{DuplicateRate: 0.2})
	w.Send(seq(1, 2, n))
	sent := in.Sent()
	within(t, "duplicate", len(sent)-n, n, 0.2, 0.02)
	if int(w.Counters().Duplicated) != len(sent)-n {
		t.Errorf("Duplicated = %d, extra copies = %d", w.Counters().Duplicated, len(sent)-n)
	}
	seen := map[uint64]int{}
	for _, m := range sent {
		seen[m.Context]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages arrived, want all %d", len(seen), n)
	}
	for c, k := range seen {
		if k > 2 {
			t.Fatalf("message %d sent %d times", c, k)
		}
	}
}

func TestReorder(t *testing.T) {
	const m = 2000
	w, in := wrap(t, 1, 44, nil, fault.Rules{ReorderRate: 0.1, ReorderWindow: 5 * time.Millisecond})
	w.Send(seq(1, 2, m))
	transporttest.Eventually(t, 10*time.Second, "held-back messages released", func() bool { return len(in.Sent()) == m })
	within(t, "reorder", int(w.Counters().Reordered), m, 0.1, 0.03)
	inversions := 0
	sent := in.Sent()
	for i := 1; i < len(sent); i++ {
		if sent[i].Context < sent[i-1].Context {
			inversions++
		}
	}
	if inversions == 0 {
		t.Errorf("no message overtaken")
	}
}

func TestDelay(t *testing.T) {
	const d = 30 * time.Millisecond
	w, in := wrap(t, 1, 45, nil, fault.Rules{Delay: d, Jitter: 10 * time.Millisecond})
	start := time.Now()
	w.Send(seq(1, 2, 100))
	if len(in.Sent()) != 0 {
		t.Fatalf("delayed messages went out at once")
	}
	transporttest.Eventually(t, 10*time.Second, "delayed messages", func() bool { return len(in.Sent()) == 100 })
	if el := time.Since(start); el < d {
		t.Errorf("messages arrived after %v, before the %v delay", el, d)
	}
	if c := w.Counters().Delayed; c != 100 {
		t.Errorf("Delayed = %d, want 100", c)
	}
	// Changing the rules at run time takes effect for the next Send.
	if err := w.SetRules(fault.Rules{}); err != nil {
		t.Fatal(err)
	}
	w.Send(seq(1, 2, 1))
	if len(in.Sent()) != 101 {
		t.Errorf("after clearing the rules a message was still delayed")
	}
}

func TestPartitions(t *testing.T) {
	net := fault.NewNetwork()
	w1, in1 := wrap(t, 1, 1, net, fault.Rules{})
	rec := transporttest.NewRecorder()
	if err := w1.Start(rec); err != nil {
		t.Fatal(err)
	}
	// send 1->2 and 1->3 and report how many left; deliver 2->1 and 3->1
	// through the receive filter and report how many got through.
	probe := func() (to2, to3, from2, from3 int) {
		before := len(in1.Sent())
		w1.Send([]core.Message{transporttest.Heartbeat(1, 2, 0)})
		to2 = len(in1.Sent()) - before
		before = len(in1.Sent())
		w1.Send([]core.Message{transporttest.Heartbeat(1, 3, 0)})
		to3 = len(in1.Sent()) - before
		c := rec.Count(nil)
		in1.h.Deliver([]core.Message{transporttest.Heartbeat(2, 1, 0)})
		from2 = rec.Count(nil) - c
		c = rec.Count(nil)
		in1.h.Deliver([]core.Message{transporttest.Heartbeat(3, 1, 0)})
		from3 = rec.Count(nil) - c
		return
	}
	check := func(what string, want [4]int) {
		t.Helper()
		a, b, c, d := probe()
		if got := [4]int{a, b, c, d}; got != want {
			t.Errorf("%s: 1->2, 1->3, 2->1, 3->1 passed %v, want %v", what, got, want)
		}
	}
	check("healthy", [4]int{1, 1, 1, 1})
	net.Isolate(1)
	check("1 isolated", [4]int{0, 0, 0, 0})
	net.Heal()
	check("healed", [4]int{1, 1, 1, 1})
	net.Split([]uint64{1, 2}, []uint64{3})
	check("split {1,2} {3}", [4]int{1, 0, 1, 0})
	net.Heal()
	net.Cut(1, 2)
	check("one-way cut 1->2", [4]int{0, 1, 1, 1})
	net.Cut(3, 1)
	check("and 3->1", [4]int{0, 1, 1, 0})
	net.Heal()
	check("healed again", [4]int{1, 1, 1, 1})
	c := w1.Counters()
	// Blocked sends: 2 isolated + 1 split + 1 cut + 1 cut = 5; blocked
	// receives: 2 isolated + 1 split + 1 cut = 4. Peer 2's share: 3 sends
	// (isolated, cut, cut) and 1 receive (isolated).
	if c.PartitionedSend != 5 || c.PartitionedRecv != 4 {
		t.Errorf("partition counters send %d recv %d, want 5 and 4", c.PartitionedSend, c.PartitionedRecv)
	}
	if d := w1.Stats().Peers[2].Drops[transport.DropPartition]; d != 4 {
		t.Errorf("DropPartition for peer 2 = %d, want 4", d)
	}
}

// Ending one partition leaves the others in force.
func TestUnisolateUncutAreSelective(t *testing.T) {
	net := fault.NewNetwork()
	net.Isolate(1)
	net.Isolate(3)
	net.Cut(2, 4)
	net.Cut(4, 2)
	net.Split([]uint64{5}, []uint64{6})
	net.Unisolate(3)
	for _, c := range []struct {
		from, to uint64
		want     bool
	}{
		{1, 2, true}, {2, 1, true}, // 1 is still isolated
		{3, 2, false}, {2, 3, false}, // 3 is not
		{3, 1, true},               // but 1 still is
		{2, 4, true}, {4, 2, true}, // the cuts hold
		{5, 6, true}, // and the split
	} {
		if got := net.Blocked(c.from, c.to); got != c.want {
			t.Errorf("after Unisolate(3): Blocked(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	net.Uncut(2, 4)
	if net.Blocked(2, 4) || !net.Blocked(4, 2) || !net.Blocked(1, 2) {
		t.Errorf("after Uncut(2, 4): 2->4 %v, 4->2 %v, 1->2 %v; want false, true, true", net.Blocked(2, 4), net.Blocked(4, 2), net.Blocked(1, 2))
	}
	net.Uncut(2, 4) // lifting what is not there is a no-op
	net.Unisolate(7)
	net.Unisolate(1)
	net.Uncut(4, 2)
	for _, l := range [][2]uint64{{1, 2}, {2, 1}, {2, 4}, {4, 2}, {1, 3}} {
		if net.Blocked(l[0], l[1]) {
			t.Errorf("Blocked(%d, %d) after everything was lifted", l[0], l[1])
		}
	}
	if !net.Blocked(5, 6) {
		t.Error("the split was lifted by Unisolate/Uncut")
	}
}

// A message delayed before a partition is checked again when released.
func TestPartitionCatchesDelayed(t *testing.T) {
	net := fault.NewNetwork()
	w, in := wrap(t, 1, 1, net, fault.Rules{Delay: 20 * time.Millisecond})
	w.Send(seq(1, 2, 10))
	net.Isolate(2)
	transporttest.Eventually(t, 10*time.Second, "delayed messages judged", func() bool { return w.Counters().PartitionedSend == 10 })
	if len(in.Sent()) != 0 {
		t.Errorf("%d messages crossed a partition", len(in.Sent()))
	}
}

// The conformance suite through the wrapper with no faults, over each real
// transport: the wrapper must be invisible when idle.
func wrapped(inner transporttest.Factory) transporttest.Factory {
	return func(t testing.TB, o transporttest.Options) transport.Transport {
		w, err := fault.Wrap(inner(t, o), fault.Config{ID: o.ID, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
}

func opts(o transporttest.Options) transport.Options {
	return transport.Options{
		ID: o.ID, ClusterID: o.ClusterID, MaxFrameSize: o.MaxFrameSize, QueueLen: o.QueueLen,
		SnapshotChunkSize: o.SnapshotChunkSize, MaxSnapshotSize: o.MaxSnapshotSize, SnapshotRate: o.SnapshotRate,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		DialTimeout: time.Second, HandshakeTimeout: time.Second, WriteTimeout: 2 * time.Second,
	}
}

func tcpFactory(files *transport.TLSFiles) transporttest.Factory {
	return func(t testing.TB, o transporttest.Options) transport.Transport {
		tr, err := tcp.New(tcp.Config{Options: opts(o), ListenAddr: o.ListenAddr(), TLS: files})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
}

func quicFactory(t testing.TB, o transporttest.Options) transport.Transport {
	tr, err := quic.New(quic.Config{Options: opts(o), ListenAddr: o.ListenAddr(), IdleTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConformanceTCP(t *testing.T) { transporttest.Run(t, wrapped(tcpFactory(nil))) }

func TestConformanceTCPTLS(t *testing.T) {
	files := transporttest.WriteCerts(t)
	transporttest.Run(t, wrapped(tcpFactory(&files)))
}

func TestConformanceQUIC(t *testing.T) { transporttest.Run(t, wrapped(quicFactory)) }

// End to end over TCP: an isolated node hears nothing, and hears again
// once the network heals.
func TestPartitionOverTCP(t *testing.T) {
	net := fault.NewNetwork()
	var ws []*fault.Transport
	var recs []*transporttest.Recorder
	for id := uint64(1); id <= 3; id++ {
		w, err := fault.Wrap(tcpFactory(nil)(t, transporttest.Options{ID: id}), fault.Config{ID: id, Seed: id, Network: net})
		if err != nil {
			t.Fatal(err)
		}
		rec := transporttest.NewRecorder()
		if err := w.Start(rec); err != nil {
			t.Fatal(err)
		}
		ws, recs = append(ws, w), append(recs, rec)
	}
	defer func() {
		for _, w := range ws {
			_ = w.Close()
		}
	}()
	for i, a := range ws {
		for j, b := range ws {
			if i != j {
				if err := a.AddPeer(uint64(j+1), b.Addr()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	net.Isolate(3)
	ws[0].Send([]core.Message{transporttest.Heartbeat(1, 2, 1), transporttest.Heartbeat(1, 3, 1)})
	ws[1].Send([]core.Message{transporttest.Heartbeat(2, 3, 1)})
	recs[1].WaitFor(t, 10*time.Second, "1->2 across a healthy link", func() bool { return recs[1].Count(nil) == 1 })
	if n := recs[2].Count(nil); n != 0 {
		t.Fatalf("isolated node received %d messages", n)
	}
	net.Heal()
	ws[0].Send([]core.Message{transporttest.Heartbeat(1, 3, 2)})
	recs[2].WaitFor(t, 10*time.Second, "delivery after heal", func() bool { return recs[2].Count(nil) == 1 })
	if got := recs[2].Msgs()[0].Context; got != 2 {
		t.Errorf("after heal got message %d, want 2", got)
	}
	if d := ws[0].Stats().Peers[3].Drops[transport.DropPartition]; d != 1 {
		t.Errorf("DropPartition 1->3 = %d, want 1", d)
	}
}

// A MsgSnap the wrapper drops or cuts (at send, or when its delay ends) is
// reported to a SnapshotReporter handler as a failure, so the runtime
// retries it; other dropped messages are not reported, and the inner
// transport's own reports pass through.
func TestSnapshotLossReported(t *testing.T) {
	snap := core.Message{Type: core.MsgSnap, From: 1, To: 2, Snapshot: &core.Snapshot{Meta: core.SnapshotMeta{Index: 5}}}
	for _, c := range []struct {
		name  string
		rules fault.Rules
		cut   func(*fault.Network)
		after func(*fault.Network) // applied after Send, before the delay ends
	}{
		{name: "dropped", rules: fault.Rules{DropRate: 1}},
		{name: "partitioned", cut: func(n *fault.Network) { n.Cut(1, 2) }},
		{name: "cut while delayed", rules: fault.Rules{Delay: 50 * time.Millisecond}, after: func(n *fault.Network) { n.Isolate(2) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			net := fault.NewNetwork()
			w, in := wrap(t, 1, 1, net, c.rules)
			rec := transporttest.NewRecorder()
			if err := w.Start(rec); err != nil {
				t.Fatal(err)
			}
			if c.cut != nil {
				c.cut(net)
			}
			w.Send([]core.Message{snap, transporttest.Heartbeat(1, 2, 1)})
			if c.after != nil {
				c.after(net)
			}
			rec.WaitFor(t, 10*time.Second, "SnapshotStatus(2, false)", func() bool { return len(rec.SnapshotStatuses(2)) > 0 })
			if st := rec.SnapshotStatuses(2); len(st) != 1 || st[0] {
				t.Errorf("reports %v, want [false]", st)
			}
			if len(rec.SnapshotStatuses(1)) != 0 {
				t.Errorf("reports for the wrong peer")
			}
			if n := len(in.Sent()); n != 0 {
				t.Errorf("%d messages reached the inner transport", n)
			}
		})
	}
	t.Run("passes inner reports through", func(t *testing.T) {
		w, in := wrap(t, 1, 1, nil, fault.Rules{})
		rec := transporttest.NewRecorder()
		if err := w.Start(rec); err != nil {
			t.Fatal(err)
		}
		r, ok := in.h.(transport.SnapshotReporter)
		if !ok {
			t.Fatal("the handler the wrapper gives its inner transport is not a SnapshotReporter")
		}
		r.SnapshotStatus(2, true)
		if st := rec.SnapshotStatuses(2); len(st) != 1 || !st[0] {
			t.Errorf("reports %v, want [true]", st)
		}
	})
}

func TestNetworkState(t *testing.T) {
	n := fault.NewNetwork()
	if s := n.State(); s.Isolated != nil || s.Cuts != nil || s.Groups != nil {
		t.Fatalf("a new network has partitions: %+v", s)
	}
	n.Isolate(3)
	n.Cut(2, 1)
	n.Cut(1, 2)
	n.Split([]uint64{5, 4}, []uint64{1})
	s := n.State()
	if !reflect.DeepEqual(s.Isolated, []uint64{3}) || !reflect.DeepEqual(s.Cuts, [][2]uint64{{1, 2}, {2, 1}}) ||
		!reflect.DeepEqual(s.Groups, [][]uint64{{1}, {4, 5}}) {
		t.Errorf("State = %+v", s)
	}
	n.Heal()
	if s := n.State(); s.Isolated != nil || s.Cuts != nil || s.Groups != nil {
		t.Errorf("after Heal: %+v", s)
	}
}

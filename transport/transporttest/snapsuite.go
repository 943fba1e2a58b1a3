package transporttest

import (
	"slices"
	"testing"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// Snapshot conformance tests. The ones that need a transfer to be in
// progress while something else happens slow the sender down with
// SnapshotRate, so the transfer takes seconds by construction while the
// event being checked takes milliseconds: the margin is the rate, not luck.
// They end the slow transfer themselves (RemovePeer, Close, a newer
// snapshot) instead of waiting for it.

// slow is a sender rate at which an 8 MiB snapshot takes 8 s.
const (
	slowRate  = 1 << 20
	slowChunk = 32 << 10
	slowSize  = 8 << 20
)

// snapOf returns the one delivered MsgSnap in rec, failing if there are
// more.
func snapOf(t *testing.T, rec *Recorder) core.Message {
	t.Helper()
	var got []core.Message
	for _, m := range rec.Msgs() {
		if m.Type == core.MsgSnap {
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d snapshots delivered, want 1", len(got))
	}
	return got[0]
}

// waitStatuses waits until rec holds n snapshot reports for to and returns
// them.
func waitStatuses(t *testing.T, rec *Recorder, to uint64, n int) []bool {
	t.Helper()
	rec.WaitFor(t, wait, "SnapshotStatus reports", func() bool { return len(rec.SnapshotStatuses(to)) >= n })
	return rec.SnapshotStatuses(to)
}

// streaming waits until rec's transport has received some, but not all,
// of a snapshot from peer from.
func streaming(t *testing.T, n *node, from uint64) {
	t.Helper()
	Eventually(t, wait, "the snapshot transfer to be under way", func() bool {
		return n.tr.Stats().Peers[from].Snap.BytesRecv > 0
	})
}

// A 24 MiB snapshot, far above the frame limit and above QUIC's default
// 16 MiB stream window (so flow control must turn over), arrives intact as
// one message, the sender hears SnapshotStatus(true) once, and both sides
// count it. It was 50 MiB; under -race on a loaded 2-core machine QUIC's
// user-space crypto took longer than the suite's wait for that, and the
// larger size exercised nothing the smaller one does not.
func testSnapshotLarge(t *testing.T, f Factory) {
	const limit, size = 1 << 20, 24 << 20
	a := start(t, f, Options{ID: 1, MaxFrameSize: limit}, nil)
	b := start(t, f, Options{ID: 2, MaxFrameSize: limit}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)

	snap := Snap(1, 2, 100, size)
	if transport.MessageSize(&snap) <= limit {
		t.Fatalf("test bug: snapshot fits a frame")
	}
	sendNoBlock(t, a.tr, snap)
	b.rec.WaitFor(t, wait, "snapshot delivered", func() bool { return b.rec.Count(IsSnap) > 0 })
	got := snapOf(t, b.rec)
	if ok, diff := EqualMessages(&snap, &got); !ok {
		t.Fatalf("snapshot corrupted: %s", diff)
	}
	if st := waitStatuses(t, a.rec, 2, 1); !slices.Equal(st, []bool{true}) {
		t.Fatalf("SnapshotStatus reports %v, want [true]", st)
	}
	as, bs := a.tr.Stats().Peers[2].Snap, b.tr.Stats().Peers[1].Snap
	if as.Sent != 1 || as.SendFailures != 0 || as.BytesSent != size {
		t.Errorf("sender snapshot counters %+v, want 1 sent, %d bytes", as, size)
	}
	if bs.Recv != 1 || bs.RecvFailures.Total() != 0 || bs.BytesRecv != size {
		t.Errorf("receiver snapshot counters %+v, want 1 received, %d bytes", bs, size)
	}
	if d := a.tr.Stats().Drops().Total(); d != 0 {
		t.Errorf("drops: %v", a.tr.Stats().Drops())
	}
}

// Heartbeats and appends sent while a snapshot streams are delivered
// before it: the snapshot has a stream of its own. The transfer is then
// cut by RemovePeer, which the sender reports as a failure and the
// receiver discards.
func testSnapshotBesideMessages(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1, SnapshotRate: slowRate, SnapshotChunkSize: slowChunk}, nil)
	b := start(t, f, Options{ID: 2}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)
	// Open the message streams first, so what follows measures queueing,
	// not dialling.
	sendNoBlock(t, a.tr, Heartbeat(1, 2, 1), App(1, 2, 1, 1, 16))
	b.rec.WaitFor(t, wait, "warm-up", func() bool { return b.rec.Count(nil) == 2 })

	sendNoBlock(t, a.tr, Snap(1, 2, 50, slowSize))
	streaming(t, b, 1)
	sendNoBlock(t, a.tr, Heartbeat(1, 2, 2), App(1, 2, 2, 1, 64<<10))
	b.rec.WaitFor(t, wait, "heartbeat and append sent after the snapshot started", func() bool {
		return b.rec.Count(func(m *core.Message) bool { return m.Index == 2 || m.Context == 2 }) == 2
	})
	if n := b.rec.Count(IsSnap); n != 0 {
		t.Fatalf("the snapshot (8 s at the configured rate) was delivered before the heartbeat")
	}

	a.tr.RemovePeer(2)
	if st := waitStatuses(t, a.rec, 2, 1); !slices.Equal(st, []bool{false}) {
		t.Fatalf("SnapshotStatus after RemovePeer mid-transfer: %v, want [false]", st)
	}
	Eventually(t, wait, "receiver discards the cut transfer", func() bool {
		return b.tr.Stats().Peers[1].Snap.RecvFailures[transport.SnapshotFailInterrupted] == 1
	})
	if n := b.rec.Count(IsSnap); n != 0 {
		t.Errorf("a cut transfer was delivered")
	}
}

// A receiver closed mid-transfer delivers nothing and the sender reports
// the failure; a retry to the restarted receiver succeeds.
func testSnapshotInterrupted(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1, SnapshotRate: slowRate, SnapshotChunkSize: slowChunk}, nil)
	defer closeWithin(t, a.tr, wait)
	b := start(t, f, Options{ID: 2}, nil)
	connect(t, a, b)
	addr := b.tr.Addr()

	sendNoBlock(t, a.tr, Snap(1, 2, 10, slowSize))
	streaming(t, b, 1)
	closeWithin(t, b.tr, wait)
	if st := waitStatuses(t, a.rec, 2, 1); !slices.Equal(st, []bool{false}) {
		t.Fatalf("SnapshotStatus after the receiver closed: %v, want [false]", st)
	}
	if n := b.rec.Count(IsSnap); n != 0 {
		t.Fatalf("an interrupted transfer was delivered")
	}
	if s := a.tr.Stats().Peers[2].Snap; s.SendFailures != 1 || s.Sent != 0 {
		t.Errorf("sender counters %+v, want 1 failure", s)
	}

	// The retry, as core would send it: a (smaller, newer) snapshot, sent
	// again on every failure report until one succeeds.
	b2 := start(t, f, Options{ID: 2, Addr: addr}, nil)
	defer closeWithin(t, b2.tr, wait)
	retry := Snap(1, 2, 11, 128<<10)
	sent := 1
	sendNoBlock(t, a.tr, retry)
	a.rec.WaitFor(t, wait, "a successful retry", func() bool {
		st := a.rec.SnapshotStatuses(2)
		if len(st) == sent+1 && !st[sent] {
			sent++
			sendNoBlock(t, a.tr, retry)
		}
		return len(st) > 1 && st[len(st)-1]
	})
	got := snapOf(t, b2.rec)
	if ok, diff := EqualMessages(&retry, &got); !ok {
		t.Fatalf("retried snapshot corrupted: %s", diff)
	}
}

// A snapshot over the receiver's MaxSnapshotSize is refused (counted,
// reported to the sender as a failure) without disturbing anything else;
// one within the limit then goes through.
func testSnapshotRefused(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1}, nil)
	b := start(t, f, Options{ID: 2, MaxSnapshotSize: 1 << 20}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)

	sendNoBlock(t, a.tr, Snap(1, 2, 5, 2<<20), Heartbeat(1, 2, 1))
	if st := waitStatuses(t, a.rec, 2, 1); !slices.Equal(st, []bool{false}) {
		t.Fatalf("SnapshotStatus for an oversized snapshot: %v, want [false]", st)
	}
	if r := b.tr.Stats().Peers[1].Snap.RecvFailures; r[transport.SnapshotFailTooLarge] != 1 || r.Total() != 1 {
		t.Errorf("receiver failure counters %v, want one too-large", r)
	}
	b.rec.WaitFor(t, wait, "the heartbeat beside the refused snapshot", func() bool { return b.rec.Count(nil) == 1 })
	if n := b.rec.Count(IsSnap); n != 0 {
		t.Fatalf("a refused snapshot was delivered")
	}

	ok := Snap(1, 2, 6, 512<<10)
	sendNoBlock(t, a.tr, ok)
	if st := waitStatuses(t, a.rec, 2, 2); !slices.Equal(st, []bool{false, true}) {
		t.Fatalf("SnapshotStatus reports %v, want [false true]", st)
	}
	got := snapOf(t, b.rec)
	if eq, diff := EqualMessages(&ok, &got); !eq {
		t.Fatalf("snapshot corrupted: %s", diff)
	}
	if r := b.tr.Stats().Rejects.Total(); r != 0 {
		t.Errorf("connection rejects: %v", b.tr.Stats().Rejects)
	}
}

// A newer snapshot to the same peer cancels the one still streaming: only
// the newer one is delivered and reported, once.
func testSnapshotSuperseded(t *testing.T, f Factory) {
	a := start(t, f, Options{ID: 1, SnapshotRate: slowRate, SnapshotChunkSize: slowChunk}, nil)
	b := start(t, f, Options{ID: 2}, nil)
	defer closeWithin(t, a.tr, wait)
	defer closeWithin(t, b.tr, wait)
	connect(t, a, b)

	sendNoBlock(t, a.tr, Snap(1, 2, 20, slowSize))
	streaming(t, b, 1)
	newer := Snap(1, 2, 21, 64<<10)
	sendNoBlock(t, a.tr, newer)
	// The cancelled transfer ends (unreported) before the newer one
	// starts, so a report for it would come first.
	if st := waitStatuses(t, a.rec, 2, 1); !slices.Equal(st, []bool{true}) {
		t.Fatalf("SnapshotStatus reports %v, want [true] (the superseded one is not reported)", st)
	}
	b.rec.WaitFor(t, wait, "the newer snapshot", func() bool { return b.rec.Count(IsSnap) > 0 })
	got := snapOf(t, b.rec)
	if ok, diff := EqualMessages(&newer, &got); !ok {
		t.Fatalf("delivered snapshot is not the newer one: %s", diff)
	}
	if s := a.tr.Stats().Peers[2].Snap; s.Superseded != 1 || s.Sent != 1 || s.SendFailures != 0 {
		t.Errorf("sender counters %+v, want 1 superseded, 1 sent", s)
	}
}

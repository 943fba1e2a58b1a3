package quic_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/transporttest"
)

func testConfig(o transporttest.Options) quic.Config {
	return quic.Config{
		Options: transport.Options{
			ID: o.ID, ClusterID: o.ClusterID, MaxFrameSize: o.MaxFrameSize, QueueLen: o.QueueLen,
			SnapshotChunkSize: o.SnapshotChunkSize, MaxSnapshotSize: o.MaxSnapshotSize, SnapshotRate: o.SnapshotRate,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			DialTimeout: time.Second, HandshakeTimeout: time.Second, WriteTimeout: 2 * time.Second,
		},
		ListenAddr:  o.ListenAddr(),
		IdleTimeout: 3 * time.Second,
	}
}

// Factory builds QUIC transports with a generated self-signed certificate.
func Factory(t testing.TB, o transporttest.Options) transport.Transport {
	tr, err := quic.New(testConfig(o))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, Factory)
}

func TestConformanceMutualTLS(t *testing.T) {
	files := transporttest.WriteCerts(t)
	transporttest.Run(t, func(t testing.TB, o transporttest.Options) transport.Transport {
		cfg := testConfig(o)
		cfg.TLS = &files
		tr, err := quic.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A heartbeat sent after a burst of large appends overtakes them: control
// traffic has its own stream (and priority), so it does not wait behind
// bulk data as it would on one TCP connection.
func TestControlNotBehindBulk(t *testing.T) {
	mk := func(id uint64) (transport.Transport, *transporttest.Recorder) {
		tr := Factory(t, transporttest.Options{ID: id, MaxFrameSize: 8 << 20})
		rec := transporttest.NewRecorder()
		if err := tr.Start(rec); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr, rec
	}
	a, _ := mk(1)
	b, brec := mk(2)
	if err := a.AddPeer(2, b.Addr()); err != nil {
		t.Fatal(err)
	}
	// Open both streams first.
	a.Send([]core.Message{transporttest.Heartbeat(1, 2, 0), transporttest.App(1, 2, 0, 1, 1)})
	brec.WaitFor(t, 10*time.Second, "warm-up", func() bool { return brec.Count(nil) == 2 })

	const bulk = 8
	var msgs []core.Message
	for i := uint64(1); i <= bulk; i++ {
		msgs = append(msgs, transporttest.App(1, 2, i, 1, 4<<20))
	}
	msgs = append(msgs, transporttest.Heartbeat(1, 2, 1))
	a.Send(msgs)
	brec.WaitFor(t, 30*time.Second, "everything", func() bool { return brec.Count(nil) == 2+bulk+1 })
	got := brec.Msgs()[2:]
	pos := -1
	for i, m := range got {
		if m.Type == core.MsgHeartbeat {
			pos = i
		}
	}
	if pos == len(got)-1 {
		t.Errorf("the heartbeat arrived after all %d appends (%d MiB) sent before it", bulk, bulk*4)
	}
	t.Logf("heartbeat arrived after %d of %d appends", pos, bulk)
}

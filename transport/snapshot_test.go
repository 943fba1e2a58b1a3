package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
)

// These tests drive the snapshot receiver through a net.Pipe, writing the
// records by hand, so each kind of bad input can be produced exactly. (The
// conformance suite covers real transports; package transporttest cannot
// be imported here, it imports this package.)

func testSnapMsg(size int) core.Message {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	return core.Message{Type: core.MsgSnap, From: 9, To: 2, Term: 4, Snapshot: &core.Snapshot{
		Meta: core.SnapshotMeta{Index: 40, Term: 3, Conf: core.ConfState{Voters: []uint64{2, 9}}},
		Data: data,
	}}
}

func frameOf(body []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

// transferFrames encodes m as the sender does: begin, chunks, end.
func transferFrames(m *core.Message, chunk int) [][]byte {
	data := m.Snapshot.Data
	frames := [][]byte{frameOf(appendSnapBegin(nil, m, len(data)))}
	for off := 0; off < len(data); off += chunk {
		part := data[off:min(off+chunk, len(data))]
		frames = append(frames, append(appendSnapChunkHeader(nil, uint64(off), len(part)), part...))
	}
	frames = append(frames, frameOf(appendSnapEnd(nil, crc32.Checksum(data, castagnoli))))
	return frames
}

type recordingHandler struct {
	mu   sync.Mutex
	msgs []core.Message
}

func (h *recordingHandler) Deliver(msgs []core.Message) {
	h.mu.Lock()
	h.msgs = append(h.msgs, msgs...)
	h.mu.Unlock()
}
func (h *recordingHandler) Unreachable(uint64) {}
func (h *recordingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

type noDialer struct{}

func (noDialer) DialStream(context.Context, uint64, string, Class) (Stream, error) {
	return nil, errors.New("no dialling in this test")
}
func (noDialer) Forget(uint64) {}

func newTestEngine(t *testing.T, maxSnap int64) (*Engine, *recordingHandler) {
	t.Helper()
	e, err := NewEngine(EngineConfig{Options: Options{ID: 2, ClusterID: 1, MaxFrameSize: 1 << 16, MaxSnapshotSize: maxSnap,
		SnapshotTimeout: 2 * time.Second, HandshakeTimeout: time.Second}, Dialer: noDialer{}})
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{}
	e.SetHandler(h)
	t.Cleanup(e.Close)
	return e, h
}

// push serves one pipe on e, writes the handshake and frames from another
// goroutine (ignoring write errors: the receiver may hang up early), and
// returns the status of the receiver's ack, or -1 if the stream ended
// without one.
func push(t *testing.T, e *Engine, frames [][]byte, hangUp bool) int {
	t.Helper()
	cli, srv := net.Pipe()
	defer cli.Close()
	if !e.Serve(srv, "pipe") {
		t.Fatal("Serve refused the stream")
	}
	_ = cli.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		_, _ = cli.Write(AppendHello(nil, Hello{Version: ProtocolVersion, ClusterID: 1, From: 9, To: 2}))
		for _, f := range frames {
			if _, err := cli.Write(f); err != nil {
				return
			}
		}
		if hangUp {
			_ = cli.Close()
		}
	}()
	var hb [HelloSize]byte
	if _, err := io.ReadFull(cli, hb[:]); err != nil {
		t.Fatalf("reading hello reply: %v", err)
	}
	body, err := ReadFrame(bufio.NewReader(cli), 16)
	if err != nil {
		return -1
	}
	if len(body) != snapshotAckSize || body[0] != recSnapAck {
		t.Fatalf("reply %x is not an ack", body)
	}
	return int(body[1])
}

func TestSnapshotReceiveBadInput(t *testing.T) {
	const maxSnap = 1 << 20
	e, h := newTestEngine(t, maxSnap)
	good := testSnapMsg(100 << 10)
	ok := transferFrames(&good, 16<<10) // begin, 7 chunks, end

	swap := func(fr [][]byte, i, j int) [][]byte {
		fr = append([][]byte(nil), fr...)
		fr[i], fr[j] = fr[j], fr[i]
		return fr
	}
	replace := func(fr [][]byte, i int, f []byte) [][]byte {
		fr = append([][]byte(nil), fr...)
		fr[i] = f
		return fr
	}
	corrupt := func(fr [][]byte, i int) [][]byte {
		f := bytes.Clone(fr[i])
		f[len(f)-1] ^= 1
		return replace(fr, i, f)
	}
	big := testSnapMsg(maxSnap + 1)
	noSnap := good
	noSnap.Type = core.MsgApp
	cases := []struct {
		name   string
		frames [][]byte
		hangUp bool
		want   SnapshotFailReason
	}{
		{"chunks out of order", swap(ok, 2, 3), false, SnapshotFailBadRecord},
		{"chunk past the declared size", replace(ok, 7, append(appendSnapChunkHeader(nil, 6*16<<10, 10<<10), make([]byte, 10<<10)...)), false, SnapshotFailBadRecord},
		{"gap before a chunk", append(ok[:1:1], ok[2:]...), false, SnapshotFailBadRecord},
		{"end before the last chunk", append(ok[:3:3], ok[len(ok)-1]), false, SnapshotFailBadRecord},
		{"checksum mismatch", corrupt(ok, 4), false, SnapshotFailChecksum},
		{"bad end record", corrupt(ok, len(ok)-1), false, SnapshotFailChecksum},
		{"over MaxSnapshotSize", transferFrames(&big, 32<<10)[:1], false, SnapshotFailTooLarge},
		{"begin carries another message type", replace(ok, 0, frameOf(appendSnapBegin(nil, &noSnap, len(good.Snapshot.Data)))), false, SnapshotFailBadRecord},
		{"garbled begin", replace(ok, 0, frameOf([]byte{recSnapBegin, 5, 200})), false, SnapshotFailBadRecord},
		{"ack inside a transfer", replace(ok, 3, snapAckFrame(0)), false, SnapshotFailBadRecord},
		{"frame over MaxFrameSize", replace(ok, 2, binary.AppendUvarint(nil, 1<<17)), false, SnapshotFailBadRecord},
		{"sender hangs up mid-transfer", ok[:4], true, SnapshotFailInterrupted},
		// A cut inside a chunk (the sender crashed, or was removed, while
		// writing it) is a broken stream too, not a bad record.
		{"sender hangs up mid-chunk", append(ok[:4:4], ok[4][:len(ok[4])/2]), true, SnapshotFailInterrupted},
		{"sender hangs up inside a frame length", append(ok[:4:4], []byte{0x80}), true, SnapshotFailInterrupted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.Stats().Peers[9].Snap
			got := push(t, e, c.frames, c.hangUp)
			if c.want != SnapshotFailInterrupted && got != 1+int(c.want) {
				t.Errorf("ack status %d, want refusal %d (%v)", got, 1+int(c.want), c.want)
			}
			waitCond(t, "failure counted", func() bool {
				return e.Stats().Peers[9].Snap.RecvFailures[c.want] == before.RecvFailures[c.want]+1
			})
			s := e.Stats().Peers[9].Snap
			if s.RecvFailures.Total() != before.RecvFailures.Total()+1 || s.Recv != before.Recv {
				t.Errorf("counters %+v after %+v: want exactly one %v failure", s, before, c.want)
			}
			if n := h.count(); n != 0 {
				t.Fatalf("%d messages delivered from a bad transfer", n)
			}
		})
	}
	// Nothing above affected the next transfer.
	if got := push(t, e, ok, false); got != ackOK {
		t.Fatalf("valid transfer after bad ones: ack status %d", got)
	}
	if h.count() != 1 {
		t.Fatalf("%d messages delivered, want the one snapshot", h.count())
	}
	d := h.msgs[0]
	if d.Type != core.MsgSnap || d.Snapshot.Meta.Index != 40 || !bytes.Equal(d.Snapshot.Data, good.Snapshot.Data) ||
		len(d.Snapshot.Meta.Conf.Voters) != 2 {
		t.Fatalf("delivered %+v, not the snapshot sent", d.Snapshot.Meta)
	}
	if r := e.Stats().Rejects.Total(); r != 0 {
		t.Errorf("snapshot failures counted as connection rejects: %v", e.Stats().Rejects)
	}
}

// An empty snapshot (no data) is a begin and an end record and still
// arrives as one message.
func TestSnapshotReceiveEmpty(t *testing.T) {
	e, h := newTestEngine(t, 1<<20)
	m := testSnapMsg(0)
	if got := push(t, e, transferFrames(&m, 1024), false); got != ackOK {
		t.Fatalf("ack status %d", got)
	}
	if h.count() != 1 || h.msgs[0].Snapshot == nil || len(h.msgs[0].Snapshot.Data) != 0 {
		t.Fatalf("delivered %+v", h.msgs)
	}
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSnapshotOptionsValidate(t *testing.T) {
	o := Options{ID: 1, MaxFrameSize: 1 << 20, SnapshotChunkSize: 2 << 20, MaxSnapshotSize: -1, SnapshotRate: 100,
		SnapshotTimeout: -time.Second}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"SnapshotChunkSize = 2097152", "MaxSnapshotSize = -1", "SnapshotRate = 100", "SnapshotTimeout = -1s"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	// A rate that leaves the receiver silent past half its timeout.
	slow := Options{ID: 1, SnapshotRate: 4096, SnapshotTimeout: 10 * time.Second}
	slow.EnsureDefaults()
	if err := slow.Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte("pauses 4m16s between chunks")) {
		t.Errorf("1 MiB chunks at 4 KiB/s: Validate = %v", err)
	}
	// The default chunk shrinks to fit a small frame limit.
	small := Options{ID: 1, MaxFrameSize: 4096}
	small.EnsureDefaults()
	if err := small.Validate(); err != nil || small.SnapshotChunkSize != 4096-SnapshotChunkOverhead {
		t.Errorf("small frames: chunk %d, err %v", small.SnapshotChunkSize, err)
	}
	def := Options{ID: 1}
	def.EnsureDefaults()
	if def.SnapshotChunkSize != DefaultSnapshotChunkSize || def.MaxSnapshotSize != DefaultMaxSnapshotSize ||
		def.SnapshotTimeout != DefaultSnapshotTimeout || def.SnapshotRate != 0 {
		t.Errorf("defaults: %+v", def)
	}
}

// FuzzSnapshotRecords feeds arbitrary bytes to the snapshot receiver's
// record decoding and reassembly, as a broken or hostile peer would after
// the handshake: no panic, only snapshot/frame errors, never more data
// than announced or allowed, and a transfer that completes holds exactly
// the announced bytes with the announced checksum.
func FuzzSnapshotRecords(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input it finds, which
	// costs time quadratic in its size, so kilobyte seeds would spend a
	// short fuzz run minimising instead of fuzzing.
	m := testSnapMsg(40)
	whole := bytes.Join(transferFrames(&m, 16), nil)
	f.Add(whole)
	empty := testSnapMsg(0)
	f.Add(bytes.Join(transferFrames(&empty, 10), nil))
	f.Add(frameOf([]byte{recSnapBegin, 0xff, 0xff, 0xff, 0xff, 0x0f}))
	f.Add(append(bytes.Clone(whole[:len(whole)/2]), whole[len(whole)/2+20:]...))
	const limit, maxSnap = 1 << 14, 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		body, err := ReadFrame(br, limit)
		if err != nil {
			return
		}
		a, err := beginSnapshot(body, maxSnap)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) && !errors.Is(err, ErrSnapshotTooLarge) {
				t.Fatalf("beginSnapshot: unexpected error %v", err)
			}
			return
		}
		if a.size > maxSnap {
			t.Fatalf("accepted %d bytes over a %d limit", a.size, maxSnap)
		}
		var scratch []byte
		for {
			body, err := readFrameInto(br, scratch, limit)
			if err != nil {
				return
			}
			scratch = body[:0]
			done, err := a.add(body)
			if uint64(len(a.buf)) > a.size || uint64(cap(a.buf)) > a.size {
				t.Fatalf("holding %d bytes (capacity %d) of a %d-byte snapshot", len(a.buf), cap(a.buf), a.size)
			}
			if err != nil {
				if !errors.Is(err, ErrBadSnapshot) && !errors.Is(err, ErrSnapshotChecksum) {
					t.Fatalf("add: unexpected error %v", err)
				}
				return
			}
			if done {
				got := a.message()
				var d []byte
				if got.Snapshot != nil {
					d = got.Snapshot.Data
				}
				if uint64(len(d)) != a.size || binary.BigEndian.Uint32(body[1:]) != crc32.Checksum(d, castagnoli) {
					t.Fatalf("completed with %d of %d bytes or a wrong checksum", len(d), a.size)
				}
				return
			}
		}
	})
}

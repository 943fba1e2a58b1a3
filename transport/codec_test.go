package transport_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/transporttest"
)

func sampleMessages() []core.Message {
	snap := &core.Snapshot{
		Meta: core.SnapshotMeta{Index: 100, Term: 7, Conf: core.ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{4}, Learners: []uint64{math.MaxUint64}}},
		Data: []byte("state machine image"),
	}
	return []core.Message{
		transporttest.App(1, 2, 10, 3, 100),
		transporttest.Heartbeat(2, 1, 99),
		{Type: core.MsgAppResp, From: 2, To: 1, Term: 5, Index: 9, Reject: true, LogTerm: 4, RejectHint: 3},
		{Type: core.MsgVote, From: math.MaxUint64, To: 1, Term: math.MaxUint64, LogTerm: 1 << 63, Index: 1<<35 + 1},
		{Type: core.MsgSnap, From: 1, To: 3, Term: 7, Snapshot: snap},
		{Type: core.MsgSnap, From: 1, To: 3, Term: 7, Snapshot: &core.Snapshot{}},
		{Type: core.MsgApp, From: 1, To: 2, Entries: []core.Entry{{Term: 1, Index: 1}, {Term: 1, Index: 2, Type: core.EntryConfChange, Data: []byte{1}}}},
		{Type: core.MsgTimeoutNow, From: 1, To: 2},
	}
}

func TestRoundTrip(t *testing.T) {
	for i, m := range sampleMessages() {
		body := transport.AppendMessage(nil, &m)
		if len(body) != transport.MessageSize(&m) {
			t.Errorf("%d: MessageSize %d, encoded %d", i, transport.MessageSize(&m), len(body))
		}
		got, err := transport.DecodeMessage(body)
		if err != nil {
			t.Fatalf("%d (%v): %v", i, m.Type, err)
		}
		if ok, diff := transporttest.EqualMessages(&m, &got); !ok {
			t.Errorf("%d (%v): %s", i, m.Type, diff)
		}
		frame := transport.AppendFrame(nil, &m)
		if len(frame) != transport.FrameSize(&m) {
			t.Errorf("%d: FrameSize %d, encoded %d", i, transport.FrameSize(&m), len(frame))
		}
		body2, err := transport.ReadFrame(bufio.NewReader(bytes.NewReader(frame)), 1<<20)
		if err != nil || !bytes.Equal(body, body2) {
			t.Errorf("%d: ReadFrame = %v", i, err)
		}
	}
}

// Decoded data must not let an append by the new owner spill into the
// next field of the shared body.
func TestDecodedDataCapacityClipped(t *testing.T) {
	m := transporttest.App(1, 2, 1, 2, 8)
	got, err := transport.DecodeMessage(transport.AppendMessage(nil, &m))
	if err != nil {
		t.Fatal(err)
	}
	d := got.Entries[0].Data
	if cap(d) != len(d) {
		t.Fatalf("entry data has cap %d > len %d: an append would overwrite the next entry", cap(d), len(d))
	}
}

func TestTruncatedBodies(t *testing.T) {
	for i, m := range sampleMessages() {
		body := transport.AppendMessage(nil, &m)
		for n := 0; n < len(body); n++ {
			if _, err := transport.DecodeMessage(body[:n]); !errors.Is(err, transport.ErrBadFrame) {
				t.Fatalf("message %d cut to %d of %d bytes: err = %v, want ErrBadFrame", i, n, len(body), err)
			}
		}
		if _, err := transport.DecodeMessage(append(body, 0)); !errors.Is(err, transport.ErrBadFrame) {
			t.Errorf("message %d with a trailing byte: err = %v", i, err)
		}
	}
}

func TestGarbledBodies(t *testing.T) {
	valid := transport.AppendMessage(nil, &core.Message{Type: core.MsgApp, From: 1, To: 2})
	cases := map[string][]byte{
		"type 0":             append([]byte{0}, valid[1:]...),
		"type too large":     append([]byte{byte(core.MaxMessageType) + 1}, valid[1:]...),
		"unknown flag":       append([]byte{valid[0], 0x80}, valid[2:]...),
		"varint overflow":    append([]byte{1, 0}, bytes.Repeat([]byte{0xff}, 11)...),
		"huge entry count":   append(valid[:len(valid)-1], 0xff, 0xff, 0xff, 0xff, 0x0f),
		"entry type unknown": append(valid[:len(valid)-1], 1, 1, 1, 9, 0),
		"data past the end":  append(valid[:len(valid)-1], 1, 1, 1, 0, 50, 1, 2),
		"snapshot cut":       append([]byte{valid[0], 2}, valid[2:]...),
	}
	for name, body := range cases {
		if _, err := transport.DecodeMessage(body); !errors.Is(err, transport.ErrBadFrame) {
			t.Errorf("%s: err = %v, want ErrBadFrame", name, err)
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	read := func(b []byte, max int) error {
		_, err := transport.ReadFrame(bufio.NewReader(bytes.NewReader(b)), max)
		return err
	}
	if err := read(nil, 100); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
	if err := read([]byte{101}, 100); !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Errorf("101 > 100: %v", err)
	}
	if err := read([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 100); !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Errorf("huge length: %v", err)
	}
	if err := read(bytes.Repeat([]byte{0xff}, 11), 100); !errors.Is(err, transport.ErrBadFrame) {
		t.Errorf("overlong varint: %v", err)
	}
	if err := read([]byte{0x80}, 100); !errors.Is(err, transport.ErrBadFrame) {
		t.Errorf("truncated length: %v", err)
	}
	if err := read([]byte{10, 1, 2}, 100); !errors.Is(err, transport.ErrBadFrame) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v", err)
	}
	if err := read([]byte{0}, 100); !errors.Is(err, transport.ErrBadFrame) {
		t.Errorf("empty frame: %v", err)
	}
}

func TestHello(t *testing.T) {
	h := transport.Hello{Version: transport.ProtocolVersion, ClusterID: 7, From: 1, To: 2}
	b := transport.AppendHello(nil, h)
	if len(b) != transport.HelloSize {
		t.Fatalf("size %d, want %d", len(b), transport.HelloSize)
	}
	got, err := transport.ParseHello(b)
	if err != nil || got != h {
		t.Fatalf("ParseHello = %+v, %v", got, err)
	}
	if err := got.Check(7, 2, 1); err != nil {
		t.Errorf("Check of a good hello: %v", err)
	}
	cases := []struct {
		name      string
		h         transport.Hello
		cluster   uint64
		self, exp uint64
		want      error
	}{
		{"version", transport.Hello{Version: 9, ClusterID: 7, From: 1, To: 2}, 7, 2, 0, transport.ErrVersionMismatch},
		{"cluster", transport.Hello{Version: 1, ClusterID: 8, From: 1, To: 2}, 7, 2, 0, transport.ErrClusterMismatch},
		{"to", transport.Hello{Version: 1, ClusterID: 7, From: 1, To: 3}, 7, 2, 0, transport.ErrWrongNode},
		{"from zero", transport.Hello{Version: 1, ClusterID: 7, From: 0, To: 2}, 7, 2, 0, transport.ErrWrongNode},
		{"unexpected sender", transport.Hello{Version: 1, ClusterID: 7, From: 5, To: 2}, 7, 2, 1, transport.ErrWrongNode},
	}
	for _, c := range cases {
		if err := c.h.Check(c.cluster, c.self, c.exp); !errors.Is(err, c.want) || !errors.Is(err, transport.ErrBadHandshake) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	bad := append([]byte("HTTP"), b[4:]...)
	if _, err := transport.ParseHello(bad); !errors.Is(err, transport.ErrBadMagic) {
		t.Errorf("bad magic: %v", err)
	}
	if _, err := transport.ParseHello(b[:10]); !errors.Is(err, transport.ErrBadHandshake) {
		t.Errorf("short hello: %v", err)
	}
}

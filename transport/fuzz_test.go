package transport_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/transporttest"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader and decoder, as
// a hostile or broken peer would after the handshake. It must never panic
// or allocate beyond the frame limit, every failure must be one of the
// codec's errors, and anything that decodes must survive a round trip.
func FuzzDecodeFrame(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(transport.AppendFrame(nil, &m))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{5, 1, 0, 1, 2})
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for {
			body, err := transport.ReadFrame(br, limit)
			if err != nil {
				if err != io.EOF && !errors.Is(err, transport.ErrFrameTooLarge) && !errors.Is(err, transport.ErrBadFrame) {
					t.Fatalf("ReadFrame: unexpected error %v", err)
				}
				return
			}
			if len(body) > limit {
				t.Fatalf("body of %d bytes passed a %d limit", len(body), limit)
			}
			m, err := transport.DecodeMessage(body)
			if err != nil {
				if !errors.Is(err, transport.ErrBadFrame) {
					t.Fatalf("DecodeMessage: unexpected error %v", err)
				}
				return
			}
			again, err := transport.DecodeMessage(transport.AppendMessage(nil, &m))
			if err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
			if ok, diff := transporttest.EqualMessages(&m, &again); !ok {
				t.Fatalf("round trip changed the message: %s", diff)
			}
		}
	})
}

// FuzzHandshake checks the handshake parser and checker on arbitrary
// bytes: no panic, only handshake errors, and a parsed hello re-encodes to
// the same bytes.
func FuzzHandshake(f *testing.F) {
	f.Add(transport.AppendHello(nil, transport.Hello{Version: transport.ProtocolVersion, ClusterID: 7, From: 1, To: 2}))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n..."))
	f.Add(make([]byte, transport.HelloSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := transport.ParseHello(data)
		if err != nil {
			if !errors.Is(err, transport.ErrBadHandshake) {
				t.Fatalf("ParseHello: unexpected error %v", err)
			}
			return
		}
		if !bytes.Equal(transport.AppendHello(nil, h), data) {
			t.Fatalf("hello does not re-encode to its input")
		}
		if err := h.Check(7, 2, 1); err != nil && !errors.Is(err, transport.ErrBadHandshake) {
			t.Fatalf("Check: unexpected error %v", err)
		}
		if err := h.Check(h.ClusterID, h.To, h.From); (err == nil) != (h.Version == transport.ProtocolVersion && h.From != 0) {
			t.Fatalf("Check(own fields) = %v for %+v", err, h)
		}
	})
}

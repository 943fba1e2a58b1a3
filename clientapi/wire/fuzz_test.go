package wire

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader and both
// decoders, as a hostile peer would: nothing may panic, every error must be
// one of the protocol's, and whatever decodes must encode back to the same
// value.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{Kind: KindPropose, ID: 1, Timeout: time.Second, Payload: []byte("cmd")}))
	f.Add(AppendRequest(nil, &Request{Kind: KindMembers, ID: 9}))
	f.Add(AppendErrorResponse(nil, 3, CodeNotLeader, 2, "h:7100", "not the leader"))
	f.Add(AppendMembersResponse(nil, 4, map[uint64]string{1: "a:1", 2: "b:2"}))
	f.Add(AppendGoAway(nil, "bye"))
	if b, err := AppendResultResponse(nil, 5, rawResults{}, []byte{1, 0, 0, 0}); err == nil {
		f.Add(b)
	}
	f.Add(AppendHello(nil, 7))
	f.Add(AppendWelcome(nil, Welcome{Status: StatusOK, ClusterID: 7, NodeID: 2, MaxFrame: 4096}))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for range 4 {
			body, err := ReadFrame(br, 1<<16)
			if err != nil {
				break
			}
			if req, err := DecodeRequest(body); err == nil {
				again, err := DecodeRequest(frameBody(t, AppendRequest(nil, &req)))
				if err != nil || !reflect.DeepEqual(again, req) {
					t.Fatalf("request %+v re-encoded decodes as %+v (%v)", req, again, err)
				}
			}
			if resp, err := DecodeResponse(body); err == nil {
				again, err := DecodeResponse(frameBody(t, encodeResponse(t, &resp)))
				if err != nil || !reflect.DeepEqual(again, resp) {
					t.Fatalf("response %+v re-encoded decodes as %+v (%v)", resp, again, err)
				}
			}
		}
		_, _, _ = DecodeHello(data)
		_, _ = ReadWelcome(bufio.NewReaderSize(bytes.NewReader(data), 16))
	})
}

// frameBody strips a frame's length prefix.
func frameBody(t *testing.T, frame []byte) []byte {
	body, err := ReadFrame(bufio.NewReaderSize(bytes.NewReader(frame), 16), 1<<30)
	if err != nil {
		t.Fatalf("re-encoded frame does not read: %v", err)
	}
	return body
}

func encodeResponse(t *testing.T, r *Response) []byte {
	switch r.Kind {
	case RespResult:
		var v any
		if r.HasResult {
			v = r.Result
			if r.Result == nil {
				v = []byte{}
			}
		}
		b, err := AppendResultResponse(nil, r.ID, rawResults{}, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case RespError:
		return AppendErrorResponse(nil, r.ID, r.Code, r.Leader, r.LeaderAddr, r.Msg)
	case RespMembers:
		return AppendMembersResponse(nil, r.ID, r.Members)
	}
	return AppendGoAway(nil, r.Msg)
}

// rawResults carries results that are already bytes.
type rawResults struct{}

func (rawResults) AppendResult(dst []byte, v any) ([]byte, error) {
	return append(dst, v.([]byte)...), nil
}
func (rawResults) DecodeResult(b []byte) (any, error) { return b, nil }

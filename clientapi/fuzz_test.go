package clientapi

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
	f.Add(appendRequest(nil, &request{kind: kindPropose, id: 1, timeout: time.Second, payload: []byte("cmd")}))
	f.Add(appendRequest(nil, &request{kind: kindMembers, id: 9}))
	f.Add(appendErrorResponse(nil, 3, CodeNotLeader, 2, "h:7100", "not the leader"))
	f.Add(appendMembersResponse(nil, 4, map[uint64]string{1: "a:1", 2: "b:2"}))
	f.Add(appendGoAway(nil, "bye"))
	if b, err := appendResultResponse(nil, 5, rawResults{}, []byte{1, 0, 0, 0}); err == nil {
		f.Add(b)
	}
	f.Add(appendHello(nil, 7))
	f.Add(appendWelcome(nil, welcome{status: statusOK, clusterID: 7, nodeID: 2, maxFrame: 4096}))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for range 4 {
			body, err := readFrame(br, 1<<16)
			if err != nil {
				break
			}
			if req, err := decodeRequest(body); err == nil {
				again, err := decodeRequest(frameBody(t, appendRequest(nil, &req)))
				if err != nil || !reflect.DeepEqual(again, req) {
					t.Fatalf("request %+v re-encoded decodes as %+v (%v)", req, again, err)
				}
			}
			if resp, err := decodeResponse(body); err == nil {
				again, err := decodeResponse(frameBody(t, encodeResponse(t, &resp)))
				if err != nil || !reflect.DeepEqual(again, resp) {
					t.Fatalf("response %+v re-encoded decodes as %+v (%v)", resp, again, err)
				}
			}
		}
		_, _, _ = decodeHello(data)
		_, _ = readWelcome(bufio.NewReader(bytes.NewReader(data)))
	})
}

// frameBody strips a frame's length prefix.
func frameBody(t *testing.T, frame []byte) []byte {
	body, err := readFrame(bufio.NewReader(bytes.NewReader(frame)), 1<<30)
	if err != nil {
		t.Fatalf("re-encoded frame does not read: %v", err)
	}
	return body
}

func encodeResponse(t *testing.T, r *response) []byte {
	switch r.kind {
	case respResult:
		var v any
		if r.hasResult {
			v = r.result
			if r.result == nil {
				v = []byte{}
			}
		}
		b, err := appendResultResponse(nil, r.id, rawResults{}, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case respError:
		return appendErrorResponse(nil, r.id, r.code, r.leader, r.leaderAddr, r.msg)
	case respMembers:
		return appendMembersResponse(nil, r.id, r.members)
	}
	return appendGoAway(nil, r.msg)
}

// rawResults carries results that are already bytes.
type rawResults struct{}

func (rawResults) AppendResult(dst []byte, v any) ([]byte, error) {
	return append(dst, v.([]byte)...), nil
}
func (rawResults) DecodeResult(b []byte) (any, error) { return b, nil }

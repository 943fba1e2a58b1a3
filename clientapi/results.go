package clientapi

import (
	"encoding"
	"fmt"
	"maps"
	"slices"

	"github.com/raftbench/raftbench/kv"
)

// ResultCodec carries a state machine's results over the wire: the server
// encodes what node.Propose and node.Read return, the client decodes it back
// into the same Go value, so kv.Client (or a user's own client) sees what
// it would see in-process. A nil result never reaches the codec: the
// protocol marks it absent.
type ResultCodec interface {
	// AppendResult appends v's encoding to dst. An error (v is not a type
	// this codec carries) is answered to the client as CodeInternal.
	AppendResult(dst []byte, v any) ([]byte, error)
	// DecodeResult decodes one result. b is a frame buffer the client never
	// reuses, so the value may alias it.
	DecodeResult(b []byte) (any, error)
}

// KVResults carries kv.Result values: the default codec, for kv.Store.
type KVResults struct{}

// AppendResult encodes a kv.Result.
func (KVResults) AppendResult(dst []byte, v any) ([]byte, error) {
	r, ok := v.(kv.Result)
	if !ok {
		return dst, fmt.Errorf("clientapi: KVResults carries kv.Result, not %T (is the node running a kv.Store? give the server the state machine's ResultCodec)", v)
	}
	return kv.AppendResult(dst, r), nil
}

// DecodeResult decodes a kv.Result; its Value aliases b.
func (KVResults) DecodeResult(b []byte) (any, error) {
	r, err := kv.DecodeResult(b)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// BinaryResults carries results of one type T that marshals itself: T
// implements encoding.BinaryMarshaler (or encoding.BinaryAppender) and *T
// encoding.BinaryUnmarshaler. It is the codec for a state machine of one's
// own; the client gets T values back.
type BinaryResults[T any, PT interface {
	*T
	encoding.BinaryUnmarshaler
}] struct{}

// AppendResult encodes v, which must be a T.
func (BinaryResults[T, PT]) AppendResult(dst []byte, v any) ([]byte, error) {
	t, ok := v.(T)
	if !ok {
		var zero T
		return dst, fmt.Errorf("clientapi: BinaryResults[%T] got a %T", zero, v)
	}
	switch m := any(t).(type) {
	case encoding.BinaryAppender:
		return m.AppendBinary(dst)
	case encoding.BinaryMarshaler:
		b, err := m.MarshalBinary()
		return append(dst, b...), err
	}
	return dst, fmt.Errorf("clientapi: %T implements neither encoding.BinaryMarshaler nor BinaryAppender", t)
}

// DecodeResult decodes a T.
func (BinaryResults[T, PT]) DecodeResult(b []byte) (any, error) {
	var t T
	if err := PT(&t).UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return t, nil
}

func sortedIDs(m map[uint64]string) []uint64 { return slices.Sorted(maps.Keys(m)) }

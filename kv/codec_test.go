package kv

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/raftbench/raftbench/node"
)

var commandCases = []Command{
	{Op: OpOpen, ClientID: 1, Seq: 1},
	{Op: OpPut, ClientID: 7, Seq: 2, Key: []byte("k"), Value: []byte("v")},
	{Op: OpPut, ClientID: 1 << 63, Seq: 1<<64 - 1, Key: nil, Value: nil},
	{Op: OpDelete, ClientID: 300, Seq: 9, Key: []byte("key")},
	{Op: OpCAS, ClientID: 2, Seq: 3, Key: []byte("k"), Expected: []byte("old"), Value: []byte("new")},
	{Op: OpCAS, ClientID: 2, Seq: 4, Key: []byte("k"), ExpectAbsent: true, Value: []byte("new")},
	{Op: OpCAS, ClientID: 2, Seq: 5, Key: []byte("k"), Expected: nil, Value: nil},
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range commandCases {
		enc, err := AppendCommand([]byte("prefix"), c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		if !bytes.HasPrefix(enc, []byte("prefix")) {
			t.Fatalf("AppendCommand did not append to dst")
		}
		got, err := DecodeCommand(enc[len("prefix"):])
		if err != nil {
			t.Fatalf("decode %+v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestEncodingIsCompact(t *testing.T) {
	enc, err := AppendCommand(nil, Command{Op: OpPut, ClientID: 5, Seq: 2, Key: []byte("k"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	// version, op, client, seq, len, k, len, v.
	if want := []byte{1, 2, 5, 2, 1, 'k', 1, 'v'}; !bytes.Equal(enc, want) {
		t.Fatalf("put encodes as %v, want %v", enc, want)
	}
}

func TestAppendCommandRejectsInvalid(t *testing.T) {
	for name, c := range map[string]Command{
		"client 0":       {Op: OpPut, ClientID: 0, Seq: 2},
		"seq 0":          {Op: OpPut, ClientID: 1, Seq: 0},
		"open seq 2":     {Op: OpOpen, ClientID: 1, Seq: 2},
		"put seq 1":      {Op: OpPut, ClientID: 1, Seq: 1},
		"get as command": {Op: OpGet, ClientID: 1, Seq: 2},
		"unknown op":     {Op: 99, ClientID: 1, Seq: 2},
	} {
		if _, err := AppendCommand(nil, c); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: got %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestDecodeCommandRejectsGarbage(t *testing.T) {
	valid, _ := AppendCommand(nil, Command{Op: OpCAS, ClientID: 2, Seq: 3, Key: []byte("k"), Expected: []byte("e"), Value: []byte("v")})
	cases := map[string][]byte{
		"empty":              {},
		"bad version":        {2, 2, 1, 2, 0, 0},
		"unknown op":         {1, 77, 1, 2},
		"get is a query":     {1, 5, 1, 2, 0},
		"client 0":           {1, 2, 0, 2, 0, 0},
		"seq 0":              {1, 2, 1, 0, 0, 0},
		"open with body":     {1, 1, 1, 1, 0},
		"open seq 2":         {1, 1, 1, 2},
		"put seq 1":          {1, 2, 1, 1, 0, 0},
		"truncated varint":   {1, 2, 0x80},
		"varint overflow":    {1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length past end":    {1, 2, 1, 2, 5, 'a'},
		"huge length":        {1, 2, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"missing value":      {1, 2, 1, 2, 1, 'k'},
		"trailing byte":      append(append([]byte(nil), valid...), 0),
		"bad cas mode":       {1, 4, 1, 2, 1, 'k', 2, 0},
		"truncated cas mode": {1, 4, 1, 2, 1, 'k'},
	}
	for i := range valid {
		cases["prefix "+string(rune('a'+i))] = valid[:i]
	}
	for name, b := range cases {
		if c, err := DecodeCommand(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: DecodeCommand(%v) = %+v, %v; want ErrBadEncoding", name, b, c, err)
		}
	}
}

func TestQueryRoundTrip(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("k"), bytes.Repeat([]byte("x"), 300)} {
		got, err := DecodeGetQuery(AppendGetQuery(nil, key))
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("query %q round trip: %q, %v", key, got, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty": {}, "command op": {1, 2, 0}, "bad version": {0, 5, 0},
		"trailing": {1, 5, 0, 0}, "short key": {1, 5, 2, 'k'},
	} {
		if _, err := DecodeGetQuery(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: got %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []Result{
		{Status: StatusOK},
		{Status: StatusOK, Found: true, Value: []byte("v")},
		{Status: StatusCASMismatch, Found: true, Value: []byte("cur")},
		{Status: StatusStaleSequence, Detail: "why"},
		{Status: StatusSessionExpired, Detail: "gone"},
		{Status: StatusBadCommand, Detail: "garbage"},
	} {
		got, err := DecodeResult(AppendResult(nil, r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("result %+v round trip: %+v, %v", r, got, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty": {}, "status 0": {0, 0, 0, 0}, "status 9": {9, 0, 0, 0},
		"bad flags": {1, 2, 0, 0}, "trailing": {1, 0, 0, 0, 0}, "truncated": {1, 0, 3, 'a'},
	} {
		if _, err := DecodeResult(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: got %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestResultErr(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want error
	}{
		{Result{Status: StatusOK}, nil},
		{Result{Status: StatusCASMismatch}, nil},
		{Result{Status: StatusStaleSequence}, ErrStaleSequence},
		{Result{Status: StatusSessionExpired}, ErrSessionExpired},
		{Result{Status: StatusBadCommand}, ErrBadCommand},
		{Result{}, ErrBadCommand},
	} {
		err := tc.r.Err()
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%v.Err() = %v, want %v", tc.r.Status, err, tc.want)
		}
	}
}

// FuzzDecodeCommand feeds arbitrary bytes to every decoder of untrusted
// input — commands (and through Store.Apply, as a replica would meet them
// in the log), queries, results and snapshots — and checks that none
// panics, that every failure wraps ErrBadEncoding, and that whatever
// decodes re-encodes to something that decodes the same.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range commandCases {
		enc, _ := AppendCommand(nil, c)
		f.Add(enc)
	}
	f.Add(AppendGetQuery(nil, []byte("k")))
	f.Add(AppendResult(nil, Result{Status: StatusCASMismatch, Found: true, Value: []byte("v")}))
	f.Add([]byte{1, 0, 1, 1, 'k', 1, 'v', 1, 5, 1, 1, 1, 1, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := DecodeCommand(b); err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("DecodeCommand error %v does not wrap ErrBadEncoding", err)
			}
		} else {
			enc, err := AppendCommand(nil, c)
			if err != nil {
				t.Fatalf("decoded %+v does not re-encode: %v", c, err)
			}
			c2, err := DecodeCommand(enc)
			if err != nil || !reflect.DeepEqual(c, c2) {
				t.Fatalf("re-encoded %+v decodes as %+v, %v", c, c2, err)
			}
		}
		if _, err := DecodeGetQuery(b); err != nil && !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("DecodeGetQuery error %v does not wrap ErrBadEncoding", err)
		}
		if r, err := DecodeResult(b); err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("DecodeResult error %v does not wrap ErrBadEncoding", err)
			}
		} else if r2, err := DecodeResult(AppendResult(nil, r)); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("result %+v re-decodes as %+v, %v", r, r2, err)
		}

		s, _ := NewStore(StoreOptions{MaxSessions: 4})
		res := s.Apply([]node.Command{{Index: 1, Data: b}})
		if r := res[0].(Result); !r.Status.valid() {
			t.Fatalf("Apply answered invalid status %v", r.Status)
		}
		before := s.Hash()
		if err := s.Restore(b); err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("Restore error %v does not wrap ErrBadEncoding", err)
			}
			if s.Hash() != before {
				t.Fatal("failed Restore changed the store")
			}
		}
	})
}

func TestResultBinary(t *testing.T) {
	for _, r := range []Result{
		{Status: StatusOK},
		{Status: StatusOK, Found: true, Value: []byte("v")},
		{Status: StatusCASMismatch, Found: true, Value: []byte("cur")},
		{Status: StatusBadCommand, Detail: "why"},
	} {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := r.AppendBinary([]byte("x")); !bytes.Equal(a[1:], b) || a[0] != 'x' {
			t.Errorf("AppendBinary does not append MarshalBinary's bytes")
		}
		var got Result
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip of %+v = %+v", r, got)
		}
		if len(b) > 2 && r.Value != nil {
			b[len(b)-len(r.Detail)-2] ^= 0xff // inside Value
			if !reflect.DeepEqual(got.Value, r.Value) {
				t.Errorf("UnmarshalBinary's Value aliases its input")
			}
		}
	}
	var r Result
	if err := r.UnmarshalBinary([]byte{9, 0, 0, 0}); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("bad status = %v, want ErrBadEncoding", err)
	}
}

// AppendCommand sizes its buffer exactly: encoding into nil allocates once,
// whatever the lengths' varint widths.
func TestAppendCommandSizesExactly(t *testing.T) {
	cases := append([]Command(nil), commandCases...)
	cases = append(cases,
		Command{Op: OpPut, ClientID: 127, Seq: 128, Key: bytes.Repeat([]byte("k"), 127), Value: bytes.Repeat([]byte("v"), 128)},
		Command{Op: OpCAS, ClientID: 16383, Seq: 16384, Key: bytes.Repeat([]byte("k"), 300), Expected: bytes.Repeat([]byte("e"), 16384), Value: bytes.Repeat([]byte("v"), 70000)},
	)
	for _, c := range cases {
		enc, err := AppendCommand(nil, c)
		if err != nil {
			t.Fatalf("encode %v: %v", c.Op, err)
		}
		if len(enc) != c.encodedLen() {
			t.Fatalf("%v: encoded %d bytes, encodedLen says %d", c.Op, len(enc), c.encodedLen())
		}
		if raceEnabled {
			continue
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = AppendCommand(nil, c) }); n != 1 {
			t.Fatalf("%v: %v allocations per AppendCommand into nil, want 1", c.Op, n)
		}
	}
}

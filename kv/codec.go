package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// encodingVersion is the first byte of every command and query. A replica
// that meets another version answers StatusBadCommand instead of guessing,
// so a mixed-version cluster fails loudly and identically on every replica.
const encodingVersion = 1

// ErrBadEncoding is wrapped by every decoding error: the bytes are not a
// command, query, result or snapshot of this package.
var ErrBadEncoding = errors.New("kv: bad encoding")

// Op names a command or query kind. The numeric values are part of the
// encoding: never renumber them.
type Op uint8

const (
	// OpOpen opens a client session. It changes no data, so a duplicate of
	// it is harmless; it must carry sequence number 1.
	OpOpen Op = 1
	// OpPut sets Key to Value.
	OpPut Op = 2
	// OpDelete removes Key.
	OpDelete Op = 3
	// OpCAS sets Key to Value if Key currently holds Expected (or, with
	// ExpectAbsent, if Key is absent).
	OpCAS Op = 4
	// OpGet reads Key. It is a query (Store.Read), never a logged command.
	OpGet Op = 5
)

// String names the op as the model and errors print it.
func (o Op) String() string {
	switch o {
	case OpOpen:
		return "open"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCAS:
		return "cas"
	case OpGet:
		return "get"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is a decoded session command. Slices returned by DecodeCommand
// alias the decoded buffer: whoever keeps them past the buffer's life must
// copy them (Store does).
type Command struct {
	Op       Op
	ClientID uint64 // non-zero
	Seq      uint64 // non-zero; 1 only for OpOpen
	Key      []byte
	// Value is the value to store: Put's value, CAS's new value.
	Value []byte
	// Expected is CAS's expected current value; ignored when ExpectAbsent.
	Expected []byte
	// ExpectAbsent makes a CAS succeed only when Key is absent, which no
	// Expected value can say (an empty value is still a value).
	ExpectAbsent bool
}

// validate holds the rules that make a command meaningful, checked both
// before encoding (a client bug fails at the client) and after decoding (so
// the Store can trust every decoded command).
func (c *Command) validate() error {
	if c.ClientID == 0 {
		return fmt.Errorf("%w: client ID 0", ErrBadEncoding)
	}
	if c.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0", ErrBadEncoding)
	}
	switch c.Op {
	case OpOpen:
		if c.Seq != 1 {
			return fmt.Errorf("%w: open with sequence number %d, want 1", ErrBadEncoding, c.Seq)
		}
	case OpPut, OpDelete, OpCAS:
		if c.Seq == 1 {
			return fmt.Errorf("%w: %v with sequence number 1, which only open may use", ErrBadEncoding, c.Op)
		}
	default:
		return fmt.Errorf("%w: %v is not a command", ErrBadEncoding, c.Op)
	}
	return nil
}

// cas flag values in the encoding.
const (
	casExpectValue  = 0
	casExpectAbsent = 1
)

// AppendCommand appends c's encoding to dst. It returns an error (wrapping
// ErrBadEncoding) for a command that no replica would accept.
func AppendCommand(dst []byte, c Command) ([]byte, error) {
	if err := c.validate(); err != nil {
		return dst, err
	}
	// One allocation for the whole command: growing from nil took three
	// per Put (a third of the client's allocations).
	dst = slices.Grow(dst, c.encodedLen())
	dst = append(dst, encodingVersion, byte(c.Op))
	dst = binary.AppendUvarint(dst, c.ClientID)
	dst = binary.AppendUvarint(dst, c.Seq)
	switch c.Op {
	case OpPut:
		dst = appendBytes(dst, c.Key)
		dst = appendBytes(dst, c.Value)
	case OpDelete:
		dst = appendBytes(dst, c.Key)
	case OpCAS:
		dst = appendBytes(dst, c.Key)
		if c.ExpectAbsent {
			dst = append(dst, casExpectAbsent)
		} else {
			dst = append(dst, casExpectValue)
			dst = appendBytes(dst, c.Expected)
		}
		dst = appendBytes(dst, c.Value)
	}
	return dst, nil
}

// DecodeCommand decodes one command. Any input that is not exactly one valid
// command — truncated, trailing bytes, unknown version or op, a length past
// the end, zero IDs — is an error wrapping ErrBadEncoding; it never panics,
// because these bytes come from the replicated log and a replica must
// survive whatever a buggy client proposed.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	d := decoder{buf: b}
	d.version()
	c.Op = Op(d.byte("op"))
	c.ClientID = d.uvarint("client ID")
	c.Seq = d.uvarint("sequence number")
	if d.err != nil {
		return Command{}, fmt.Errorf("kv: decode command: %w", d.err)
	}
	switch c.Op {
	case OpOpen:
	case OpPut:
		c.Key = d.bytes("key")
		c.Value = d.bytes("value")
	case OpDelete:
		c.Key = d.bytes("key")
	case OpCAS:
		c.Key = d.bytes("key")
		switch f := d.byte("cas mode"); {
		case d.err != nil:
		case f == casExpectAbsent:
			c.ExpectAbsent = true
		case f == casExpectValue:
			c.Expected = d.bytes("expected value")
		default:
			d.fail("cas mode %d", f)
		}
		c.Value = d.bytes("new value")
	default:
		d.fail("%v is not a command", c.Op)
	}
	d.end()
	if d.err == nil {
		d.err = c.validate()
	}
	if d.err != nil {
		return Command{}, fmt.Errorf("kv: decode command: %w", d.err)
	}
	return c, nil
}

// AppendGetQuery appends the encoding of a query for key, for Store.Read.
func AppendGetQuery(dst []byte, key []byte) []byte {
	dst = append(dst, encodingVersion, byte(OpGet))
	return appendBytes(dst, key)
}

// DecodeGetQuery decodes a query made by AppendGetQuery and returns its key
// (aliasing b). Errors wrap ErrBadEncoding.
func DecodeGetQuery(b []byte) ([]byte, error) {
	d := decoder{buf: b}
	d.version()
	if op := Op(d.byte("op")); d.err == nil && op != OpGet {
		d.fail("%v is not a query", op)
	}
	key := d.bytes("key")
	d.end()
	if d.err != nil {
		return nil, fmt.Errorf("kv: decode query: %w", d.err)
	}
	return key, nil
}

// result flag bits.
const resultFound = 1

// AppendResult appends r's encoding to dst: status, flags, value, detail.
// Snapshots store session replies this way, and a harness that carries
// results between processes can use it too.
func AppendResult(dst []byte, r Result) []byte {
	var flags byte
	if r.Found {
		flags |= resultFound
	}
	dst = append(dst, byte(r.Status), flags)
	dst = appendBytes(dst, r.Value)
	return appendBytes(dst, []byte(r.Detail))
}

// resultLen is the length of r's encoding by AppendResult.
func resultLen(r Result) int {
	return 2 + bytesLen(r.Value) + uvarintLen(uint64(len(r.Detail))) + len(r.Detail)
}

// DecodeResult decodes exactly one result encoded by AppendResult. The
// returned Value aliases b. Errors wrap ErrBadEncoding.
func DecodeResult(b []byte) (Result, error) {
	d := decoder{buf: b}
	r := d.result()
	d.end()
	if d.err != nil {
		return Result{}, fmt.Errorf("kv: decode result: %w", d.err)
	}
	return r, nil
}

// encodedLen is the length of c's encoding by AppendCommand.
func (c *Command) encodedLen() int {
	n := 2 + uvarintLen(c.ClientID) + uvarintLen(c.Seq)
	switch c.Op {
	case OpPut:
		n += bytesLen(c.Key) + bytesLen(c.Value)
	case OpDelete:
		n += bytesLen(c.Key)
	case OpCAS:
		n += bytesLen(c.Key) + 1 + bytesLen(c.Value)
		if !c.ExpectAbsent {
			n += bytesLen(c.Expected)
		}
	}
	return n
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// bytesLen is the length of b's encoding by appendBytes.
func bytesLen(b []byte) int { return uvarintLen(uint64(len(b))) + len(b) }

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads from buf and records the first error; later reads return
// zero values, so a decode function checks err once at the end instead of
// after every field.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at offset %d", ErrBadEncoding, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("truncated before %s", what)
		return 0
	}
	b := d.buf[d.off]
	d.off++
	return b
}

func (d *decoder) version() {
	if v := d.byte("version"); d.err == nil && v != encodingVersion {
		d.fail("version %d, want %d", v, encodingVersion)
	}
}

func (d *decoder) uvarint(what string) uint64 { return d.uvarintOf(what, "") }

// uvarintOf reads a varint named what+suffix; the name is only assembled
// on failure, so decoding a command (on every replica, for every entry)
// does not allocate for it.
func (d *decoder) uvarintOf(what, suffix string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad varint for %s%s", what, suffix)
		return 0
	}
	d.off += n
	return v
}

// bytes reads a length-prefixed byte string. The length is checked against
// what is left before slicing, so a huge length cannot allocate or panic.
// An empty string decodes as nil, so decode-encode-decode is stable.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarintOf(what, " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("%s length %d exceeds the %d bytes left", what, n, len(d.buf)-d.off)
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b
}

func (d *decoder) result() Result {
	var r Result
	r.Status = Status(d.byte("status"))
	flags := d.byte("result flags")
	r.Value = d.bytes("value")
	r.Detail = string(d.bytes("detail"))
	if d.err != nil {
		return Result{}
	}
	if !r.Status.valid() {
		d.fail("status %d", uint8(r.Status))
	}
	if flags&^resultFound != 0 {
		d.fail("result flags %#x", flags)
	}
	r.Found = flags&resultFound != 0
	return r
}

func (d *decoder) end() {
	if d.err == nil && d.off != len(d.buf) {
		d.fail("%d trailing bytes", len(d.buf)-d.off)
	}
}

// Package wire is the client API's wire format: hand-written binary in the
// style of the transport codec (varints, length-prefixed bytes), every
// length checked against the frame and every frame against the maximum
// frame size, never a panic on bad input. It imports nothing of the project,
// so it can be fuzzed (and read) on its own; package clientapi runs
// connections with it.
//
// A connection opens with a handshake (a hello, answered by a Welcome) carrying the
// cluster ID; then frames (uvarint length, body) flow both ways, requests
// from the client and responses from the server, matched by request ID.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// Protocol errors. Decoding never panics: every malformed input maps to one
// of these, wrapped with the detail.
var (
	// ErrFrameTooLarge: a frame header announces more bytes than the
	// maximum frame size, or a request would need more.
	ErrFrameTooLarge = errors.New("clientapi: frame too large")
	// ErrBadFrame: a frame or handshake is truncated, has trailing bytes,
	// or holds a value out of range.
	ErrBadFrame = errors.New("clientapi: bad frame")
	// ErrVersion: the other side speaks another protocol version.
	ErrVersion = errors.New("clientapi: unsupported protocol version")
)

// Handshake constants. A client opens with
//
//	hello := magic "RBCA" | version (1 byte) | cluster ID (8 bytes, big endian)
//
// and the server answers
//
//	welcome := magic "RBCA" | version | status (1 byte) | cluster ID (8 bytes)
//	           | node ID (uvarint) | max frame (uvarint)
//
// with its own cluster ID and node ID and the largest frame body it
// accepts. A status other than StatusOK is followed by the server closing
// the connection.
const (
	// Magic opens both handshake messages.
	Magic = "RBCA"
	// Version is the protocol version this code speaks; there is no
	// negotiation, so another version is refused.
	Version = 1
	// HelloSize is the fixed size of a hello.
	HelloSize = len(Magic) + 1 + 8
	// Welcome statuses.
	StatusOK      = 0
	StatusCluster = 1 // the client belongs to another cluster
	StatusVersion = 2 // the client speaks another version
)

// Request kinds.
const (
	KindPropose = 1 // payload: a command for node.Propose
	KindRead    = 2 // payload: a query for node.Read
	KindMembers = 3 // payload empty: the client addresses of the cluster
)

// Response kinds.
const (
	RespResult  = 1
	RespError   = 2
	RespMembers = 3
	// RespGoAway (request ID 0) says why the server is closing the
	// connection: a bad frame, or it is shutting down.
	RespGoAway = 4
)

// resultFlagPresent marks a result response that carries a result (a
// command whose state machine returned nil carries none).
const resultFlagPresent = 1

// Code says why a request failed. The values are part of the protocol:
// never renumber them.
type Code uint8

// Error codes of an error response.
const (
	// CodeNotLeader: the node does not lead; the response names the
	// leader (0: unknown) and its client address ("" when unknown).
	CodeNotLeader Code = 1
	// CodeStopped: the node is stopping or stopped.
	CodeStopped Code = 2
	// CodeTimeout: the request's time ran out at the node (outcome
	// unknown).
	CodeTimeout Code = 3
	// CodeLeadershipLost: the node lost its leadership before the command
	// applied (outcome unknown).
	CodeLeadershipLost Code = 4
	// CodeTooLarge: the command exceeds the node's proposal limit.
	CodeTooLarge Code = 5
	// CodeBadEncoding: the state machine refused the bytes as malformed
	// (a kv query that does not decode).
	CodeBadEncoding Code = 6
	// CodeStateMachine: the state machine's Read failed otherwise.
	CodeStateMachine Code = 7
	// CodeInternal: anything else (a result that would not encode, a node
	// stopped by a fatal error).
	CodeInternal Code = 8
	// MaxCode is the highest code.
	MaxCode = CodeInternal
)

// String names the code.
func (c Code) String() string {
	switch c {
	case CodeNotLeader:
		return "not-leader"
	case CodeStopped:
		return "stopped"
	case CodeTimeout:
		return "timeout"
	case CodeLeadershipLost:
		return "leadership-lost"
	case CodeTooLarge:
		return "too-large"
	case CodeBadEncoding:
		return "bad-encoding"
	case CodeStateMachine:
		return "state-machine"
	case CodeInternal:
		return "internal"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Request is one request frame:
//
//	request := kind (1 byte) | id (uvarint, non-zero) | timeout µs (uvarint; 0 = none) | payload (bytes)
//
// where bytes is a uvarint length and that many bytes.
type Request struct {
	// Kind is KindPropose, KindRead or KindMembers.
	Kind byte
	// ID is the client's number for the request (non-zero), echoed in its
	// response.
	ID uint64
	// Timeout is what the client's context had left (0: none); it travels
	// in whole microseconds.
	Timeout time.Duration
	// Payload is the command or query; decoded, it aliases the frame.
	Payload []byte
}

// Response is one response frame:
//
//	response := kind (1 byte) | id (uvarint) | body
//	  result:  flags (1 byte; bit 0: a result follows) | result (bytes)
//	  error:   code (1 byte) | leader ID (uvarint) | leader address (bytes) | message (bytes)
//	  members: count (uvarint) | {node ID (uvarint) | client address (bytes)}*
//	  goaway:  message (bytes)                                  (id 0)
type Response struct {
	// Kind is RespResult, RespError, RespMembers or RespGoAway.
	Kind byte
	// ID is the request answered (0 for a goaway).
	ID uint64
	// HasResult says a result response carries one; Result is its
	// encoding (aliasing the frame).
	HasResult bool
	Result    []byte
	// Code, Leader and LeaderAddr describe an error response; Msg is its
	// message (or a goaway's).
	Code       Code
	Leader     uint64
	LeaderAddr string
	Msg        string
	// Members maps node IDs to client addresses (a members response).
	Members map[uint64]string
}

// A frame is the body's uvarint length, then the body. The body is encoded
// straight into the output buffer in two steps, so encoding needs no
// scratch buffer: reserve leaves room for the longest length prefix at
// start, the caller appends the body, and finish writes the real length
// and moves the body down over the unused part of the slot.
func reserve(dst []byte) ([]byte, int) {
	start := len(dst)
	return append(dst, make([]byte, binary.MaxVarintLen64)...), start
}

// finish writes the length of the body encoded after the slot reserve made
// at start and closes the gap.
func finish(dst []byte, start int) []byte {
	bodyStart := start + binary.MaxVarintLen64
	n := len(dst) - bodyStart
	var hdr [binary.MaxVarintLen64]byte
	h := binary.PutUvarint(hdr[:], uint64(n))
	copy(dst[start:], hdr[:h])
	copy(dst[start+h:], dst[bodyStart:])
	return dst[:start+h+n]
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// AppendRequest appends r's frame.
func AppendRequest(dst []byte, r *Request) []byte {
	dst, start := reserve(dst)
	dst = append(dst, r.Kind)
	dst = binary.AppendUvarint(dst, r.ID)
	dst = binary.AppendUvarint(dst, uint64(max(r.Timeout, 0)/time.Microsecond))
	dst = appendBytes(dst, r.Payload)
	return finish(dst, start)
}

// RequestSize is the body size of a request with a payload of n bytes (an
// upper bound: the varints are counted at their longest).
func RequestSize(n int) int { return 1 + 3*binary.MaxVarintLen64 + n }

// ResultAppender encodes a state machine's result (clientapi.ResultCodec
// is one).
type ResultAppender interface {
	AppendResult(dst []byte, v any) ([]byte, error)
}

// AppendResultResponse appends a result response carrying v encoded by
// codec (v nil: no result). On an encoding error dst comes back as it was.
func AppendResultResponse(dst []byte, id uint64, codec ResultAppender, v any) ([]byte, error) {
	mark := len(dst)
	dst, start := reserve(dst)
	dst = append(dst, RespResult)
	dst = binary.AppendUvarint(dst, id)
	if v == nil {
		dst = append(dst, 0)
		dst = binary.AppendUvarint(dst, 0)
		return finish(dst, start), nil
	}
	dst = append(dst, resultFlagPresent)
	// The result's length is not known before it is encoded: encode it
	// after a reserved length slot, as for the frame.
	dst, rstart := reserve(dst)
	dst, err := codec.AppendResult(dst, v)
	if err != nil {
		return dst[:mark], err
	}
	dst = finish(dst, rstart)
	return finish(dst, start), nil
}

// AppendErrorResponse appends an error response.
func AppendErrorResponse(dst []byte, id uint64, code Code, leader uint64, leaderAddr, msg string) []byte {
	dst, start := reserve(dst)
	dst = append(dst, RespError)
	dst = binary.AppendUvarint(dst, id)
	dst = append(dst, byte(code))
	dst = binary.AppendUvarint(dst, leader)
	dst = appendBytes(dst, []byte(leaderAddr))
	dst = appendBytes(dst, []byte(msg))
	return finish(dst, start)
}

// AppendMembersResponse appends a members response (IDs ascending).
func AppendMembersResponse(dst []byte, id uint64, members map[uint64]string) []byte {
	dst, start := reserve(dst)
	dst = append(dst, RespMembers)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendUvarint(dst, uint64(len(members)))
	for _, mid := range slices.Sorted(maps.Keys(members)) {
		dst = binary.AppendUvarint(dst, mid)
		dst = appendBytes(dst, []byte(members[mid]))
	}
	return finish(dst, start)
}

// AppendGoAway appends a goaway: the server closes the connection after it.
func AppendGoAway(dst []byte, msg string) []byte {
	dst, start := reserve(dst)
	dst = append(dst, RespGoAway)
	dst = binary.AppendUvarint(dst, 0)
	dst = appendBytes(dst, []byte(msg))
	return finish(dst, start)
}

// decoder walks a frame body. The first error sticks; later reads return
// zero values, so a decode function checks once at the end.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrBadFrame, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated before %s", what)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint(what string) uint64 { return d.uvarintOf(what, "") }

// uvarintOf reads a varint named what+suffix; the name is only assembled
// on failure, so the hot path does not allocate.
func (d *decoder) uvarintOf(what, suffix string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		if n == 0 {
			d.fail("truncated varint %s%s", what, suffix)
		} else {
			d.fail("varint %s%s overflows 64 bits", what, suffix)
		}
		return 0
	}
	d.off += n
	return v
}

// bytes reads a length-prefixed byte string aliasing the body; the length
// is checked against what is left before slicing.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarintOf(what, " length")
	if d.err != nil {
		return nil
	}
	if left := len(d.b) - d.off; n > uint64(left) {
		d.fail("%s length %d exceeds the %d bytes left", what, n, left)
		return nil
	}
	if n == 0 {
		return nil
	}
	end := d.off + int(n)
	s := d.b[d.off:end:end]
	d.off = end
	return s
}

func (d *decoder) end() {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.off)
	}
}

// MaxTimeout bounds a request's timeout so the conversion cannot overflow;
// it is far above anything a server allows (ServerConfig.MaxTimeout).
const MaxTimeout = 24 * time.Hour

// DecodeRequest decodes one request frame body. Anything that is not
// exactly one valid request is an error wrapping ErrBadFrame.
func DecodeRequest(body []byte) (Request, error) {
	d := decoder{b: body}
	var r Request
	r.Kind = d.byte1("kind")
	r.ID = d.uvarint("request id")
	us := d.uvarint("timeout")
	r.Payload = d.bytes("payload")
	d.end()
	if d.err == nil {
		switch {
		case r.Kind < KindPropose || r.Kind > KindMembers:
			d.fail("request kind %d unknown", r.Kind)
		case r.ID == 0:
			d.fail("request id 0")
		case us > uint64(MaxTimeout/time.Microsecond):
			d.fail("timeout of %d µs exceeds %v", us, MaxTimeout)
		case r.Kind == KindMembers && len(r.Payload) > 0:
			d.fail("members request with a %d-byte payload", len(r.Payload))
		}
	}
	if d.err != nil {
		return Request{}, d.err
	}
	r.Timeout = time.Duration(us) * time.Microsecond
	return r, nil
}

// DecodeResponse decodes one response frame body. Anything that is not
// exactly one valid response is an error wrapping ErrBadFrame.
func DecodeResponse(body []byte) (Response, error) {
	d := decoder{b: body}
	var r Response
	r.Kind = d.byte1("kind")
	r.ID = d.uvarint("request id")
	switch r.Kind {
	case RespResult:
		flags := d.byte1("flags")
		r.Result = d.bytes("result")
		if d.err == nil && flags&^resultFlagPresent != 0 {
			d.fail("result flags %#x", flags)
		}
		r.HasResult = flags&resultFlagPresent != 0
		if d.err == nil && !r.HasResult && len(r.Result) > 0 {
			d.fail("result bytes without the result flag")
		}
	case RespError:
		r.Code = Code(d.byte1("error code"))
		r.Leader = d.uvarint("leader")
		r.LeaderAddr = string(d.bytes("leader address"))
		r.Msg = string(d.bytes("message"))
		if d.err == nil && (r.Code == 0 || r.Code > MaxCode) {
			d.fail("error code %d unknown", r.Code)
		}
	case RespMembers:
		n := d.uvarint("member count")
		// Every member takes at least two bytes.
		if d.err == nil && n > uint64(len(d.b)-d.off)/2 {
			d.fail("member count %d cannot fit in the %d bytes left", n, len(d.b)-d.off)
		}
		if d.err == nil {
			r.Members = make(map[uint64]string, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			id := d.uvarint("member id")
			addr := string(d.bytes("member address"))
			if d.err == nil {
				if _, dup := r.Members[id]; dup || id == 0 {
					d.fail("member id %d zero or repeated", id)
				}
			}
			r.Members[id] = addr
		}
	case RespGoAway:
		r.Msg = string(d.bytes("message"))
		if d.err == nil && r.ID != 0 {
			d.fail("goaway with request id %d", r.ID)
		}
	default:
		d.fail("response kind %d unknown", r.Kind)
	}
	d.end()
	if d.err == nil && r.Kind != RespGoAway && r.ID == 0 {
		d.fail("response with request id 0")
	}
	if d.err != nil {
		return Response{}, d.err
	}
	return r, nil
}

// ReadFrame reads one frame and returns its body in a new slice (decoded
// payloads and results alias it, so it is never reused). A length above
// maxFrame fails with ErrFrameTooLarge before anything is allocated; a
// clean io.EOF before the first byte is returned as io.EOF.
func ReadFrame(r *bufio.Reader, maxFrame int) ([]byte, error) {
	n, err := readUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(maxFrame) {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, maxFrame)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrBadFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: body of %d bytes: %w", ErrBadFrame, n, err)
	}
	return body, nil
}

// readUvarint reads a frame length: io.EOF only when no byte was read at
// all, ErrBadFrame for a length cut short or longer than 64 bits, and the
// reader's own error otherwise.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := range binary.MaxVarintLen64 {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("%w: truncated frame length: %w", ErrBadFrame, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return x | uint64(c)<<s, nil
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, fmt.Errorf("%w: frame length overflows 64 bits", ErrBadFrame)
}

// AppendHello appends a client's hello.
func AppendHello(dst []byte, clusterID uint64) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, Version)
	return binary.BigEndian.AppendUint64(dst, clusterID)
}

// DecodeHello decodes a client's hello (exactly HelloSize bytes). A bad
// Magic is ErrBadFrame; another version is ErrVersion (with the version,
// so the server can answer it).
func DecodeHello(b []byte) (clusterID uint64, ver byte, err error) {
	if len(b) != HelloSize || string(b[:len(Magic)]) != Magic {
		return 0, 0, fmt.Errorf("%w: not a client API hello (bad Magic)", ErrBadFrame)
	}
	ver = b[len(Magic)]
	clusterID = binary.BigEndian.Uint64(b[len(Magic)+1:])
	if ver != Version {
		return clusterID, ver, fmt.Errorf("%w: client speaks version %d, this server %d", ErrVersion, ver, Version)
	}
	return clusterID, ver, nil
}

// Welcome is the server's answer to a hello.
type Welcome struct {
	// Status is StatusOK, StatusCluster or StatusVersion.
	Status byte
	// ClusterID and NodeID say whom the client reached; MaxFrame is the
	// largest frame body the server accepts.
	ClusterID uint64
	NodeID    uint64
	MaxFrame  uint64
}

// AppendWelcome appends a welcome.
func AppendWelcome(dst []byte, w Welcome) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, Version, w.Status)
	dst = binary.BigEndian.AppendUint64(dst, w.ClusterID)
	dst = binary.AppendUvarint(dst, w.NodeID)
	return binary.AppendUvarint(dst, w.MaxFrame)
}

// ReadWelcome reads and checks a welcome from r.
func ReadWelcome(r *bufio.Reader) (Welcome, error) {
	var hdr [len(Magic) + 2 + 8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Welcome{}, fmt.Errorf("%w: reading the server's welcome: %w", ErrBadFrame, err)
	}
	if string(hdr[:len(Magic)]) != Magic {
		return Welcome{}, fmt.Errorf("%w: the server's welcome has a bad Magic (not a raftbench client API port?)", ErrBadFrame)
	}
	if v := hdr[len(Magic)]; v != Version {
		return Welcome{}, fmt.Errorf("%w: server speaks version %d, this client %d", ErrVersion, v, Version)
	}
	w := Welcome{Status: hdr[len(Magic)+1], ClusterID: binary.BigEndian.Uint64(hdr[len(Magic)+2:])}
	var err error
	if w.NodeID, err = binary.ReadUvarint(r); err != nil {
		return Welcome{}, fmt.Errorf("%w: welcome node ID: %w", ErrBadFrame, err)
	}
	if w.MaxFrame, err = binary.ReadUvarint(r); err != nil {
		return Welcome{}, fmt.Errorf("%w: welcome max frame: %w", ErrBadFrame, err)
	}
	if w.Status > StatusVersion {
		return Welcome{}, fmt.Errorf("%w: welcome status %d unknown", ErrBadFrame, w.Status)
	}
	return w, nil
}

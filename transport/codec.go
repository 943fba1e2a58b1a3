package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/raftbench/raftbench/core"
)

// Codec errors. Decoding never panics: every malformed input maps to one of
// these (wrapped with the detail), so a reader can count it and close that
// one connection.
var (
	// ErrFrameTooLarge: a frame header announces more bytes than the
	// configured maximum frame size.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrBadFrame: a frame body is truncated, has trailing bytes, or holds a
	// value out of range.
	ErrBadFrame = errors.New("transport: bad frame")
)

// Frame flag bits. Unknown bits are rejected so a future version cannot be
// misread silently.
const (
	flagReject   = 1 << 0
	flagSnapshot = 1 << 1
	// flagTiming marks a follower's AppTiming report (two uvarints after
	// the header fields). Messages without one pay no byte for it.
	flagTiming = 1 << 2
	knownFlags = flagReject | flagSnapshot | flagTiming
)

// minEntrySize is the fewest bytes an encoded entry can take (term, index,
// type, data length: one byte each). The decoder bounds an entry count by
// remaining/minEntrySize before allocating, so a tiny frame cannot make it
// allocate a huge slice.
const minEntrySize = 4

func uvarintLen(x uint64) int {
	// 1 byte per started 7 bits; x|1 makes 0 take one byte.
	return (bits.Len64(x|1) + 6) / 7
}

// MessageSize is the size in bytes of m's frame body (without the length
// prefix). It walks the message without allocating, so the writer can
// refuse an oversized message before encoding it.
func MessageSize(m *core.Message) int {
	n := 2 // type, flags
	n += uvarintLen(m.From) + uvarintLen(m.To) + uvarintLen(m.Term) +
		uvarintLen(m.LogTerm) + uvarintLen(m.Index) + uvarintLen(m.Commit) +
		uvarintLen(m.RejectHint) + uvarintLen(m.Context)
	if !m.Timing.IsZero() {
		n += uvarintLen(m.Timing.HoldNanos) + uvarintLen(m.Timing.PersistNanos)
	}
	n += uvarintLen(uint64(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		n += uvarintLen(e.Term) + uvarintLen(e.Index) + 1 +
			uvarintLen(uint64(len(e.Data))) + len(e.Data)
	}
	if s := m.Snapshot; s != nil {
		n += uvarintLen(s.Meta.Index) + uvarintLen(s.Meta.Term)
		for _, ids := range [][]uint64{s.Meta.Conf.Voters, s.Meta.Conf.VotersOutgoing, s.Meta.Conf.Learners} {
			n += uvarintLen(uint64(len(ids)))
			for _, id := range ids {
				n += uvarintLen(id)
			}
		}
		n += uvarintLen(uint64(len(s.Data))) + len(s.Data)
	}
	return n
}

// maxMessageHeader is the most a frame body holds besides its entries and
// snapshot: type and flags, eight uvarint fields and the entry count.
const maxMessageHeader = 2 + 9*binary.MaxVarintLen64

// MaxMessageSize bounds MessageSize of any message without a snapshot whose
// entries total entryBytes by core.Entry.Size: what a runtime compares
// with MaxFrameSize to know that its largest AppendEntries can travel.
//
// The bound holds because an entry's encoding never exceeds its Size while
// its term and index are below 2^63 and its data below 32 GiB: term and
// index take at most 9 uvarint bytes each, the type one and the data
// length 5, the 24 bytes Size charges beyond the data. What remains is the
// message's own header, at most maxMessageHeader bytes.
func MaxMessageSize(entryBytes uint64) uint64 { return entryBytes + maxMessageHeader }

// FrameSize is the size of m's whole frame: length prefix plus body.
func FrameSize(m *core.Message) int {
	b := MessageSize(m)
	return uvarintLen(uint64(b)) + b
}

// AppendFrame appends m's frame (uvarint body length, then the body) to dst
// and returns the extended slice. It does not check the maximum frame size;
// callers compare FrameSize first.
func AppendFrame(dst []byte, m *core.Message) []byte {
	dst = binary.AppendUvarint(dst, uint64(MessageSize(m)))
	return AppendMessage(dst, m)
}

// AppendMessage appends m's frame body (no length prefix) to dst.
func AppendMessage(dst []byte, m *core.Message) []byte {
	e := encoder{buf: dst}
	e.message(m)
	return e.buf
}

// encoder appends a message to buf. With zeroCopyMin > 0, a data field of
// at least that many bytes is not copied: the bytes encoded so far and the
// caller's data slice are appended to segs instead, to be written with one
// vectored write (writev on TCP). That saves one memory pass over large
// appends, which is most of the sender's CPU for 1 MiB messages.
type encoder struct {
	buf         []byte
	segs        [][]byte
	mark        int // buf[mark:] is not yet in segs
	zeroCopyMin int
	zeroCopied  int // bytes referenced rather than copied
}

// cut moves buf[mark:] into segs, capacity clipped so later appends to buf
// cannot change what segs holds.
func (e *encoder) cut() {
	if len(e.buf) > e.mark {
		e.segs = append(e.segs, e.buf[e.mark:len(e.buf):len(e.buf)])
	}
	e.mark = len(e.buf)
}

func (e *encoder) data(d []byte) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(d)))
	if e.zeroCopyMin > 0 && len(d) >= e.zeroCopyMin {
		e.cut()
		e.segs = append(e.segs, d)
		e.zeroCopied += len(d)
		return
	}
	e.buf = append(e.buf, d...)
}

// size is the number of bytes encoded so far, copied or referenced.
func (e *encoder) size() int { return len(e.buf) + e.zeroCopied }

// reset empties the encoder for reuse, keeping buf's storage.
func (e *encoder) reset() {
	clear(e.segs)
	e.buf, e.segs, e.mark, e.zeroCopied = e.buf[:0], e.segs[:0], 0, 0
}

func (e *encoder) message(m *core.Message) {
	var flags byte
	if m.Reject {
		flags |= flagReject
	}
	if m.Snapshot != nil {
		flags |= flagSnapshot
	}
	timed := !m.Timing.IsZero()
	if timed {
		flags |= flagTiming
	}
	e.buf = append(e.buf, byte(m.Type), flags)
	for _, v := range [...]uint64{m.From, m.To, m.Term, m.LogTerm, m.Index, m.Commit, m.RejectHint, m.Context} {
		e.buf = binary.AppendUvarint(e.buf, v)
	}
	if timed {
		e.buf = binary.AppendUvarint(e.buf, m.Timing.HoldNanos)
		e.buf = binary.AppendUvarint(e.buf, m.Timing.PersistNanos)
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(len(m.Entries)))
	for i := range m.Entries {
		ent := &m.Entries[i]
		e.buf = binary.AppendUvarint(e.buf, ent.Term)
		e.buf = binary.AppendUvarint(e.buf, ent.Index)
		e.buf = append(e.buf, byte(ent.Type))
		e.data(ent.Data)
	}
	if s := m.Snapshot; s != nil {
		e.buf = binary.AppendUvarint(e.buf, s.Meta.Index)
		e.buf = binary.AppendUvarint(e.buf, s.Meta.Term)
		for _, ids := range [][]uint64{s.Meta.Conf.Voters, s.Meta.Conf.VotersOutgoing, s.Meta.Conf.Learners} {
			e.buf = binary.AppendUvarint(e.buf, uint64(len(ids)))
			for _, id := range ids {
				e.buf = binary.AppendUvarint(e.buf, id)
			}
		}
		e.data(s.Data)
	}
}

// decoder walks a frame body. The first error sticks; later reads return
// zero values, so DecodeMessage checks once at the end of each section.
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

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated reading %s", what)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint(what string) uint64 { return d.uvarintOf(what, "") }

// uvarintOf reads a varint named what+suffix; the name is only assembled on
// failure, so the hot path does not allocate.
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

// bytes returns a length-prefixed byte string aliasing the body, with its
// capacity clipped so an append by the owner cannot overwrite what follows.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarintOf(what, " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(d.remaining()) {
		d.fail("%s length %d exceeds the %d bytes left", what, n, d.remaining())
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

// count reads a element count and checks that the remaining bytes can hold
// that many elements of at least minSize bytes each.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minSize) {
		d.fail("%s count %d cannot fit in the %d bytes left", what, n, d.remaining())
		return 0
	}
	return int(n)
}

func (d *decoder) ids(what string) []uint64 {
	n := d.count(what, 1)
	if n == 0 || d.err != nil {
		return nil
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.uvarint(what)
	}
	return ids
}

// DecodeMessage decodes one frame body (as produced by AppendMessage).
// Every length is checked against the body; trailing bytes, unknown flags, a
// message type outside 1..core.MaxMessageType and an unknown entry type are
// errors wrapping ErrBadFrame. The returned message's entry and snapshot
// Data alias body: the caller hands body over with the message.
func DecodeMessage(body []byte) (core.Message, error) {
	d := decoder{b: body}
	var m core.Message
	t := core.MessageType(d.byte1("type"))
	flags := d.byte1("flags")
	if d.err != nil {
		return core.Message{}, d.err
	}
	if t == 0 || t > core.MaxMessageType {
		d.fail("message type %d outside 1..%d", t, core.MaxMessageType)
		return core.Message{}, d.err
	}
	if flags&^knownFlags != 0 {
		d.fail("unknown flags %#x", flags)
		return core.Message{}, d.err
	}
	m.Type = t
	m.Reject = flags&flagReject != 0
	m.From = d.uvarint("from")
	m.To = d.uvarint("to")
	m.Term = d.uvarint("term")
	m.LogTerm = d.uvarint("log term")
	m.Index = d.uvarint("index")
	m.Commit = d.uvarint("commit")
	m.RejectHint = d.uvarint("reject hint")
	m.Context = d.uvarint("context")
	if flags&flagTiming != 0 {
		m.Timing.HoldNanos = d.uvarint("timing hold")
		m.Timing.PersistNanos = d.uvarint("timing persist")
	}
	if n := d.count("entries", minEntrySize); n > 0 && d.err == nil {
		m.Entries = make([]core.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Term = d.uvarint("entry term")
			e.Index = d.uvarint("entry index")
			et := core.EntryType(d.byte1("entry type"))
			if d.err == nil && et > core.EntryConfChange {
				d.fail("entry type %d unknown", et)
			}
			e.Type = et
			e.Data = d.bytes("entry data")
			if d.err != nil {
				break
			}
		}
	}
	if flags&flagSnapshot != 0 && d.err == nil {
		s := &core.Snapshot{}
		s.Meta.Index = d.uvarint("snapshot index")
		s.Meta.Term = d.uvarint("snapshot term")
		s.Meta.Conf.Voters = d.ids("voters")
		s.Meta.Conf.VotersOutgoing = d.ids("outgoing voters")
		s.Meta.Conf.Learners = d.ids("learners")
		s.Data = d.bytes("snapshot data")
		m.Snapshot = s
	}
	if d.err == nil && d.remaining() != 0 {
		d.fail("%d trailing bytes", d.remaining())
	}
	if d.err != nil {
		return core.Message{}, d.err
	}
	return m, nil
}

// ReadFrame reads one frame from r and returns its body in a newly
// allocated slice (so messages decoded from it can be handed over without
// copying). A length above maxFrame fails with ErrFrameTooLarge before
// anything is allocated; a body cut short fails with ErrBadFrame wrapping
// io.ErrUnexpectedEOF. A clean io.EOF before the first byte is returned as
// io.EOF.
//
// maxFrame bounds the body; the length prefix is not counted.
func ReadFrame(r *bufio.Reader, maxFrame int) ([]byte, error) {
	return readFrameInto(r, nil, maxFrame)
}

// readFrameInto is ReadFrame reading into buf's storage when it is large
// enough (a new slice otherwise), for a reader that consumes each frame
// before reading the next, like the snapshot receiver.
func readFrameInto(r *bufio.Reader, buf []byte, maxFrame int) ([]byte, error) {
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
	body := buf[:0]
	if uint64(cap(body)) < n {
		body = make([]byte, n)
	}
	body = body[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: body of %d bytes: %w", ErrBadFrame, n, frameCut{err})
	}
	return body, nil
}

// frameCut marks a frame that is bad only because its stream ended or
// broke inside it (err, the read's own error), not because of what it
// held: a snapshot receiver counts that as an interrupted transfer, not a
// bad record.
type frameCut struct{ err error }

func (c frameCut) Error() string { return c.err.Error() }
func (c frameCut) Unwrap() error { return c.err }

// isFrameCut reports whether err is a frame cut short by its stream.
func isFrameCut(err error) bool {
	var c frameCut
	return errors.As(err, &c)
}

// readUvarint is binary.ReadUvarint with errors mapped onto ours: io.EOF
// only when no byte was read at all.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("%w: truncated frame length: %w", ErrBadFrame, frameCut{io.ErrUnexpectedEOF})
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

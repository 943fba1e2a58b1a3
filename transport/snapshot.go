package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"time"

	"github.com/raftbench/raftbench/core"
)

// SnapshotReporter is the optional half of a Handler that learns how
// snapshot transfers ended. A Handler passed to Start that also implements
// it is told the outcome of every MsgSnap given to Send; the Raft runtime
// passes it on to core (Raft.ReportSnapshot), which on failure sends the
// snapshot again later — that is how an interrupted transfer is retried.
//
// See the package documentation ("Snapshots") for exactly when it is called.
type SnapshotReporter interface {
	// SnapshotStatus reports the end of the latest snapshot transfer to
	// peer to: ok is true once to acknowledged the complete snapshot
	// (checksum verified, handed to its Handler.Deliver), false when the
	// transfer failed for any reason. It is called from a transport
	// goroutine, never from inside Send, and must not block (Close waits
	// for the goroutine that calls it).
	SnapshotStatus(to uint64, ok bool)
}

// Snapshot errors. Each wraps the details; the receiver maps them to a
// SnapshotFailReason counter, the sender logs them.
var (
	// ErrSnapshotTooLarge: a snapshot is larger than MaxSnapshotSize (the
	// sender's, before anything is sent, or the receiver's, announced in
	// the begin record).
	ErrSnapshotTooLarge = errors.New("transport: snapshot too large")
	// ErrBadSnapshot: a snapshot record is garbled, out of order, past the
	// declared size, or not the kind expected at that point.
	ErrBadSnapshot = errors.New("transport: bad snapshot record")
	// ErrSnapshotChecksum: the CRC-32C of the reassembled data does not
	// match the one in the end record.
	ErrSnapshotChecksum = errors.New("transport: snapshot checksum mismatch")
	// ErrSnapshotRefused: the receiver answered the transfer with a
	// refusal (its reason is in the error).
	ErrSnapshotRefused = errors.New("transport: snapshot refused by peer")
)

// SnapshotFailReason says why a received snapshot transfer was discarded.
type SnapshotFailReason uint8

const (
	// SnapshotFailTooLarge: the announced size exceeds MaxSnapshotSize.
	SnapshotFailTooLarge SnapshotFailReason = iota
	// SnapshotFailBadRecord: a record could not be decoded, a chunk came at
	// the wrong offset or ran past the declared size, or the end record
	// came early.
	SnapshotFailBadRecord
	// SnapshotFailChecksum: the data did not match its CRC-32C.
	SnapshotFailChecksum
	// SnapshotFailInterrupted: the stream ended, broke or went silent for
	// SnapshotTimeout before the end record (or the transport closed),
	// between records or inside one: a record cut short is no bad record.
	SnapshotFailInterrupted

	// NumSnapshotFailReasons is the number of SnapshotFailReason values.
	NumSnapshotFailReasons
)

// String names the reason for logs and reports.
func (r SnapshotFailReason) String() string {
	switch r {
	case SnapshotFailTooLarge:
		return "too-large"
	case SnapshotFailBadRecord:
		return "bad-record"
	case SnapshotFailChecksum:
		return "checksum"
	case SnapshotFailInterrupted:
		return "interrupted"
	}
	return fmt.Sprintf("SnapshotFailReason(%d)", uint8(r))
}

// SnapshotFailCounts counts discarded inbound transfers by reason.
type SnapshotFailCounts [NumSnapshotFailReasons]uint64

// Total is the sum over all reasons.
func (c SnapshotFailCounts) Total() uint64 { return sum(c[:]) }

func snapshotFailReason(err error) SnapshotFailReason {
	switch {
	case isFrameCut(err):
		return SnapshotFailInterrupted
	case errors.Is(err, ErrSnapshotTooLarge):
		return SnapshotFailTooLarge
	case errors.Is(err, ErrSnapshotChecksum):
		return SnapshotFailChecksum
	case errors.Is(err, ErrBadSnapshot), errors.Is(err, ErrBadFrame), errors.Is(err, ErrFrameTooLarge):
		return SnapshotFailBadRecord
	}
	return SnapshotFailInterrupted
}

// Snapshot record kinds: the first byte of each frame body on a snapshot
// stream. They lie far outside 1..core.MaxMessageType, so a record can
// never be taken for a message: on a message stream DecodeMessage rejects
// it as a bad frame.
const (
	recSnapBegin byte = 0x81
	recSnapChunk byte = 0x82
	recSnapEnd   byte = 0x83
	recSnapAck   byte = 0x84
)

// SnapshotChunkOverhead is the most a chunk record adds to its data
// (kind byte and offset varint), so a chunk of SnapshotChunkSize bytes
// fits a frame of MaxFrameSize when SnapshotChunkSize <= MaxFrameSize -
// SnapshotChunkOverhead.
const SnapshotChunkOverhead = 1 + binary.MaxVarintLen64

// snapshotEndSize and snapshotAckSize are the exact body sizes of the end
// record (kind, CRC-32C) and the ack (kind, status).
const (
	snapshotEndSize = 1 + 4
	snapshotAckSize = 2
)

// snapshotPrealloc caps the receive buffer allocated before any data has
// arrived: the announced size comes from the peer, so beyond this the
// buffer grows only as chunks actually come in (never past the announced
// size, so a complete snapshot costs no final over-allocation).
const snapshotPrealloc = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendSnapBegin appends the begin record body for m: the data size, then
// m encoded as a frame body without its snapshot data.
func appendSnapBegin(dst []byte, m *core.Message, size int) []byte {
	dst = append(dst, recSnapBegin)
	dst = binary.AppendUvarint(dst, uint64(size))
	meta := *m
	if m.Snapshot != nil {
		s := *m.Snapshot
		s.Data = nil
		meta.Snapshot = &s
	}
	return AppendMessage(dst, &meta)
}

// appendSnapChunkHeader appends the frame length and record header of a
// chunk of n bytes at offset off; the data itself follows unchanged.
func appendSnapChunkHeader(dst []byte, off uint64, n int) []byte {
	body := 1 + uvarintLen(off) + n
	dst = binary.AppendUvarint(dst, uint64(body))
	dst = append(dst, recSnapChunk)
	return binary.AppendUvarint(dst, off)
}

func appendSnapEnd(dst []byte, crc uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, recSnapEnd), crc)
}

// ackOK is the ack status of a delivered snapshot; a refusal carries
// 1 + its SnapshotFailReason.
const ackOK = 0

// snapAckFrame is the whole ack frame (length prefix included).
func snapAckFrame(status byte) []byte { return []byte{snapshotAckSize, recSnapAck, status} }

// parseSnapAck returns nil for a positive ack, ErrSnapshotRefused (naming
// the receiver's reason) for a refusal, ErrBadSnapshot for anything else.
func parseSnapAck(body []byte) error {
	if len(body) != snapshotAckSize || body[0] != recSnapAck {
		return fmt.Errorf("%w: %d-byte reply is not an ack", ErrBadSnapshot, len(body))
	}
	if body[1] == ackOK {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrSnapshotRefused, SnapshotFailReason(body[1]-1))
}

// snapAssembler reassembles one inbound transfer from its records. It is
// pure (no I/O), so the fuzz target drives it directly.
//
// Invariant: len(buf) <= size <= the receiver's MaxSnapshotSize, and crc
// is the CRC-32C of buf; chunks are accepted only at offset len(buf), so
// the data is contiguous and complete exactly when len(buf) == size.
type snapAssembler struct {
	msg  core.Message
	size uint64
	buf  []byte
	crc  uint32
}

// beginSnapshot starts a transfer from its begin record, refusing a size
// over maxSize before allocating anything.
func beginSnapshot(body []byte, maxSize int64) (*snapAssembler, error) {
	if len(body) == 0 || body[0] != recSnapBegin {
		return nil, fmt.Errorf("%w: transfer does not start with a begin record", ErrBadSnapshot)
	}
	size, n := binary.Uvarint(body[1:])
	if n <= 0 {
		return nil, fmt.Errorf("%w: begin record: bad size varint", ErrBadSnapshot)
	}
	if size > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d bytes announced, MaxSnapshotSize %d", ErrSnapshotTooLarge, size, maxSize)
	}
	m, err := DecodeMessage(body[1+n:])
	if err != nil {
		return nil, fmt.Errorf("%w: begin record: %w", ErrBadSnapshot, err)
	}
	switch {
	case m.Type != core.MsgSnap:
		return nil, fmt.Errorf("%w: begin record carries a %v, want MsgSnap", ErrBadSnapshot, m.Type)
	case m.Snapshot == nil && size > 0:
		return nil, fmt.Errorf("%w: %d bytes announced for a MsgSnap without a snapshot", ErrBadSnapshot, size)
	case m.Snapshot != nil && len(m.Snapshot.Data) > 0:
		return nil, fmt.Errorf("%w: begin record carries %d bytes of inline data", ErrBadSnapshot, len(m.Snapshot.Data))
	}
	return &snapAssembler{msg: m, size: size, buf: make([]byte, 0, min(size, snapshotPrealloc))}, nil
}

// add consumes the next record: a chunk (done = false) or the end record
// (done = true once the size and checksum are right). Any error ends the
// transfer; the caller discards the assembler.
func (a *snapAssembler) add(body []byte) (done bool, err error) {
	if len(body) == 0 {
		return false, fmt.Errorf("%w: empty record", ErrBadSnapshot)
	}
	have := uint64(len(a.buf))
	switch body[0] {
	case recSnapChunk:
		off, n := binary.Uvarint(body[1:])
		if n <= 0 {
			return false, fmt.Errorf("%w: chunk: bad offset varint", ErrBadSnapshot)
		}
		data := body[1+n:]
		switch {
		case len(data) == 0:
			return false, fmt.Errorf("%w: empty chunk at offset %d", ErrBadSnapshot, off)
		case off != have:
			return false, fmt.Errorf("%w: chunk at offset %d, expected %d", ErrBadSnapshot, off, have)
		case uint64(len(data)) > a.size-have:
			return false, fmt.Errorf("%w: %d-byte chunk at offset %d runs past the declared size %d",
				ErrBadSnapshot, len(data), off, a.size)
		}
		if cap(a.buf)-len(a.buf) < len(data) {
			// Grow fourfold (a 64 MiB snapshot costs one copy of the first
			// 16 MiB), but never past the declared size.
			grown := make([]byte, len(a.buf), min(a.size, max(4*uint64(cap(a.buf)), have+uint64(len(data)))))
			copy(grown, a.buf)
			a.buf = grown
		}
		a.buf = append(a.buf, data...)
		a.crc = crc32.Update(a.crc, castagnoli, data)
		return false, nil
	case recSnapEnd:
		if len(body) != snapshotEndSize {
			return false, fmt.Errorf("%w: end record of %d bytes, want %d", ErrBadSnapshot, len(body), snapshotEndSize)
		}
		if have != a.size {
			return false, fmt.Errorf("%w: end record after %d of %d bytes", ErrBadSnapshot, have, a.size)
		}
		if want := binary.BigEndian.Uint32(body[1:]); want != a.crc {
			return false, fmt.Errorf("%w: CRC-32C %#08x, sender says %#08x", ErrSnapshotChecksum, a.crc, want)
		}
		return true, nil
	}
	return false, fmt.Errorf("%w: record kind %#x inside a transfer", ErrBadSnapshot, body[0])
}

// message is the reassembled MsgSnap; valid once add returned done.
func (a *snapAssembler) message() core.Message {
	m := a.msg
	if m.Snapshot != nil && len(a.buf) > 0 {
		m.Snapshot.Data = a.buf
	}
	return m
}

// receiveSnapshot runs the rest of an inbound snapshot stream whose first
// frame, begin, has been read: chunks until the end record, then one
// Deliver and the ack. Any failure discards everything received, is
// counted and logged, and is answered with a refusal (best effort).
func (e *Engine) receiveSnapshot(s Stream, br *bufio.Reader, remote string, from uint64, begin []byte) {
	c := e.counter(from)
	a, err := beginSnapshot(begin, e.opts.MaxSnapshotSize)
	var scratch []byte
	for err == nil {
		_ = s.SetDeadline(time.Now().Add(e.opts.SnapshotTimeout))
		var body []byte
		if body, err = readFrameInto(br, scratch, e.opts.MaxFrameSize); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			err = fmt.Errorf("after %d of %d bytes: %w", len(a.buf), a.size, err)
			break
		}
		scratch = body[:0]
		before := len(a.buf)
		var done bool
		done, err = a.add(body)
		c.snapBytesRecv.Add(uint64(len(a.buf) - before))
		if done {
			m := a.message()
			if h := e.getHandler(); h != nil {
				h.Deliver([]core.Message{m})
			}
			c.snapRecv.Add(1)
			_ = s.SetDeadline(time.Now().Add(e.opts.SnapshotTimeout))
			if _, err := s.Write(snapAckFrame(ackOK)); err != nil {
				e.log.Info("transport: writing snapshot ack", "remote", remote, "peer", from, "err", err)
				return
			}
			// Wait for the sender to hang up once it has read the ack:
			// closing first could discard the ack (a QUIC stream reset
			// drops unsent data).
			_, _ = io.Copy(io.Discard, br)
			return
		}
	}
	reason := snapshotFailReason(err)
	c.snapRecvFail[reason].Add(1)
	if e.isClosed() || errors.Is(err, net.ErrClosed) {
		e.log.Info("transport: snapshot transfer cut short by close", "remote", remote, "peer", from, "err", err)
		return
	}
	e.log.Warn("transport: discarding snapshot transfer", "remote", remote, "peer", from, "reason", reason.String(), "err", err)
	_ = s.SetWriteDeadline(time.Now().Add(e.opts.HandshakeTimeout))
	_, _ = s.Write(snapAckFrame(1 + byte(reason)))
}

// snapSender streams one peer's snapshots, one transfer at a time, on a
// fresh ClassSnapshot stream each.
//
// Invariant: at most one transfer runs and at most one waits (pending); a
// newer offer replaces the waiting one and cancels the running one, since
// only the newest snapshot is worth installing.
type snapSender struct {
	p      *peer
	notify chan struct{} // capacity 1: "pending is set"

	mu      sync.Mutex
	pending *core.Message
	cancel  context.CancelFunc // of the running transfer; nil when idle or superseded
}

// offer makes m the next snapshot for the peer.
func (ss *snapSender) offer(m *core.Message) {
	mc := *m
	ss.mu.Lock()
	if ss.pending != nil {
		ss.p.c.snapSuperseded.Add(1)
	}
	ss.pending = &mc
	if ss.cancel != nil {
		ss.cancel()
		ss.cancel = nil // tells run that its transfer was superseded
	}
	ss.mu.Unlock()
	select {
	case ss.notify <- struct{}{}:
	default:
	}
}

// run is the peer's snapshot goroutine.
func (ss *snapSender) run() {
	p := ss.p
	defer p.e.wg.Done()
	for {
		select {
		case <-ss.notify:
		case <-p.done:
			ss.mu.Lock()
			m := ss.pending
			ss.pending = nil
			ss.mu.Unlock()
			if m != nil {
				ss.finish(m, fmt.Errorf("peer stopped before the transfer began: %w", ErrClosed), false)
			}
			return
		}
		ss.mu.Lock()
		m := ss.pending
		ss.pending = nil
		if m == nil {
			ss.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(p.ctx)
		ss.cancel = cancel
		ss.mu.Unlock()

		err := ss.transfer(ctx, m)

		ss.mu.Lock()
		superseded := ss.cancel == nil
		ss.cancel = nil
		ss.mu.Unlock()
		cancel()
		ss.finish(m, err, superseded)
	}
}

// finish counts and reports a transfer's end. A superseded transfer is not
// reported: the newer one's report answers for the peer, and reporting a
// failure for it would make core send yet another snapshot, cancelling the
// newer one in turn. Nothing is reported once the Engine is closing (the
// runtime is shutting down and may be waiting in Close).
func (ss *snapSender) finish(m *core.Message, err error, superseded bool) {
	p := ss.p
	var index uint64
	if m.Snapshot != nil {
		index = m.Snapshot.Meta.Index
	}
	switch {
	case err == nil:
		p.c.snapSent.Add(1)
	case superseded:
		p.c.snapSuperseded.Add(1)
		p.e.log.Debug("transport: snapshot transfer superseded by a newer one", "peer", p.id, "index", index)
		return
	default:
		p.c.snapSendFail.Add(1)
		p.e.log.Warn("transport: snapshot transfer failed", "peer", p.id, "addr", p.addr, "index", index, "err", err)
	}
	if p.e.isClosed() {
		return
	}
	if r, ok := p.e.getHandler().(SnapshotReporter); ok {
		r.SnapshotStatus(p.id, err == nil)
	}
}

// transfer sends m's snapshot on a new stream: begin record, chunks of
// SnapshotChunkSize written straight from the caller's data (no copy),
// end record with the CRC-32C, then waits SnapshotTimeout for the ack.
// Cancelling ctx closes the stream, which ends the transfer at once.
func (ss *snapSender) transfer(ctx context.Context, m *core.Message) error {
	p := ss.p
	e := p.e
	var data []byte
	if m.Snapshot != nil {
		data = m.Snapshot.Data
	}
	if int64(len(data)) > e.opts.MaxSnapshotSize {
		return fmt.Errorf("%w: %d bytes, MaxSnapshotSize %d", ErrSnapshotTooLarge, len(data), e.opts.MaxSnapshotSize)
	}
	begin := appendSnapBegin(nil, m, len(data))
	if len(begin) > e.opts.MaxFrameSize {
		return fmt.Errorf("%w: snapshot metadata takes %d bytes, limit %d", ErrFrameTooLarge, len(begin), e.opts.MaxFrameSize)
	}
	s, err := p.dial(ctx, ClassSnapshot)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer func() {
		stop()
		_ = s.Close()
	}()
	fail := func(what string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: transfer cancelled: %w", what, ctx.Err())
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := p.handshake(s); err != nil {
		return fail("snapshot stream handshake", err)
	}
	write := func(bufs ...[]byte) error {
		_ = s.SetWriteDeadline(time.Now().Add(e.opts.WriteTimeout))
		nb := net.Buffers(bufs)
		_, err := nb.WriteTo(s)
		return err
	}
	hdr := make([]byte, 0, 2*binary.MaxVarintLen64+1)
	if err := write(binary.AppendUvarint(hdr, uint64(len(begin))), begin); err != nil {
		return fail("writing snapshot begin record", err)
	}
	var crc uint32
	start := time.Now()
	for off := 0; off < len(data); {
		part := data[off:min(off+e.opts.SnapshotChunkSize, len(data))]
		if err := write(appendSnapChunkHeader(hdr[:0], uint64(off), len(part)), part); err != nil {
			return fail(fmt.Sprintf("writing snapshot chunk at %d of %d", off, len(data)), err)
		}
		crc = crc32.Update(crc, castagnoli, part)
		off += len(part)
		p.c.snapBytesSent.Add(uint64(len(part)))
		if err := pace(ctx, start, off, e.opts.SnapshotRate); err != nil {
			return fail("pacing snapshot", err)
		}
	}
	if err := write(binary.AppendUvarint(hdr[:0], snapshotEndSize), appendSnapEnd(nil, crc)); err != nil {
		return fail("writing snapshot end record", err)
	}
	_ = s.SetDeadline(time.Now().Add(e.opts.SnapshotTimeout))
	body, err := ReadFrame(bufio.NewReaderSize(s, 16), snapshotAckSize)
	if err != nil {
		return fail("waiting for the snapshot ack", err)
	}
	return parseSnapAck(body)
}

// pace sleeps until sent bytes are due at rate bytes per second since
// start (no-op for rate 0), so a transfer averages at most rate.
func pace(ctx context.Context, start time.Time, sent int, rate int64) error {
	if rate <= 0 {
		return nil
	}
	due := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults and limits for Options. The limits exist so a typo (a frame size
// in bytes meant as MiB, a zero backoff that would spin) is an error at
// start-up instead of a mystery at run time.
const (
	// DefaultMaxFrameSize bounds one message on the wire. It must exceed the
	// Raft MaxSizePerMsg (typically 1 MiB) plus overhead; snapshots do not
	// count, they travel in chunks. 16 MiB leaves room for an oversized
	// entry while bounding what a hostile or broken peer can make us
	// allocate per frame.
	DefaultMaxFrameSize = 16 << 20
	MinMaxFrameSize     = 1 << 10
	MaxMaxFrameSize     = 1 << 30

	// DefaultQueueLen is messages per peer (and per stream class). With
	// Raft's pipelining (a few hundred in-flight appends at most) plus
	// heartbeats, 1024 is never reached by a healthy peer; a full queue
	// means the peer is slow or gone, and dropping is the right answer.
	DefaultQueueLen = 1024
	MaxQueueLen     = 1 << 20

	DefaultBackoffMin = 10 * time.Millisecond
	DefaultBackoffMax = time.Second

	DefaultDialTimeout      = 2 * time.Second
	DefaultHandshakeTimeout = 2 * time.Second
	// DefaultWriteTimeout is how long one coalesced write may take before
	// the connection is judged stuck (a peer that never reads) and closed.
	DefaultWriteTimeout = 10 * time.Second

	// DefaultUnreachableAfter: report Unreachable after this many dial
	// failures in a row. One failure may be a restart race; two are not.
	DefaultUnreachableAfter = 2

	// DefaultSnapshotChunkSize is the data per snapshot chunk: large enough
	// that per-chunk costs (a record header, a write deadline, a syscall)
	// vanish next to the copy, small enough that the receiver's frame
	// buffer stays small. It is lowered to fit MaxFrameSize when that is
	// smaller.
	DefaultSnapshotChunkSize = 1 << 20
	MinSnapshotChunkSize     = 256

	// DefaultMaxSnapshotSize bounds what a receiver reassembles in memory
	// (and what a sender will try to send). A state-machine image of tens
	// to hundreds of MiB is expected; 4 GiB is "something is wrong".
	DefaultMaxSnapshotSize = 4 << 30
	MaxMaxSnapshotSize     = 1 << 40

	// DefaultSnapshotTimeout bounds the silence within a transfer: the
	// receiver's wait for the next record, and the sender's wait for the
	// ack after the end record (which covers the receiver's delivery).
	DefaultSnapshotTimeout = 30 * time.Second

	// MinSnapshotRate is the smallest non-zero SnapshotRate; less is a
	// unit typo (bytes meant as KiB or MiB), and would take hours.
	MinSnapshotRate = 1 << 10
)

// Options are the settings every transport shares. Transports embed them in
// their own Config. Zero fields take defaults (EnsureDefaults); Validate
// then reports every remaining problem.
type Options struct {
	// ID is this node's ID (non-zero).
	ID uint64
	// ClusterID is exchanged in the handshake: nodes of different clusters
	// refuse to talk. Zero is allowed but then every zero-ID cluster matches.
	ClusterID uint64
	// MaxFrameSize bounds a frame body in bytes, on send (larger messages
	// are dropped as DropTooLarge) and on receive (a larger header closes
	// the connection).
	MaxFrameSize int
	// QueueLen is the number of messages queued per peer and stream class
	// before Send drops.
	QueueLen int
	// BackoffMin and BackoffMax bound the wait between dial attempts to a
	// peer; the wait doubles after each failure.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// DialTimeout bounds one dial; HandshakeTimeout bounds the handshake
	// exchange on both sides; WriteTimeout bounds one coalesced write.
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	WriteTimeout     time.Duration
	// UnreachableAfter is the number of consecutive dial failures after
	// which Handler.Unreachable is called (then again on every further
	// failure).
	UnreachableAfter int
	// SnapshotChunkSize is the data bytes per snapshot chunk; at most
	// MaxFrameSize - SnapshotChunkOverhead, so every chunk is one frame.
	SnapshotChunkSize int
	// MaxSnapshotSize bounds a snapshot's data in bytes: a receiver refuses
	// a transfer announcing more (before allocating), a sender fails one
	// holding more without sending it.
	MaxSnapshotSize int64
	// SnapshotTimeout bounds the silence within a snapshot transfer (see
	// DefaultSnapshotTimeout); a transfer that exceeds it is discarded.
	SnapshotTimeout time.Duration
	// SnapshotRate caps one snapshot transfer at this many bytes per
	// second (0: unlimited), so streaming a snapshot to a lagging follower
	// leaves bandwidth for the appends that keep the others up to date.
	SnapshotRate int64
	// Logger receives connection-level events (dial failures, rejected
	// connections). nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults. It never
// validates (a value already set stays, however wrong) and calling it again
// changes nothing.
func (o *Options) EnsureDefaults() {
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.QueueLen == 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffMin)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.UnreachableAfter == 0 {
		o.UnreachableAfter = DefaultUnreachableAfter
	}
	if o.SnapshotChunkSize == 0 {
		o.SnapshotChunkSize = max(MinSnapshotChunkSize, min(DefaultSnapshotChunkSize, o.MaxFrameSize-SnapshotChunkOverhead))
	}
	if o.MaxSnapshotSize == 0 {
		o.MaxSnapshotSize = DefaultMaxSnapshotSize
	}
	if o.SnapshotTimeout == 0 {
		o.SnapshotTimeout = DefaultSnapshotTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field, each naming the field, its value
// and the limit, joined into one error wrapping ErrInvalidConfig. It
// expects defaults applied (zero durations and sizes are errors) and does
// not change o.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if o.ID == 0 {
		bad("ID = 0, must be non-zero")
	}
	if o.MaxFrameSize < MinMaxFrameSize || o.MaxFrameSize > MaxMaxFrameSize {
		bad("MaxFrameSize = %d, must be in [%d, %d]", o.MaxFrameSize, MinMaxFrameSize, MaxMaxFrameSize)
	}
	if o.QueueLen < 1 || o.QueueLen > MaxQueueLen {
		bad("QueueLen = %d, must be in [1, %d]", o.QueueLen, MaxQueueLen)
	}
	if o.BackoffMin <= 0 {
		bad("BackoffMin = %v, must be > 0", o.BackoffMin)
	}
	if o.BackoffMax < o.BackoffMin {
		bad("BackoffMax = %v, must be >= BackoffMin (%v)", o.BackoffMax, o.BackoffMin)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DialTimeout", o.DialTimeout}, {"HandshakeTimeout", o.HandshakeTimeout}, {"WriteTimeout", o.WriteTimeout},
		{"SnapshotTimeout", o.SnapshotTimeout}} {
		if d.v <= 0 {
			bad("%s = %v, must be > 0", d.name, d.v)
		}
	}
	if o.UnreachableAfter < 1 {
		bad("UnreachableAfter = %d, must be >= 1", o.UnreachableAfter)
	}
	if hi := o.MaxFrameSize - SnapshotChunkOverhead; o.SnapshotChunkSize < MinSnapshotChunkSize || o.SnapshotChunkSize > hi {
		bad("SnapshotChunkSize = %d, must be in [%d, MaxFrameSize-%d = %d]", o.SnapshotChunkSize, MinSnapshotChunkSize,
			SnapshotChunkOverhead, hi)
	}
	if o.MaxSnapshotSize < 1 || o.MaxSnapshotSize > MaxMaxSnapshotSize {
		bad("MaxSnapshotSize = %d, must be in [1, %d]", o.MaxSnapshotSize, int64(MaxMaxSnapshotSize))
	}
	if o.SnapshotRate < 0 || (o.SnapshotRate > 0 && o.SnapshotRate < MinSnapshotRate) {
		bad("SnapshotRate = %d, must be 0 (unlimited) or >= %d bytes/s", o.SnapshotRate, MinSnapshotRate)
	} else if o.SnapshotRate > 0 && o.SnapshotTimeout > 0 {
		// Pacing writes a chunk, then waits chunk/rate: that silence must
		// stay well inside the receiver's SnapshotTimeout (assumed equal to
		// ours), or every paced transfer would time out.
		gap := time.Duration(float64(o.SnapshotChunkSize) / float64(o.SnapshotRate) * float64(time.Second))
		if gap > o.SnapshotTimeout/2 {
			bad("SnapshotRate = %d with SnapshotChunkSize = %d pauses %v between chunks, must be <= SnapshotTimeout/2 (%v)",
				o.SnapshotRate, o.SnapshotChunkSize, gap, o.SnapshotTimeout/2)
		}
	}
	return errors.Join(errs...)
}

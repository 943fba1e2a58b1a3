// Package transport defines how raftbench nodes exchange core.Messages: the
// Transport interface every network implementation satisfies, the wire
// codec and handshake they share, and Engine, the socket-independent
// machinery (queues, writers, readers, counters) that the tcp and quic
// packages plug a Dialer and a listener into.
//
// # Connection handshake
//
// Every stream starts with a fixed-size Hello from the dialler:
//
//	magic "RBT1" | version uint16 | cluster ID uint64 | from uint64 | to uint64
//
// (big-endian, HelloSize = 30 bytes). The version is ProtocolVersion,
// raised whenever the frame format changes (2 added the timing report), so
// nodes of two formats refuse each other (ErrVersionMismatch, "peer speaks
// 1, we speak 2") instead of misreading frames. The acceptor checks version, cluster
// and that it is the node asked for, then answers with its own Hello; the
// dialler checks that the node it reached is the node it dialled. Any
// mismatch closes that connection, logs the reason and counts it in
// Stats.Rejects; nothing else is affected. After the handshake the stream
// carries frames in one direction only, dialler to acceptor: a node sends on
// the connections it dialled and receives on the ones it accepted.
//
// # Frame format
//
// A frame is a uvarint body length followed by the body, one core.Message:
//
//	type        byte     1..core.MaxMessageType
//	flags       byte     bit 0 Reject, bit 1 snapshot present, bit 2 timing
//	                     present; others must be 0
//	from, to, term, logTerm, index, commit, rejectHint, context   uvarint each
//	timing      (only with flag bit 2) holdNanos uvarint | persistNanos uvarint
//	entries     uvarint count, then per entry:
//	              term uvarint | index uvarint | type byte | data (uvarint length + bytes)
//	snapshot    (only with flag bit 1)
//	              index uvarint | term uvarint |
//	              voters, outgoing voters, learners (uvarint count + uvarint IDs each) |
//	              data (uvarint length + bytes)
//
// The body length is checked against the configured maximum frame size
// before anything is allocated; every count and length inside is checked
// against the bytes left, trailing bytes are an error, and unknown types or
// flags are rejected. A bad frame closes its connection and is counted.
//
// # Snapshots
//
// A MsgSnap is never encoded as one frame: Snapshot.Data may be hundreds of
// MiB, far above the frame limit, and one such frame would sit in front of
// every heartbeat behind it. Send hands it to the peer's snapshot sender,
// which opens a stream for that one transfer (Class ClassSnapshot: a new
// TCP connection on TCP, a new lower-priority stream on the peer's QUIC
// connection), performs the usual handshake and sends records, each an
// ordinary frame whose first body byte is a record kind outside the
// message types:
//
//	begin  0x81 | size uvarint | the MsgSnap as a frame body, without its data
//	chunk  0x82 | offset uvarint | data (1 .. SnapshotChunkSize bytes)
//	end    0x83 | CRC-32C (Castagnoli) of the whole data, uint32 big-endian
//
// Chunks come in order, without gaps, and add up to the announced size.
// The receiver recognises a snapshot stream by its first record, refuses a
// size over its MaxSnapshotSize before allocating, checks every offset and
// length as it goes, the checksum at the end, and only then delivers ONE
// message (the MsgSnap with Snapshot.Data filled in, owned by the handler)
// to Handler.Deliver. It then answers on the same stream:
//
//	ack    0x84 | status byte   (0: delivered; 1 + SnapshotFailReason: refused)
//
// Anything wrong — an offset out of order, a chunk past the size, a bad
// checksum, a size over the limit, a garbled record, the stream breaking or
// going silent for SnapshotTimeout — discards the whole transfer (nothing
// partial is ever delivered), is logged with its reason, counted in
// PeerStats.Snap.RecvFailures, and affects no other stream. The sender
// writes chunks straight from the caller's Data (no copy), paced to
// SnapshotRate if set, and waits SnapshotTimeout for the ack.
//
// One transfer per peer at a time: a MsgSnap to a peer whose previous
// snapshot is still waiting or streaming replaces it (a running transfer
// is cancelled), since only the newest snapshot is worth installing.
//
// # Snapshot outcome (SnapshotReporter)
//
// If the Handler given to Start implements SnapshotReporter, the transport
// calls SnapshotStatus(to, ok) exactly once for every MsgSnap that Send
// accepted for a known peer:
//
//   - ok = true once the peer acknowledged the complete, verified snapshot
//     (its transport handed it to its Handler.Deliver);
//   - ok = false on any failure: dial or handshake, a broken or stuck
//     stream, a refusal (too large, bad checksum, ...), no ack within
//     SnapshotTimeout, a snapshot larger than our own MaxSnapshotSize, or
//     the peer removed or re-addressed before the transfer finished;
//
// with these exceptions, where no call is made: a snapshot superseded by a
// newer one to the same peer (the newer one's report answers for the peer;
// reporting a failure would make core send yet another snapshot, which
// would cancel the newer one in turn), a MsgSnap dropped at Send because
// the peer is unknown or the transport closed, and any transfer ending
// while the transport is closing. The runtime passes the call on to
// core.Raft.ReportSnapshot; after a failure core sends the snapshot again
// when it next probes the follower, which is the retry.
//
// SnapshotStatus is called from a transport goroutine, never from inside
// Send, so the runtime may forward it into its Raft loop through a channel;
// it must not block, since Close waits for that goroutine. The fault
// wrapper reports a MsgSnap it drops or cuts as SnapshotStatus(to, false).
//
// # Ownership
//
// Send keeps references to the messages' Entries and Data until written
// (Raft messages are immutable, so no copy is made); for a MsgSnap, until
// its transfer ends. Each received frame is read into its own new buffer
// (a snapshot into its own reassembly buffer), so messages given to
// Handler.Deliver alias nothing the transport reuses: the handler owns
// them. Each lane's writer encodes into a buffer of its own that never
// leaves it. (The design named bytebufferpool for these buffers; a pooled
// buffer was mostly lost between one lane write and the next, and its
// regrowth was 15% of all bytes allocated at 256 clients, so each lane
// keeps its own: see lane.wbuf.)
package transport

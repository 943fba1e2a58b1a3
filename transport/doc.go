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
// (big-endian, HelloSize = 30 bytes). The acceptor checks version, cluster
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
//	flags       byte     bit 0 Reject, bit 1 snapshot present; others must be 0
//	from, to, term, logTerm, index, commit, rejectHint, context   uvarint each
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
// # Ownership
//
// Send keeps references to the messages' Entries and Data until written
// (Raft messages are immutable, so no copy is made). Each received frame is
// read into its own new buffer, so messages given to Handler.Deliver alias
// nothing the transport reuses: the handler owns them. Encoding uses pooled
// buffers (bytebufferpool) that never leave the writer.
package transport

// Package clientapi is the network client API of a raftbench node: a
// server that puts one node's Propose and Read on a TCP port, and a client
// Endpoint that implements kv.Endpoint, so kv.Client (sessions,
// exactly-once retries, leader redirects) drives a cluster of `raftbench
// node` processes exactly as it drives nodes in its own process.
//
// # Pipelining
//
// One connection carries any number of outstanding requests: each has an
// ID, the server runs each as it arrives (up to ServerConfig.MaxInflight
// per connection, beyond which it stops reading and TCP pushes back) and
// answers each as it completes, in any order. Both sides coalesce: every
// request (answer) queued while the previous write was in progress goes
// out in one write. So one load-generator process with one Endpoint per
// node and many kv.Clients on them can saturate a cluster.
//
// # Wire format
//
// Hand-written binary in the style of the transport codec (package wire):
// varints and length-prefixed bytes, every length checked against the frame
// and the frame against the maximum frame size, never a panic on bad input.
// A connection opens with a handshake carrying the cluster ID (wire.AppendHello
// and wire.Welcome): a client of another cluster is refused with
// ErrWrongCluster, an address that serves another node than expected is
// ErrWrongNode. Then frames (uvarint length, body) flow both ways:
//
//	request  := kind(1) id(uvarint) timeout-µs(uvarint) payload(bytes)
//	            kind 1 propose, 2 read, 3 members
//	response := kind(1) id(uvarint) ...
//	            1 result:  flags(1) result(bytes)
//	            2 error:   code(1) leader(uvarint) leader-address(bytes) message(bytes)
//	            3 members: n(uvarint) {id(uvarint) client-address(bytes)}*
//	            4 goaway:  message(bytes)   (id 0; the server closes after it)
//
// The timeout is what the client's context has left, so the node gives up
// when the client does. A bad frame from either side closes the
// connection; the server first says why in a goaway.
//
// # Results and errors
//
// A state machine's results cross the wire through a ResultCodec:
// KVResults (the default) for kv.Result, BinaryResults for a type that
// marshals itself. Errors come back as the node's own sentinels
// (node.ErrTimeout, ErrLeadershipLost, ErrProposalTooLarge, ErrStopped), a
// not-leader answer as a *Redirect that unwraps to *node.NotLeaderError
// and carries the leader's client address. An error that means the
// request never left the client (unreachable node, refused handshake,
// oversized request) wraps kv.ErrNotSent, so kv.Client knows it cannot
// have run; a connection that broke with the request in flight is
// ErrConnLost, outcome unknown.
//
// # Why not gRPC
//
// Measured (BenchmarkRoundTrip, a loopback round trip to a no-op state
// machine with a 128-byte command): this protocol costs 27.6 µs and 8
// allocations per request one at a time and 3.8 µs pipelined, gRPC (with
// a raw-bytes codec, so protobuf is not even counted) 67 µs and 151
// allocations, and 37 µs pipelined. A load generator on gRPC would run out
// of CPU near 27k requests/s, below what one cluster commits; this one
// reaches ~250k. It is also the transport codec's style (varints, checked
// lengths, a handshake with the cluster ID) and adds no dependency.
package clientapi

// Package kv is the replicated key-value state machine that raftbench's
// tests and benchmark harness run on a Raft group: a map with put, get,
// delete and compare-and-swap, client sessions that make retried commands
// apply at most once (Raft paper §8), a Client that finds the leader and
// retries, and linearizability checking of client histories with porcupine.
//
// # Pieces
//
//   - Store implements node.StateMachine. Writes are logged commands
//     (Apply); gets are queries answered by Read, which node.Read calls at
//     a linearizable read point, so reads cost no log entry.
//   - Client holds one session and talks to the group through Endpoints
//     (*node.Node is one).
//   - Model, Recorder, RecordingClient, Visualize check histories.
//
// # Sessions and exactly-once
//
// Every command carries a client ID and a sequence number. The store keeps,
// per client ID, the highest sequence number applied and the reply it got.
// For a command from a client with a session:
//
//   - seq above the session's last: it runs; its reply is remembered.
//     Gaps are allowed: a client whose command timed out may give up on it
//     and move on, and the abandoned command, should it reach the log
//     later, is then stale.
//   - seq equal to the last: a retry; it does not run and gets the
//     remembered reply, the same bytes the first run got.
//   - seq below the last: stale; it does not run and gets
//     StatusStaleSequence.
//
// A session is opened by an OpOpen command, which must carry seq 1 and
// changes no data; a client's data commands use seq 2 and up. A data
// command from a client ID with no session gets StatusSessionExpired and
// does not run: the store cannot tell whether an earlier copy of it ran
// before the session was evicted, and refusing is the only answer that
// never applies a command twice. Opening is a separate command that changes
// no data, rather than "seq 1 opens", so that a late duplicate of the open
// can never re-run a write by itself. The one window left: an open whose
// duplicate reaches the log only after the session was evicted re-creates
// it at seq 1, and the client's retry of a command that ran before the
// eviction would then run again. That needs a duplicate delayed past
// MaxSessions other clients' opens; keep MaxSessions well above the number
// of live clients and it does not happen.
//
// A client that gets StatusSessionExpired must open a new session under a
// new client ID (Client does, with a random one); reusing the old ID would
// let late duplicates of its old commands run against the new session.
// Client IDs must be unique across every client of the group, ever.
//
// # Session expiry
//
// The store keeps at most StoreOptions.MaxSessions sessions (default
// DefaultMaxSessions). When an open makes one too many, the least recently
// used session is evicted, where a session's last use is the log position
// of the last command that ran or was answered as a retry under it (stale,
// expired and undecodable commands do not count). Every replica applies the
// same log in the same order, so every replica evicts the same sessions at
// the same index, and their Hashes stay equal; no clock is involved. The
// order is kept in snapshots, so a restored replica goes on evicting as the
// original would. Ties cannot happen: no two commands share a log position.
//
// # Encoding
//
// Commands, queries, results and snapshots are hand-written binary.
// "uvarint" is encoding/binary's unsigned varint and "bytes" a uvarint
// length followed by that many bytes:
//
//	command := version(1) op(1 byte) clientID(uvarint) seq(uvarint) body
//	  open:   (no body)                                   op 1, seq must be 1
//	  put:    key(bytes) value(bytes)                     op 2
//	  delete: key(bytes)                                  op 3
//	  cas:    key(bytes) mode(1 byte) [expected(bytes)] new(bytes)
//	                     mode 0: expect a value; 1: expect absent   op 4
//	query  := version(1) op(5 = get) key(bytes)
//	result := status(1 byte) flags(1 byte; bit 0 = found) value(bytes) detail(bytes)
//
// client IDs and sequence numbers are never 0. The decoders check every
// length against the bytes left and reject trailing bytes, unknown
// versions, ops and statuses: garbage in the log yields a StatusBadCommand
// result on every replica, never a panic. The snapshot layout is on
// Store.Snapshot.
//
// # Reading results
//
// node.Propose and node.Read return the Store's answer as `any`; it is a
// Result (a value, not a pointer). Result.Err reports stale, expired and bad
// commands; a CAS swapped iff Status is StatusOK; a get's answer is Found
// and Value. Client does all of this for you.
package kv

// Package node is the runtime that drives a core.Raft: it ticks it, feeds
// it the transport's messages and the callers' proposals and reads, writes
// what it must persist to a wal.Log, sends what it must send, and applies
// what commits to a StateMachine. Start returns a running Node; Stop ends
// it.
//
// # Goroutines
//
// A node runs four goroutines of its own, each owning some state outright
// and handing work to the others only through queues. Nothing is shared
// without a lock or an atomic; nothing but the loop touches the core.Raft.
//
// The Raft loop (Node.run) owns the core.Raft and the state that follows
// it: the ReadIndex contexts it is waiting on, the reads held until a new
// leader commits its first entry, the ends of the uncommitted proposal
// batches (MaxProposalPipeline), the last soft state, and with ReadModeLease
// the tick count. It wakes on its ticker or on a signal, takes everything
// the other goroutines queued for it under Node.mu — received messages,
// proposals, reads, persisted acknowledgements, unreachable and snapshot
// reports, control functions (Node.do: TransferLeadership,
// ChangeMembership) — feeds it to core, and handles each Ready: it sends
// Ready.Messages itself (transport.Send), queues the save for the WAL
// writer, registers accepted proposals with the applier and queues the
// committed entries, snapshot and confirmed read points for it, then calls
// Advance at once. It never waits on the disk, the network or the state
// machine. It publishes a Status (an atomic pointer) every round, and it
// alone stops the node on a fatal error, since stopping touches its state:
// the other goroutines report theirs (WAL writer: walWriter.fail; applier
// and Ready handling: Node.pendingFatal) and signal it.
//
// The WAL writer (walWriter.run) owns every write to the wal.Log: Save,
// SaveSnapshot and Compact, in the order the loop (and the snapshot
// goroutine) queued them. It merges everything queued since its last write
// into one Save — one Pebble batch, one fsync — writing a snapshot from the
// leader (its image to SnapshotDir, then the log's new start) before the
// hard state and entries that follow it. Only once the write is durable
// does it send the held-back Ready.MessagesAfterPersist (votes, append
// acknowledgements) through the transport, and queue the persisted
// acknowledgements for the loop, which passes them to core.Raft.Persisted.
// So transport.Send is called from two goroutines, the loop and the
// writer.
//
// The applier (applier.run) owns the StateMachine: it applies committed
// entries in batches, installs snapshots from the leader, completes the
// futures of the proposals it applies (registered by the loop; a proposal
// whose index holds another term was lost and fails with
// ErrLeadershipLost), and answers reads once it has applied their read
// point. It tracks the membership as of what it applied (for snapshot
// metadata) and keeps the member address book in SnapshotDir. When the
// snapshot policy says so, or Node.Snapshot asks, it takes an image of the
// state machine and hands it to the snapshot goroutine (one at a time).
//
// The snapshot goroutine (Node.runSnapshots) persists those images to
// SnapshotDir, makes the newest one the image sent to followers
// (Node.latestSnap, an atomic pointer the loop reads when core asks for a
// snapshot to be sent), and queues the compaction of the log behind it to
// the WAL writer, so a compaction never overtakes a save queued before it.
// It answers Node.Snapshot callers.
//
// The transport runs goroutines of its own (see package transport): its
// readers call the node's handler, which only queues received messages,
// unreachable reports and snapshot outcomes under Node.mu and signals the
// loop; it never blocks a reader.
//
// Callers' goroutines (Propose, Read, ChangeMembership, TransferLeadership,
// Snapshot) queue a request with a buffered done channel and wait on it or
// on their context; a caller that gives up leaves the channel with room for
// the answer, so nothing ever blocks on it. Status and Metrics read atomics.
//
// Stop ends them in dependency order: the loop first (no more Readys), then
// the WAL writer (it finishes what is queued), the applier, the snapshot
// goroutine; then it closes the transport and the log and fails whatever is
// still waiting with ErrStopped.
//
// # Latency attribution
//
// Node.StageTimings says where the time of the node's committed writes
// went, as HDR histograms with exact sums (the Prometheus collector
// exports them too). Every write the leader answers is split into stages
// along its critical path, from Propose being called to Propose returning:
//
//	t0 Propose called (the caller's goroutine)
//	t1 its batch taken off the queue and handed to core.Propose (the loop)
//	td the leader's own save of the batch durable (the WAL writer), counted
//	   only when it came before the commit: when a quorum of followers was
//	   durable first, the leader's disk was not on the critical path and
//	   td = t1
//	t3 the loop hands the committed entries to the applier
//	t4 the state machine has applied them (the applier)
//	t5 the caller's goroutine runs again in Propose with the result
//
// queue = t1−t0, leader_append = td−t1, replication = t3−td, apply = t4−t3,
// answer = t5−t4. Each stage is a difference of consecutive readings of one
// monotonic clock, so the five add up to the write's latency t5−t0 (Total)
// exactly, write by write; SumNanos keeps the exact sums, so the stage
// means add up to Total's mean exactly too. Percentiles do not add up
// (the p99 of a sum is not the sum of the p99s).
//
// Details are overlapping views beside the critical path: to_commit (t3−t1,
// the leader's append and the replication together) per write, and per
// acknowledgement from a follower, the leader's append round trip split
// into what the follower reports (its hold from taking the append in to
// answering, and within it its WAL save) and the rest (network). wal_fsync
// is every synced save of this node's own WAL, as leader or follower. The
// follower's WAL writer puts its report in core.Message.Timing of each
// successful append acknowledgement it releases after a save; the leader's
// loop matches an acknowledgement with the append it answers (by its last
// index, in order per follower) and takes the round trip to the start of
// the round that took the acknowledgement in. Only durations on one clock
// are ever subtracted, so the nodes' clocks need not agree.
//
// Clock reads are per event where an event covers many writes: one per
// proposal batch, per WAL save, per Ready that sends appends or commits
// entries, per apply batch; only t0 and t5 are read per write, by the
// caller's own goroutine. Recording takes one short lock per write.
package node

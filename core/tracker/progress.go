// Package tracker is the leader's view of every member's log: where each
// follower's log matches the leader's, how the leader replicates to it
// (probe, replicate, snapshot), the pipeline window of appends in flight,
// and when it was last heard from. Every change to that view is a method
// here, named for the event that causes it, so the rules of follower
// progress live in one place and can be tested without a Raft around them.
//
// The package is pure: no clocks (time is the caller's tick count), no I/O,
// no randomness.
package tracker

import "fmt"

// State is how the leader replicates to one follower.
type State uint8

const (
	// StateProbe: the leader does not know where the follower's log matches
	// its own; it sends one append per heartbeat interval and waits for the
	// answer, backtracking on rejection.
	StateProbe State = iota
	// StateReplicate: the logs match up to Match; the leader streams
	// appends optimistically, as many as the in-flight window allows
	// (pipelining).
	StateReplicate
	// StateSnapshot: the follower needs entries the leader has compacted; a
	// snapshot is on its way and nothing else is sent until it lands.
	StateSnapshot
)

// String names the state, as Status reports it.
func (s State) String() string {
	switch s {
	case StateProbe:
		return "probe"
	case StateReplicate:
		return "replicate"
	case StateSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Progress is the leader's view of one member's log. Its fields are read
// through methods and changed only by the transitions below.
//
// Invariant: match < next. Entries up to match are known to be on the
// follower; next is the next entry to send.
type Progress struct {
	match, next uint64
	state       State
	// probeSent pauses a probing follower after one append until a response
	// or the next heartbeat response, so a lagging follower is not flooded
	// with appends it will reject.
	probeSent bool
	// pendingSnapshot is the index of the snapshot in flight (StateSnapshot).
	pendingSnapshot uint64
	// lastHeard is the tick at which the leader last received a message
	// from the member in its term (the leader's own tick count). It starts
	// at the tick the member's progress began (leadership, or joining), so
	// every member gets an election timeout of grace.
	lastHeard uint64
	// ackedHeartbeat is the highest heartbeat round (the leader's sequence,
	// echoed in the response's Context) the member has answered in this
	// term. ReadIndex and the leader lease count rounds, not ticks: a round
	// answered was certainly received after it was sent.
	ackedHeartbeat uint64
	inflights      inflights
	learner        bool
}

// Match is the highest index known to be on the member.
func (pr *Progress) Match() uint64 { return pr.match }

// Next is the index of the next entry to send.
func (pr *Progress) Next() uint64 { return pr.next }

// State is the replication state.
func (pr *Progress) State() State { return pr.state }

// IsLearner reports whether the member is a learner (it receives the log
// but does not vote or count toward commit).
func (pr *Progress) IsLearner() bool { return pr.learner }

// PendingSnapshot is the index of the snapshot in flight, in StateSnapshot.
func (pr *Progress) PendingSnapshot() uint64 { return pr.pendingSnapshot }

// Inflight is how many appends are outstanding in the pipeline window.
func (pr *Progress) Inflight() int { return pr.inflights.count }

// InflightBytes is the entry bytes of the appends outstanding in the window.
func (pr *Progress) InflightBytes() uint64 { return pr.inflights.bytes }

// InflightFull reports whether the pipeline window has no room left.
func (pr *Progress) InflightFull() bool { return pr.inflights.full() }

// LastHeard is the tick at which the member was last heard from.
func (pr *Progress) LastHeard() uint64 { return pr.lastHeard }

// AckedHeartbeat is the highest heartbeat round the member has answered.
func (pr *Progress) AckedHeartbeat() uint64 { return pr.ackedHeartbeat }

// IsPaused reports whether the leader must hold further appends to this
// member: a probe is unanswered, the pipeline window is full, or a snapshot
// is in flight.
func (pr *Progress) IsPaused() bool {
	switch pr.state {
	case StateProbe:
		return pr.probeSent
	case StateReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

// String is for test failures and traces.
func (pr *Progress) String() string {
	return fmt.Sprintf("%s match=%d next=%d inflight=%d", pr.state, pr.match, pr.next, pr.inflights.count)
}

// reset makes the progress of a new leadership term begun at tick now:
// probing from next, nothing known, nothing in flight.
func (pr *Progress) reset(next, now uint64) {
	*pr = Progress{next: next, lastHeard: now, inflights: pr.inflights, learner: pr.learner}
	pr.inflights.reset()
}

// BecomeProbe starts probing: after a snapshot from just past it (if it
// landed) or from past Match; otherwise from past Match.
func (pr *Progress) BecomeProbe() {
	if pr.state == StateSnapshot {
		pr.next = max(pr.match+1, pr.pendingSnapshot+1)
	} else {
		pr.next = pr.match + 1
	}
	pr.state = StateProbe
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.inflights.reset()
}

// BecomeReplicate starts streaming from just past Match.
func (pr *Progress) BecomeReplicate() {
	pr.state = StateReplicate
	pr.next = pr.match + 1
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.inflights.reset()
}

// BecomeSnapshot records that the snapshot at index is on its way; nothing
// else is sent until it is reported.
func (pr *Progress) BecomeSnapshot(index uint64) {
	pr.state = StateSnapshot
	pr.pendingSnapshot = index
	pr.probeSent = false
	pr.inflights.reset()
}

// MaybeUpdate records that the member holds everything up to n. It returns
// false for an out-of-date acknowledgement, which changes nothing.
func (pr *Progress) MaybeUpdate(n uint64) bool {
	if n <= pr.match {
		return false
	}
	pr.match = n
	pr.next = max(pr.next, n+1)
	pr.probeSent = false
	return true
}

// Acknowledged is a successful append response for index: Match moves up,
// a probe that succeeded turns into replication, a snapshot that has been
// overtaken by the log ends, and acknowledged appends leave the window. It
// returns false (and changes nothing) for an out-of-date acknowledgement.
func (pr *Progress) Acknowledged(index uint64) bool {
	if !pr.MaybeUpdate(index) {
		return false
	}
	switch pr.state {
	case StateProbe:
		pr.BecomeReplicate()
	case StateSnapshot:
		if pr.match >= pr.pendingSnapshot {
			pr.BecomeProbe()
			pr.BecomeReplicate()
		}
	case StateReplicate:
		pr.inflights.freeLE(index)
	}
	return true
}

// AcceptsRejection reports whether a rejection of the append at index is
// news: in replicate state one beyond Match (older ones were superseded), in
// probe state the answer to the outstanding probe; never while a snapshot
// is in flight (its report decides).
func (pr *Progress) AcceptsRejection(index uint64) bool {
	switch pr.state {
	case StateReplicate:
		return index > pr.match
	case StateProbe:
		return index == pr.next-1
	}
	return false
}

// Rejected moves back to probing from next after the append at rejected
// was refused. next is the caller's guess from the conflict hint; it is
// clamped strictly below the rejected probe point (so backtracking always
// progresses) and above what is known to match.
func (pr *Progress) Rejected(rejected, next uint64) {
	next = max(min(next, rejected), pr.match+1)
	pr.BecomeProbe()
	pr.next = next
}

// HeartbeatAnswered is a heartbeat response from a member that lacks
// entries. A probe may have been lost, so probing may send again; a full
// window that will never be acknowledged (its last append lost) gives up
// its oldest slot, so the retry the caller sends next can go out.
func (pr *Progress) HeartbeatAnswered() {
	switch pr.state {
	case StateProbe:
		pr.probeSent = false
	case StateReplicate:
		if pr.inflights.full() {
			pr.inflights.freeFirst()
		}
	}
}

// SentAppend records an append of entries (n of them, size bytes, the last
// at index last) sent to the member: in replicate state it enters the
// window and Next moves past it; in probe state any append, even an empty
// one, is the probe to wait for.
func (pr *Progress) SentAppend(last uint64, n int, size uint64) {
	switch pr.state {
	case StateReplicate:
		if n > 0 {
			pr.next = last + 1
			pr.inflights.add(last, size)
		}
	case StateProbe:
		pr.probeSent = true
	}
}

// SnapshotReported is the runtime's word on the snapshot in flight: either
// way the member goes back to probing — from after the snapshot on success,
// from Match on failure (which sends it again if still needed) — and waits
// for its answer or the next heartbeat before the first probe. It reports
// false, changing nothing, when no snapshot was in flight.
func (pr *Progress) SnapshotReported(ok bool) bool {
	if pr.state != StateSnapshot {
		return false
	}
	if !ok {
		pr.pendingSnapshot = 0
	}
	pr.BecomeProbe()
	pr.probeSent = true
	return true
}

// Unreachable is the transport's report that messages to the member fail:
// a replicating leader stops pipelining into the void and probes.
func (pr *Progress) Unreachable() {
	if pr.state == StateReplicate {
		pr.BecomeProbe()
	}
}

// Heard records that the member sent the leader a message in its term at
// tick now. Ticks only grow, so a late call never moves it back.
func (pr *Progress) Heard(now uint64) { pr.lastHeard = max(pr.lastHeard, now) }

// HeartbeatAcked records that the member answered heartbeat round seq. A
// round answered late, after a newer one, changes nothing.
func (pr *Progress) HeartbeatAcked(seq uint64) { pr.ackedHeartbeat = max(pr.ackedHeartbeat, seq) }

// inflights is the pipeline window of one follower: the last index and the
// entry bytes of each append sent and not yet acknowledged, oldest first,
// in a ring that is allocated once. It is full at the tracker's
// MaxInflight appends or MaxInflightBytes bytes, whichever comes first; the
// byte limit never stops an append into an empty window, so a single
// append larger than the limit still travels.
type inflights struct {
	start, count int
	buf          []inflight
	// bytes is the sum of the outstanding appends' sizes; maxBytes its
	// limit (0: none).
	bytes, maxBytes uint64
}

type inflight struct{ index, bytes uint64 }

func newInflights(size int, maxBytes uint64) inflights {
	return inflights{buf: make([]inflight, size), maxBytes: maxBytes}
}

func (in *inflights) full() bool {
	return in.count == len(in.buf) || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

// add records an append of size bytes whose last entry is index. Callers
// check full first.
func (in *inflights) add(index, size uint64) {
	in.buf[(in.start+in.count)%len(in.buf)] = inflight{index, size}
	in.count++
	in.bytes += size
}

// freeLE releases every append whose last index is at most index: the
// follower acknowledged them all, since acknowledgements are cumulative.
func (in *inflights) freeLE(index uint64) {
	for in.count > 0 && in.buf[in.start].index <= index {
		in.freeFirst()
	}
}

// freeFirst releases the oldest append, presumed lost, so a full window that
// will never be acknowledged can make room for a retry.
func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.bytes -= in.buf[in.start].bytes
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

func (in *inflights) reset() { in.start, in.count, in.bytes = 0, 0, 0 }

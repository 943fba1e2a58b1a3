package core

import "fmt"

// progressState is how the leader replicates to one follower.
type progressState uint8

const (
	// stateProbe: the leader does not know where the follower's log matches
	// its own; it sends one append per heartbeat interval and waits for the
	// answer, backtracking on rejection.
	stateProbe progressState = iota
	// stateReplicate: the logs match up to Match; the leader streams appends
	// optimistically, up to MaxInflight outstanding (pipelining).
	stateReplicate
	// stateSnapshot: the follower needs entries the leader has compacted; a
	// snapshot is on its way and nothing else is sent until it lands.
	stateSnapshot
)

// String names the state, as Status reports it.
func (s progressState) String() string {
	switch s {
	case stateProbe:
		return "probe"
	case stateReplicate:
		return "replicate"
	case stateSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("progressState(%d)", uint8(s))
}

// progress is the leader's view of one member's log.
//
// Invariant: Match < Next. Entries up to Match are known to be on the
// follower; Next is the next entry to send.
type progress struct {
	Match, Next uint64
	State       progressState
	// probeSent pauses a probing follower after one append until a response
	// or the next heartbeat response, so a lagging follower is not flooded
	// with appends it will reject.
	probeSent bool
	// pendingSnapshot is the index of the snapshot in flight (stateSnapshot).
	pendingSnapshot uint64
	// recentActive is set by any message from the follower and cleared every
	// election timeout by check-quorum.
	recentActive bool
	inflights    inflights
	isLearner    bool
}

func (pr *progress) becomeProbe() {
	if pr.State == stateSnapshot {
		// Resume after the snapshot if it landed; otherwise after Match.
		pr.Next = max(pr.Match+1, pr.pendingSnapshot+1)
	} else {
		pr.Next = pr.Match + 1
	}
	pr.State = stateProbe
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.inflights.reset()
}

func (pr *progress) becomeReplicate() {
	pr.State = stateReplicate
	pr.Next = pr.Match + 1
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.inflights.reset()
}

func (pr *progress) becomeSnapshot(index uint64) {
	pr.State = stateSnapshot
	pr.pendingSnapshot = index
	pr.probeSent = false
	pr.inflights.reset()
}

// maybeUpdate records that the follower holds everything up to n. It returns
// false for an out-of-date acknowledgement, which must change nothing.
func (pr *progress) maybeUpdate(n uint64) bool {
	if n <= pr.Match {
		return false
	}
	pr.Match = n
	pr.Next = max(pr.Next, n+1)
	pr.probeSent = false
	return true
}

// paused reports whether the leader must hold further appends to this
// follower: a probe is unanswered, the pipeline window is full, or a snapshot
// is in flight.
func (pr *progress) paused() bool {
	switch pr.State {
	case stateProbe:
		return pr.probeSent
	case stateReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

// inflights is the pipeline window of one follower: the last index of each
// append sent and not yet acknowledged, oldest first, in a ring that is
// allocated once. Its capacity is MaxInflight.
type inflights struct {
	start, count int
	buf          []uint64
}

func newInflights(size int) inflights { return inflights{buf: make([]uint64, size)} }

func (in *inflights) full() bool { return in.count == len(in.buf) }

// add records an append whose last entry is index. Callers check full first.
func (in *inflights) add(index uint64) {
	in.buf[(in.start+in.count)%len(in.buf)] = index
	in.count++
}

// freeLE releases every append whose last index is at most index: the
// follower acknowledged them all, since acknowledgements are cumulative.
func (in *inflights) freeLE(index uint64) {
	for in.count > 0 && in.buf[in.start] <= index {
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

// freeFirst releases the oldest append, presumed lost, so a full window that
// will never be acknowledged can make room for a retry.
func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

func (in *inflights) reset() { in.start, in.count = 0, 0 }

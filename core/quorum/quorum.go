// Package quorum is Raft's majority arithmetic as pure functions: the index
// a majority of voters holds (the commit rule, and anything else ordered —
// the tick by which a majority was last heard, the newest heartbeat a
// majority acknowledged), and the outcome of a vote. Joint configurations
// (C_old,new, thesis §4.3) need a majority of each half; every function
// here has a joint variant that says so once, so callers never combine the
// halves by hand.
//
// Nothing here allocates for clusters of up to 16 voters, because the
// leader runs these on every acknowledgement it receives.
package quorum

import "slices"

// IndexFunc reports the value voter id holds (its match index, the tick it
// was last heard from, ...). Voters it knows nothing of hold 0.
type IndexFunc func(id uint64) uint64

// stackVoters is how many voters MajorityIndex sorts on the stack; larger
// sets allocate. Raft clusters have 3 to 7 voters.
const stackVoters = 16

// MajorityIndex returns the highest value that a majority of voters hold
// (at least): with the values sorted, the one a majority is at or above. An
// empty voter set returns the largest uint64, so it never constrains a
// minimum — which is what makes the empty outgoing half of a non-joint
// configuration neutral in JointIndex.
func MajorityIndex(voters []uint64, index IndexFunc) uint64 {
	n := len(voters)
	if n == 0 {
		return ^uint64(0)
	}
	var stack [stackVoters]uint64
	var idx []uint64
	if n <= len(stack) {
		idx = stack[:n]
	} else {
		idx = make([]uint64, n)
	}
	for i, id := range voters {
		idx[i] = index(id)
	}
	if n <= len(stack) {
		// Insertion sort: a handful of values, and it keeps idx on the
		// stack (a generic sort might let it escape).
		for i := 1; i < n; i++ {
			for j := i; j > 0 && idx[j-1] > idx[j]; j-- {
				idx[j-1], idx[j] = idx[j], idx[j-1]
			}
		}
	} else {
		slices.Sort(idx)
	}
	// Ascending: the value at position n - (n/2+1) is held by the n/2+1
	// voters at or after it.
	return idx[n-(n/2+1)]
}

// JointIndex is MajorityIndex for a possibly joint configuration: the
// highest value held by a majority of incoming and, separately, a majority
// of outgoing. outgoing is empty outside a joint configuration.
func JointIndex(incoming, outgoing []uint64, index IndexFunc) uint64 {
	return min(MajorityIndex(incoming, index), MajorityIndex(outgoing, index))
}

// Result is the outcome of a vote so far.
type Result uint8

const (
	// Pending: neither a majority for nor a majority against yet.
	Pending Result = iota
	// Won: a majority granted.
	Won
	// Lost: so many refused that a majority can no longer be reached.
	Lost
)

// String names the result for test failures.
func (r Result) String() string {
	switch r {
	case Pending:
		return "Pending"
	case Won:
		return "Won"
	case Lost:
		return "Lost"
	}
	return "Result(?)"
}

// VoteFunc reports voter id's vote: voted is false while it has not
// answered, granted says which way it answered.
type VoteFunc func(id uint64) (granted, voted bool)

// Tally counts the votes of voters: Won once a majority granted, Lost once
// a majority can no longer be reached, Pending otherwise. An empty voter
// set counts as Won (the neutral outgoing half again).
func Tally(voters []uint64, vote VoteFunc) Result {
	if len(voters) == 0 {
		return Won
	}
	granted, rejected := 0, 0
	for _, id := range voters {
		switch g, ok := vote(id); {
		case !ok:
		case g:
			granted++
		default:
			rejected++
		}
	}
	q := len(voters)/2 + 1
	if granted >= q {
		return Won
	}
	if rejected > len(voters)-q {
		return Lost
	}
	return Pending
}

// JointTally is Tally for a possibly joint configuration: a decision needs
// both halves, so either half losing loses and both must win to win.
func JointTally(incoming, outgoing []uint64, vote VoteFunc) Result {
	a, b := Tally(incoming, vote), Tally(outgoing, vote)
	if a == Lost || b == Lost {
		return Lost
	}
	if a == Won && b == Won {
		return Won
	}
	return Pending
}

// MapVotes adapts a map of votes (absent: not voted) to a VoteFunc.
func MapVotes(votes map[uint64]bool) VoteFunc {
	return func(id uint64) (granted, voted bool) {
		granted, voted = votes[id]
		return granted, voted
	}
}

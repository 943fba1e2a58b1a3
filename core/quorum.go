package core

import "slices"

// majorityIndex returns the highest index that a majority of voters hold,
// given each voter's match index through match. It is the commit rule's
// arithmetic (Figure 8 is enforced by the caller, which only commits an index
// whose entry is of the leader's term). An empty voter set commits anything,
// which makes a joint configuration's empty outgoing half neutral.
func majorityIndex(voters []uint64, match func(id uint64) uint64) uint64 {
	n := len(voters)
	if n == 0 {
		return ^uint64(0)
	}
	// Clusters are small: sort on the stack to keep the leader's hot path
	// (every append response) free of allocations.
	var stack [16]uint64
	var idx []uint64
	if n <= len(stack) {
		idx = stack[:n]
	} else {
		idx = make([]uint64, n)
	}
	for i, id := range voters {
		idx[i] = match(id)
	}
	slices.Sort(idx)
	// With idx ascending, the entry at n - (n/2+1) is held by n/2+1 voters.
	return idx[n-(n/2+1)]
}

// voteResult is the outcome of an election tally so far.
type voteResult uint8

const (
	votePending voteResult = iota
	voteWon
	voteLost
)

// tally counts the votes of voters: won once a majority granted, lost once a
// majority can no longer be reached. An empty voter set counts as won.
func tally(voters []uint64, votes map[uint64]bool) voteResult {
	if len(voters) == 0 {
		return voteWon
	}
	granted, rejected := 0, 0
	for _, id := range voters {
		v, ok := votes[id]
		switch {
		case !ok:
		case v:
			granted++
		default:
			rejected++
		}
	}
	q := len(voters)/2 + 1
	if granted >= q {
		return voteWon
	}
	if rejected > len(voters)-q {
		return voteLost
	}
	return votePending
}

// jointTally combines the two halves of a (possibly joint) configuration: a
// decision needs both.
func jointTally(incoming, outgoing []uint64, votes map[uint64]bool) voteResult {
	a, b := tally(incoming, votes), tally(outgoing, votes)
	if a == voteLost || b == voteLost {
		return voteLost
	}
	if a == voteWon && b == voteWon {
		return voteWon
	}
	return votePending
}

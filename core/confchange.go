package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ConfChangeType is one kind of membership change.
type ConfChangeType uint8

const (
	// AddVoter adds a voter, or promotes a learner to voter.
	AddVoter ConfChangeType = iota + 1
	// AddLearner adds a learner: it receives the log but neither votes nor
	// counts toward commit, so a new machine can catch up without
	// weakening the quorum.
	AddLearner
	// RemoveNode removes a voter or a learner.
	RemoveNode
)

// String names the change type for logs and errors.
func (t ConfChangeType) String() string {
	switch t {
	case AddVoter:
		return "AddVoter"
	case AddLearner:
		return "AddLearner"
	case RemoveNode:
		return "RemoveNode"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChangeSingle changes one member.
type ConfChangeSingle struct {
	Type   ConfChangeType
	NodeID uint64
	// Context is carried through the log untouched; the runtime puts the
	// new member's address there so every replica can reach it.
	Context []byte
}

// ConfChange is a membership change, proposed with ProposeConfChange.
//
// One change is applied directly (the single-server case, safe because any
// majority of the old and any majority of the new configuration overlap).
// Several changes at once go through joint consensus: the configuration
// becomes C_old,new (decisions need a majority of both), and once that is
// applied the leader proposes the empty ConfChange that leaves it for C_new.
type ConfChange struct {
	Changes []ConfChangeSingle
}

// ErrInvalidConfChange is wrapped by every refusal of a membership change.
var ErrInvalidConfChange = errors.New("core: invalid membership change")

// ErrConfChangePending is returned while a membership change is in flight:
// only one at a time, or two changes proposed by leaders of different terms
// could each see a majority of their own configuration.
var ErrConfChangePending = errors.New("core: a membership change is already in flight")

// Marshal encodes cc: a count, then per change its type, node ID and
// length-prefixed context, all varints.
func (cc ConfChange) Marshal() []byte {
	b := binary.AppendUvarint(nil, uint64(len(cc.Changes)))
	for _, c := range cc.Changes {
		b = append(b, byte(c.Type))
		b = binary.AppendUvarint(b, c.NodeID)
		b = binary.AppendUvarint(b, uint64(len(c.Context)))
		b = append(b, c.Context...)
	}
	return b
}

// UnmarshalConfChange decodes what Marshal produced, checking every length
// against the input.
func UnmarshalConfChange(b []byte) (ConfChange, error) {
	bad := func(what string) (ConfChange, error) {
		return ConfChange{}, fmt.Errorf("%w: malformed encoding: %s", ErrInvalidConfChange, what)
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return bad("change count")
	}
	b = b[k:]
	cc := ConfChange{Changes: make([]ConfChangeSingle, 0, n)}
	for range n {
		if len(b) < 1 {
			return bad("truncated change")
		}
		c := ConfChangeSingle{Type: ConfChangeType(b[0])}
		b = b[1:]
		if c.NodeID, k = binary.Uvarint(b); k <= 0 {
			return bad("node ID")
		}
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return bad("context length")
		}
		if l > 0 {
			c.Context = slices.Clone(b[k : k+int(l)])
		}
		b = b[k+int(l):]
		cc.Changes = append(cc.Changes, c)
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return cc, nil
}

// ApplyConfChange returns the membership that results from applying cc to
// cs, or an error naming what makes the change invalid. It is the single
// definition every replica (and the runtime, which tracks membership for
// its snapshots) uses, so all reach the same result.
func ApplyConfChange(cs ConfState, cc ConfChange) (ConfState, error) {
	bad := func(format string, args ...any) (ConfState, error) {
		return ConfState{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfChange}, args...)...)
	}
	joint := len(cs.VotersOutgoing) > 0
	if len(cc.Changes) == 0 {
		if !joint {
			return bad("leaving a joint configuration, but the configuration %v is not joint", cs.Voters)
		}
		return ConfState{Voters: slices.Clone(cs.Voters), Learners: slices.Clone(cs.Learners)}, nil
	}
	if joint {
		return bad("the joint configuration %v/%v must be left before another change", cs.Voters, cs.VotersOutgoing)
	}
	voters, learners := slices.Clone(cs.Voters), slices.Clone(cs.Learners)
	seen := map[uint64]bool{}
	for _, c := range cc.Changes {
		if c.NodeID == None {
			return bad("%s of node 0", c.Type)
		}
		if seen[c.NodeID] {
			return bad("node %d is changed twice in one change", c.NodeID)
		}
		seen[c.NodeID] = true
		isVoter, isLearner := slices.Contains(voters, c.NodeID), slices.Contains(learners, c.NodeID)
		switch c.Type {
		case AddVoter:
			if isVoter {
				return bad("node %d is already a voter", c.NodeID)
			}
			learners = slices.DeleteFunc(learners, func(id uint64) bool { return id == c.NodeID })
			voters = append(voters, c.NodeID)
		case AddLearner:
			if isVoter {
				return bad("node %d is a voter; demoting a voter to learner is not supported (remove it, then add it as a learner)", c.NodeID)
			}
			if isLearner {
				return bad("node %d is already a learner", c.NodeID)
			}
			learners = append(learners, c.NodeID)
		case RemoveNode:
			if !isVoter && !isLearner {
				return bad("node %d is not a member", c.NodeID)
			}
			voters = slices.DeleteFunc(voters, func(id uint64) bool { return id == c.NodeID })
			learners = slices.DeleteFunc(learners, func(id uint64) bool { return id == c.NodeID })
		default:
			return bad("unknown change type %d for node %d", uint8(c.Type), c.NodeID)
		}
	}
	if len(voters) == 0 {
		return bad("the change would remove the last voter")
	}
	slices.Sort(voters)
	slices.Sort(learners)
	out := ConfState{Voters: voters, Learners: learners}
	if len(cc.Changes) > 1 {
		// Several changes at once: joint consensus, C_old,new.
		out.VotersOutgoing = slices.Sorted(slices.Values(cs.Voters))
	}
	return out, nil
}

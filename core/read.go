package core

import (
	"errors"

	"github.com/raftbench/raftbench/core/quorum"
)

// ReadIndex asks for a linearizable read point (thesis §6.4). ctx must be
// non-zero and identifies the request in the ReadState that Ready returns
// once a quorum has confirmed this node is still leader. Many reads can
// share one request.
func (r *Raft) ReadIndex(ctx uint64) error {
	if r.err != nil {
		return r.err
	}
	if ctx == 0 {
		return errors.New("core: ReadIndex context must be non-zero")
	}
	if r.role != Leader {
		return ErrNotLeader
	}
	if !r.log.matchTerm(r.log.committed, r.term) {
		return ErrReadNotReady
	}
	acks := map[uint64]bool{r.id: true}
	if quorum.JointTally(r.conf.Voters, r.conf.VotersOutgoing, quorum.MapVotes(acks)) == quorum.Won {
		r.readStates = append(r.readStates, ReadState{Index: r.log.committed, Context: ctx})
		return nil
	}
	r.reads = append(r.reads, pendingRead{index: r.log.committed, ctx: ctx, acks: acks})
	r.bcastHeartbeat(ctx)
	return nil
}

// ackRead records that from answered the heartbeat round of read ctx. When a
// quorum has, that read and every older one are confirmed: the leader was
// still leader after they were all made.
func (r *Raft) ackRead(ctx, from uint64) {
	for i := range r.reads {
		if r.reads[i].ctx != ctx {
			continue
		}
		r.reads[i].acks[from] = true
		if quorum.JointTally(r.conf.Voters, r.conf.VotersOutgoing, quorum.MapVotes(r.reads[i].acks)) != quorum.Won {
			return
		}
		for _, rd := range r.reads[:i+1] {
			r.readStates = append(r.readStates, ReadState{Index: rd.index, Context: rd.ctx})
		}
		r.reads = r.reads[i+1:]
		return
	}
}

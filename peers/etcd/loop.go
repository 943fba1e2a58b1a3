package etcd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/node"
)

// The Ready loops and what they do with a Ready: persist, make visible
// to raft, send, apply, answer the callers.

// syncLoop is the Ready loop of etcd raft's documentation: persist, send,
// apply, Advance.
func (n *etcdNode) syncLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.s.tick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.rn.Tick()
		case rd := <-n.rn.Ready():
			n.observe(rd.SoftState, rd.HardState)
			if err := n.log.save(rd.HardState, rd.Entries, rd.MustSync); err != nil {
				n.fail(err)
				return
			}
			if err := n.remember(rd.HardState, rd.Entries); err != nil {
				n.fail(err)
				return
			}
			n.tr.send(rd.Messages)
			n.readStates(rd.ReadStates)
			n.apply(rd.CommittedEntries)
			n.rn.Advance()
		case <-n.stopc:
			return
		}
	}
}

// asyncLoop is the Ready loop with asynchronous storage writes: network
// messages leave at once, storage messages go to their goroutines.
func (n *etcdNode) asyncLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.s.tick)
	defer t.Stop()
	var out []*pb.Message
	for {
		select {
		case <-t.C:
			n.rn.Tick()
		case rd := <-n.rn.Ready():
			n.observe(rd.SoftState, rd.HardState)
			n.readStates(rd.ReadStates)
			out = out[:0]
			for _, m := range rd.Messages {
				switch m.GetTo() {
				case raft.LocalAppendThread:
					n.appendq.push(m)
				case raft.LocalApplyThread:
					n.applyq.push(m)
				default:
					out = append(out, m)
				}
			}
			n.tr.send(out)
		case <-n.stopc:
			return
		}
	}
}

// appendLoop persists MsgStorageAppend messages in order: everything
// queued goes out in one write and, if any of them carries responses (the
// library's condition for durability), one fsync; then the MemoryStorage
// learns the entries and the responses are delivered.
func (n *etcdNode) appendLoop() {
	defer n.wg.Done()
	var ents []*pb.Entry
	for {
		ms, ok := n.appendq.take(n.stopc)
		if !ok {
			return
		}
		ents = ents[:0]
		var hs *pb.HardState
		mustSync := false
		for _, m := range ms {
			ents = append(ents, m.GetEntries()...)
			if m.Term != nil {
				hs = &pb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
			}
			if m.GetSnapshot() != nil && !raft.IsEmptySnap(m.GetSnapshot()) {
				n.fail(errors.New("etcd: received a snapshot, which this adapter never creates"))
				return
			}
			mustSync = mustSync || len(m.GetResponses()) > 0
		}
		if err := n.log.save(hs, ents, mustSync); err != nil {
			n.fail(err)
			return
		}
		for _, m := range ms {
			var mhs *pb.HardState
			if m.Term != nil {
				mhs = &pb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
			}
			if err := n.remember(mhs, m.GetEntries()); err != nil {
				n.fail(err)
				return
			}
			n.respond(m.GetResponses())
		}
	}
}

// applyLoop applies MsgStorageApply messages in order and acknowledges
// each.
func (n *etcdNode) applyLoop() {
	defer n.wg.Done()
	for {
		ms, ok := n.applyq.take(n.stopc)
		if !ok {
			return
		}
		for _, m := range ms {
			n.apply(m.GetEntries())
			n.respond(m.GetResponses())
		}
	}
}

// respond delivers a storage message's responses: to this node by Step,
// to the others over the network.
func (n *etcdNode) respond(rs []*pb.Message) {
	var out []*pb.Message
	for _, r := range rs {
		if r.GetTo() == n.id {
			if err := n.rn.Step(context.Background(), r); errors.Is(err, raft.ErrStopped) {
				return
			}
			continue
		}
		out = append(out, r)
	}
	n.tr.send(out)
}

// remember makes saved entries and hard state visible to raft through the
// MemoryStorage (after they are in the file, as the contract asks).
func (n *etcdNode) remember(hs *pb.HardState, ents []*pb.Entry) error {
	if len(ents) > 0 {
		if err := n.storage.Append(ents); err != nil {
			return fmt.Errorf("etcd: node %d: storage append: %w", n.id, err)
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		if err := n.storage.SetHardState(hs); err != nil {
			return fmt.Errorf("etcd: node %d: storage hard state: %w", n.id, err)
		}
	}
	return nil
}

// observe publishes role, leader, term and commit, and fails the calls a
// leader that stepped down can no longer answer.
func (n *etcdNode) observe(ss *raft.SoftState, hs *pb.HardState) {
	if hs != nil && !raft.IsEmptyHardState(hs) {
		n.term.Store(hs.GetTerm())
		n.commit.Store(hs.GetCommit())
	}
	if ss == nil {
		return
	}
	n.lead.Store(ss.Lead)
	was := core.Role(n.role.Load())
	role := roleOf(ss.RaftState)
	n.role.Store(uint32(role))
	if was == core.Leader && role != core.Leader {
		n.mu.Lock()
		props, reads := n.props, n.reads
		n.props, n.reads = map[uint64]*call{}, map[uint64]*call{}
		n.mu.Unlock()
		for _, c := range props {
			c.finish(nil, fmt.Errorf("etcd node %d: %w", n.id, node.ErrLeadershipLost))
		}
		for _, c := range reads {
			c.finish(nil, fmt.Errorf("etcd node %d: read index: %w", n.id, node.ErrLeadershipLost))
		}
	}
}

func roleOf(st raft.StateType) core.Role {
	switch st {
	case raft.StateLeader:
		return core.Leader
	case raft.StateCandidate:
		return core.Candidate
	case raft.StatePreCandidate:
		return core.PreCandidate
	}
	return core.Follower
}

// readStates gives reads their read index, serving those this node has
// already applied.
func (n *etcdNode) readStates(rss []raft.ReadState) {
	if len(rss) == 0 {
		return
	}
	n.mu.Lock()
	for _, rs := range rss {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		key := binary.LittleEndian.Uint64(rs.RequestCtx)
		c := n.reads[key]
		if c == nil {
			continue // given up on
		}
		delete(n.reads, key)
		c.index = rs.Index
		n.ready = append(n.ready, c)
	}
	n.mu.Unlock()
	n.serveReads()
}

// serveReads answers the reads whose read index this node has applied.
func (n *etcdNode) serveReads() {
	applied := n.applied.Load()
	n.mu.Lock()
	var due []*call
	kept := n.ready[:0]
	for _, c := range n.ready {
		if c.index <= applied {
			due = append(due, c)
		} else {
			kept = append(kept, c)
		}
	}
	n.ready = kept
	n.mu.Unlock()
	for _, c := range due {
		c.finish(n.store.Read(c.query))
	}
}

// apply applies committed entries: commands to the store, configuration
// changes to raft, and answers the proposals made here.
func (n *etcdNode) apply(ents []*pb.Entry) {
	if len(ents) == 0 {
		return
	}
	var cmds []node.Command
	var ids []uint64
	for _, e := range ents {
		switch e.GetType() {
		case pb.EntryNormal:
			d := e.GetData()
			if len(d) < 8 {
				continue // the empty entry a new leader appends
			}
			cmds = append(cmds, node.Command{Index: e.GetIndex(), Term: e.GetTerm(), Data: d[8:]})
			ids = append(ids, binary.LittleEndian.Uint64(d))
		case pb.EntryConfChange:
			cc := &pb.ConfChange{}
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				n.fail(fmt.Errorf("etcd: node %d: conf change at %d: %w", n.id, e.GetIndex(), err))
				return
			}
			n.rn.ApplyConfChange(cc)
		case pb.EntryConfChangeV2:
			cc := &pb.ConfChangeV2{}
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				n.fail(fmt.Errorf("etcd: node %d: conf change at %d: %w", n.id, e.GetIndex(), err))
				return
			}
			n.rn.ApplyConfChange(cc)
		}
	}
	var results []any
	if len(cmds) > 0 {
		results = n.store.Apply(cmds)
	}
	n.applied.Store(ents[len(ents)-1].GetIndex())
	if len(ids) > 0 {
		n.mu.Lock()
		waiting := make([]*call, len(ids))
		for i, id := range ids {
			if c := n.props[id]; c != nil {
				waiting[i] = c
				delete(n.props, id)
			}
		}
		n.mu.Unlock()
		for i, c := range waiting {
			if c != nil {
				c.finish(results[i], nil)
			}
		}
	}
	n.serveReads()
}

// msgQueue is an unbounded FIFO from the Ready loop to a storage
// goroutine, so the loop never blocks on storage (it would deadlock:
// the storage goroutines step responses into the node the loop serves).
// Raft bounds what is outstanding.
type msgQueue struct {
	mu   sync.Mutex
	q    []*pb.Message
	wake chan struct{}
}

func newMsgQueue() *msgQueue { return &msgQueue{wake: make(chan struct{}, 1)} }

func (q *msgQueue) push(m *pb.Message) {
	q.mu.Lock()
	q.q = append(q.q, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for messages and returns all queued, in order; false once
// stop is closed.
func (q *msgQueue) take(stop <-chan struct{}) ([]*pb.Message, bool) {
	for {
		q.mu.Lock()
		ms := q.q
		q.q = nil
		q.mu.Unlock()
		if len(ms) > 0 {
			return ms, true
		}
		select {
		case <-q.wake:
		case <-stop:
			return nil, false
		}
	}
}

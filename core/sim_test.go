package core

import (
	"cmp"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// The simulator runs whole clusters of Rafts in one goroutine against a
// seeded network and seeded disks, and checks Raft's safety properties after
// every step. Everything random comes from the seed, so a failing seed
// replays exactly.

var (
	simSeeds = flag.Int("sim.seeds", 0, "simulator seeds in total, spread over 3, 5 and 7 nodes (0: the default for make test)")
	simSeed  = flag.Int64("sim.seed", -1, "replay one simulator seed (with -sim.nodes)")
	simNodes = flag.Int("sim.nodes", 3, "cluster size for -sim.seed")
	simTrace = flag.Bool("sim.trace", false, "log every simulator event of a replayed seed")
	simLease = flag.Int("sim.leasedrift", simLeaseDrift, "LeaseDriftTicks of the lease profiles (lower it to watch the lease invariants catch a margin too small for the clock drift)")
)

// simOptions shape one simulated run.
type simOptions struct {
	nodes       int
	faultRounds int // rounds of random faults before everything heals
	drop, dup   float64
	maxDelay    int // message delay in rounds: [0, maxDelay]
	maxDiskLag  int // rounds a save takes: [0, maxDiskLag]
	crashes     bool
	partitions  bool
	transfers   bool
	reads       bool
	compact     bool    // compact logs, so lagging followers need snapshots
	crashRate   float64 // per node and round; 0 means the default 0.004
	partRate    float64 // chance per round of a new partition; 0 means 0.01
	noPreVote   bool
	noCheckQ    bool
	msgEntries  int     // entries per append (MaxSizePerMsg); 0 means 4
	minDown     int     // rounds a crashed node stays down; 0 means 5
	members     bool    // membership changes, with two spare nodes to add
	lease       bool    // ReadOnlyLeaseBased reads
	readRate    float64 // chance per round of a read; 0 means 0.2
	// slowToLeader delays every message to a node that leads by this many
	// more rounds: its followers' answers arrive late, so check-quorum
	// (which counts answers when they arrive) deposes it late, while what
	// it sends arrives at the usual speed.
	slowToLeader int
}

const (
	simElection  = 10
	simHeartbeat = 2
	// simLivenessBound is how many rounds after every fault heals a new
	// proposal must be committed within. An election needs at most a couple
	// of randomized timeouts (each < 2·ET) when nothing is lost; the bound
	// leaves room for split votes and for check-quorum leases to run out.
	simLivenessBound = 25 * simElection
	// simDrift is how far each node's clock rate may be off the
	// simulator's: a node ticks at a fixed rate drawn from [1-simDrift,
	// 1+simDrift] ticks per round, so some nodes tick twice in a round and
	// others skip one, and a follower's election timeout can run out before
	// the leader's lease does unless the lease leaves a margin. It is far
	// more than real clocks drift, so that the margin matters here.
	simDrift = 0.25
	// simLeaseDrift is the lease profiles' LeaseDriftTicks. A follower at
	// rate 1.25 counts its ET = 10 ticks of promise in 8 rounds; a leader
	// at rate 0.75 counts 6 ticks in those 8 rounds, so a lease of
	// ET-1-4 = 5 ticks ends first. With a margin of 0 the lease would be 9
	// ticks, 12 rounds at rate 0.75. (How sharp the lease checks are:
	// with -sim.leasedrift forced below 0 they catch leases of ET+2 ticks
	// and longer within 2,100 seeds; a lease only slightly too long needs
	// an election to complete in the round or two it overlaps, and a read
	// at the old leader then, which takes many more seeds to meet.)
	simLeaseDrift = 4
	// simUncommitted is every node's MaxUncommittedBytes: 40 of the
	// simulator's 32-byte entries.
	simUncommitted = 40 * (entryOverhead + 8)
)

type simWrite struct {
	due int
	// compactTo, when set, is a compaction queued behind the saves before
	// it, as a runtime orders it through its WAL writer.
	compactTo   uint64
	compactConf ConfState
	hs          HardState
	ents        []Entry
	snap        *Snapshot
	after       []Message
	lastIdx     uint64
	lastT       uint64
}

type simNode struct {
	id      uint64
	r       *Raft
	store   *MemoryStorage
	up      bool
	writes  []simWrite
	applied uint64 // last applied index in this incarnation
	commit  uint64 // last seen commit in this incarnation
	downAt  int
	// confBefore is the membership at the previous check.
	confBefore ConfState
	// rate is the node's clock rate in ticks per round (simDrift); phase
	// accumulates it, one tick per whole unit.
	rate, phase float64
}

type simMsg struct {
	due int
	m   Message
}

type sim struct {
	t      *testing.T
	opts   simOptions
	seed   int64
	rng    *rand.Rand
	round  int
	steps  int
	nodes  []*simNode
	net    []simMsg
	cut    map[[2]uint64]bool // cut[{from,to}]: messages from→to are lost
	trace  bool
	failed string

	leaders     map[uint64]uint64 // term → leader
	committed   map[uint64]Entry  // index → the entry applied there, by anyone
	maxCommit   uint64
	proposals   int
	readReqs    map[uint64]uint64 // ReadIndex ctx → max commit when issued
	nextCtx     uint64
	healedIn    int // rounds from healing to the liveness probe committing
	snaps       int // snapshots installed
	staleReads  int
	confChanges int
	// maxLeaderTerm is the latest term in which any node has become
	// leader, maxCommitTerm the latest term of an entry any node has seen
	// committed; leaseReads counts reads answered by a lease.
	maxLeaderTerm uint64
	maxCommitTerm uint64
	leaseReads    int
	refused       int // proposals refused by MaxUncommittedBytes
}

func newSim(t *testing.T, seed int64, opts simOptions) *sim {
	s := &sim{
		t: t, opts: opts, seed: seed,
		rng:       rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		cut:       map[[2]uint64]bool{},
		leaders:   map[uint64]uint64{},
		committed: map[uint64]Entry{},
		readReqs:  map[uint64]uint64{},
		nextCtx:   1 << 32,
	}
	pool := opts.nodes
	if opts.members {
		pool += 2
	}
	clocks := rand.New(rand.NewPCG(uint64(seed), 0xc10c))
	for i := 1; i <= pool; i++ {
		n := &simNode{id: uint64(i), store: NewMemoryStorage(), rate: 1 + simDrift*(2*clocks.Float64()-1)}
		s.nodes = append(s.nodes, n)
		s.start(n)
	}
	return s
}

func (s *sim) voters() []uint64 {
	ids := make([]uint64, s.opts.nodes)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

func (s *sim) logf(format string, args ...any) {
	if s.trace {
		s.t.Logf("r%d "+format, append([]any{s.round}, args...)...)
	}
}

// violate records the first safety violation; the run stops there.
func (s *sim) violate(format string, args ...any) {
	if s.failed == "" {
		s.failed = fmt.Sprintf("round %d: ", s.round) + fmt.Sprintf(format, args...)
	}
}

func (s *sim) start(n *simNode) {
	var learners []uint64
	if n.id > uint64(s.opts.nodes) {
		// A spare starts outside the cluster, in its own view a learner,
		// until a membership change adds it.
		learners = []uint64{n.id}
	}
	cfg := Config{
		ID: n.id, Voters: s.voters(), Learners: learners,
		ElectionTicks: simElection, HeartbeatTicks: simHeartbeat,
		MaxInflight: 4, MaxSizePerMsg: uint64(cmp.Or(s.opts.msgEntries, 4) * (entryOverhead + 8)),
		Storage: n.store, Rand: rand.New(rand.NewPCG(uint64(s.seed), n.id)),
		DisablePreVote: s.opts.noPreVote, DisableCheckQuorum: s.opts.noCheckQ,
	}
	if s.opts.lease {
		cfg.ReadOnlyOption, cfg.LeaseDriftTicks = ReadOnlyLeaseBased, *simLease
	}
	// Flow control by bytes: odd nodes limit their windows to two full
	// appends' bytes (below the count of 4), and every leader refuses
	// proposals beyond simUncommitted bytes, which a leader cut off from its
	// quorum reaches within a few dozen rounds.
	if n.id%2 == 1 {
		cfg.MaxInflightBytes = 2 * cfg.MaxSizePerMsg
	}
	cfg.MaxUncommittedBytes = simUncommitted
	r, err := New(cfg)
	if err != nil {
		s.violate("restart of %d failed: %v", n.id, err)
		return
	}
	n.r, n.up, n.writes, n.applied, n.commit = r, true, nil, r.log.applying, r.Committed()
}

func (s *sim) crash(n *simNode) {
	s.logf("crash %d (loses %d unsynced saves)", n.id, len(n.writes))
	n.up, n.r, n.writes, n.downAt = false, nil, nil, s.round
}

// maxDelay and maxDiskLag are the profile's during the fault phase; once
// everything heals the network and the disks are healthy again (at most one
// round of delay), so the liveness bound measures Raft, not the profile.
func (s *sim) maxDelay() int {
	if s.round >= s.opts.faultRounds {
		return min(s.opts.maxDelay, 1)
	}
	return s.opts.maxDelay
}

func (s *sim) maxDiskLag() int {
	if s.round >= s.opts.faultRounds {
		return min(s.opts.maxDiskLag, 1)
	}
	return s.opts.maxDiskLag
}

// send puts a message on the network, unless a partition or loss eats it.
func (s *sim) send(m Message) {
	lost := s.cut[[2]uint64{m.From, m.To}] || (s.round < s.opts.faultRounds && s.rng.Float64() < s.opts.drop)
	if m.Type == MsgSnap {
		// A runtime streams snapshots and learns whether the transfer
		// succeeded; tell the leader, as it would.
		if l := s.nodes[m.From-1]; l.up {
			l.r.ReportSnapshot(m.To, !lost)
		}
	}
	if lost {
		return
	}
	copies := 1
	if s.round < s.opts.faultRounds && s.rng.Float64() < s.opts.dup {
		copies = 2
	}
	for range copies {
		delay := 0
		if d := s.maxDelay(); d > 0 {
			delay = s.rng.IntN(d + 1)
		}
		if to := s.nodes[m.To-1]; s.round < s.opts.faultRounds && to.up && to.r.Role() == Leader {
			delay += s.opts.slowToLeader
		}
		s.net = append(s.net, simMsg{due: s.round + delay, m: m})
	}
}

// handleReady takes a node's Ready as a runtime would: send now, queue the
// save, apply, advance.
func (s *sim) handleReady(n *simNode) {
	if !n.r.HasReady() {
		return
	}
	rd := n.r.Ready()
	if s.trace {
		s.logf("ready %d: soft=%v hs=%+v ents=%d commit=%d now=%d after=%d", n.id, rd.SoftState, rd.HardState, len(rd.Entries), len(rd.CommittedEntries), len(rd.Messages), len(rd.MessagesAfterPersist))
	}
	for _, m := range rd.Messages {
		s.send(m)
	}
	if !rd.HardState.IsEmpty() || len(rd.Entries) > 0 || rd.Snapshot != nil || len(rd.MessagesAfterPersist) > 0 {
		w := simWrite{hs: rd.HardState, ents: rd.Entries, snap: rd.Snapshot, after: rd.MessagesAfterPersist}
		if k := len(rd.Entries); k > 0 {
			w.lastIdx, w.lastT = rd.Entries[k-1].Index, rd.Entries[k-1].Term
		} else if rd.Snapshot != nil {
			w.lastIdx, w.lastT = rd.Snapshot.Meta.Index, rd.Snapshot.Meta.Term
		}
		lag := 0
		if d := s.maxDiskLag(); d > 0 {
			lag = s.rng.IntN(d + 1)
		}
		w.due = s.round + lag
		// Saves complete in order, as one WAL writer would.
		if k := len(n.writes); k > 0 {
			w.due = max(w.due, n.writes[k-1].due)
		}
		n.writes = append(n.writes, w)
	}
	if rd.Snapshot != nil {
		n.applied = rd.Snapshot.Meta.Index
		s.snaps++
	}
	for _, e := range rd.CommittedEntries {
		s.apply(n, e)
	}
	for _, rs := range rd.ReadStates {
		if want, ok := s.readReqs[rs.Context]; ok {
			if rs.Index < want {
				s.violate("node %d: ReadIndex %d returned %d, below the commit index %d known when it was issued", n.id, rs.Context, rs.Index, want)
			}
			delete(s.readReqs, rs.Context)
		}
	}
	n.r.Advance(rd)
}

func (s *sim) apply(n *simNode, e Entry) {
	if e.Index != n.applied+1 {
		s.violate("node %d applied index %d after %d", n.id, e.Index, n.applied)
	}
	n.applied = e.Index
	if prev, ok := s.committed[e.Index]; ok {
		if prev.Term != e.Term || string(prev.Data) != string(e.Data) {
			s.violate("state machine safety: node %d applied %d/%d %x at index %d, another node applied %d/%d %x",
				n.id, e.Index, e.Term, e.Data, e.Index, prev.Index, prev.Term, prev.Data)
		}
		return
	}
	s.committed[e.Index] = e
}

// completeWrites makes due saves durable, then releases their messages.
func (s *sim) completeWrites(n *simNode) {
	for len(n.writes) > 0 && n.writes[0].due <= s.round {
		w := n.writes[0]
		n.writes = n.writes[1:]
		if !w.hs.IsEmpty() {
			if w.hs.Commit < n.store.HardState().Commit {
				s.violate("node %d persisted commit %d below the stored %d", n.id, w.hs.Commit, n.store.HardState().Commit)
			}
			n.store.SetHardState(w.hs)
		}
		if w.snap != nil {
			// A snapshot the log has moved past (a newer one, or a local
			// compaction) is skipped; it is acknowledged all the same.
			if cur, _ := n.store.SnapshotMeta(); w.snap.Meta.Index > cur.Index {
				if err := n.store.ApplySnapshot(w.snap.Meta); err != nil {
					s.violate("node %d: %v", n.id, err)
				}
			}
		}
		if w.compactTo > 0 {
			last, _ := n.store.LastIndex()
			if cur, _ := n.store.SnapshotMeta(); w.compactTo <= last && w.compactTo > cur.Index {
				if err := n.store.Compact(w.compactTo, w.compactConf); err != nil {
					s.violate("node %d: compact %d: %v", n.id, w.compactTo, err)
				}
			}
		}
		if err := n.store.Append(w.ents); err != nil {
			s.violate("node %d: %v", n.id, err)
		}
		for _, m := range w.after {
			s.send(m)
		}
		s.logf("persisted %d: hs=%+v last=%d/%d", n.id, w.hs, w.lastIdx, w.lastT)
		if w.lastIdx > 0 {
			n.r.Persisted(w.lastIdx, w.lastT)
		}
	}
}

func (s *sim) deliver() {
	// Deliver every due message; the random delays reorder them.
	var later []simMsg
	due := s.net[:0:0]
	for _, sm := range s.net {
		if sm.due <= s.round {
			due = append(due, sm)
		} else {
			later = append(later, sm)
		}
	}
	s.net = later
	s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, sm := range due {
		n := s.nodes[sm.m.To-1]
		if !n.up {
			continue
		}
		s.steps++
		s.logf("deliver %s", fmtMsg(sm.m))
		if err := n.r.Step(sm.m); err != nil {
			s.violate("node %d: Step(%s from %d): %v", n.id, sm.m.Type, sm.m.From, err)
		}
		s.handleReady(n)
		s.check()
	}
}

func (s *sim) leader() *simNode {
	var best *simNode
	for _, n := range s.nodes {
		if n.up && n.r.Role() == Leader && (best == nil || n.r.Term() > best.r.Term()) {
			best = n
		}
	}
	return best
}

// anyLeader picks at random among the nodes that believe they lead: a
// deposed leader that has not noticed yet must be as safe as the real one.
func (s *sim) anyLeader() *simNode {
	var ls []*simNode
	for _, n := range s.nodes {
		if n.up && n.r.Role() == Leader {
			ls = append(ls, n)
		}
	}
	if len(ls) == 0 {
		return nil
	}
	// Deposed leaders are where reads go wrong: favour them.
	slices.SortFunc(ls, func(a, b *simNode) int { return cmp.Compare(a.r.Term(), b.r.Term()) })
	if len(ls) > 1 && s.rng.IntN(2) == 0 {
		return ls[0]
	}
	return ls[s.rng.IntN(len(ls))]
}

func (s *sim) propose() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if l := s.leader(); l != nil && s.rng.IntN(4) > 0 {
		n = l // mostly at the leader, sometimes at a follower (refused)
	}
	if !n.up {
		return
	}
	k := 1 + s.rng.IntN(3)
	ents := make([]Entry, k)
	for i := range ents {
		s.proposals++
		ents[i].Data = binary.BigEndian.AppendUint64(nil, uint64(s.proposals))
	}
	_, _, err := n.r.Propose(ents...)
	switch {
	case err == nil, err == ErrNotLeader, err == ErrProposalDropped:
	case errors.Is(err, ErrUncommittedLimit):
		s.refused++
		if n.r.uncommittedSize+EntriesSize(ents) <= simUncommitted {
			s.violate("node %d: refused %d bytes with %d uncommitted, within the cap %d", n.id, EntriesSize(ents), n.r.uncommittedSize, simUncommitted)
		}
	default:
		s.violate("node %d: Propose: %v", n.id, err)
	}
}

// faults changes crash and partition state at random during the fault
// phase, and heals everything at its end.
func (s *sim) faults() {
	if s.round == s.opts.faultRounds {
		s.logf("heal")
		clear(s.cut)
		for _, n := range s.nodes {
			if !n.up {
				s.start(n)
			}
		}
		return
	}
	if s.round > s.opts.faultRounds {
		return
	}
	if s.opts.crashes {
		rate := s.opts.crashRate
		if rate == 0 {
			rate = 0.004
		}
		for _, n := range s.nodes {
			if n.up && s.rng.Float64() < rate {
				s.crash(n)
			} else if !n.up && s.round-n.downAt > cmp.Or(s.opts.minDown, 5) && s.rng.Float64() < 0.05 {
				s.logf("restart %d", n.id)
				s.start(n)
			}
		}
	}
	if s.opts.members && s.rng.Float64() < 0.02 {
		s.changeMembership()
	}
	partRate := s.opts.partRate
	if partRate == 0 {
		partRate = 0.01
	}
	if s.opts.partitions && s.rng.Float64() < partRate {
		clear(s.cut)
		ids := s.voters()
		cutBoth := func(a, b uint64) { s.cut[[2]uint64{a, b}], s.cut[[2]uint64{b, a}] = true, true }
		switch s.rng.IntN(5) {
		case 0: // heal
			s.logf("partition: heal")
		case 1: // isolate one node (often the leader)
			x := ids[s.rng.IntN(len(ids))]
			if l := s.leader(); l != nil && s.rng.IntN(2) == 0 {
				x = l.id
			}
			for _, y := range ids {
				if y != x {
					cutBoth(x, y)
				}
			}
			s.logf("partition: isolate %d", x)
		case 2: // split into two groups
			s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			k := 1 + s.rng.IntN(len(ids)-1)
			for _, a := range ids[:k] {
				for _, b := range ids[k:] {
					cutBoth(a, b)
				}
			}
			s.logf("partition: split %v | %v", ids[:k], ids[k:])
		case 3: // asymmetric: one node (often the leader) cannot send to anyone, but hears all
			x := ids[s.rng.IntN(len(ids))]
			if l := s.leader(); l != nil && s.rng.IntN(2) == 0 {
				x = l.id
			}
			for _, y := range ids {
				if y != x {
					s.cut[[2]uint64{x, y}] = true
				}
			}
			s.logf("partition: %d is mute", x)
		case 4: // partial: one node reaches only one other
			x := ids[s.rng.IntN(len(ids))]
			var keep uint64
			for keep = x; keep == x; keep = ids[s.rng.IntN(len(ids))] {
			}
			for _, y := range ids {
				if y != x && y != keep {
					cutBoth(x, y)
				}
			}
			s.logf("partition: %d reaches only %d", x, keep)
		}
	}
}

// compact folds a prefix of a node's durable, applied log into a snapshot
// now and then, keeping a short tail, as a runtime's snapshot policy would.
func (s *sim) compact() {
	for _, n := range s.nodes {
		if !n.up || s.rng.Float64() >= 0.02 || n.applied < 8 {
			continue
		}
		// Core's conf is the one in force at the index it has handed out
		// to apply, so that pair is exact.
		w := simWrite{due: s.round, compactTo: n.r.log.applying, compactConf: n.r.Conf()}
		if k := len(n.writes); k > 0 {
			w.due = max(w.due, n.writes[k-1].due)
		}
		n.writes = append(n.writes, w)
	}
}

// changeMembership has the leader propose a random membership change: add a
// learner, promote one, remove a member (the leader too), or replace a voter
// through joint consensus.
func (s *sim) changeMembership() {
	l := s.leader()
	if l == nil {
		return
	}
	conf := l.r.Conf()
	member := func(id uint64) bool {
		return slices.Contains(conf.Voters, id) || slices.Contains(conf.Learners, id) || slices.Contains(conf.VotersOutgoing, id)
	}
	var outsiders []uint64
	for _, n := range s.nodes {
		if !member(n.id) {
			outsiders = append(outsiders, n.id)
		}
	}
	pick := func(ids []uint64) uint64 { return ids[s.rng.IntN(len(ids))] }
	var cc ConfChange
	switch op := s.rng.IntN(5); {
	case op == 0 && len(outsiders) > 0:
		cc.Changes = []ConfChangeSingle{{Type: AddLearner, NodeID: pick(outsiders)}}
	case op == 1 && len(conf.Learners) > 0:
		cc.Changes = []ConfChangeSingle{{Type: AddVoter, NodeID: pick(conf.Learners)}}
	case op == 2 && len(conf.Voters) > 2:
		cc.Changes = []ConfChangeSingle{{Type: RemoveNode, NodeID: pick(conf.Voters)}}
	case op == 3 && len(conf.Voters) > 2:
		cc.Changes = []ConfChangeSingle{{Type: RemoveNode, NodeID: l.id}} // remove the leader
	case op == 4 && len(outsiders) > 0 && len(conf.Voters) > 1:
		cc.Changes = []ConfChangeSingle{ // replace a voter: joint consensus
			{Type: AddVoter, NodeID: pick(outsiders)},
			{Type: RemoveNode, NodeID: pick(conf.Voters)},
		}
	default:
		return
	}
	if _, _, err := l.r.ProposeConfChange(cc); err == nil {
		s.confChanges++
		s.logf("leader %d proposes %+v", l.id, cc.Changes)
	} else if !errors.Is(err, ErrConfChangePending) && !errors.Is(err, ErrProposalDropped) {
		s.violate("ProposeConfChange(%+v) against %+v: %v", cc.Changes, conf, err)
	}
	s.handleReady(l)
}

// check asserts the safety properties that must hold after every step.
func (s *sim) check() {
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		r := n.r
		if u := &r.log.unstable; !(u.offset-1 <= u.persisted && u.persisted < u.offsetInProgress && u.offsetInProgress <= u.offset+uint64(len(u.entries))) {
			s.violate("node %d: unstable tail broke its invariant: offset %d persisted %d inProgress %d len %d", n.id, u.offset, u.persisted, u.offsetInProgress, len(u.entries))
		}
		if r.Role() == Leader {
			if l, ok := s.leaders[r.Term()]; ok && l != n.id {
				s.violate("election safety: %d and %d both lead term %d", l, n.id, r.Term())
			} else if !ok {
				s.leaders[r.Term()] = n.id
				s.checkLeaderCompleteness(n)
			}
		}
		if r.Role() == Leader {
			s.maxLeaderTerm = max(s.maxLeaderTerm, r.Term())
			s.checkUncommitted(n)
		}
		c := r.Committed()
		if t, err := r.log.term(c); err == nil {
			s.maxCommitTerm = max(s.maxCommitTerm, t)
		}
		if c < n.commit {
			s.violate("node %d: commit index went back from %d to %d", n.id, n.commit, c)
		}
		if c > n.commit && r.Role() == Leader {
			s.checkDurableQuorum(n, c)
		}
		n.confBefore = r.Conf()
		n.commit = c
		s.maxCommit = max(s.maxCommit, c)
		if r.log.applying < n.applied {
			s.violate("node %d: applied went back", n.id)
		}
	}
}

// checkLeaseRead: a read answered by leader n's lease, without a heartbeat
// round. The safety property is the one every read has (its read point is
// at least every index committed anywhere when it was asked: handleReady
// checks it) — in particular no lease read by a deposed leader after a
// newer leader committed. What the lease rule promises is stronger, and
// checked too: no two leaders serve lease reads at overlapping times in the
// simulator's clock, because a leader of a newer term cannot even be
// elected before the lease has run out (a quorum answered the leader's
// heartbeat and refuses votes for an election timeout of its own ticks).
func (s *sim) checkLeaseRead(n *simNode) {
	s.leaseReads++
	term := n.r.Term()
	if s.maxCommitTerm > term {
		s.violate("lease: deposed leader %d of term %d answered a lease read after a leader of term %d committed", n.id, term, s.maxCommitTerm)
	}
	if s.maxLeaderTerm > term {
		s.violate("lease: leader %d of term %d served a lease read while a leader of term %d had been elected", n.id, term, s.maxLeaderTerm)
	}
}

// checkUncommitted: a leader's uncommitted size is exactly the size of the
// entries of its term above its commit index (so it is released as they
// commit and starts from zero in each term), and a proposal pushes it past
// MaxUncommittedBytes only when it was zero before (a batch is always
// taken then): it never exceeds the cap by more than one batch.
func (s *sim) checkUncommitted(n *simNode) {
	r := n.r
	var want uint64
	for i := r.log.committed + 1; i <= r.log.lastIndex(); i++ {
		if t, ok := r.log.unstable.term(i); ok && t == r.term {
			want += r.log.unstable.entries[i-r.log.unstable.offset].Size()
		}
	}
	if r.uncommittedSize != want {
		s.violate("node %d: leader of term %d counts %d bytes uncommitted, its log holds %d", n.id, r.term, r.uncommittedSize, want)
	}
	if r.uncommittedSize > simUncommitted+3*(entryOverhead+8) {
		s.violate("node %d: %d bytes uncommitted, past the cap %d by more than a batch", n.id, r.uncommittedSize, simUncommitted)
	}
}

// checkLeaderCompleteness: a new leader's log holds every entry committed
// (applied by anyone) so far.
func (s *sim) checkLeaderCompleteness(n *simNode) {
	first, _ := n.r.log.firstIndex()
	for idx, e := range s.committed {
		if idx < first {
			continue // inside the leader's snapshot, so committed there
		}
		t, err := n.r.log.term(idx)
		if err != nil || t != e.Term {
			s.violate("leader completeness: leader %d of term %d lacks committed entry %d/%d (has term %d, %v)", n.id, n.r.Term(), idx, e.Term, t, err)
			return
		}
	}
}

// checkDurableQuorum: an index leader n commits is durable on a majority of
// its configuration (of both halves, when joint). Within one step the
// leader may decide under the configuration in force before the step or,
// once a change applies in that step's Advance, under the new one, so a
// majority under either passes.
func (s *sim) checkDurableQuorum(n *simNode, idx uint64) {
	want, err := n.r.log.term(idx)
	if err != nil {
		return
	}
	durable := func(id uint64) bool {
		t, err := s.nodes[id-1].store.Term(idx)
		return (err == nil && t == want) || err == ErrCompacted
	}
	quorum := func(conf ConfState) bool {
		for _, voters := range [][]uint64{conf.Voters, conf.VotersOutgoing} {
			have := 0
			for _, id := range voters {
				if durable(id) {
					have++
				}
			}
			if len(voters) > 0 && have < len(voters)/2+1 {
				return false
			}
		}
		return true
	}
	if !quorum(n.confBefore) && !quorum(n.r.Conf()) {
		s.violate("durability: leader %d committed index %d while it is durable on no majority of %+v or %+v", n.id, idx, n.confBefore, n.r.Conf())
	}
}

// checkLogMatching: if two logs hold an entry with the same index and term,
// they are identical up to it.
func (s *sim) checkLogMatching() {
	type view struct {
		id    uint64
		terms []uint64 // terms[i] is the term at index first+i
		first uint64
	}
	var views []view
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		first, _ := n.r.log.firstIndex()
		last := n.r.log.lastIndex()
		v := view{id: n.id, first: first}
		for i := first; i <= last; i++ {
			t, err := n.r.log.term(i)
			if err != nil {
				s.violate("node %d: term(%d): %v", n.id, i, err)
				return
			}
			v.terms = append(v.terms, t)
		}
		views = append(views, v)
	}
	for a := range views {
		for b := a + 1; b < len(views); b++ {
			va, vb := views[a], views[b]
			lo := max(va.first, vb.first)
			hi := min(va.first+uint64(len(va.terms)), vb.first+uint64(len(vb.terms)))
			agreeFrom := uint64(0)
			for i := hi; i > lo; i-- {
				if va.terms[i-1-va.first] == vb.terms[i-1-vb.first] {
					agreeFrom = i - 1
					break
				}
			}
			for i := lo; i < agreeFrom; i++ {
				if va.terms[i-va.first] != vb.terms[i-vb.first] {
					s.violate("log matching: nodes %d and %d agree at %d but differ at %d", va.id, vb.id, agreeFrom, i)
					return
				}
			}
		}
	}
}

// run drives the cluster: a fault phase, then a healed phase in which a new
// proposal must commit within simLivenessBound rounds.
func (s *sim) run() {
	total := s.opts.faultRounds + simLivenessBound
	var target, targetTerm uint64 // the liveness probe proposal, once placed
	for s.round = 0; s.round < total && s.failed == ""; s.round++ {
		s.faults()
		for _, n := range s.nodes {
			if !n.up {
				continue
			}
			// The node's clock: rate ticks per round on average.
			for n.phase += n.rate; n.phase >= 1 && n.up; n.phase-- {
				s.steps++
				n.r.Tick()
				s.handleReady(n)
				if n.r.Role() == Leader {
					// A tick can elect (a sole voter) or keep a leader:
					// the lease checks need the newest leader's term.
					s.maxLeaderTerm = max(s.maxLeaderTerm, n.r.Term())
				}
			}
		}
		if s.round < s.opts.faultRounds {
			if s.rng.Float64() < 0.3 {
				s.propose()
			}
			if l := s.leader(); l != nil && s.opts.transfers && s.rng.Float64() < 0.003 {
				to := uint64(1 + s.rng.IntN(len(s.nodes)))
				s.logf("transfer %d -> %d", l.id, to)
				if err := l.r.TransferLeader(to); err != nil && !(s.opts.members && strings.Contains(err.Error(), "not a voter")) {
					s.violate("TransferLeader: %v", err)
				}
				s.handleReady(l)
			}
			if l := s.anyLeader(); l != nil && s.opts.reads && s.rng.Float64() < cmp.Or(s.opts.readRate, 0.2) {
				s.nextCtx++
				answered := len(l.r.readStates)
				if err := l.r.ReadIndex(s.nextCtx); err == nil {
					if l.r.Term() < s.leader().r.Term() {
						s.staleReads++
					}
					if len(l.r.readStates) > answered && !l.r.isSoleVoter() {
						s.checkLeaseRead(l)
					}
					s.readReqs[s.nextCtx] = s.maxCommit
				} else if err != ErrReadNotReady {
					s.violate("ReadIndex: %v", err)
				}
				s.handleReady(l)
			}
		} else if l := s.leader(); l != nil {
			// Liveness: propose a marked entry and wait for it to commit;
			// propose again if a leader change lost it.
			if target != 0 {
				if e, ok := s.committed[target]; ok {
					if string(e.Data) == "liveness" {
						s.healedIn = s.round - s.opts.faultRounds
						s.logf("liveness probe committed at %d", target)
						break
					}
					target = 0
				} else if l.r.Term() != targetTerm {
					target = 0
				}
			}
			if target == 0 {
				if first, term, err := l.r.Propose(Entry{Data: []byte("liveness")}); err == nil {
					target, targetTerm = first, term
				}
				s.handleReady(l)
			}
		}
		if s.opts.compact {
			s.compact()
		}
		for _, n := range s.nodes {
			if n.up {
				s.completeWrites(n)
				s.handleReady(n)
			}
		}
		s.deliver()
		for _, n := range s.nodes {
			if n.up {
				s.handleReady(n)
			}
		}
		if s.round%10 == 0 {
			s.checkLogMatching()
			if s.trace {
				if l := s.leader(); l != nil {
					st := l.r.Status()
					s.logf("status leader %d t%d commit %d last %d progress %+v", l.id, st.Term, st.Commit, st.LastIndex, st.Progress)
				} else {
					s.logf("status: no leader")
				}
			}
		}
	}
	s.checkLogMatching()
	if s.failed == "" && s.round >= total {
		s.violate("liveness: no proposal committed within %d rounds after the faults healed", simLivenessBound)
	}
}

// simProfiles are the fault mixes every seed cycles through.
var simProfiles = []simOptions{
	{faultRounds: 400, drop: 0.05, dup: 0.05, maxDelay: 3, maxDiskLag: 2, crashes: true, partitions: true, transfers: true, reads: true, compact: true, members: true, lease: true},
	{faultRounds: 300, drop: 0.2, dup: 0.1, maxDelay: 5, maxDiskLag: 3, crashes: true, partitions: false, reads: true},
	{faultRounds: 300, drop: 0.01, maxDelay: 1, maxDiskLag: 1, partitions: true, transfers: true, compact: true, members: true},
	{faultRounds: 200, maxDelay: 0, maxDiskLag: 0, crashes: true, transfers: true, reads: true, compact: true},
	// Churn: crashes and partitions every few election timeouts with slow
	// disks — the ground where the Figure 8 scenario and lost votes live.
	{faultRounds: 400, drop: 0.02, maxDelay: 2, maxDiskLag: 4, crashes: true, crashRate: 0.02, partitions: true, partRate: 0.05, reads: true, members: true, lease: true},
	// Without the lease a deposed leader keeps leading its minority: reads
	// and commits there must still be safe.
	{faultRounds: 400, drop: 0.05, dup: 0.05, maxDelay: 3, maxDiskLag: 3, crashes: true, crashRate: 0.01, partitions: true, partRate: 0.03, reads: true, transfers: true, noPreVote: true, noCheckQ: true, compact: true},
	{faultRounds: 300, drop: 0.05, maxDelay: 2, maxDiskLag: 2, crashes: true, partitions: true, partRate: 0.03, reads: true, noCheckQ: true},
	// One entry per append, long message delays and quick restarts: votes
	// and appends arrive after their sender's world has moved on.
	{faultRounds: 400, drop: 0.05, dup: 0.05, maxDelay: 8, maxDiskLag: 5, crashes: true, crashRate: 0.03, minDown: 1, partitions: true, partRate: 0.03, msgEntries: 1, noPreVote: true, noCheckQ: true},
	{faultRounds: 400, drop: 0.02, maxDelay: 6, maxDiskLag: 6, crashes: true, crashRate: 0.03, minDown: 1, msgEntries: 1, reads: true, compact: true, lease: true},
	// Lease reads where leases end: leaders isolated and partitioned,
	// transfers, nodes that crash and are back a round later (having
	// forgotten whose heartbeat they answered), delayed messages.
	{faultRounds: 400, drop: 0.03, dup: 0.03, maxDelay: 4, maxDiskLag: 3, crashes: true, crashRate: 0.02, minDown: 1, partitions: true, partRate: 0.04, transfers: true, reads: true, members: true, lease: true},
	// Leases at their edge: answers reach the leader late, so a leader cut
	// off still hears answers to its last heartbeats for a while and leads
	// on (check-quorum counts them when they arrive) while its followers,
	// without pre-vote, elect a successor. A read in most rounds then finds
	// any lease that outlasts the followers' promise: with the simulator's
	// clock drift, one whose LeaseDriftTicks is too small (try
	// -sim.leasedrift=0).
	{faultRounds: 400, maxDelay: 1, maxDiskLag: 1, slowToLeader: 4, partitions: true, partRate: 0.05, reads: true, readRate: 0.9, noPreVote: true, lease: true},
}

func simReplay(seed int64, nodes int) string {
	return fmt.Sprintf("go test ./core/ -run '^TestSimulation$' -sim.seed=%d -sim.nodes=%d -sim.trace -v", seed, nodes)
}

// simStats sum up what the seeds did, to show the runs exercise the
// protocol rather than idling.
type simStats struct {
	committed, terms, snaps, maxHealed, staleReads, confChanges, leaseReads, refused int
}

func runSeed(t *testing.T, seed int64, nodes int, trace bool, st *simStats) (steps int, failure string) {
	opts := simProfiles[int(seed)%len(simProfiles)]
	opts.nodes = nodes
	s := newSim(t, seed, opts)
	s.trace = trace
	s.run()
	if st != nil {
		st.committed += len(s.committed)
		st.terms += len(s.leaders)
		st.snaps += s.snaps
		st.staleReads += s.staleReads
		st.confChanges += s.confChanges
		st.leaseReads += s.leaseReads
		st.refused += s.refused
		st.maxHealed = max(st.maxHealed, s.healedIn)
	}
	return s.steps, s.failed
}

// TestSimulation runs thousands of seeded clusters of 3, 5 and 7 nodes under
// message loss, duplication, reordering, delay, partitions (symmetric,
// asymmetric and partial), crashes that lose unsynced writes, leadership
// transfers and ReadIndex, checking safety after every step and liveness
// after the faults heal.
func TestSimulation(t *testing.T) {
	if *simSeed >= 0 {
		steps, failure := runSeed(t, *simSeed, *simNodes, *simTrace, nil)
		fmt.Printf("sim: 1 seeds, %d steps, %d violations\n", steps, btoi(failure != ""))
		if failure != "" {
			t.Fatalf("seed %d, %d nodes: %s", *simSeed, *simNodes, failure)
		}
		return
	}
	total := *simSeeds
	if total == 0 {
		total = 2100
		if testing.Short() {
			total = 150
		}
	}
	perSize := (total + 2) / 3
	var seeds, steps, violations atomic.Int64
	var report []string
	var st simStats
	for _, nodes := range []int{3, 5, 7} {
		for seed := int64(0); seed < int64(perSize); seed++ {
			st, failure := runSeed(t, seed, nodes, false, &st)
			seeds.Add(1)
			steps.Add(int64(st))
			if failure != "" {
				violations.Add(1)
				if len(report) < 10 {
					report = append(report, fmt.Sprintf("seed %d, %d nodes: %s\n  replay: %s", seed, nodes, failure, simReplay(seed, nodes)))
				}
			}
		}
	}
	fmt.Printf("sim: %d seeds, %d steps, %d violations\n", seeds.Load(), steps.Load(), violations.Load())
	t.Logf("entries committed %d, leader terms %d, snapshots installed %d, membership changes %d, reads on deposed leaders %d, lease reads %d, proposals refused at the uncommitted cap %d, slowest recovery after healing %d rounds (bound %d)",
		st.committed, st.terms, st.snaps, st.confChanges, st.staleReads, st.leaseReads, st.refused, st.maxHealed, simLivenessBound)
	if st.committed == 0 || st.terms == 0 || st.leaseReads == 0 {
		t.Fatalf("the simulator committed %d entries in %d terms and served %d lease reads: it is not exercising Raft", st.committed, st.terms, st.leaseReads)
	}
	if len(report) > 0 {
		t.Fatalf("%d of %d seeds violated Raft's properties:\n%s", violations.Load(), seeds.Load(), strings.Join(report, "\n"))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fmtMsg(m Message) string {
	return fmt.Sprintf("%s %d->%d t%d idx=%d lt=%d ents=%d commit=%d rej=%v hint=%d ctx=%d", m.Type, m.From, m.To, m.Term, m.Index, m.LogTerm, len(m.Entries), m.Commit, m.Reject, m.RejectHint, m.Context)
}

// simRegressions are seeds that once failed, kept so their scenarios run on
// every test run whatever the seed ranges cover.
var simRegressions = []struct {
	seed  int64
	nodes int
	why   string
}{
	// A candidate still in a joint configuration needed the vote of the
	// removed old leader, whose log was ahead: no one could win until vote
	// rejections carried the rejecter's commit point.
	{2628, 3, "joint config, removed leader ahead"},
	{5364, 3, "joint config, removed leader ahead"},
	{8354, 3, "joint config, removed leader ahead"},
	{11520, 3, "joint config, removed leader ahead"},
	// A node removed while campaigning won with votes of the new
	// configuration and led a cluster it was not in.
	{30638, 7, "removed mid-campaign"},
	// Two snapshots arrived before either was saved while a compaction
	// ran behind them.
	{29885, 3, "stale snapshot behind a compaction"},
	// Without pre-vote, a node whose log was behind and whose clock ran
	// fast campaigned every few ticks; each rejected request restarted the
	// others' election timers, so none of them ever campaigned.
	{11824, 3, "rejected votes restarting election timers"},
}

func TestSimulationRegressions(t *testing.T) {
	for _, r := range simRegressions {
		if _, failure := runSeed(t, r.seed, r.nodes, false, nil); failure != "" {
			t.Errorf("seed %d (%s): %s\n  replay: %s", r.seed, r.why, failure, simReplay(r.seed, r.nodes))
		}
	}
}

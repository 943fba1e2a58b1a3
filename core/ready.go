package core

// Ready is the work core hands the runtime: what to persist, what to send,
// what to apply. The runtime must:
//
//  1. send Messages at once (they do not depend on local durability — this
//     is how a leader's appends overlap its own fsync);
//  2. durably save the Snapshot first, if there is one (it replaces the log
//     up to its index), then HardState (if not empty) and Entries — best in
//     one atomic write, and never the HardState before the entries and
//     snapshot it counts as committed, or a crash between the two leaves a
//     commit index beyond the log, which New refuses. Entries replace any
//     stored entries at their indexes and after. Saves of successive
//     Readys may be merged into one write, in order (a later HardState
//     supersedes an earlier one);
//  3. only then send MessagesAfterPersist, and call Persisted with the last
//     entry saved (and, for a snapshot, with its index and term);
//  4. apply Snapshot (if any) and then CommittedEntries to the state
//     machine, in order;
//  5. call Advance(rd) — right away; steps 2-4 may complete later.
//
// The node runtime does exactly this: its loop sends Messages, queues the
// save and calls Advance in the same round; its WAL writer merges every
// queued save into one wal.Log.Save (HardState and entries in one Pebble
// batch) after writing any snapshot image and the log's new start, then
// sends the MessagesAfterPersist of every merged Ready and reports them
// Persisted; its applier applies (node/doc.go).
//
// Slices in a Ready are never modified by core afterwards, so the runtime may
// hand them to other goroutines.
type Ready struct {
	// SoftState is set when the leader or role changed.
	SoftState *SoftState
	// HardState is the state to persist; empty when unchanged.
	HardState HardState
	// Entries must be saved before MessagesAfterPersist are sent.
	Entries []Entry
	// Snapshot, when set, replaces the log and the state machine.
	Snapshot *Snapshot
	// CommittedEntries are ready to apply. They may include entries from
	// Entries: a quorum holds them, so applying before the local write
	// completes is safe.
	CommittedEntries []Entry
	// Messages may leave now.
	Messages []Message
	// MessagesAfterPersist may leave only once this Ready's HardState,
	// Snapshot and Entries are durable.
	MessagesAfterPersist []Message
	// ReadStates are confirmed linearizable read points.
	ReadStates []ReadState
	// MustSync says the save must be synced to honour Raft's guarantees
	// (entries, a new term or a vote); a commit-only change need not be.
	MustSync bool
}

// HasReady reports whether Ready would return any work.
func (r *Raft) HasReady() bool {
	u := &r.log.unstable
	return len(r.msgs) > 0 || len(r.msgsAfter) > 0 || len(r.readStates) > 0 ||
		r.softState() != r.prevSoft || r.hardState() != r.prevHard ||
		(u.snapshot != nil && !u.snapshotInProgress) ||
		u.offsetInProgress < u.offset+uint64(len(u.entries)) ||
		r.log.committed > r.log.applying
}

// Ready returns the pending work without consuming it; Advance(rd) marks it
// taken. Step, Tick and Propose may be called between the two: Advance only
// accounts for what rd contained.
func (r *Raft) Ready() Ready {
	u := &r.log.unstable
	rd := Ready{
		Messages:             r.msgs,
		MessagesAfterPersist: r.msgsAfter,
		ReadStates:           r.readStates,
	}
	if ss := r.softState(); ss != r.prevSoft {
		rd.SoftState = &ss
	}
	if hs := r.hardState(); hs != r.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != r.prevHard.Term || hs.Vote != r.prevHard.Vote
	}
	if u.snapshot != nil && !u.snapshotInProgress {
		rd.Snapshot = u.snapshot
		rd.MustSync = true
	}
	if from := u.offsetInProgress - u.offset; from < uint64(len(u.entries)) {
		n := uint64(len(u.entries))
		rd.Entries = u.entries[from:n:n]
		rd.MustSync = true
	}
	if r.log.committed > r.log.applying {
		ents, err := r.log.slice(r.log.applying+1, r.log.committed+1, maxApplyBytes)
		if err != nil {
			r.fail(err)
		} else {
			rd.CommittedEntries = ents
		}
	}
	return rd
}

// Advance acknowledges that the runtime has taken rd: its entries and
// snapshot are being written, its messages sent, its committed entries
// handed to the state machine.
func (r *Raft) Advance(rd Ready) {
	u := &r.log.unstable
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		// Only if that entry is still in the log: a conflicting append
		// since Ready would have reset the cursor below it already.
		if t, ok := u.term(last.Index); ok && t == last.Term && last.Index >= u.offset {
			u.offsetInProgress = max(u.offsetInProgress, last.Index+1)
		}
	}
	if rd.Snapshot != nil && u.snapshot == rd.Snapshot {
		u.snapshotInProgress = true
	}
	if !rd.HardState.IsEmpty() {
		r.prevHard = rd.HardState
	}
	if rd.SoftState != nil {
		r.prevSoft = *rd.SoftState
	}
	for i := range rd.CommittedEntries {
		e := &rd.CommittedEntries[i]
		if e.Index <= r.log.applying {
			continue
		}
		r.log.applying = e.Index
		if e.Type == EntryConfChange {
			r.applyConfChangeEntry(e)
		}
	}
	r.maybeLeaveJoint()
	r.log.shrinkUnstable()
	r.msgs = dropFirst(r.msgs, len(rd.Messages))
	r.msgsAfter = dropFirst(r.msgsAfter, len(rd.MessagesAfterPersist))
	r.readStates = dropFirst(r.readStates, len(rd.ReadStates))
}

// dropFirst removes the first n elements. The remaining ones keep their
// backing array (appends land after the taken ones, which stay intact for
// the runtime); an emptied queue starts a fresh one.
func dropFirst[T any](s []T, n int) []T {
	if n >= len(s) {
		return nil
	}
	return s[n:]
}

// ProgressStatus is the leader's view of one member.
type ProgressStatus struct {
	Match, Next uint64
	// State is "probe", "replicate" or "snapshot".
	State string
	// Inflight and InflightBytes are the appends outstanding in the
	// pipeline window and their entry bytes.
	Inflight      int
	InflightBytes uint64
	Learner       bool
}

// Status is a snapshot of the node's state for monitoring.
type Status struct {
	ID        uint64
	Term      uint64
	Vote      uint64
	Lead      uint64
	Role      Role
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	Conf      ConfState
	// Progress is set on the leader only.
	Progress map[uint64]ProgressStatus
	// UncommittedBytes is what the leader appended in its term and has not
	// seen committed, as counted against MaxUncommittedBytes (leader only).
	UncommittedBytes uint64
}

// Status reports the current state. It allocates; call it for monitoring,
// not on a hot path.
func (r *Raft) Status() Status {
	s := Status{
		ID: r.id, Term: r.term, Vote: r.vote, Lead: r.lead, Role: r.role,
		Commit: r.log.committed, Applied: r.log.applying, LastIndex: r.log.lastIndex(),
		Conf: ConfState{
			Voters:         append([]uint64(nil), r.conf.Voters...),
			VotersOutgoing: append([]uint64(nil), r.conf.VotersOutgoing...),
			Learners:       append([]uint64(nil), r.conf.Learners...),
		},
	}
	if r.role == Leader {
		s.UncommittedBytes = r.uncommittedSize
		s.Progress = make(map[uint64]ProgressStatus, r.prs.Len())
		for _, id := range r.prs.IDs() {
			pr := r.prs.Progress(id)
			s.Progress[id] = ProgressStatus{
				Match: pr.Match(), Next: pr.Next(), State: pr.State().String(),
				Inflight: pr.Inflight(), InflightBytes: pr.InflightBytes(), Learner: pr.IsLearner(),
			}
		}
	}
	return s
}

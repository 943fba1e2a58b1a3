package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/core"
)

// walWriter saves what the Raft loop hands it, in order, on its own
// goroutine, so the loop never waits on the disk. Everything queued while a
// save is in progress is merged into the next one: one Pebble batch and one
// fsync for many Readys, which is where a loaded leader's throughput comes
// from.
type walWriter struct {
	n     *Node
	mu    sync.Mutex
	queue []saveReq
	wake  chan struct{}
	stopc chan struct{}
	done  chan struct{}
	fail  atomic.Pointer[error]
}

// saveReq is one Ready's durable work.
type saveReq struct {
	hs    core.HardState
	ents  []core.Entry
	snap  *core.Snapshot
	sync  bool
	after []core.Message
	// compact, when set, compacts the log up to compact.index once every
	// save queued before it is written: compaction must never overtake an
	// older snapshot still queued, or the log's start would move backwards.
	compact *compactReq
	// roundStart is when the loop round that produced this Ready began
	// (stage clock): a follower's hold of the appends it answers starts
	// there (core.AppTiming).
	roundStart int64
}

type compactReq struct {
	index uint64
	conf  core.ConfState
}

func newWALWriter(n *Node) *walWriter {
	return &walWriter{n: n, wake: make(chan struct{}, 1), stopc: make(chan struct{}), done: make(chan struct{})}
}

func (w *walWriter) enqueue(r saveReq) {
	w.mu.Lock()
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *walWriter) err() error {
	if p := w.fail.Load(); p != nil {
		return *p
	}
	return nil
}

// installSnapshot makes a snapshot received from the leader durable: its
// image, then the log's new start. A snapshot the log has already moved past
// (a newer one was saved, or the log was compacted beyond it) is skipped;
// it is still acknowledged, so core forgets it.
func (w *walWriter) installSnapshot(s *core.Snapshot) error {
	cur, err := w.n.cfg.Log.SnapshotMeta()
	if err != nil {
		return fmt.Errorf("node %d: wal snapshot metadata: %w", w.n.id, err)
	}
	if s.Meta.Index <= cur.Index {
		return nil
	}
	if err := w.n.snaps.save(s); err != nil {
		return fmt.Errorf("node %d: %w", w.n.id, err)
	}
	w.n.setLatestSnap(s)
	if err := w.n.cfg.Log.SaveSnapshot(s.Meta); err != nil {
		return fmt.Errorf("node %d: wal save snapshot %d: %w", w.n.id, s.Meta.Index, err)
	}
	return nil
}

// compact compacts the log after a snapshot image was persisted, never past
// what the log holds nor below where it already starts.
func (w *walWriter) compact(c *compactReq) error {
	lg := w.n.cfg.Log
	last, err := lg.LastIndex()
	if err != nil {
		return fmt.Errorf("node %d: compact: %w", w.n.id, err)
	}
	cur, err := lg.SnapshotMeta()
	if err != nil {
		return fmt.Errorf("node %d: compact: %w", w.n.id, err)
	}
	if c.index > last || c.index <= cur.Index {
		return nil
	}
	if err := lg.Compact(c.index, c.conf); err != nil {
		return fmt.Errorf("node %d: compact to %d: %w", w.n.id, c.index, err)
	}
	w.n.metrics.compactions.Add(1)
	return nil
}

// write saves one merged batch and returns how long it took and when it
// finished (stage clock; both 0 when there was nothing to write).
func (w *walWriter) write(hs core.HardState, ents []core.Entry, sync bool) (took time.Duration, end int64, err error) {
	if hs.IsEmpty() && len(ents) == 0 {
		return 0, 0, nil
	}
	start := time.Now()
	if err := w.n.cfg.Log.Save(hs, ents, sync); err != nil {
		return 0, 0, fmt.Errorf("node %d: wal save: %w", w.n.id, err)
	}
	finish := time.Now()
	took = finish.Sub(start)
	w.n.metrics.saved(took, sync)
	if st := w.n.stages; st != nil && sync {
		st.detail(DetailWALFsync, int64(took))
	}
	return took, monoOf(finish), nil
}

// stop lets the writer finish what is queued, then ends it.
func (w *walWriter) stop() {
	close(w.stopc)
	<-w.done
}

func (w *walWriter) run() {
	defer close(w.done)
	for {
		stopping := false
		select {
		case <-w.wake:
		case <-w.stopc:
			stopping = true
		}
		w.mu.Lock()
		queue := w.queue
		w.queue = nil
		w.mu.Unlock()
		if len(queue) > 0 && w.err() == nil {
			if err := w.save(queue); err != nil {
				w.fail.Store(&err)
				w.n.signal()
			}
		}
		if stopping {
			return
		}
	}
}

// save merges queued saves into one write, makes it durable, and only then
// lets their held-back messages go and tells the loop.
func (w *walWriter) save(queue []saveReq) error {
	var hs core.HardState
	var ents []core.Entry
	var acks []persistAck
	sync, merged := false, false
	// persist is the time spent writing, end when the last write finished.
	var persist time.Duration
	var end int64
	flush := func() error {
		took, at, err := w.write(hs, ents, sync)
		if err != nil {
			return err
		}
		persist, end = persist+took, max(end, at)
		if w.n.stages == nil {
			at = 0 // not timed: the loop skips the bookkeeping
		}
		if len(ents) > 0 {
			acks = append(acks, persistAck{ents[len(ents)-1].Index, ents[len(ents)-1].Term, at})
		}
		hs, ents, sync, merged = core.HardState{}, nil, false, false
		return nil
	}
	for _, r := range queue {
		if r.compact != nil {
			if err := flush(); err != nil {
				return err
			}
			if err := w.compact(r.compact); err != nil {
				return err
			}
			continue
		}
		if r.snap != nil {
			// A snapshot from the leader replaces the log: write what is
			// merged so far, then the image and the log's new start, in
			// that order, so a crash never leaves a log compacted past the
			// newest image.
			if err := flush(); err != nil {
				return err
			}
			if err := w.installSnapshot(r.snap); err != nil {
				return err
			}
			acks = append(acks, persistAck{index: r.snap.Meta.Index, term: r.snap.Meta.Term})
		}
		if !r.hs.IsEmpty() {
			hs = r.hs
		}
		sync = sync || r.sync
		if len(r.ents) == 0 {
			continue
		}
		switch {
		case len(ents) == 0:
			ents = r.ents
		default:
			// A later Ready's entries start at or before the end of what
			// is merged so far (a conflicting append replaces a suffix).
			// Copy: the slices belong to core and must not be written.
			keep := 0
			if r.ents[0].Index > ents[0].Index {
				keep = int(min(r.ents[0].Index-ents[0].Index, uint64(len(ents))))
			}
			if !merged {
				ents = append(make([]core.Entry, 0, keep+len(r.ents)), ents[:keep]...)
				merged = true
			} else {
				ents = ents[:keep]
			}
			ents = append(ents, r.ents...)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if w.n.stages != nil {
		reportTiming(queue, persist, end)
	}
	for _, r := range queue {
		if len(r.after) > 0 {
			w.n.tr.Send(r.after)
			w.n.metrics.sent.Add(uint64(len(r.after)))
		}
	}
	if len(acks) > 0 {
		w.n.mu.Lock()
		w.n.acks = append(w.n.acks, acks...)
		w.n.mu.Unlock()
		w.n.signal()
	}
	return nil
}

// reportTiming fills in the timing report (core.AppTiming) of every
// successful append acknowledgement these saves held back: the follower's
// hold, from the start of the loop round that took the append in to end,
// when the save that made it durable finished and the answer leaves, and
// persist, how long the writes of this save took.
func reportTiming(queue []saveReq, persist time.Duration, end int64) {
	for _, r := range queue {
		for i := range r.after {
			m := &r.after[i]
			if m.Type != core.MsgAppResp || m.Reject || r.roundStart == 0 {
				continue
			}
			if end == 0 {
				end = monoNow() // nothing was written: the answers leave now
			}
			m.Timing = core.AppTiming{HoldNanos: uint64(max(end-r.roundStart, 1)), PersistNanos: uint64(persist)}
		}
	}
}

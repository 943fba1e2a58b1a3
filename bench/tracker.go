package bench

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ackTracker remembers enough of every write to check, after the run, that
// each acknowledged write survived on a replica: every value carries a
// unique write ID (its first 8 bytes), and for each key the tracker keeps
// the acknowledged write that was called last.
//
// The check: the final value of a key was written by some write q. If an
// acknowledged write p of that key was called after q had already been
// acknowledged, p must be linearized after q, so q's value being final
// means p was lost. Any other q (acknowledged after p was called, or of
// unknown outcome — a write whose caller gave up may still be committed
// later, so it is never counted as acknowledged) may legitimately have
// overwritten p. A final value written by no write of the run is a loss
// too.
//
// Writes to different keys never interact, so the tracker keeps one lock
// per key: the workload's clients record their writes without contending.
type ackTracker struct {
	base  time.Time
	keys  []string
	slots []keySlot
	acked atomic.Int64
}

// keySlot is one key's writes.
//
// Invariant: ends holds every write of the key whose end is at or after
// last.start (and may hold older ones): last.start only grows, so a write
// that ended before it can never again pass found's test, and dropping it
// gives the same verdict as keeping it. done sweeps such writes out
// whenever ends has doubled since the last sweep, so its size stays
// near the writes in flight on the key instead of growing with the run
// (the growing set cost 7% of the CPU of a 256-client run with --wal
// memory). It is a slice, not a map keyed by write ID, because done runs
// for every write and found only once per key, at the end: a map insert
// per write cost 4% of the CPU of the same run, an append almost nothing.
// Each ID appears once: the workload numbers its writes from a counter,
// and each write ends once.
type keySlot struct {
	mu      sync.Mutex
	ends    []writeEnd
	last    lastAck // the acknowledged write called last
	has     bool
	sweepAt int // len(ends) at which done next sweeps
}

// writeEnd is when a write ended: its ack time (ns since base), or
// MaxInt64 when its outcome is unknown.
type writeEnd struct {
	id  uint64
	end int64
}

// minSweep is the smallest ends a sweep waits for.
const minSweep = 64

type lastAck struct {
	start int64
	id    uint64
}

// newAckTracker tracks writes to keys (the workload's key space).
func newAckTracker(keys [][]byte) *ackTracker {
	t := &ackTracker{base: time.Now(), keys: make([]string, len(keys)), slots: make([]keySlot, len(keys))}
	for i, k := range keys {
		t.keys[i] = string(k)
	}
	return t
}

func (t *ackTracker) since(x time.Time) int64 { return x.Sub(t.base).Nanoseconds() }

// done records the end of a write of key number key: acknowledged, or
// (acked false) with an outcome that may or may not take effect.
func (t *ackTracker) done(key int, id uint64, start, end time.Time, acked bool) {
	sl := &t.slots[key]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if !acked {
		sl.ends = append(sl.ends, writeEnd{id: id, end: math.MaxInt64})
		return
	}
	t.acked.Add(1)
	sl.ends = append(sl.ends, writeEnd{id: id, end: t.since(end)})
	if s := t.since(start); !sl.has || s > sl.last.start {
		sl.last, sl.has = lastAck{start: s, id: id}, true
	}
	if len(sl.ends) >= max(sl.sweepAt, minSweep) {
		sl.ends = slices.DeleteFunc(sl.ends, func(w writeEnd) bool { return w.end < sl.last.start })
		sl.sweepAt = 2 * len(sl.ends)
	}
}

// verify reads every key with an acknowledged write through read (one
// replica's final state) and returns the number of acknowledged writes and
// the keys whose acknowledged write is missing. Every write must have
// ended (done called) before.
func (t *ackTracker) verify(read func(key string) ([]byte, bool)) (acked int64, lost []string) {
	return t.verifyGroup(0, 1, read)
}

// verifyGroup is verify of group g of groups: the keys k with k mod groups
// = g, the ones that group holds (see workload).
func (t *ackTracker) verifyGroup(g, groups int, read func(key string) ([]byte, bool)) (acked int64, lost []string) {
	for i := g; i < len(t.slots); i += groups {
		sl := &t.slots[i]
		sl.mu.Lock()
		if sl.has {
			if v, present := read(t.keys[i]); !t.found(sl, v, present) {
				lost = append(lost, t.keys[i])
			}
		}
		sl.mu.Unlock()
	}
	sort.Strings(lost)
	return t.acked.Load(), lost
}

// found reports whether a key's final value v (present or not) is
// consistent with its acknowledged writes; sl.mu is held.
func (t *ackTracker) found(sl *keySlot, v []byte, present bool) bool {
	if !present || len(v) < 8 {
		return false
	}
	id := binary.BigEndian.Uint64(v)
	if id == sl.last.id {
		return true
	}
	for _, w := range sl.ends {
		if w.id == id {
			return w.end >= sl.last.start
		}
	}
	return false
}

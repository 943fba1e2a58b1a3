package bench

import (
	"encoding/binary"
	"math"
	"sort"
	"sync"
	"time"
)

// ackTracker remembers enough of every write to check, after the run, that
// each acknowledged write survived: every value carries a unique write ID
// (its first 8 bytes), and for each key the tracker keeps the acknowledged
// write that was called last.
//
// The check: the final value of a key was written by some write q. If an
// acknowledged write p of that key was called after q had already been
// acknowledged, p must be linearized after q, so q's value being final
// means p was lost. Any other q (acknowledged after p was called, or of
// unknown outcome) may legitimately have overwritten p.
type ackTracker struct {
	base  time.Time
	mu    sync.Mutex
	ends  map[uint64]int64 // write ID -> ack time (ns since base); MaxInt64 if unknown
	last  map[string]lastAck
	acked int64
}

type lastAck struct {
	start int64
	id    uint64
}

func newAckTracker() *ackTracker {
	return &ackTracker{base: time.Now(), ends: map[uint64]int64{}, last: map[string]lastAck{}}
}

func (t *ackTracker) since(x time.Time) int64 { return x.Sub(t.base).Nanoseconds() }

// done records the end of a write: acknowledged, or (acked false) with an
// outcome that may or may not have been applied.
func (t *ackTracker) done(key string, id uint64, start, end time.Time, acked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !acked {
		t.ends[id] = math.MaxInt64
		return
	}
	t.acked++
	t.ends[id] = t.since(end)
	s := t.since(start)
	if l, ok := t.last[key]; !ok || s > l.start {
		t.last[key] = lastAck{start: s, id: id}
	}
}

// verify reads every key with an acknowledged write through read and
// returns the number of acknowledged writes and the keys whose
// acknowledged write is missing.
func (t *ackTracker) verify(read func(key string) ([]byte, bool)) (acked int64, lost []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, l := range t.last {
		v, found := read(key)
		if !found || len(v) < 8 {
			lost = append(lost, key)
			continue
		}
		id := binary.BigEndian.Uint64(v)
		if id == l.id {
			continue
		}
		end, known := t.ends[id]
		if !known || end < l.start {
			lost = append(lost, key)
		}
	}
	sort.Strings(lost)
	return t.acked, lost
}

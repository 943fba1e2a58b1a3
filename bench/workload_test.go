package bench

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench/results"
)

// fakeClock only moves when told to: SleepUntil jumps to the wake time, and
// a stall jumps ahead without the scheduler running.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestOpenLoopShowsStall: at 1000 ops/s for 2 s, every operation takes
// 100 µs, except that the process stalls for 500 ms at operation 500. An
// open loop must still start all 2000 operations, and those scheduled
// during the stall must show up to 500 ms of latency measured from their
// intended start; a closed-loop measurement would show one slow operation.
func TestOpenLoopShowsStall(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	start := clk.Now()
	h := results.NewHistogram()
	n := 0
	got := OpenLoop(context.Background(), clk, 1000, start, start.Add(2*time.Second), func(intended time.Time) {
		n++
		if n == 500 {
			clk.advance(500 * time.Millisecond) // the stall
		}
		results.RecordUS(h, clk.Now().Sub(intended)+100*time.Microsecond)
	})
	if got != 2000 || h.TotalCount() != 2000 {
		t.Fatalf("dispatched %d, recorded %d; want 2000 (no operation omitted)", got, h.TotalCount())
	}
	if max := h.Max(); max < 490_000 || max > 510_000 {
		t.Errorf("max latency %d µs, want about the 500 ms stall", max)
	}
	// About 500 operations were due during the stall, with latencies
	// spread from 500 ms down to 0: p90 must be well above the 100 µs
	// service time, and p75 about 0 (the stall covers a quarter).
	if p90 := h.ValueAtQuantile(90); p90 < 100_000 {
		t.Errorf("p90 = %d µs: the stall is hidden (coordinated omission)", p90)
	}
	if p50 := h.ValueAtQuantile(50); p50 > 200 {
		t.Errorf("p50 = %d µs, want the 100 µs service time", p50)
	}
}

func TestOpenLoopStopsWithContext(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	n := OpenLoop(ctx, clk, 100, clk.Now(), clk.Now().Add(time.Hour), func(time.Time) {
		cancel()
	})
	if n != 1 {
		t.Errorf("dispatched %d after cancel, want 1", n)
	}
}

func TestAckTracker(t *testing.T) {
	tr := newAckTracker([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	t0 := tr.base
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	val := func(id uint64) []byte {
		b := make([]byte, 16)
		b[7] = byte(id)
		return b
	}
	// key a: write 1 acked [0,10], write 2 acked [20,30]: final must be 2.
	tr.done(0, 1, at(0), at(10), true)
	tr.done(0, 2, at(20), at(30), true)
	// key b: write 3 acked [0,10], write 4 unknown [5,-]: either may be final.
	tr.done(1, 3, at(0), at(10), true)
	tr.done(1, 4, at(5), at(50), false)
	// key c: write 5 acked [0,10], write 6 acked [5,15] (concurrent).
	tr.done(2, 5, at(0), at(10), true)
	tr.done(2, 6, at(5), at(15), true)

	state := map[string][]byte{"a": val(2), "b": val(4), "c": val(5)}
	read := func(k string) ([]byte, bool) { v, ok := state[k]; return v, ok }
	acked, lost := tr.verify(read)
	if acked != 5 || len(lost) != 0 {
		t.Errorf("acked %d lost %v, want 5 and none", acked, lost)
	}
	state["a"] = val(1)  // overwritten by a write that started after it was acked
	delete(state, "c")   // an acked write vanished
	state["b"] = val(99) // a value no write of the run wrote
	if _, lost = tr.verify(read); len(lost) != 3 || lost[0] != "a" || lost[1] != "b" || lost[2] != "c" {
		t.Errorf("lost %v, want [a b c]", lost)
	}
}

// TestAckTrackerSweepKeepsVerdicts: sweeping writes that ended before the
// last acknowledged write was called changes no verdict, for any write that
// could be a key's final value, and keeps the map near the writes in
// flight instead of every write of the run.
func TestAckTrackerSweepKeepsVerdicts(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	tr := newAckTracker([][]byte{[]byte("k")})
	type w struct {
		start, end int64
		acked      bool
	}
	writes := map[uint64]w{}
	peak := 0
	clock := int64(0)
	for id := uint64(1); id <= 20000; id++ {
		clock += int64(rng.IntN(3))
		start, end := clock, clock+int64(1+rng.IntN(8)) // a few in flight at once
		acked := rng.IntN(50) != 0
		writes[id] = w{start, end, acked}
		tr.done(0, id, tr.base.Add(time.Duration(start)), tr.base.Add(time.Duration(end)), acked)
		peak = max(peak, len(tr.slots[0].ends))
	}
	if peak > 4*minSweep+len(writes)/50*2 {
		t.Errorf("map of %d writes at its peak, want it near the writes in flight", peak)
	}
	// The reference verdict, from every write: final q is consistent iff
	// it is the last-called acknowledged write or it ended (or may end)
	// after that write was called.
	var last w
	var lastID uint64
	for id := uint64(1); id <= uint64(len(writes)); id++ { // in call order: the first of equal starts wins
		if x := writes[id]; x.acked && (lastID == 0 || x.start > last.start) {
			last, lastID = x, id
		}
	}
	sl := &tr.slots[0]
	for id, x := range writes {
		want := id == lastID || !x.acked || x.end >= last.start
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, id)
		if got := tr.found(sl, v, true); got != want {
			t.Fatalf("write %d (%+v, last acked write %d %+v): found %v, want %v", id, x, lastID, last, got, want)
		}
	}
}

// realClock reads the monotonic clock only, but what it returns must still
// order exactly against time.Now readings (by their monotonic readings)
// and carry a wall reading that tracks the real one.
func TestRealClockIsMonotonicAndTracksWallTime(t *testing.T) {
	for range 1000 {
		a := time.Now()
		b := realClock{}.Now()
		c := time.Now()
		if b.Before(a) || c.Before(b) {
			t.Fatalf("realClock read %v, outside the time.Now reads around it (%v, %v)", b, a, c)
		}
		if !strings.Contains(b.String(), " m=") {
			t.Fatalf("realClock's %v has no monotonic reading", b)
		}
		if d := b.Round(0).Sub(a.Round(0)); d < -time.Second || d > time.Second {
			t.Fatalf("realClock's wall reading is %v from time.Now's", d)
		}
	}
}

package bench

import (
	"errors"
	"testing"
	"time"
)

// TestRecorderIncompleteOps: operations of the window that have not
// completed when it closes are recorded then, with latency (close −
// intended start), counted as incomplete, attributed to the second of their
// intended start, and never recorded again when they complete later;
// operations outside the window are not recorded at all; slots the
// schedule never started count as incomplete too.
func TestRecorderIncompleteOps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := newLatencyRecorder(t0, at(2000))

	if o := r.begin(at(-10)); o != nil {
		t.Fatal("a warm-up operation was registered")
	}
	fast := r.begin(at(100))
	r.finish(fast, opWrite, nil, at(100), at(102)) // 2 ms, second 0
	failed := r.begin(at(200))
	r.finish(failed, opWrite, errors.New("boom"), at(200), at(300))
	stuck := r.begin(at(1200))  // never answered before the close: second 1
	late := r.begin(at(1900))   // answered after the close
	racing := r.begin(at(1950)) // answered after the window's end, before close ran
	r.finish(racing, opWrite, nil, at(1950), at(2003))
	r.close(at(2000))
	r.finish(late, opWrite, nil, at(1900), at(2500))
	r.finish(stuck, opWrite, nil, at(1200), at(3000))
	r.missed(at(1950), at(2000)) // a slot the schedule never reached
	if o := r.begin(at(1990)); o == nil {
		t.Fatal("an operation of the window begun after the close was not registered")
	} else if o.state.Load() != opIncomplete {
		t.Error("an operation of the window begun after the close is not incomplete at once")
	}
	if o := r.begin(at(2100)); o != nil {
		t.Error("an operation after the window was registered")
	}

	rd := r.result()
	if rd.writes != 1 || rd.incomplete != 5 || rd.errs["other"] != 1 {
		t.Fatalf("writes %d incomplete %d errors %v, want 1, 5 and one other", rd.writes, rd.incomplete, rd.errs)
	}
	if len(rd.intervals) != 2 {
		t.Fatalf("%d intervals, want 2", len(rd.intervals))
	}
	if n := rd.intervals[0].TotalCount(); n != 1 || rd.secErrs[0] != 1 || rd.secIncompl[0] != 0 {
		t.Errorf("second 0: %d latencies, %d errors, %d incomplete; want 1, 1, 0", n, rd.secErrs[0], rd.secIncompl[0])
	}
	if n := rd.intervals[1].TotalCount(); n != 5 || rd.secIncompl[1] != 5 {
		t.Errorf("second 1: %d latencies, %d incomplete; want 5 and 5", n, rd.secIncompl[1])
	}
	// The stuck operation's latency is 800 ms (close − intended), not the
	// 1.8 s it took, and the late one's 100 ms.
	if mx := rd.total.Max(); !rd.total.ValuesAreEquivalent(mx, 800_000) {
		t.Errorf("max latency %d µs, want 800 ms", mx)
	}
	if mn := rd.intervals[1].Min(); !rd.intervals[1].ValuesAreEquivalent(mn, 10_000) {
		t.Errorf("second 1's smallest latency %d µs, want the 10 ms of the operation begun at 1990 ms", mn)
	}
	if r.inFlight() != 1 {
		t.Errorf("%d operations in flight, want the one begun after the close", r.inFlight())
	}
}

// An interrupted run closes the window early: the window ends there, and
// what was intended after it does not belong to it.
func TestRecorderEarlyClose(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := newLatencyRecorder(t0, at(10_000))
	o := r.begin(at(500))
	r.close(at(1500))
	if r.begin(at(1600)) != nil {
		t.Error("an operation intended after an early close was registered")
	}
	r.finish(o, opRead, nil, at(500), at(1700))
	rd := r.result()
	if len(rd.intervals) != 2 || rd.incomplete != 1 || rd.reads != 0 {
		t.Fatalf("%d intervals, %d incomplete, %d reads; want 2, 1, 0", len(rd.intervals), rd.incomplete, rd.reads)
	}
	if end := rd.intervals[1].EndTimeMs(); end != at(1500).UnixMilli() {
		t.Errorf("the last interval ends at %d, want the close at %d", end, at(1500).UnixMilli())
	}
}

// The failover watch fires only for a write proposed after the fault,
// however late an earlier write is acknowledged.
func TestAckWatchNeedsWriteProposedAfter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := newLatencyRecorder(t0, at(10_000))
	w := r.watchAck(at(1000))
	r.finish(nil, opWrite, nil, at(900), at(1001)) // proposed before the fault
	select {
	case <-w.done:
		t.Fatal("a write proposed before the fault ended the failover")
	default:
	}
	r.finish(nil, opWrite, nil, at(1400), at(1450))
	select {
	case <-w.done:
		if !w.at.Equal(at(1450)) {
			t.Errorf("first commit at %v, want the acknowledgement at 1450 ms", w.at.Sub(t0))
		}
	default:
		t.Fatal("a write proposed after the fault did not end the failover")
	}
}

// A shard's in-flight list holds exactly the operations linked and not yet
// unlinked, whichever end or middle they leave from, and unlinking one
// twice (finish after drop) changes nothing.
func TestInflightShardList(t *testing.T) {
	var sh inflightShard
	ops := make([]*op, 6)
	for i := range ops {
		ops[i] = &op{intended: time.Unix(int64(i), 0)}
		sh.link(ops[i])
	}
	for _, i := range []int{0, 3, 5, 3} { // tail (first linked), middle, head, again
		sh.unlink(ops[i])
	}
	want := map[*op]bool{ops[1]: true, ops[2]: true, ops[4]: true}
	got := map[*op]bool{}
	var prev *op
	for o := sh.ops; o != nil; o = o.next {
		if o.prev != prev {
			t.Fatalf("op %v: prev link broken", o.intended)
		}
		got[o], prev = true, o
	}
	if sh.n != len(want) || len(got) != len(want) {
		t.Fatalf("list holds %d (n = %d), want %d", len(got), sh.n, len(want))
	}
	for o := range want {
		if !got[o] {
			t.Errorf("op %v missing from the list", o.intended)
		}
	}
	for _, o := range ops {
		sh.unlink(o)
	}
	if sh.ops != nil || sh.n != 0 {
		t.Errorf("after unlinking all: head %v, n %d", sh.ops, sh.n)
	}
}

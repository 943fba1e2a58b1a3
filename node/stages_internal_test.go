package node

import (
	"testing"
)

// The loop's bookkeeping decides each batch's leader-durable time td:
// the leader's own save when it came first, the propose time (leader
// append 0) when a quorum of followers was durable first, and it never
// changes td once any entry of the batch is committed.
func TestStageBatchBookkeeping(t *testing.T) {
	n := &Node{}
	a := &batchTimes{first: 1, end: 10, term: 2, propose: 100}
	b := &batchTimes{first: 11, end: 20, term: 2, propose: 150}
	c := &batchTimes{first: 21, end: 30, term: 2, propose: 160}
	n.timed = []*batchTimes{a, b, c}

	// The leader's save of a and b (up to 20) finished at 300; one of
	// another term does not count.
	n.noteDurable(persistAck{index: 20, term: 2, at: 300})
	n.noteDurable(persistAck{index: 30, term: 3, at: 310})
	if a.durable != 300 || b.durable != 300 || c.durable != 0 {
		t.Fatalf("durable = %d %d %d, want 300 300 0", a.durable, b.durable, c.durable)
	}
	// Commit reaches into c before its save is durable: a quorum of
	// followers came first, so c's leader append is off the critical path
	// (td = t1), and a later save does not change that.
	n.noteCommit(25)
	if c.durable != c.propose {
		t.Fatalf("c.durable = %d, want its propose time %d", c.durable, c.propose)
	}
	n.noteDurable(persistAck{index: 30, term: 2, at: 400})
	if c.durable != c.propose {
		t.Fatalf("a save after the commit changed c.durable to %d", c.durable)
	}
	// a and b are wholly committed and forgotten; c is still tracked.
	if len(n.timed) != 1 || n.timed[0] != c {
		t.Fatalf("timed = %v, want only c", n.timed)
	}
	n.noteCommit(30)
	if len(n.timed) != 0 {
		t.Fatalf("timed = %v after committing everything", n.timed)
	}

	// The stages of a write in b add up to its latency.
	st := writeStages(90, b, 500, 520, 600)
	want := [NumStages]int64{StageQueue: 60, StageLeaderAppend: 150, StageReplication: 200, StageApply: 20, StageAnswer: 80}
	if st != want {
		t.Fatalf("stages = %v, want %v", st, want)
	}
	var sum int64
	for _, d := range st {
		sum += d
	}
	if sum != 600-90 {
		t.Fatalf("stages sum to %d, want the latency %d", sum, 600-90)
	}
	// And of one in c: no leader append, replication from propose.
	if st := writeStages(155, c, 500, 520, 600); st[StageLeaderAppend] != 0 || st[StageReplication] != 500-160 {
		t.Fatalf("stages of a write committed before its leader save = %v", st)
	}
}

// The send log matches acknowledgements to the appends they answer, in
// order, forgetting appends whose answers never came, and stays bounded.
func TestSendLog(t *testing.T) {
	var l sendLog
	l.add(10, 1)
	l.add(20, 2)
	l.add(30, 3)
	if at, ok := l.match(20); !ok || at != 2 {
		t.Fatalf("match(20) = %d, %v; want 2, true (the answer to 10 was lost)", at, ok)
	}
	if _, ok := l.match(25); ok {
		t.Fatal("match(25) found an append: no append ended at 25")
	}
	if at, ok := l.match(30); !ok || at != 3 {
		t.Fatalf("match(30) = %d, %v", at, ok)
	}
	if _, ok := l.match(30); ok {
		t.Fatal("an append was matched twice")
	}
	for i := range uint64(3 * maxSendLog) {
		l.add(100+i, int64(i))
	}
	if live := len(l.sent) - l.head; live > maxSendLog {
		t.Fatalf("%d appends remembered, bound %d", live, maxSendLog)
	}
	if cap(l.sent) > 4*maxSendLog {
		t.Fatalf("send log grew to capacity %d for a bound of %d", cap(l.sent), maxSendLog)
	}
	last := 100 + uint64(3*maxSendLog) - 1
	if at, ok := l.match(last); !ok || at != int64(3*maxSendLog-1) {
		t.Fatalf("match(newest) = %d, %v", at, ok)
	}
}

// A follower's report larger than anything real is clamped, and a hold
// longer than the round trip (two clocks' rates) never makes the network
// negative.
func TestStageAckClamps(t *testing.T) {
	r := newStageRecorder()
	r.ack(1000, 5000, 0)
	r.ack(2000, 1<<63, 100)
	tm := r.snapshot()
	if tm.Detail[DetailNetwork].SumNanos != 0 {
		t.Fatalf("network sum %d, want 0 (holds exceed the round trips)", tm.Detail[DetailNetwork].SumNanos)
	}
	if got := tm.Detail[DetailFollowerHold].SumNanos; got != 5000+StageHighestUS*1000 {
		t.Fatalf("hold sum %d: the huge report was not clamped", got)
	}
	if tm.Detail[DetailFollowerPersist].Count() != 1 {
		t.Fatalf("persist count %d, want 1 (a zero persist is no report)", tm.Detail[DetailFollowerPersist].Count())
	}
}

// Recording allocates nothing: the per-write, per-acknowledgement and
// per-save paths only bump histogram counters that exist already.
func TestStageRecordingAllocatesNothing(t *testing.T) {
	r := newStageRecorder()
	bt := &batchTimes{first: 1, end: 1, term: 1, propose: 1000, durable: 2000}
	p := &proposal{start: 500, committed: 3000, applied: 3500, batch: bt}
	var l sendLog
	for i := range uint64(64) {
		l.add(i, int64(i))
	}
	idx := uint64(0)
	if n := testing.AllocsPerRun(1000, func() {
		r.write(p, 4000)
		r.ack(1500, 800, 600)
		r.detail(DetailWALFsync, 700)
		l.add(64+idx, 1)
		l.match(idx)
		idx++
	}); n != 0 {
		t.Errorf("recording a write, an acknowledgement and a save allocates %.1f times", n)
	}
}

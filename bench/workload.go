package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftbench/raftbench/kv"
)

// Clock is the time source of the workload, so the open-loop scheduler can
// be tested with a fake clock.
type Clock interface {
	Now() time.Time
	// SleepUntil returns once Now() >= t, or with ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// realClock is the process's clock. Now reads only the monotonic clock
// (time.Since of an epoch), half the cost of a time.Now, which also reads
// the wall clock (27 against 52 ns here); the workload reads it once or
// twice per operation, and time.Now was 2% of a 256-client memory-WAL
// run's CPU on this path. The Time it returns carries the monotonic
// reading, so Sub, Before and After against any other Time that has one
// (every time.Now) are exact; its wall reading is clockEpoch's plus the
// monotonic time since, so it does not follow a wall-clock step made
// during the run, which nothing here measures by.
type realClock struct{}

// clockEpoch anchors realClock.
var clockEpoch = time.Now()

func (realClock) Now() time.Time { return clockEpoch.Add(time.Since(clockEpoch)) }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenLoop starts operations on a fixed schedule: the i-th at start +
// i/rate, until end, calling dispatch with each one's intended start.
// It never skips an operation: when it falls behind (the process stalled,
// or dispatch blocked), it dispatches the missed ones at once, each still
// carrying its original intended start, so whoever measures latency from
// the intended start sees the stall — the correction for coordinated
// omission. It returns the number of operations dispatched.
func OpenLoop(ctx context.Context, clk Clock, rate float64, start, end time.Time, dispatch func(intended time.Time)) int64 {
	interval := time.Duration(float64(time.Second) / rate)
	var n int64
	for {
		intended := start.Add(time.Duration(n) * interval)
		if !intended.Before(end) {
			return n
		}
		if err := clk.SleepUntil(ctx, intended); err != nil {
			return n
		}
		dispatch(intended)
		n++
	}
}

// kvClient is what the workload needs of a client: kv.Client or, with
// --check, kv.RecordingClient.
type kvClient interface {
	Put(ctx context.Context, key, value []byte) error
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
}

// client is one workload client: its kv client per Raft group, a context of its own (so
// the operations of many clients do not all register with one parent
// context, whose lock they would then contend on), and a value buffer it
// reuses (kv copies a value into its command before Put returns).
type client struct {
	// kv[g] reaches group g: key number k lives in group k mod len(kv).
	kv     []kvClient
	ctx    context.Context
	cancel context.CancelFunc
	buf    []byte
}

// workload drives operations against the cluster.
type workload struct {
	cfg     *Config
	clk     Clock
	rec     *latencyRecorder
	tracker *ackTracker
	history *kv.Recorder // nil without --check
	// groups[g] are group g's endpoints (one group but for a
	// multi-group system, see Config.Groups).
	groups [][]kv.Endpoint
	keys   [][]byte
	filler []byte
	nextID atomic.Uint64
	seed   atomic.Uint64

	// issuing is true until the window closes; afterwards no operation
	// starts. active counts the operations in flight, measured or not.
	issuing  atomic.Bool
	active   atomic.Int64
	stopSchd context.CancelFunc // stops the open-loop schedule

	poolMu  sync.Mutex
	pool    []*client
	all     []*client
	clients int
}

// maxOpenLoopClients bounds the client pool an open-loop run grows to when
// operations pile up: beyond it, new operations wait for a client (their
// latency still counts from their intended start).
const maxOpenLoopClients = 4096

// workloadKeys are the keys a run writes: "k000000", "k000001", ...
func workloadKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%06d", i)
	}
	return keys
}

// newWorkload makes the workload of cfg against groups (each group's
// endpoints; key number k lives in group k mod len(groups)), measured by
// rec, with a tracker of its writes (and, with history, a record of every
// operation).
func newWorkload(cfg *Config, clk Clock, rec *latencyRecorder, history *kv.Recorder, groups ...[]kv.Endpoint) *workload {
	w := &workload{cfg: cfg, clk: clk, rec: rec, history: history, groups: groups, keys: workloadKeys(cfg.Keys)}
	w.tracker = newAckTracker(w.keys)
	w.filler = make([]byte, cfg.Payload-PayloadMin)
	for i := range w.filler {
		w.filler[i] = byte('a' + i%26)
	}
	w.seed.Store(cfg.Seed)
	w.issuing.Store(true)
	return w
}

// newClient makes a client whose operations end with ctx.
func (w *workload) newClient(ctx context.Context) (*client, error) {
	cl := &client{buf: make([]byte, 0, w.cfg.Payload)}
	for g, eps := range w.groups {
		// The op timeout is the client's OpTimeout, not a context per
		// operation: deriving one cost a timer, a channel and a parent
		// registration per operation (measured below, in one).
		c, err := kv.NewClient(eps, kv.ClientOptions{AttemptTimeout: w.cfg.AttemptTimeout.D(), OpTimeout: w.cfg.OpTimeout.D()})
		if err != nil {
			return nil, fmt.Errorf("new kv client of group %d: %w", g, err)
		}
		if w.history != nil {
			cl.kv = append(cl.kv, w.history.NewRecordingClient(c))
		} else {
			cl.kv = append(cl.kv, c)
		}
	}
	cl.ctx, cl.cancel = context.WithCancel(ctx)
	w.poolMu.Lock()
	w.all = append(w.all, cl)
	w.poolMu.Unlock()
	return cl, nil
}

// release cancels every client's context.
func (w *workload) release() {
	w.poolMu.Lock()
	defer w.poolMu.Unlock()
	for _, cl := range w.all {
		cl.cancel()
	}
}

// stopIssuing stops starting operations (the window closed); operations in
// flight go on until they end or their context does.
func (w *workload) stopIssuing() {
	w.issuing.Store(false)
	w.poolMu.Lock()
	stop := w.stopSchd
	w.poolMu.Unlock()
	if stop != nil {
		stop()
	}
}

func (w *workload) rng() *rand.Rand {
	s := w.seed.Add(0x9e3779b97f4a7c15)
	return rand.New(rand.NewPCG(s, s^0xdeadbeef))
}

// one runs one operation on cl and records it with its latency measured
// from intended; o is its registration with the recorder (nil when it is
// outside the window). start is when the call is made, for the ack
// tracker and the failover watch: the closed loop, whose call follows its
// intended start at once, passes intended; the open loop passes zero, and
// one reads the clock. Its time limit is the kv clients' OpTimeout
// (newClient): a context with a deadline per operation cost 1.2 s of the
// 14.8 s of CPU a 256-client run used (raftbench run --clients 256
// --cpuprofile; context.WithTimeout in one and in kv's attempts together
// 2.0 s) and 20% of its allocations.
func (w *workload) one(cl *client, rng *rand.Rand, o *op, intended, start time.Time) {
	w.active.Add(1)
	defer w.active.Add(-1)
	octx := cl.ctx
	k := rng.IntN(len(w.keys))
	key, kc := w.keys[k], cl.kv[k%len(cl.kv)]
	if w.cfg.ReadRatio > 0 && rng.Float64() < w.cfg.ReadRatio {
		if start.IsZero() {
			start = w.clk.Now()
		}
		_, _, err := kc.Get(octx, key)
		w.rec.finish(o, opRead, err, start, w.clk.Now())
		return
	}
	id := w.nextID.Add(1)
	v := binary.BigEndian.AppendUint64(cl.buf[:0], id)
	v = binary.BigEndian.AppendUint64(v, w.cfg.Seed)
	v = append(v, w.filler...)
	cl.buf = v
	if start.IsZero() {
		start = w.clk.Now()
	}
	err := kc.Put(octx, key, v)
	done := w.clk.Now()
	w.tracker.done(k, id, start, done, err == nil)
	w.rec.finish(o, opWrite, err, start, done)
}

// closedLoop runs cfg.Clients clients, each issuing its next operation when
// the last one is answered, until the window closes (stopIssuing) or ctx
// ends.
func (w *workload) closedLoop(ctx context.Context) error {
	cls := make([]*client, w.cfg.Clients)
	for i := range cls {
		var err error
		if cls[i], err = w.newClient(ctx); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := w.rng()
			for w.issuing.Load() && ctx.Err() == nil {
				// The call is made now: one clock read serves as
				// both intended start and start.
				now := w.clk.Now()
				w.one(cl, rng, w.rec.begin(now), now, now)
			}
		}()
	}
	wg.Wait()
	return nil
}

// openLoop starts cfg.Rate operations per second from start until end (or
// until stopIssuing), on a pool of clients that grows when operations pile
// up, and waits for the operations in flight. Operations of the window that
// the schedule never got to start are recorded as incomplete.
func (w *workload) openLoop(ctx context.Context, start, end time.Time) error {
	for range w.cfg.Clients {
		cl, err := w.newClient(ctx)
		if err != nil {
			return err
		}
		w.pool = append(w.pool, cl)
		w.clients++
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxOpenLoopClients)
	var seq atomic.Uint64
	sctx, stop := context.WithCancel(ctx)
	w.poolMu.Lock()
	w.stopSchd = stop
	w.poolMu.Unlock()
	defer stop()
	if !w.issuing.Load() {
		stop()
	}
	n := OpenLoop(sctx, w.clk, w.cfg.Rate, start, end, func(intended time.Time) {
		o := w.rec.begin(intended)
		wg.Add(1)
		s := seq.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if !w.issuing.Load() || ctx.Err() != nil {
				w.rec.drop(o) // the window closed before a client was free
				return
			}
			cl, err := w.take(ctx)
			if err != nil {
				w.rec.drop(o)
				return
			}
			rng := rand.New(rand.NewPCG(w.cfg.Seed, s))
			w.one(cl, rng, o, intended, time.Time{})
			w.give(cl)
		}()
	})
	interval := time.Duration(float64(time.Second) / w.cfg.Rate)
	closed := w.rec.windowEnd()
	for i := n; ; i++ {
		intended := start.Add(time.Duration(i) * interval)
		if !intended.Before(closed) {
			break
		}
		w.rec.missed(intended, closed)
	}
	wg.Wait()
	return nil
}

func (w *workload) take(ctx context.Context) (*client, error) {
	w.poolMu.Lock()
	if n := len(w.pool); n > 0 {
		cl := w.pool[n-1]
		w.pool = w.pool[:n-1]
		w.poolMu.Unlock()
		return cl, nil
	}
	w.clients++
	w.poolMu.Unlock()
	return w.newClient(ctx)
}

func (w *workload) give(cl *client) {
	w.poolMu.Lock()
	w.pool = append(w.pool, cl)
	w.poolMu.Unlock()
}

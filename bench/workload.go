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

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

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

// workload drives operations against the cluster.
type workload struct {
	cfg     *Config
	clk     Clock
	rec     *latencyRecorder
	tracker *ackTracker
	history *kv.Recorder // nil without --check
	eps     []kv.Endpoint
	keys    [][]byte
	filler  []byte
	nextID  atomic.Uint64
	seed    atomic.Uint64

	poolMu  sync.Mutex
	pool    []kvClient
	clients int
}

// maxOpenLoopClients bounds the client pool an open-loop run grows to when
// operations pile up: beyond it, new operations wait for a client (their
// latency still counts from their intended start).
const maxOpenLoopClients = 4096

func newWorkload(cfg *Config, clk Clock, rec *latencyRecorder, tracker *ackTracker, history *kv.Recorder, eps []kv.Endpoint) *workload {
	w := &workload{cfg: cfg, clk: clk, rec: rec, tracker: tracker, history: history, eps: eps}
	for i := range cfg.Keys {
		w.keys = append(w.keys, fmt.Appendf(nil, "k%06d", i))
	}
	w.filler = make([]byte, cfg.Payload-PayloadMin)
	for i := range w.filler {
		w.filler[i] = byte('a' + i%26)
	}
	w.seed.Store(cfg.Seed)
	return w
}

func (w *workload) newClient() (kvClient, error) {
	c, err := kv.NewClient(w.eps, kv.ClientOptions{AttemptTimeout: w.cfg.AttemptTimeout.D()})
	if err != nil {
		return nil, fmt.Errorf("new kv client: %w", err)
	}
	if w.history != nil {
		return w.history.NewRecordingClient(c), nil
	}
	return c, nil
}

func (w *workload) rng() *rand.Rand {
	s := w.seed.Add(0x9e3779b97f4a7c15)
	return rand.New(rand.NewPCG(s, s^0xdeadbeef))
}

// one runs one operation on cl and records it with its latency measured
// from intended.
func (w *workload) one(ctx context.Context, cl kvClient, rng *rand.Rand, intended time.Time) {
	octx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout.D())
	defer cancel()
	key := w.keys[rng.IntN(len(w.keys))]
	if w.cfg.ReadRatio > 0 && rng.Float64() < w.cfg.ReadRatio {
		_, _, err := cl.Get(octx, key)
		if ctx.Err() != nil && err != nil {
			return // the run is over, not the operation's fault
		}
		done := w.clk.Now()
		w.rec.record(opRead, done.Sub(intended), err, done)
		return
	}
	id := w.nextID.Add(1)
	v := make([]byte, 0, w.cfg.Payload)
	v = binary.BigEndian.AppendUint64(v, id)
	v = binary.BigEndian.AppendUint64(v, w.cfg.Seed)
	v = append(v, w.filler...)
	start := w.clk.Now()
	err := cl.Put(octx, key, v)
	done := w.clk.Now()
	w.tracker.done(string(key), id, start, done, err == nil)
	if ctx.Err() != nil && err != nil {
		return
	}
	w.rec.record(opWrite, done.Sub(intended), err, done)
}

// closedLoop runs cfg.Clients clients, each issuing its next operation when
// the last one is answered, until ctx ends.
func (w *workload) closedLoop(ctx context.Context) error {
	cls := make([]kvClient, w.cfg.Clients)
	for i := range cls {
		var err error
		if cls[i], err = w.newClient(); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := w.rng()
			for ctx.Err() == nil {
				w.one(ctx, cl, rng, w.clk.Now())
			}
		}()
	}
	wg.Wait()
	return nil
}

// openLoop starts cfg.Rate operations per second from start until end, on
// a pool of clients that grows when operations pile up, and waits for the
// operations in flight (bounded by the operation timeout).
func (w *workload) openLoop(ctx context.Context, start, end time.Time) error {
	for range w.cfg.Clients {
		cl, err := w.newClient()
		if err != nil {
			return err
		}
		w.pool = append(w.pool, cl)
		w.clients++
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxOpenLoopClients)
	var seq atomic.Uint64
	OpenLoop(ctx, w.clk, w.cfg.Rate, start, end, func(intended time.Time) {
		wg.Add(1)
		s := seq.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cl, err := w.take()
			if err != nil {
				return
			}
			rng := rand.New(rand.NewPCG(w.cfg.Seed, s))
			w.one(ctx, cl, rng, intended)
			w.give(cl)
		}()
	})
	wg.Wait()
	return nil
}

func (w *workload) take() (kvClient, error) {
	w.poolMu.Lock()
	if n := len(w.pool); n > 0 {
		cl := w.pool[n-1]
		w.pool = w.pool[:n-1]
		w.poolMu.Unlock()
		return cl, nil
	}
	w.clients++
	w.poolMu.Unlock()
	return w.newClient()
}

func (w *workload) give(cl kvClient) {
	w.poolMu.Lock()
	w.pool = append(w.pool, cl)
	w.poolMu.Unlock()
}

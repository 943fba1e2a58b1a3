// Package crashsoak is the driver of `raftbench crash-soak` (make
// crash-soak): a cluster of `raftbench node` processes under closed-loop
// load through the client API, and, round after round, SIGKILL of one
// node, of a minority, and of every node at once, each followed by a
// restart from the data directories and a check that nothing acknowledged
// was lost.
//
// # A round
//
//  1. Load runs for a random time around Config.Interval.
//  2. The round's victims are SIGKILLed at once: one node (the leader
//     every other time), a random minority, or every node, in turn.
//  3. They stay down a random 0.2–1 s, while the load goes on against
//     what is left, then restart from their directories. A node that
//     refuses to restart after a SIGKILL (a WAL the kill left unreadable)
//     is a violation and ends the soak.
//  4. Once every node is ready and the load has made progress again, the
//     load pauses (every client finishes its operation in flight) and the
//     checks run:
//     - the replicas agree: every node has applied the same commit
//     index, with nothing uncommitted in any log, and the admin /hash of
//     every node at that index is the same;
//     - nothing acknowledged is lost: every key a client writes alone
//     holds, read linearizably through kv.Client, its last acknowledged
//     value or a later one whose outcome was unknown;
//     - the round's history on the keys clients share (puts, gets and
//     compare-and-swaps on keys only that round uses, so each round's
//     history is complete in itself) is linearizable (porcupine);
//     - no node died on its own.
//
// The counts of the summary line: rounds completed, processes killed,
// acknowledged writes (puts and compare-and-swaps), acknowledged writes
// found lost, and violations of every kind (lost writes among them).
package crashsoak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftbench/raftbench/admin"
	"github.com/raftbench/raftbench/bench/procs"
	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/kv"
)

// ErrInvalidConfig is wrapped by every Config problem.
var ErrInvalidConfig = errors.New("crashsoak: invalid config")

// Config configures a soak.
type Config struct {
	// Binary is the raftbench executable the nodes run.
	Binary string
	// Dir holds the nodes' data directories and logs, and the history of
	// a round that is not linearizable. It must be empty or absent.
	Dir string
	// Nodes is the cluster size, 3..7. Default 3.
	Nodes int
	// Duration is how long rounds keep starting. Default 2 minutes.
	Duration time.Duration
	// Rounds, when not 0, ends the soak after that many rounds (or at
	// Duration, whichever comes first).
	Rounds int
	// Interval is the mean time the load runs between a round's restart
	// and the next kill. Default 2s.
	Interval time.Duration
	// Clients is the number of closed-loop clients. Default 8.
	Clients int
	// Seed seeds the choice of victims and times, and the load.
	Seed uint64
	// Flags go to every node (the Raft knobs as `raftbench node` flags).
	Flags []string
	// Out gets one line per round. Default io.Discard.
	Out io.Writer
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Duration == 0 {
		c.Duration = 2 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = 2 * time.Second
	}
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Validate reports every invalid field with its value and limit.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Binary == "" {
		bad("Binary is empty")
	}
	if c.Dir == "" {
		bad("Dir is empty")
	} else if ents, err := os.ReadDir(c.Dir); err == nil && len(ents) > 0 {
		bad("Dir %s is not empty (its node directories would be restarted as this soak's)", c.Dir)
	}
	if c.Nodes < 3 || c.Nodes > 7 {
		bad("Nodes %d outside 3..7", c.Nodes)
	}
	if c.Duration <= 0 {
		bad("Duration %v, want > 0", c.Duration)
	}
	if c.Interval < 100*time.Millisecond || c.Interval > time.Hour {
		bad("Interval %v outside 100ms..1h", c.Interval)
	}
	if c.Rounds < 0 {
		bad("Rounds %d, want >= 0", c.Rounds)
	}
	if c.Clients < 1 || c.Clients > 1000 {
		bad("Clients %d outside 1..1000", c.Clients)
	}
	return errors.Join(errs...)
}

// Result is what a soak found.
type Result struct {
	Rounds, Kills int
	// Acked counts acknowledged writes; Lost those found missing.
	Acked int64
	Lost  int
	// Violations says what went wrong, one line each (lost writes
	// included).
	Violations []string
	// Unchecked counts rounds whose history porcupine could not decide
	// within its time limit (not violations).
	Unchecked int
}

// Line is the summary line.
func (r Result) Line() string {
	return fmt.Sprintf("crash-soak: %d rounds, %d kills, %d acked, %d lost, %d violations", r.Rounds, r.Kills, r.Acked, r.Lost, len(r.Violations))
}

// Failed reports whether anything was lost or violated.
func (r Result) Failed() bool { return r.Lost > 0 || len(r.Violations) > 0 }

// Timing of a round.
const (
	recoverTimeout = 60 * time.Second // restarted cluster ready and making progress
	quiesceTimeout = 30 * time.Second // every replica at one commit index
	opTimeout      = 10 * time.Second // one client operation, retries included
	checkTimeout   = 20 * time.Second // porcupine, per round
	ownKeys        = 8                // keys per client that it alone writes
	sharedKeys     = 4                // keys per round that every client uses
)

// Run runs the soak until Duration is over (finishing the round in
// progress) or ctx ends, and returns what it found. An error means the
// soak could not run (nodes that would not start at all, a bad Config);
// what it found wrong is in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	specs, err := procs.LoopbackNodes(cfg.Nodes)
	if err != nil {
		return Result{}, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x736f616b))
	clusterID := rng.Uint64() | 1
	sup, err := procs.New(ctx, procs.Config{
		Binary: cfg.Binary, ClusterID: clusterID, Dir: cfg.Dir, Nodes: specs, Flags: cfg.Flags,
	})
	if err != nil {
		return Result{}, err
	}
	defer sup.Close()
	if err := sup.Start(ctx); err != nil {
		return Result{}, fmt.Errorf("crashsoak: start the cluster: %w", err)
	}
	s := &soak{cfg: cfg, sup: sup, rng: rng}
	if s.eps, err = clientapi.Endpoints(sup.ClientAddrs(), clientapi.Options{ClusterID: clusterID}); err != nil {
		return Result{}, err
	}
	// Closed before the Supervisor, so the nodes' clean shutdown does
	// not wait on our connections.
	defer s.closeEndpoints()
	if s.checker, err = kv.NewClient(s.eps, kv.ClientOptions{}); err != nil {
		return Result{}, err
	}
	return s.run(ctx)
}

// soak is one soak in progress.
type soak struct {
	cfg     Config
	sup     *procs.Supervisor
	rng     *rand.Rand
	eps     []kv.Endpoint
	checker *kv.Client
	load    *load
	res     Result
	// seenExits is how many of the supervisor's unexpected exits have
	// been reported.
	seenExits int
}

func (s *soak) closeEndpoints() {
	for _, ep := range s.eps {
		_ = ep.(*clientapi.Endpoint).Close()
	}
}

func (s *soak) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.res.Violations = append(s.res.Violations, msg)
	fmt.Fprintln(s.cfg.Out, "VIOLATION:", msg)
}

// between is a random duration in [lo, hi).
func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *soak) run(ctx context.Context) (Result, error) {
	s.load = newLoad()
	defer s.load.stop()
	if err := s.load.start(s.eps, s.cfg.Clients, s.cfg.Seed); err != nil {
		return s.res, err
	}
	ids := s.sup.IDs()
	end := time.Now().Add(s.cfg.Duration)
	kinds := []string{"one", "minority", "all"}
	for round := 1; time.Now().Before(end) && (s.cfg.Rounds == 0 || round <= s.cfg.Rounds); round++ {
		if err := sleep(ctx, s.between(s.cfg.Interval/2, s.cfg.Interval*3/2)); err != nil {
			break
		}
		kind := kinds[(round-1)%len(kinds)]
		victims := s.victims(ctx, kind, ids, round)
		if err := s.sup.Kill9(victims...); err != nil {
			return s.res, fmt.Errorf("crashsoak: round %d: kill9 %v: %w", round, victims, err)
		}
		s.res.Kills += len(victims)
		down := s.between(200*time.Millisecond, time.Second)
		if err := sleep(ctx, down); err != nil {
			break
		}
		if err := s.sup.Restart(ctx, victims...); err != nil {
			if ctx.Err() != nil {
				break
			}
			s.violation("round %d: after the kill9 of %v: %v", round, victims, err)
			break
		}
		if !s.recovered(ctx, round) {
			break
		}
		line, ok := s.check(ctx, round)
		s.res.Rounds = round
		fmt.Fprintf(s.cfg.Out, "round %d: kill9 %s %v, down %v; %s\n", round, kind, victims, down.Round(time.Millisecond), line)
		if !ok {
			break
		}
	}
	s.load.stop()
	s.res.Acked = s.load.acked.Load()
	if err := s.load.firstErr(); err != nil {
		s.violation("load: %v", err)
	}
	return s.res, nil
}

// victims picks the round's nodes: one (the leader every other time), a
// random minority, or all.
func (s *soak) victims(ctx context.Context, kind string, ids []uint64, round int) []uint64 {
	switch kind {
	case "one":
		if (round/3)%2 == 0 {
			if lead, _, err := s.sup.Leader(ctx); err == nil {
				return []uint64{lead}
			}
		}
		return []uint64{ids[s.rng.IntN(len(ids))]}
	case "minority":
		perm := slices.Clone(ids)
		s.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		v := perm[:(len(ids)-1)/2]
		slices.Sort(v)
		return v
	default:
		return slices.Clone(ids)
	}
}

// recovered waits until every node is ready and the load has made
// progress; a cluster that does not recover is a violation.
func (s *soak) recovered(ctx context.Context, round int) bool {
	rctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	if err := s.sup.WaitReady(rctx, s.sup.IDs()...); err != nil {
		if ctx.Err() == nil {
			s.violation("round %d: the cluster did not recover: %v", round, err)
		}
		return false
	}
	if err := s.load.progress(rctx, int64(2*s.cfg.Clients)); err != nil {
		if ctx.Err() == nil {
			s.violation("round %d: no progress within %v of the restart (%d acknowledged so far)", round, recoverTimeout, s.load.acked.Load())
		}
		return false
	}
	return true
}

// check pauses the load and runs the round's checks; ok is false when the
// soak must end.
func (s *soak) check(ctx context.Context, round int) (line string, ok bool) {
	rec := s.load.pause(round + 1)
	defer s.load.resume()
	var parts []string
	ok = true

	for _, e := range s.sup.Unexpected()[s.seenExits:] {
		s.violation("round %d: %s", round, e)
		s.seenExits++
		ok = false
	}
	if !ok {
		return "a node died", false // the cluster is not whole: no point checking it
	}
	index, err := s.agree(ctx)
	switch {
	case ctx.Err() != nil:
		return "interrupted", false
	case err != nil:
		s.violation("round %d: %v", round, err)
		ok = false
	default:
		parts = append(parts, fmt.Sprintf("%d replicas agree at index %d", len(s.sup.IDs()), index))
	}
	keys, lost, err := s.durable(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "interrupted", false
		}
		s.violation("round %d: reading back acknowledged writes: %v", round, err)
		ok = false
	}
	for _, l := range lost {
		s.violation("round %d: lost %s", round, l)
	}
	s.res.Lost += len(lost)
	parts = append(parts, fmt.Sprintf("%d acked so far, %d keys read back, %d lost", s.load.acked.Load(), keys, len(lost)))

	ops := len(rec.Operations())
	res, info := rec.Check(checkTimeout)
	switch res {
	case porcupine.Ok:
		parts = append(parts, fmt.Sprintf("%d shared-key ops linearizable", ops))
	case porcupine.Illegal:
		path, verr := kv.Visualize(info, filepath.Join(s.cfg.Dir, fmt.Sprintf("round-%d-history.html", round)))
		if verr != nil {
			path = verr.Error()
		}
		s.violation("round %d: the history of %d shared-key operations is not linearizable (%s)", round, ops, path)
	default:
		s.res.Unchecked++
		parts = append(parts, fmt.Sprintf("%d shared-key ops undecided within %v", ops, checkTimeout))
	}
	return strings.Join(parts, ", "), ok
}

// agree waits until every node has applied the same commit index with no
// uncommitted entry in any log, and compares the nodes' state hashes at
// that index.
func (s *soak) agree(ctx context.Context) (uint64, error) {
	ids := s.sup.IDs()
	deadline := time.Now().Add(quiesceTimeout)
	var last string
	for time.Now().Before(deadline) {
		sts := s.sup.Statuses(ctx)
		index, settled := uint64(0), len(sts) == len(ids)
		var desc []string
		for _, id := range ids {
			st, ok := sts[id]
			if !ok {
				desc = append(desc, fmt.Sprintf("%d: no answer", id))
				settled = false
				continue
			}
			desc = append(desc, fmt.Sprintf("%d: applied %d commit %d last %d", id, st.Applied, st.Commit, st.LastIndex))
			if st.Applied != st.Commit || st.LastIndex != st.Commit || (index != 0 && st.Commit != index) {
				settled = false
			}
			index = st.Commit
		}
		last = strings.Join(desc, "; ")
		if settled && index > 0 {
			hashes, err := s.hashes(ctx, index)
			if errors.Is(err, admin.ErrMovedPast) || errors.Is(err, admin.ErrBehind) {
				continue // an entry (a new leader's) came in between: settle again
			}
			if err != nil {
				return 0, err
			}
			if len(slices.Compact(slices.Sorted(maps.Values(hashes)))) != 1 {
				return index, fmt.Errorf("replicas disagree at index %d: %v", index, hashes)
			}
			return index, nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("the replicas did not settle on one commit index within %v (%s)", quiesceTimeout, last)
}

func (s *soak) hashes(ctx context.Context, index uint64) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, id := range s.sup.IDs() {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		h, err := s.sup.Admin(id).Hash(hctx, index, 5*time.Second)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("hash of node %d at %d: %w", id, index, err)
		}
		out[id] = h.Hash
	}
	return out, nil
}

// durable reads every own key back and returns how many it read and the
// acknowledged writes it found lost.
func (s *soak) durable(ctx context.Context) (keys int, lost []string, err error) {
	for _, key := range s.load.ownKeys() {
		ws := s.load.writes(key)
		last := -1
		for i, w := range ws {
			if w.acked {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		v, found, err := s.checker.Get(rctx, []byte(key))
		cancel()
		if err != nil {
			return keys, lost, fmt.Errorf("get %s: %w", key, err)
		}
		keys++
		okv := map[string]bool{}
		for _, w := range ws[last:] { // the last acknowledged, or a later write that may have run
			okv[w.value] = true
		}
		if !found || !okv[string(v)] {
			got := "nothing"
			if found {
				got = fmt.Sprintf("%q", v)
			}
			if s.load.markLost(key, ws[last].value) {
				lost = append(lost, fmt.Sprintf("key %s holds %s, not its last acknowledged write %q", key, got, ws[last].value))
			}
		}
	}
	return keys, lost, nil
}

// load is the closed-loop clients.
type load struct {
	acked atomic.Int64
	wg    sync.WaitGroup
	quit  chan struct{}
	once  sync.Once

	// gate: clients hold it shared around each operation; pause takes it
	// exclusively, so the checks see no operation in flight.
	gate sync.RWMutex
	// round and rec are the round whose shared keys the clients use and
	// its history; they change only under the exclusive gate.
	round int
	rec   *kv.Recorder

	mu   sync.Mutex
	own  map[string][]write
	lost map[string]bool // key/value pairs already reported lost
	err  error
}

type write struct {
	value string
	acked bool
}

func newLoad() *load {
	return &load{quit: make(chan struct{}), round: 1, rec: kv.NewRecorder(), own: map[string][]write{}, lost: map[string]bool{}}
}

// start starts the clients (stop ends them).
func (l *load) start(eps []kv.Endpoint, clients int, seed uint64) error {
	for c := range clients {
		cl, err := kv.NewClient(eps, kv.ClientOptions{AttemptTimeout: 500 * time.Millisecond})
		if err != nil {
			return err
		}
		l.wg.Go(func() { l.client(c, cl, rand.New(rand.NewPCG(seed, uint64(c)))) })
	}
	return nil
}

func (l *load) client(c int, cl *kv.Client, rng *rand.Rand) {
	var rc *kv.RecordingClient
	var rcOf *kv.Recorder
	for seq := 0; ; seq++ {
		select {
		case <-l.quit:
			return
		default:
		}
		l.gate.RLock()
		if rcOf != l.rec {
			rc, rcOf = l.rec.NewRecordingClient(cl), l.rec
		}
		round := l.round
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		val := fmt.Sprintf("c%d-%d", c, seq)
		shared := []byte(fmt.Sprintf("r%d-shared-%d", round, rng.IntN(sharedKeys)))
		var err error
		isWrite := true
		switch r := rng.IntN(10); {
		case r < 5:
			key := fmt.Sprintf("own-c%d-k%d", c, rng.IntN(ownKeys))
			err = cl.Put(ctx, []byte(key), []byte(val))
			l.mu.Lock()
			l.own[key] = append(l.own[key], write{value: val, acked: err == nil})
			l.mu.Unlock()
		case r < 7:
			err = rc.Put(ctx, shared, []byte(val))
		case r < 9:
			_, _, err = rc.Get(ctx, shared)
			isWrite = false
		default:
			cur, found, gerr := rc.Get(ctx, shared)
			switch {
			case gerr != nil:
				err, isWrite = gerr, false
			case found:
				_, err = rc.CAS(ctx, shared, cur, []byte(val))
			default:
				_, err = rc.CASAbsent(ctx, shared, []byte(val))
			}
		}
		cancel()
		l.gate.RUnlock()
		switch {
		case err == nil && isWrite:
			l.acked.Add(1)
		case err == nil, errors.Is(err, kv.ErrOutcomeUnknown):
		default:
			l.mu.Lock()
			if l.err == nil {
				l.err = fmt.Errorf("client %d: %w", c, err)
			}
			l.mu.Unlock()
		}
	}
}

// progress waits until n more writes were acknowledged.
func (l *load) progress(ctx context.Context, n int64) error {
	target := l.acked.Load() + n
	for l.acked.Load() < target {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// pause stops the clients between operations and returns the history of
// the round that ends; the next round's shared keys are next's.
func (l *load) pause(next int) *kv.Recorder {
	l.gate.Lock()
	rec := l.rec
	l.round, l.rec = next, kv.NewRecorder()
	return rec
}

func (l *load) resume() { l.gate.Unlock() }

func (l *load) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}

func (l *load) ownKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.own))
}

func (l *load) writes(key string) []write {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.own[key])
}

// markLost records that value of key was found lost, and reports whether
// that is news.
func (l *load) markLost(key, value string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key + "=" + value
	if l.lost[k] {
		return false
	}
	l.lost[k] = true
	return true
}

func (l *load) firstErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

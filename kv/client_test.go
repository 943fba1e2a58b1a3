package kv

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/node"
)

// fakeCluster stands in for a Raft group: one Store, one leader, and
// endpoints that answer as nodes do. Faults are scripted per endpoint.
type fakeCluster struct {
	t     *testing.T
	store *Store

	mu     sync.Mutex
	index  uint64
	leader uint64 // 0: none
	// hint is what followers name as leader: leader itself unless
	// noHint, or hintTo when set.
	noHint bool
	hintTo uint64
	calls  []call
	script map[uint64][]fault
	down   map[uint64]error // an endpoint that always fails so
	// onCall runs (without the lock) on every call, with its number.
	onCall func(n int)
	// chaos, if set, picks a fault for a call with none scripted; it runs
	// under mu.
	chaos func(cl call) *fault
	// readFrom, if set, answers reads instead of store (a stale replica).
	readFrom *Store
}

type call struct {
	ep     uint64
	op     Op
	client uint64
	seq    uint64
	// budget is how long the attempt's context had left on arrival.
	budget time.Duration
}

// fault is one scripted answer.
type fault struct {
	err   error
	apply bool   // apply the command to the store, then fail with err
	block bool   // wait for the attempt's context to end, then time out
	then  func() // runs before answering (e.g. elect another leader)
}

type fakeEndpoint struct {
	c  *fakeCluster
	id uint64
}

func newFakeCluster(t *testing.T, n int, maxSessions int) (*fakeCluster, []Endpoint) {
	s, err := NewStore(StoreOptions{MaxSessions: maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCluster{t: t, store: s, leader: 1, script: map[uint64][]fault{}, down: map[uint64]error{}}
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = &fakeEndpoint{c: c, id: uint64(i + 1)}
	}
	return c, eps
}

func (e *fakeEndpoint) ID() uint64 { return e.id }

func (e *fakeEndpoint) Propose(ctx context.Context, cmd []byte) (any, error) {
	return e.c.handle(ctx, e.id, cmd, false)
}

func (e *fakeEndpoint) Read(ctx context.Context, query []byte) (any, error) {
	return e.c.handle(ctx, e.id, query, true)
}

func (c *fakeCluster) setLeader(id uint64) {
	c.mu.Lock()
	c.leader = id
	c.mu.Unlock()
}

func (c *fakeCluster) handle(ctx context.Context, ep uint64, payload []byte, read bool) (any, error) {
	cl := call{ep: ep, op: OpGet}
	if d, ok := ctx.Deadline(); ok {
		cl.budget = time.Until(d)
	}
	if !read {
		cmd, err := DecodeCommand(payload)
		if err != nil {
			c.t.Errorf("client sent an undecodable command: %v", err)
			return nil, err
		}
		cl.op, cl.client, cl.seq = cmd.Op, cmd.ClientID, cmd.Seq
	}
	c.mu.Lock()
	c.calls = append(c.calls, cl)
	n := len(c.calls)
	var f *fault
	if q := c.script[ep]; len(q) > 0 {
		f, c.script[ep] = &q[0], q[1:]
	} else if c.chaos != nil {
		f = c.chaos(cl)
	}
	downErr := c.down[ep]
	onCall := c.onCall
	c.mu.Unlock()

	if onCall != nil {
		onCall(n)
	}
	if f != nil {
		if f.then != nil {
			f.then()
		}
		if f.block {
			<-ctx.Done()
			return nil, fmt.Errorf("%w: %w", node.ErrTimeout, ctx.Err())
		}
		if f.apply {
			c.apply(payload)
		}
		if f.err != nil {
			return nil, f.err
		}
	}
	if downErr != nil {
		return nil, downErr
	}

	c.mu.Lock()
	leader, hint := c.leader, c.leader
	if c.noHint {
		hint = 0
	}
	if c.hintTo != 0 {
		hint = c.hintTo
	}
	c.mu.Unlock()
	if ep != leader {
		return nil, &node.NotLeaderError{Leader: hint}
	}
	if read {
		c.mu.Lock()
		from := c.readFrom
		c.mu.Unlock()
		if from != nil {
			return from.Read(payload)
		}
		return c.store.Read(payload)
	}
	return c.apply(payload), nil
}

func (c *fakeCluster) apply(payload []byte) any {
	c.mu.Lock()
	c.index++
	idx := c.index
	c.mu.Unlock()
	return c.store.Apply([]node.Command{{Index: idx, Term: 1, Data: payload}})[0]
}

func (c *fakeCluster) takeCalls() []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	for i := range out {
		out[i].budget = 0 // compared separately
	}
	return out
}

func fastOptions() ClientOptions {
	return ClientOptions{AttemptTimeout: time.Minute, MinBackoff: time.Microsecond, MaxBackoff: 10 * time.Microsecond}
}

func newTestClient(t *testing.T, eps []Endpoint, opts ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(eps, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkCalls(t *testing.T, got, want []call) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls:\n got %+v\nwant %+v", got, want)
	}
}

func TestClientFollowsLeaderHint(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	fc.setLeader(3)
	opts := fastOptions()
	opts.ID = 42
	c := newTestClient(t, eps, opts)
	ctx := context.Background()
	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, fc.takeCalls(), []call{
		{ep: 1, op: OpOpen, client: 42, seq: 1},
		{ep: 3, op: OpOpen, client: 42, seq: 1},
		{ep: 3, op: OpPut, client: 42, seq: 2},
	})
	v, found, err := c.Get(ctx, []byte("k"))
	if err != nil || !found || string(v) != "v" {
		t.Fatalf("get: %q %t %v", v, found, err)
	}
	checkCalls(t, fc.takeCalls(), []call{{ep: 3, op: OpGet}})
	// The leader moves; the read follows the hint too.
	fc.setLeader(2)
	if _, _, err := c.Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, fc.takeCalls(), []call{{ep: 3, op: OpGet}, {ep: 2, op: OpGet}})
}

func TestClientRoundRobinWithoutHint(t *testing.T) {
	for name, set := range map[string]func(*fakeCluster){
		"no hint":           func(fc *fakeCluster) { fc.noHint = true },
		"hint unknown node": func(fc *fakeCluster) { fc.hintTo = 99 },
	} {
		t.Run(name, func(t *testing.T) {
			fc, eps := newFakeCluster(t, 3, 0)
			fc.setLeader(3)
			set(fc)
			opts := fastOptions()
			opts.ID = 7
			c := newTestClient(t, eps, opts)
			if err := c.Put(context.Background(), []byte("k"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			checkCalls(t, fc.takeCalls(), []call{
				{ep: 1, op: OpOpen, client: 7, seq: 1},
				{ep: 2, op: OpOpen, client: 7, seq: 1},
				{ep: 3, op: OpOpen, client: 7, seq: 1},
				{ep: 3, op: OpPut, client: 7, seq: 2},
			})
		})
	}
}

// TestClientRetriesWithSameSeq: after an attempt with no definite answer
// the command is sent again with the same sequence number, and the store
// runs it once whether or not the first attempt reached the log.
func TestClientRetriesWithSameSeq(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       fault
		dupWant uint64
	}{
		{"timeout after apply", fault{err: node.ErrTimeout, apply: true}, 1},
		{"timeout before apply", fault{err: node.ErrTimeout}, 0},
		{"leadership lost after apply", fault{err: node.ErrLeadershipLost, apply: true}, 1},
		{"leadership lost before apply", fault{err: node.ErrLeadershipLost}, 0},
		{"node stopped", fault{err: fmt.Errorf("propose: %w", node.ErrStopped)}, 0},
		{"transport error", fault{err: errors.New("connection reset")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, eps := newFakeCluster(t, 3, 0)
			opts := fastOptions()
			opts.ID = 5
			c := newTestClient(t, eps, opts)
			ctx := context.Background()
			if err := c.Put(ctx, []byte("k"), []byte("1")); err != nil {
				t.Fatal(err)
			}
			fc.takeCalls()
			f := tc.f
			f.then = func() { fc.setLeader(2) }
			fc.script[1] = []fault{f}
			if err := c.Put(ctx, []byte("k"), []byte("2")); err != nil {
				t.Fatal(err)
			}
			checkCalls(t, fc.takeCalls(), []call{
				{ep: 1, op: OpPut, client: 5, seq: 3},
				{ep: 2, op: OpPut, client: 5, seq: 3},
			})
			st := fc.store.Stats()
			if st.Puts != 2 || st.Duplicates != tc.dupWant {
				t.Fatalf("stats %+v: want 2 puts run, %d duplicates", st, tc.dupWant)
			}
			// The next command gets the next number, at the new leader.
			if err := c.Put(ctx, []byte("k"), []byte("3")); err != nil {
				t.Fatal(err)
			}
			checkCalls(t, fc.takeCalls(), []call{{ep: 2, op: OpPut, client: 5, seq: 4}})
		})
	}
}

func TestClientPerAttemptTimeout(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	opts := fastOptions()
	opts.ID = 8
	opts.AttemptTimeout = 20 * time.Millisecond
	c := newTestClient(t, eps, opts)
	// Node 1 hangs on the put (a dead leader) while node 2 takes over.
	fc.script[1] = []fault{{}, {block: true, then: func() { fc.setLeader(2) }}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	calls := append([]call(nil), fc.calls...)
	fc.mu.Unlock()
	for _, cl := range calls {
		if cl.budget <= 0 || cl.budget > opts.AttemptTimeout {
			t.Fatalf("attempt %+v had %v, want at most AttemptTimeout %v", cl, cl.budget, opts.AttemptTimeout)
		}
	}
	checkCalls(t, fc.takeCalls(), []call{
		{ep: 1, op: OpOpen, client: 8, seq: 1},
		{ep: 1, op: OpPut, client: 8, seq: 2},
		{ep: 2, op: OpPut, client: 8, seq: 2},
	})
}

func TestClientGivesUpWhenContextEnds(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	opts := fastOptions()
	opts.ID = 9
	c := newTestClient(t, eps, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	fc.takeCalls()
	for id := uint64(1); id <= 3; id++ {
		fc.down[id] = node.ErrTimeout
	}
	fc.onCall = func(n int) {
		if n == 10 {
			cancel()
		}
	}
	err := c.Put(ctx, []byte("k"), []byte("w"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) || !errors.Is(err, node.ErrTimeout) {
		t.Fatalf("got %v; want ErrOutcomeUnknown wrapping context.Canceled and the last node.ErrTimeout", err)
	}
	calls := fc.takeCalls()
	if len(calls) != 10 {
		t.Fatalf("%d attempts after the context ended at the 10th", len(calls))
	}
	seen := map[uint64]bool{}
	for _, cl := range calls {
		if cl.seq != 3 || cl.client != 9 {
			t.Fatalf("retry %+v did not reuse client 9 seq 3", cl)
		}
		seen[cl.ep] = true
	}
	if len(seen) != 3 {
		t.Fatalf("retries went to endpoints %v, want all 3", seen)
	}
}

// TestClientOpTimeout: with OpTimeout, a command on a cluster whose every
// attempt hangs gives up by itself, with no deadline on the caller's
// context: no attempt is given more than what is left of the command's
// time, and the error says the outcome is unknown and why.
func TestClientOpTimeout(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	opts := fastOptions()
	opts.AttemptTimeout = time.Hour
	opts.OpTimeout = 60 * time.Millisecond
	c := newTestClient(t, eps, opts)
	// The session's open succeeds after a 40 ms hang, then the put hangs:
	// the two together must fit in one OpTimeout.
	fc.script[1] = []fault{{then: func() { time.Sleep(40 * time.Millisecond) }}}
	for id := uint64(1); id <= 3; id++ {
		fc.script[id] = append(fc.script[id], fault{block: true}, fault{block: true}, fault{block: true})
	}
	// Were OpTimeout ignored, the hour-long attempt would hang the test.
	err := c.Put(context.Background(), []byte("k"), []byte("w"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "OpTimeout 60ms") {
		t.Fatalf("got %v; want ErrOutcomeUnknown wrapping context.DeadlineExceeded, naming OpTimeout 60ms", err)
	}
	calls := fc.takeCalls()
	if len(calls) < 2 || calls[0].op != OpOpen || calls[1].op != OpPut {
		t.Fatalf("calls %+v, want the session's open, then the put", calls)
	}
	// The put's attempts had only what the open left of the one timeout.
	if b := calls[1].budget; b > opts.OpTimeout-40*time.Millisecond {
		t.Errorf("put's first attempt had %v, want at most OpTimeout less the open's 40 ms", b)
	}
	for _, cl := range calls {
		// Every attempt has a deadline (AttemptTimeout); one made just
		// before the end may find none of it left on arrival.
		if cl.budget > opts.OpTimeout {
			t.Fatalf("attempt %+v had %v, want at most OpTimeout %v", cl, cl.budget, opts.OpTimeout)
		}
	}
}

func TestClientBackoffHonoursContext(t *testing.T) {
	fc, eps := newFakeCluster(t, 2, 0)
	opts := fastOptions()
	opts.MinBackoff, opts.MaxBackoff = time.Hour, time.Hour
	c := newTestClient(t, eps, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc.down[1] = node.ErrTimeout
	fc.onCall = func(int) { cancel() }
	// Were the hour-long pause deaf to ctx, this would hang the test.
	err := c.Put(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := len(fc.takeCalls()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestClientPermanentErrors(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	c := newTestClient(t, eps, fastOptions())
	ctx := context.Background()
	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	fc.takeCalls()
	fc.script[1] = []fault{{err: fmt.Errorf("propose: %w", node.ErrProposalTooLarge)}}
	err := c.Put(ctx, []byte("k"), make([]byte, 100))
	if !errors.Is(err, node.ErrProposalTooLarge) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("got %v, want ErrProposalTooLarge, outcome known", err)
	}
	if n := len(fc.takeCalls()); n != 1 {
		t.Fatalf("a permanent error was retried: %d attempts", n)
	}
}

type wrongEndpoint struct{}

func (wrongEndpoint) ID() uint64 { return 1 }
func (wrongEndpoint) Propose(context.Context, []byte) (any, error) {
	return "not a result", nil
}
func (wrongEndpoint) Read(context.Context, []byte) (any, error) { return 42, nil }

func TestClientRejectsForeignResults(t *testing.T) {
	c := newTestClient(t, []Endpoint{wrongEndpoint{}}, fastOptions())
	if err := c.Put(context.Background(), []byte("k"), nil); err == nil {
		t.Fatal("a string answer was accepted")
	}
	if _, _, err := c.Get(context.Background(), []byte("k")); err == nil {
		t.Fatal("an int answer was accepted")
	}
}

func TestClientOperations(t *testing.T) {
	_, eps := newFakeCluster(t, 1, 0)
	c := newTestClient(t, eps, fastOptions())
	ctx := context.Background()
	k := []byte("k")
	mustBool := func(what string, got bool, err error, want bool) {
		t.Helper()
		if err != nil || got != want {
			t.Fatalf("%s = %t, %v; want %t", what, got, err, want)
		}
	}
	b, err := c.CASAbsent(ctx, k, []byte("1"))
	mustBool("CASAbsent on absent", b, err, true)
	b, err = c.CASAbsent(ctx, k, []byte("2"))
	mustBool("CASAbsent on present", b, err, false)
	b, err = c.CAS(ctx, k, []byte("2"), []byte("3"))
	mustBool("CAS wrong", b, err, false)
	b, err = c.CAS(ctx, k, []byte("1"), []byte("3"))
	mustBool("CAS right", b, err, true)
	v, found, err := c.Get(ctx, k)
	if err != nil || !found || string(v) != "3" {
		t.Fatalf("Get = %q, %t, %v", v, found, err)
	}
	b, err = c.Delete(ctx, k)
	mustBool("Delete present", b, err, true)
	b, err = c.Delete(ctx, k)
	mustBool("Delete absent", b, err, false)
	if _, found, err := c.Get(ctx, k); err != nil || found {
		t.Fatalf("Get after delete: %t, %v", found, err)
	}
}

func TestClientSessionExpired(t *testing.T) {
	fc, eps := newFakeCluster(t, 2, 1)
	ctx := context.Background()
	a := newTestClient(t, eps, fastOptions())
	b := newTestClient(t, eps, fastOptions())
	if err := a.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, []byte("b"), []byte("1")); err != nil { // evicts a
		t.Fatal(err)
	}
	oldID := a.ID()

	// Refused at once: nothing of the command ran, so the client reopens
	// under a new ID and runs it.
	if err := a.Put(ctx, []byte("a"), []byte("2")); err != nil {
		t.Fatalf("put after expiry: %v", err)
	}
	if a.ID() == oldID {
		t.Fatal("client kept its expired ID")
	}
	if st := fc.store.Stats(); st.Expired != 1 || st.Opens != 3 || st.Puts != 3 {
		t.Fatalf("stats %+v", st)
	}

	// Now b's session is gone. Its first attempt times out (it might have
	// reached the log), the retry is refused: the outcome is unknown.
	fc.script[1] = []fault{{err: node.ErrTimeout, then: func() { fc.setLeader(2) }}}
	oldID = b.ID()
	err := b.Put(ctx, []byte("b"), []byte("2"))
	if !errors.Is(err, ErrSessionExpired) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("got %v, want ErrSessionExpired with ErrOutcomeUnknown", err)
	}
	if b.ID() == oldID {
		t.Fatal("client kept its expired ID")
	}
	if err := b.Put(ctx, []byte("b"), []byte("3")); err != nil {
		t.Fatalf("put on the renewed session: %v", err)
	}
	if st := fc.store.Stats(); st.Expired != 2 || st.Puts != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientIDInUse(t *testing.T) {
	_, eps := newFakeCluster(t, 1, 0)
	opts := fastOptions()
	opts.ID = 77
	a := newTestClient(t, eps, opts)
	if err := a.Put(context.Background(), []byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	b := newTestClient(t, eps, opts)
	if err := b.Put(context.Background(), []byte("k"), nil); !errors.Is(err, ErrStaleSequence) {
		t.Fatalf("second client with ID 77: got %v, want ErrStaleSequence", err)
	}
}

func TestClientConcurrentUse(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	c := newTestClient(t, eps, fastOptions())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if err := c.Put(context.Background(), fmt.Appendf(nil, "k%d", g), fmt.Appendf(nil, "%d", i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if st := fc.store.Stats(); st.Puts != 100 || st.Duplicates != 0 || st.Stale != 0 {
		t.Fatalf("stats %+v: want 100 puts, each once", st)
	}
}

func TestNewClientValidates(t *testing.T) {
	_, eps := newFakeCluster(t, 2, 0)
	for name, tc := range map[string]struct {
		eps  []Endpoint
		opts ClientOptions
	}{
		"no endpoints":        {nil, ClientOptions{}},
		"nil endpoint":        {[]Endpoint{eps[0], nil}, ClientOptions{}},
		"duplicate IDs":       {[]Endpoint{eps[0], eps[0]}, ClientOptions{}},
		"endpoint ID 0":       {[]Endpoint{&fakeEndpoint{id: 0}}, ClientOptions{}},
		"negative timeout":    {eps, ClientOptions{AttemptTimeout: -1}},
		"negative op timeout": {eps, ClientOptions{OpTimeout: -1}},
		"max below min":       {eps, ClientOptions{MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
	} {
		if _, err := NewClient(tc.eps, tc.opts); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: got %v, want ErrInvalidOptions", name, err)
		}
	}
	c := newTestClient(t, eps, ClientOptions{})
	if c.ID() == 0 {
		t.Fatal("random client ID is 0")
	}
	if c.opts.AttemptTimeout != DefaultAttemptTimeout || c.opts.MinBackoff == 0 || c.opts.MaxBackoff < c.opts.MinBackoff {
		t.Fatalf("defaults not applied: %+v", c.opts)
	}
}

// TestClientNotSentKeepsOutcomeKnown: an attempt that never left the client
// (ErrNotSent) cannot have run, so a session found expired on the retry is
// renewed and the command run, rather than reported as unknown.
func TestClientNotSentKeepsOutcomeKnown(t *testing.T) {
	fc, eps := newFakeCluster(t, 2, 1)
	ctx := context.Background()
	a := newTestClient(t, eps, fastOptions())
	b := newTestClient(t, eps, fastOptions())
	if err := a.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, []byte("b"), []byte("1")); err != nil { // evicts a
		t.Fatal(err)
	}
	fc.script[1] = []fault{{err: fmt.Errorf("dial: %w", ErrNotSent), then: func() { fc.setLeader(2) }}}
	if err := a.Put(ctx, []byte("a"), []byte("2")); err != nil {
		t.Fatalf("put after an unsent attempt and an expired session: %v", err)
	}
	if v, ok := fc.store.Get([]byte("a")); !ok || string(v) != "2" {
		t.Fatalf("a = %q, %v", v, ok)
	}
}

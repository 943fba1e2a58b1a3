package kv

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/raftbench/raftbench/node"
)

// testStore is a Store with a log index counter, so tests read as a log.
type testStore struct {
	t     *testing.T
	s     *Store
	index uint64
}

func newTestStore(t *testing.T, maxSessions int) *testStore {
	t.Helper()
	s, err := NewStore(StoreOptions{MaxSessions: maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	return &testStore{t: t, s: s}
}

func enc(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := AppendCommand(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apply applies raw entries as one batch at the next indexes.
func (ts *testStore) apply(entries ...[]byte) []Result {
	ts.t.Helper()
	cmds := make([]node.Command, len(entries))
	for i, e := range entries {
		ts.index++
		cmds[i] = node.Command{Index: ts.index, Term: 1, Data: e}
	}
	out := ts.s.Apply(cmds)
	if len(out) != len(cmds) {
		ts.t.Fatalf("Apply returned %d results for %d commands", len(out), len(cmds))
	}
	rs := make([]Result, len(out))
	for i, o := range out {
		r, ok := o.(Result)
		if !ok {
			ts.t.Fatalf("Apply result %d is a %T", i, o)
		}
		rs[i] = r
	}
	return rs
}

func (ts *testStore) one(c Command) Result {
	ts.t.Helper()
	return ts.apply(enc(ts.t, c))[0]
}

func (ts *testStore) open(client uint64) {
	ts.t.Helper()
	if r := ts.one(Command{Op: OpOpen, ClientID: client, Seq: 1}); r.Status != StatusOK {
		ts.t.Fatalf("open %d: %+v", client, r)
	}
}

func (ts *testStore) get(key string) (string, bool) {
	ts.t.Helper()
	v, err := ts.s.Read(AppendGetQuery(nil, []byte(key)))
	if err != nil {
		ts.t.Fatal(err)
	}
	r := v.(Result)
	if r.Status != StatusOK {
		ts.t.Fatalf("get %q: %+v", key, r)
	}
	return string(r.Value), r.Found
}

func put(client, seq uint64, k, v string) Command {
	return Command{Op: OpPut, ClientID: client, Seq: seq, Key: []byte(k), Value: []byte(v)}
}

func TestStoreOptions(t *testing.T) {
	if _, err := NewStore(StoreOptions{MaxSessions: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("MaxSessions -1: got %v, want ErrInvalidOptions", err)
	}
	var o StoreOptions
	o.EnsureDefaults()
	if o.MaxSessions != DefaultMaxSessions {
		t.Fatalf("default MaxSessions %d", o.MaxSessions)
	}
}

func TestPutGetDelete(t *testing.T) {
	ts := newTestStore(t, 0)
	ts.open(1)
	if _, found := ts.get("a"); found {
		t.Fatal("empty store has a")
	}
	if r := ts.one(put(1, 2, "a", "1")); !reflect.DeepEqual(r, Result{Status: StatusOK}) {
		t.Fatalf("put: %+v", r)
	}
	if v, found := ts.get("a"); !found || v != "1" {
		t.Fatalf("get a = %q, %t", v, found)
	}
	ts.one(put(1, 3, "a", "2"))
	if v, _ := ts.get("a"); v != "2" {
		t.Fatalf("overwrite: get a = %q", v)
	}
	ts.one(put(1, 4, "empty", ""))
	if v, found := ts.get("empty"); !found || v != "" {
		t.Fatalf("empty value: %q, %t", v, found)
	}
	if r := ts.one(Command{Op: OpDelete, ClientID: 1, Seq: 5, Key: []byte("a")}); r.Status != StatusOK || !r.Found {
		t.Fatalf("delete existing: %+v", r)
	}
	if _, found := ts.get("a"); found {
		t.Fatal("a survived delete")
	}
	if r := ts.one(Command{Op: OpDelete, ClientID: 1, Seq: 6, Key: []byte("a")}); r.Status != StatusOK || r.Found {
		t.Fatalf("delete missing: %+v", r)
	}
	st := ts.s.Stats()
	if st.Opens != 1 || st.Puts != 3 || st.Deletes != 2 || st.Reads != 5 || st.Executed() != 5 {
		t.Fatalf("stats %+v", st)
	}
	if keys, sessions := ts.s.Len(); keys != 1 || sessions != 1 {
		t.Fatalf("Len = %d keys, %d sessions", keys, sessions)
	}
	if ts.s.AppliedIndex() != ts.index {
		t.Fatalf("AppliedIndex %d, want %d", ts.s.AppliedIndex(), ts.index)
	}
}

func TestStorePutCopiesFromLog(t *testing.T) {
	ts := newTestStore(t, 0)
	ts.open(1)
	b := enc(t, put(1, 2, "k", "v"))
	ts.apply(b)
	for i := range b {
		b[i] = 'X' // the log reuses its buffer
	}
	if v, found := ts.get("k"); !found || v != "v" {
		t.Fatalf("stored value aliased the log: %q, %t", v, found)
	}
}

func TestCAS(t *testing.T) {
	ts := newTestStore(t, 0)
	ts.open(1)
	seq := uint64(1)
	cas := func(key string, expected *string, value string) Result {
		seq++
		c := Command{Op: OpCAS, ClientID: 1, Seq: seq, Key: []byte(key), Value: []byte(value)}
		if expected == nil {
			c.ExpectAbsent = true
		} else {
			c.Expected = []byte(*expected)
		}
		return ts.one(c)
	}
	str := func(s string) *string { return &s }

	if r := cas("k", nil, "1"); r.Status != StatusOK {
		t.Fatalf("cas absent on absent: %+v", r)
	}
	if r := cas("k", nil, "2"); r.Status != StatusCASMismatch || !r.Found || string(r.Value) != "1" {
		t.Fatalf("cas absent on present: %+v", r)
	}
	if r := cas("k", str("x"), "2"); r.Status != StatusCASMismatch || !r.Found || string(r.Value) != "1" {
		t.Fatalf("cas wrong value: %+v", r)
	}
	if r := cas("k", str("1"), "2"); r.Status != StatusOK {
		t.Fatalf("cas right value: %+v", r)
	}
	if v, _ := ts.get("k"); v != "2" {
		t.Fatalf("after cas: %q", v)
	}
	// An empty expected value is a value: it does not match an absent key,
	// and it does match a key holding the empty value.
	if r := cas("m", str(""), "x"); r.Status != StatusCASMismatch || r.Found {
		t.Fatalf("cas empty on absent: %+v", r)
	}
	ts.one(put(1, seq+1, "m", ""))
	seq++
	if r := cas("m", str(""), "x"); r.Status != StatusOK {
		t.Fatalf("cas empty on empty: %+v", r)
	}
	if st := ts.s.Stats(); st.CASSwapped != 3 || st.CASMismatched != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestExactlyOnce(t *testing.T) {
	ts := newTestStore(t, 0)
	ts.open(1)
	ts.open(2)
	p := enc(t, put(1, 2, "k", "a"))
	first := ts.apply(p)[0]
	// Another client changes k; then client 1's put is retried (say,
	// after a leader change). It must not run again.
	ts.one(put(2, 2, "k", "b"))
	again := ts.apply(p)[0]
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("retry answered %+v, first answer %+v", again, first)
	}
	if v, _ := ts.get("k"); v != "b" {
		t.Fatalf("retried put ran again: k = %q", v)
	}

	// A mismatched CAS retried after the value changed gets the original
	// answer (the value it saw then), not a fresh evaluation.
	c := enc(t, Command{Op: OpCAS, ClientID: 1, Seq: 3, Key: []byte("k"), Expected: []byte("zzz"), Value: []byte("c")})
	first = ts.apply(c)[0]
	if first.Status != StatusCASMismatch || string(first.Value) != "b" {
		t.Fatalf("cas: %+v", first)
	}
	ts.one(Command{Op: OpCAS, ClientID: 2, Seq: 3, Key: []byte("k"), Expected: []byte("b"), Value: []byte("zzz")})
	again = ts.apply(c)[0]
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("cas retry answered %+v, first answer %+v", again, first)
	}
	if v, _ := ts.get("k"); v != "zzz" {
		t.Fatalf("retried cas ran again: k = %q", v)
	}

	// Duplicates in one batch are also answered once.
	d := enc(t, Command{Op: OpDelete, ClientID: 1, Seq: 4, Key: []byte("k")})
	rs := ts.apply(d, d, d)
	if !rs[0].Found || !reflect.DeepEqual(rs[0], rs[1]) || !reflect.DeepEqual(rs[0], rs[2]) {
		t.Fatalf("batched duplicates answered %+v", rs)
	}

	st := ts.s.Stats()
	if st.Puts != 2 || st.CASMismatched != 1 || st.CASSwapped != 1 || st.Deletes != 1 || st.Duplicates != 4 {
		t.Fatalf("stats %+v: want 2 puts, 1+1 cas, 1 delete, 4 duplicates", st)
	}
}

func TestStaleSequence(t *testing.T) {
	ts := newTestStore(t, 0)
	ts.open(1)
	ts.one(put(1, 2, "k", "old"))
	ts.one(put(1, 5, "k", "new")) // gaps are allowed
	r := ts.one(put(1, 2, "k", "old"))
	if r.Status != StatusStaleSequence || !errors.Is(r.Err(), ErrStaleSequence) {
		t.Fatalf("stale: %+v", r)
	}
	if r := ts.one(put(1, 4, "k", "abandoned")); r.Status != StatusStaleSequence {
		t.Fatalf("abandoned seq in a gap: %+v", r)
	}
	if v, _ := ts.get("k"); v != "new" {
		t.Fatalf("stale command ran: k = %q", v)
	}
	// Still the last reply for the current seq.
	if r := ts.one(put(1, 5, "k", "new")); r.Status != StatusOK {
		t.Fatalf("retry of last after stale: %+v", r)
	}
	if st := ts.s.Stats(); st.Puts != 2 || st.Stale != 2 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSessionRules(t *testing.T) {
	ts := newTestStore(t, 0)
	r := ts.one(put(9, 2, "k", "v"))
	if r.Status != StatusSessionExpired || !errors.Is(r.Err(), ErrSessionExpired) {
		t.Fatalf("command without a session: %+v", r)
	}
	if _, found := ts.get("k"); found {
		t.Fatal("command without a session ran")
	}
	ts.open(9)
	if r := ts.one(Command{Op: OpOpen, ClientID: 9, Seq: 1}); r.Status != StatusOK {
		t.Fatalf("duplicate open: %+v", r)
	}
	ts.one(put(9, 2, "k", "v"))
	if r := ts.one(Command{Op: OpOpen, ClientID: 9, Seq: 1}); r.Status != StatusStaleSequence {
		t.Fatalf("open after the session moved on: %+v", r)
	}
	if _, sessions := ts.s.Len(); sessions != 1 {
		t.Fatalf("%d sessions", sessions)
	}
	if st := ts.s.Stats(); st.Opens != 1 || st.Expired != 1 || st.Duplicates != 1 || st.Stale != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBadCommandsChangeNothing(t *testing.T) {
	ts := newTestStore(t, 0)
	ts.open(1)
	ts.one(put(1, 2, "k", "v"))
	before, _ := ts.s.Snapshot()
	garbage := [][]byte{nil, {0xff}, {1, 2, 1, 3, 200}, {1, 1, 1, 2}, {1, 5, 0}}
	for _, r := range ts.apply(garbage...) {
		if r.Status != StatusBadCommand || !errors.Is(r.Err(), ErrBadCommand) || r.Detail == "" {
			t.Fatalf("garbage answered %+v", r)
		}
	}
	after, _ := ts.s.Snapshot()
	// Only the applied index (bytes 1..) may differ: compare the rest.
	if !bytes.Equal(stripIndex(t, before), stripIndex(t, after)) {
		t.Fatal("garbage changed the state")
	}
	if st := ts.s.Stats(); st.Bad != uint64(len(garbage)) {
		t.Fatalf("stats %+v", st)
	}
}

// stripIndex drops the applied index from a snapshot.
func stripIndex(t *testing.T, snap []byte) []byte {
	d := decoder{buf: snap, off: 1}
	d.uvarint("index")
	if d.err != nil {
		t.Fatal(d.err)
	}
	return snap[d.off:]
}

func TestReadRejectsBadQuery(t *testing.T) {
	ts := newTestStore(t, 0)
	if _, err := ts.s.Read([]byte{1, 2, 3}); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("bad query: %v", err)
	}
}

func TestEvictionIsLeastRecentlyUsed(t *testing.T) {
	ts := newTestStore(t, 2)
	ts.open(1)
	ts.open(2)
	ts.one(put(1, 2, "a", "1")) // 1 is now more recent than 2
	ts.open(3)                  // evicts 2
	if r := ts.one(put(2, 2, "b", "x")); r.Status != StatusSessionExpired {
		t.Fatalf("evicted client: %+v", r)
	}
	if r := ts.one(put(1, 3, "a", "2")); r.Status != StatusOK {
		t.Fatalf("kept client: %+v", r)
	}
	// A retry is a use: 3 retries its open, so 1 is now the LRU.
	ts.open(3)
	ts.open(4) // evicts 1
	if r := ts.one(put(1, 4, "a", "3")); r.Status != StatusSessionExpired {
		t.Fatalf("client 1 after eviction: %+v", r)
	}
	if r := ts.one(put(3, 2, "c", "3")); r.Status != StatusOK {
		t.Fatalf("client 3: %+v", r)
	}
	if _, sessions := ts.s.Len(); sessions != 2 {
		t.Fatalf("%d sessions, bound is 2", sessions)
	}
	if st := ts.s.Stats(); st.Evictions != 2 || st.Expired != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// randomLog makes a log of opens, writes, retries, stale and garbage from
// many clients, so that sessions are evicted and re-opened.
func randomLog(t testing.TB, seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	seqs := map[uint64]uint64{}
	var log [][]byte
	for range n {
		client := 1 + rng.Uint64N(20)
		seq := seqs[client]
		key := fmt.Sprintf("k%d", rng.IntN(5))
		switch {
		case seq == 0 || rng.IntN(30) == 0:
			log = append(log, enc(t, Command{Op: OpOpen, ClientID: client, Seq: 1}))
			seqs[client] = 1
			continue
		case rng.IntN(10) == 0 && seq > 1: // retry
		case rng.IntN(20) == 0 && seq > 2: // stale
			seq -= 2
		case rng.IntN(50) == 0:
			log = append(log, []byte{1, byte(rng.IntN(8))})
			continue
		default:
			seq++
			seqs[client] = seq
		}
		if seq < 2 {
			continue
		}
		var c Command
		switch rng.IntN(4) {
		case 0:
			c = put(client, seq, key, fmt.Sprint(rng.IntN(3)))
		case 1:
			c = Command{Op: OpDelete, ClientID: client, Seq: seq, Key: []byte(key)}
		case 2:
			c = Command{Op: OpCAS, ClientID: client, Seq: seq, Key: []byte(key), Expected: []byte(fmt.Sprint(rng.IntN(3))), Value: []byte("c")}
		default:
			c = Command{Op: OpCAS, ClientID: client, Seq: seq, Key: []byte(key), ExpectAbsent: true, Value: []byte("a")}
		}
		log = append(log, enc(t, c))
	}
	return log
}

func TestEvictionIsDeterministic(t *testing.T) {
	log := randomLog(t, 1, 3000)
	a, b := newTestStore(t, 5), newTestStore(t, 5)
	var ra, rb []Result
	// Same log, different batching, as two replicas would see it.
	for i := 0; i < len(log); i += 7 {
		ra = append(ra, a.apply(log[i:min(i+7, len(log))]...)...)
	}
	for _, e := range log {
		rb = append(rb, b.apply(e)...)
	}
	if !reflect.DeepEqual(ra, rb) {
		t.Fatal("replicas answered differently")
	}
	if a.s.Hash() != b.s.Hash() {
		t.Fatal("replicas that applied the same log have different hashes")
	}
	sa, sb := a.s.Stats(), b.s.Stats()
	if sa != sb {
		t.Fatalf("stats differ: %+v vs %+v", sa, sb)
	}
	// The test means something only if sessions were evicted and clients
	// then found theirs expired.
	if sa.Evictions < 10 || sa.Expired < 10 || sa.Duplicates == 0 || sa.Stale == 0 {
		t.Fatalf("log too tame: %+v", sa)
	}
	// A replica with another bound evicts differently, and Hash shows it.
	c := newTestStore(t, 6)
	c.apply(log...)
	if c.s.Hash() == a.s.Hash() {
		t.Fatal("Hash does not reflect sessions")
	}
}

func TestHashCoversState(t *testing.T) {
	// Each pair applies logs of equal length that differ in one respect.
	build := func(cmds ...Command) [32]byte {
		ts := newTestStore(t, 0)
		ts.open(1)
		ts.open(2)
		for _, c := range cmds {
			ts.one(c)
		}
		return ts.s.Hash()
	}
	h1 := build(put(1, 2, "k", "v"))
	if h2 := build(put(1, 2, "k", "v")); h1 != h2 {
		t.Fatal("Hash is not deterministic")
	}
	if build(put(1, 2, "k", "v")) == build(put(1, 2, "k", "w")) {
		t.Error("Hash ignores values")
	}
	if build(put(1, 2, "k", "v")) == build(put(2, 2, "k", "v")) {
		t.Error("Hash ignores sessions")
	}
	cas := func(expected string) Command {
		return Command{Op: OpCAS, ClientID: 1, Seq: 3, Key: []byte("k"), Expected: []byte(expected), Value: []byte("v")}
	}
	// Same data either way (both CASes fail), different cached replies.
	if build(put(2, 2, "k", "v"), cas("a")) != build(put(2, 2, "k", "v"), cas("b")) {
		t.Fatal("equal replies hash differently")
	}
	if build(put(2, 2, "k", "x"), cas("a"), put(2, 3, "k", "v")) == build(put(2, 2, "k", "y"), cas("a"), put(2, 3, "k", "v")) {
		t.Error("Hash ignores cached replies")
	}
}

func TestSnapshotRestore(t *testing.T) {
	orig := newTestStore(t, 5)
	orig.apply(randomLog(t, 2, 500)...)
	orig.open(100)
	orig.one(put(100, 2, "x", "before"))
	last := enc(t, Command{Op: OpCAS, ClientID: 100, Seq: 3, Key: []byte("x"), Expected: []byte("nope"), Value: []byte("y")})
	want := orig.apply(last)[0]

	snap, err := orig.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// The image is allocated once, at its size computed beforehand, cached
	// replies (a CAS mismatch's value among them) included: two
	// allocations in all, the other the sorted keys.
	if n := testing.AllocsPerRun(10, func() { _, _ = orig.s.Snapshot() }); n != 2 && !raceEnabled {
		t.Errorf("Snapshot made %v allocations, want 2: the image was regrown", n)
	}
	restored := newTestStore(t, 5)
	restored.open(555) // state to be replaced
	if err := restored.s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	restored.index = orig.index
	if restored.s.Hash() != orig.s.Hash() || restored.s.AppliedIndex() != orig.s.AppliedIndex() {
		t.Fatal("restored state differs")
	}
	snap2, _ := restored.s.Snapshot()
	if !bytes.Equal(snap, snap2) {
		t.Fatal("snapshot of the restored store differs")
	}
	// The retried CAS is answered as the original was, without running.
	if got := restored.apply(last)[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored replica answered the retry %+v, original %+v", got, want)
	}
	if st := restored.s.Stats(); st.Executed() != 0 || st.Duplicates != 1 {
		t.Fatalf("restored replica ran the retry: %+v", st)
	}
	if r := restored.one(put(100, 2, "x", "z")); r.Status != StatusStaleSequence {
		t.Fatalf("stale after restore: %+v", r)
	}
	// Both go on identically, evictions included.
	more := randomLog(t, 3, 500)
	orig.apply(last)
	orig.one(put(100, 2, "x", "z"))
	ro, rr := orig.apply(more...), restored.apply(more...)
	if !reflect.DeepEqual(ro, rr) || orig.s.Hash() != restored.s.Hash() {
		t.Fatal("original and restored replicas diverged")
	}
	if restored.s.Stats().Evictions == 0 {
		t.Fatal("no evictions after the restore: the test proves nothing about eviction order")
	}
}

func TestRestoreTrimsToMaxSessions(t *testing.T) {
	big := newTestStore(t, 10)
	for c := uint64(1); c <= 5; c++ {
		big.open(c)
	}
	snap, _ := big.s.Snapshot()
	small := newTestStore(t, 2)
	if err := small.s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if _, sessions := small.s.Len(); sessions != 2 {
		t.Fatalf("%d sessions after restore, bound 2", sessions)
	}
	// The most recent (4 and 5) are kept.
	if r := small.one(put(5, 2, "k", "v")); r.Status != StatusOK {
		t.Fatalf("client 5: %+v", r)
	}
	if r := small.one(put(3, 2, "k", "v")); r.Status != StatusSessionExpired {
		t.Fatalf("client 3: %+v", r)
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	src := newTestStore(t, 0)
	src.open(1)
	src.one(put(1, 2, "a", "1"))
	src.one(put(1, 3, "b", "2"))
	snap, _ := src.s.Snapshot()

	dst := newTestStore(t, 0)
	dst.open(7)
	before := dst.s.Hash()
	bad := map[string][]byte{
		"trailing": append(append([]byte(nil), snap...), 0),
		"version":  append([]byte{9}, snap[1:]...),
		// index 0, two keys out of order, no sessions.
		"unsorted":    {1, 0, 2, 1, 'b', 0, 1, 'a', 0, 0},
		"duplicate":   {1, 0, 2, 1, 'a', 0, 1, 'a', 0, 0},
		"two session": {1, 0, 0, 2, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0},
		"client 0":    {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0},
		"huge count":  {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for i := range snap {
		bad[fmt.Sprintf("prefix %d", i)] = snap[:i]
	}
	for name, b := range bad {
		if err := dst.s.Restore(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: Restore = %v, want ErrBadEncoding", name, err)
		}
		if dst.s.Hash() != before {
			t.Fatalf("%s: failed Restore changed the store", name)
		}
	}
}

func TestConcurrentObservers(t *testing.T) {
	ts := newTestStore(t, 8)
	log := randomLog(t, 4, 2000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var observed int
	first := make(chan struct{}) // closed after the observer's first round
	wg.Go(func() {
		defer func() {
			if observed == 0 {
				close(first)
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = ts.s.Hash()
			if _, err := ts.s.Snapshot(); err != nil {
				panic(err)
			}
			_ = ts.s.Stats()
			ts.s.Len()
			if observed++; observed == 1 {
				close(first)
			}
		}
	})
	for i := 0; i < len(log); i += 10 {
		ts.apply(log[i:min(i+10, len(log))]...)
		ts.s.Read(AppendGetQuery(nil, []byte("k1")))
	}
	<-first // on a busy machine the applies can finish before it starts
	close(stop)
	wg.Wait()
	if observed == 0 {
		t.Fatal("observer never ran")
	}
	// The run above is for the race detector; the state must still be
	// that of a plain replay.
	replay := newTestStore(t, 8)
	replay.apply(log...)
	if replay.s.Hash() != ts.s.Hash() {
		t.Fatal("observers disturbed the state")
	}
}

// Get sees what Apply stored, hands out a copy, counts no read, and is safe
// next to a concurrent Apply (for the race detector).
func TestGet(t *testing.T) {
	ts := newTestStore(t, 8)
	ts.open(1)
	if v, ok := ts.s.Get([]byte("a")); ok || v != nil {
		t.Fatalf("Get of a missing key = %q, %v", v, ok)
	}
	ts.one(put(1, 2, "a", "one"))
	v, ok := ts.s.Get([]byte("a"))
	if !ok || string(v) != "one" {
		t.Fatalf("Get(a) = %q, %v; want one, true", v, ok)
	}
	v[0] = 'X'
	if again, _ := ts.s.Get([]byte("a")); string(again) != "one" {
		t.Fatalf("modifying Get's result changed the store: %q", again)
	}
	if r := ts.s.Stats().Reads; r != 0 {
		t.Fatalf("Get counted %d reads", r)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				ts.s.Get([]byte("k1"))
			}
		}
	})
	ts.apply(randomLog(t, 5, 500)...)
	close(stop)
	wg.Wait()
}

func TestStateHash(t *testing.T) {
	s, err := NewStore(StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	open, _ := AppendCommand(nil, Command{Op: OpOpen, ClientID: 1, Seq: 1})
	put, _ := AppendCommand(nil, Command{Op: OpPut, ClientID: 1, Seq: 2, Key: []byte("k"), Value: []byte("v")})
	s.Apply([]node.Command{{Index: 3, Data: open}, {Index: 5, Data: put}})
	h, idx := s.StateHash()
	if idx != 5 || h != s.Hash() {
		t.Errorf("StateHash = %x, %d; want Hash() and 5", h[:4], idx)
	}
}

// TestStateImage: the image is Snapshot's, at the index of its last
// command, and restores into a store with the same state.
func TestStateImage(t *testing.T) {
	s, err := NewStore(StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	open, _ := AppendCommand(nil, Command{Op: OpOpen, ClientID: 1, Seq: 1})
	put, _ := AppendCommand(nil, Command{Op: OpPut, ClientID: 1, Seq: 2, Key: []byte("k"), Value: []byte("v")})
	s.Apply([]node.Command{{Index: 3, Data: open}, {Index: 7, Data: put}})
	img, idx := s.StateImage()
	snap, _ := s.Snapshot()
	if idx != 7 || !bytes.Equal(img, snap) {
		t.Fatalf("StateImage = %d bytes at %d; want Snapshot's %d bytes at 7", len(img), idx, len(snap))
	}
	r, err := NewStore(StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(img); err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Get([]byte("k")); !ok || string(v) != "v" || r.Hash() != s.Hash() {
		t.Errorf("restored image: k = %q, %v; hashes equal %v", v, ok, r.Hash() == s.Hash())
	}
}

// boxResult's shared boxes hold exactly the result they stand for, and any
// other result is boxed as itself.
func TestBoxResultKeepsResults(t *testing.T) {
	for _, r := range []Result{
		{Status: StatusOK},
		{Status: StatusOK, Found: true},
		{Status: StatusOK, Value: []byte{}},
		{Status: StatusOK, Found: true, Value: []byte("v")},
		{Status: StatusCASMismatch, Found: true, Value: []byte("cur")},
		{Status: StatusCASMismatch},
		{Status: StatusStaleSequence, Detail: "seq 3 after 5"},
		{Status: StatusBadCommand, Detail: "truncated"},
	} {
		got, ok := boxResult(r).(Result)
		if !ok || !reflect.DeepEqual(got, r) {
			t.Fatalf("boxResult(%+v) holds %+v", r, got)
		}
	}
}

// overwriteBatches opens client on s, puts keys k0..k(n-1) once, and
// returns batches batches of n more of the client's puts to the same keys
// with a 128-byte value, one letter repeated, the next letter in each
// batch, ready to Apply in order.
func overwriteBatches(tb testing.TB, s *Store, client uint64, n, batches int) [][]node.Command {
	tb.Helper()
	index, seq := uint64(0), uint64(1)
	fill := byte('a')
	batch := func() []node.Command {
		cmds := make([]node.Command, n)
		fill = 'a' + (fill-'a'+1)%26
		for i := range cmds {
			index, seq = index+1, seq+1
			c := Command{Op: OpPut, ClientID: client, Seq: seq, Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte{fill}, 128)}
			cmds[i] = node.Command{Index: index, Term: 1, Data: enc(tb, c)}
		}
		return cmds
	}
	index++
	s.Apply([]node.Command{{Index: index, Term: 1, Data: enc(tb, Command{Op: OpOpen, ClientID: client, Seq: 1})}})
	s.Apply(batch())
	out := make([][]node.Command, batches)
	for i := range out {
		out[i] = batch()
	}
	return out
}

// A put to a present key allocates nothing: the key is looked up, not
// converted into a new string for a map assignment, and the value is
// written over the old one's bytes.
func TestPutToPresentKeyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	const n = 50
	s, err := NewStore(StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	batches := overwriteBatches(t, s, 7, n, 12)
	next := 0
	allocs := testing.AllocsPerRun(10, func() {
		for _, r := range s.Apply(batches[next]) {
			if r.(Result).Status != StatusOK {
				t.Fatalf("put: %+v", r)
			}
		}
		next++
	})
	// Apply's results, nothing per put.
	if want := float64(1); allocs != want {
		t.Errorf("a batch of %d overwriting puts made %v allocations, want %v", n, allocs, want)
	}
	if v, ok := s.Get([]byte("k3")); !ok || len(v) != 128 {
		t.Errorf("k3 = %q, %v after the overwrites", v, ok)
	}
}

// BenchmarkStorePut applies batches of 128 puts that overwrite keys a
// store already holds, as a run's closed loop does: ns/op and allocs/op are
// per batch. Batches are encoded outside the timer, 64 at a time.
func BenchmarkStorePut(b *testing.B) {
	s, err := NewStore(StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	const n = 128
	b.ReportAllocs()
	b.StopTimer()
	var pending [][]node.Command
	for i, client := 0, uint64(1); i < b.N; i++ {
		if len(pending) == 0 {
			pending = overwriteBatches(b, s, client, n, 64)
			client++
		}
		b.StartTimer()
		s.Apply(pending[0])
		b.StopTimer()
		pending = pending[1:]
	}
}

// Values handed out without a copy — a Read's, and a CAS mismatch's reply,
// which the session keeps and sends again to a retry — keep their bytes
// when later puts overwrite the key in place, while values nobody was
// handed are overwritten where they are.
func TestLentValuesSurviveOverwrites(t *testing.T) {
	ts := newTestStore(t, 5)
	ts.open(1)
	ts.one(put(1, 2, "k", "first-value"))
	r, err := ts.s.Read(AppendGetQuery(nil, []byte("k")))
	if err != nil {
		t.Fatal(err)
	}
	read := r.(Result).Value
	ts.one(put(1, 3, "k", "second-val!"))
	mismatch := Command{Op: OpCAS, ClientID: 1, Seq: 4, Key: []byte("k"), Expected: []byte("nope"), Value: []byte("x")}
	first := ts.one(mismatch)
	if first.Status != StatusCASMismatch || string(first.Value) != "second-val!" {
		t.Fatalf("CAS mismatch: %+v", first)
	}
	ts.one(put(1, 5, "k", "third-value"))
	ts.one(put(1, 6, "k", "fourth-valu"))
	if string(read) != "first-value" {
		t.Errorf("a Read's value changed to %q under later puts", read)
	}
	if string(first.Value) != "second-val!" {
		t.Errorf("a CAS mismatch's value changed to %q under later puts", first.Value)
	}
	// Later commands moved the session on: the overwrites above were
	// applied, not refused.
	sess := ts.s.sessions[1]
	if sess.lastSeq != 6 {
		t.Fatalf("session at seq %d", sess.lastSeq)
	}
	if got, _ := ts.get("k"); got != "fourth-valu" {
		t.Errorf("k = %q, want the last put's value", got)
	}
	// A value nobody was handed is overwritten in place.
	sl := ts.s.data["k"]
	sl.lent.Store(false)
	before := &sl.v[0]
	ts.one(put(1, 7, "k", "fifth-value"))
	if &sl.v[0] != before || string(sl.v) != "fifth-value" {
		t.Errorf("an unlent value was not overwritten in place: %q", sl.v)
	}
	// A shorter value is stored at its own length, in snapshots too.
	ts.one(put(1, 8, "k", "short"))
	if got, _ := ts.get("k"); got != "short" {
		t.Errorf("k = %q after a shorter put", got)
	}
	restored := newTestStore(t, 5)
	if snap, err := ts.s.Snapshot(); err != nil {
		t.Fatal(err)
	} else if err := restored.s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got, _ := restored.get("k"); got != "short" {
		t.Errorf("k = %q in a snapshot after a shorter put", got)
	}
	// A longer value than the bytes hold gets new ones.
	ts.one(put(1, 9, "k", "a much longer sixth value"))
	if got, _ := ts.get("k"); got != "a much longer sixth value" {
		t.Errorf("k = %q after a longer put", got)
	}
}

// A retried CAS whose first answer was a mismatch gets that answer again,
// value included, after puts by other clients overwrote the key.
func TestRetriedCASMismatchKeepsItsValue(t *testing.T) {
	ts := newTestStore(t, 5)
	ts.open(1)
	ts.open(2)
	ts.one(put(1, 2, "k", "value-one"))
	cas := Command{Op: OpCAS, ClientID: 2, Seq: 2, Key: []byte("k"), Expected: []byte("nope"), Value: []byte("x")}
	ts.one(cas)
	ts.one(put(1, 3, "k", "value-two"))
	ts.one(put(1, 4, "k", "value-thr"))
	if r := ts.one(cas); r.Status != StatusCASMismatch || string(r.Value) != "value-one" {
		t.Errorf("the retried CAS got %+v, want its first answer (mismatch, value-one)", r)
	}
}

// Reads and Gets run concurrently with Apply's in-place overwrites; under
// -race this is the check that no read touches bytes a put writes.
func TestReadsDuringInPlaceOverwrites(t *testing.T) {
	s, err := NewStore(StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	batches := overwriteBatches(t, s, 7, 8, 200)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := AppendGetQuery(nil, []byte("k3"))
			var held, copies [][]byte
			for i := 0; ; i++ {
				select {
				case <-stop:
					for k, v := range held {
						if !bytes.Equal(v, copies[k]) {
							t.Errorf("a value read as %q changed to %q", copies[k], v)
							return
						}
					}
					return
				default:
				}
				if g == 0 {
					r, err := s.Read(q)
					if err != nil {
						t.Error(err)
						return
					}
					if v := r.(Result).Value; i%16 == 0 {
						held, copies = append(held, v), append(copies, bytes.Clone(v))
					}
				} else if v, ok := s.Get([]byte("k3")); !ok || len(v) != 128 {
					t.Errorf("Get: %q, %v", v, ok)
					return
				}
			}
		}()
	}
	for _, b := range batches {
		s.Apply(b)
	}
	close(stop)
	wg.Wait()
}

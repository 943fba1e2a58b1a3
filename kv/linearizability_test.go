package kv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/raftbench/raftbench/node"
)

func pOp(client int, in ModelInput, call int64, out ModelOutput, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func pPut(k, v string) ModelInput { return ModelInput{Op: OpPut, Key: k, Value: v} }
func pGet(k string) ModelInput    { return ModelInput{Op: OpGet, Key: k} }
func pDel(k string) ModelInput    { return ModelInput{Op: OpDelete, Key: k} }
func pCAS(k, e, v string) ModelInput {
	return ModelInput{Op: OpCAS, Key: k, Expected: e, Value: v}
}
func pCASAbsent(k, v string) ModelInput {
	return ModelInput{Op: OpCAS, Key: k, ExpectAbsent: true, Value: v}
}

var (
	done     = ModelOutput{}
	unknown  = ModelOutput{Unknown: true}
	absent   = ModelOutput{}
	existed  = ModelOutput{Found: true}
	swapped  = ModelOutput{Swapped: true}
	rejected = ModelOutput{Swapped: false}
)

func got(v string) ModelOutput { return ModelOutput{Found: true, Value: v} }

const inf = UnknownReturn

func checkHistory(t *testing.T, want porcupine.CheckResult, ops ...porcupine.Operation) {
	t.Helper()
	if res := porcupine.CheckOperationsTimeout(Model(), ops, 10*time.Second); res != want {
		t.Fatalf("check = %v, want %v", res, want)
	}
}

func TestModelAcceptsLinearizableHistory(t *testing.T) {
	checkHistory(t, porcupine.Ok,
		pOp(0, pPut("x", "1"), 0, done, 10),
		pOp(1, pGet("x"), 5, got("1"), 15), // concurrent with the put: may see it
		pOp(0, pCAS("x", "1", "2"), 20, swapped, 30),
		pOp(1, pGet("x"), 25, got("1"), 35), // concurrent with the cas: may precede it
		pOp(2, pCAS("x", "1", "3"), 36, rejected, 38),
		pOp(0, pDel("x"), 40, existed, 50),
		pOp(1, pDel("x"), 55, absent, 58),
		pOp(1, pGet("x"), 60, absent, 70),
		pOp(2, pCASAbsent("y", "a"), 0, swapped, 100),
		pOp(3, pGet("y"), 1, absent, 2),
		pOp(3, pCASAbsent("y", "b"), 101, rejected, 105),
		pOp(3, pGet("y"), 110, got("a"), 120),
	)
}

func TestModelRejectsNonLinearizableHistories(t *testing.T) {
	fine := []porcupine.Operation{ // another key, linearizable on its own
		pOp(5, pPut("y", "1"), 0, done, 100),
		pOp(6, pGet("y"), 200, got("1"), 300),
	}
	for name, ops := range map[string][]porcupine.Operation{
		"read of an overwritten value": {
			pOp(0, pPut("x", "1"), 0, done, 10),
			pOp(0, pPut("x", "2"), 20, done, 30),
			pOp(1, pGet("x"), 40, got("1"), 50),
		},
		"read of a value never written": {
			pOp(1, pGet("x"), 40, got("9"), 50),
		},
		"absent after a completed put": {
			pOp(0, pPut("x", "1"), 0, done, 10),
			pOp(1, pGet("x"), 20, absent, 30),
		},
		"cas swapped on a mismatch": {
			pOp(0, pPut("x", "1"), 0, done, 10),
			pOp(1, pCAS("x", "0", "2"), 20, swapped, 30),
		},
		"cas rejected on a match": {
			pOp(0, pPut("x", "1"), 0, done, 10),
			pOp(1, pCAS("x", "1", "2"), 20, rejected, 30),
		},
		"two absent-cas both swapped": {
			pOp(0, pCASAbsent("x", "a"), 0, swapped, 10),
			pOp(1, pCASAbsent("x", "b"), 5, swapped, 15),
		},
		"delete existed on an absent key": {
			pOp(0, pDel("x"), 0, existed, 10),
		},
	} {
		t.Run(name, func(t *testing.T) {
			checkHistory(t, porcupine.Illegal, append(ops, fine...)...)
		})
	}
}

// TestModelUnknownOutcome: an operation returning at infinity may take
// effect at any point after its call, or never, but not before its call,
// and not take effect and then undo itself.
func TestModelUnknownOutcome(t *testing.T) {
	put1 := pOp(0, pPut("x", "1"), 0, done, 10)
	put2 := pOp(1, pPut("x", "2"), 20, unknown, inf)
	t.Run("took effect", func(t *testing.T) {
		checkHistory(t, porcupine.Ok, put1, put2, pOp(2, pGet("x"), 40, got("2"), 50))
	})
	t.Run("never took effect", func(t *testing.T) {
		checkHistory(t, porcupine.Ok, put1, put2, pOp(2, pGet("x"), 40, got("1"), 50))
	})
	t.Run("took effect late", func(t *testing.T) {
		checkHistory(t, porcupine.Ok, put1, put2,
			pOp(2, pGet("x"), 40, got("1"), 50), pOp(2, pGet("x"), 60, got("2"), 70))
	})
	t.Run("cannot undo", func(t *testing.T) {
		checkHistory(t, porcupine.Illegal, put1, put2,
			pOp(2, pGet("x"), 40, got("2"), 50), pOp(2, pGet("x"), 60, got("1"), 70))
	})
	t.Run("cannot precede its call", func(t *testing.T) {
		checkHistory(t, porcupine.Illegal, put1,
			pOp(2, pGet("x"), 12, got("2"), 15), put2)
	})
	t.Run("unknown cas applies only on a match", func(t *testing.T) {
		checkHistory(t, porcupine.Ok, put1,
			pOp(1, pCAS("x", "1", "3"), 20, unknown, inf), pOp(2, pGet("x"), 40, got("3"), 50))
		checkHistory(t, porcupine.Illegal, put1,
			pOp(1, pCAS("x", "0", "3"), 20, unknown, inf), pOp(2, pGet("x"), 40, got("3"), 50))
	})
	t.Run("unknown delete", func(t *testing.T) {
		checkHistory(t, porcupine.Ok, put1,
			pOp(1, pDel("x"), 20, unknown, inf), pOp(2, pGet("x"), 40, absent, 50))
	})
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := range 50 {
				p := r.Begin(c, pPut(fmt.Sprint(c), fmt.Sprint(i)))
				p.End(done)
				g := r.Begin(c, pGet(fmt.Sprint(c)))
				g.End(got(fmt.Sprint(i)))
			}
		})
	}
	wg.Wait()
	u := r.Begin(9, pPut("0", "late"))
	u.Unknown()
	r.Begin(9, pGet("0")).Unknown() // dropped: a read without an answer says nothing

	ops := r.Operations()
	if len(ops) != 4*100+1 {
		t.Fatalf("%d operations recorded, want 401", len(ops))
	}
	last := ops[len(ops)-1]
	if last.Return != UnknownReturn || !last.Output.(ModelOutput).Unknown || last.Call <= 0 {
		t.Fatalf("unknown operation recorded as %+v", last)
	}
	for _, op := range ops {
		if op.Call > op.Return {
			t.Fatalf("operation returns before its call: %+v", op)
		}
	}
	res, _ := r.Check(10 * time.Second)
	if res != porcupine.Ok {
		t.Fatalf("check = %v", res)
	}
	// The recorder's times are real: a get recorded after a put returned
	// cannot claim the put's predecessor value.
	p := r.Begin(0, pPut("z", "1"))
	p.End(done)
	g := r.Begin(1, pGet("z"))
	g.End(absent)
	if res, _ := r.Check(10 * time.Second); res != porcupine.Illegal {
		t.Fatalf("check after a stale read = %v, want Illegal", res)
	}
}

// runWorkload drives recording clients against fc concurrently, with
// faults injected, and returns the recorder.
func runWorkload(t *testing.T, fc *fakeCluster, eps []Endpoint, seed uint64, clients, opsPerClient int) *Recorder {
	t.Helper()
	r := NewRecorder()
	var (
		cmu     sync.Mutex
		cancels = map[uint64]context.CancelFunc{}
	)
	rng := rand.New(rand.NewPCG(seed, 1)) // used under fc.mu only
	fc.chaos = func(cl call) *fault {
		x := rng.IntN(100)
		cancelOp := func() {
			cmu.Lock()
			if cancel := cancels[cl.client]; cancel != nil {
				cancel()
			}
			cmu.Unlock()
		}
		nextLeader := func() {
			fc.mu.Lock()
			fc.leader = fc.leader%uint64(len(eps)) + 1
			fc.mu.Unlock()
		}
		switch {
		case cl.op == OpGet && x < 5:
			return &fault{err: node.ErrTimeout}
		case cl.op == OpGet:
			return nil
		case x < 4: // applied, answer lost, caller gives up: unknown
			return &fault{apply: true, err: node.ErrTimeout, then: cancelOp}
		case x < 6: // not applied, caller gives up: unknown
			return &fault{err: node.ErrTimeout, then: cancelOp}
		case x < 10: // applied, answer lost, retried
			return &fault{apply: true, err: node.ErrTimeout}
		case x < 14:
			return &fault{apply: true, err: node.ErrLeadershipLost, then: nextLeader}
		case x < 17:
			return &fault{err: node.ErrLeadershipLost, then: nextLeader}
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := range clients {
		c := newTestClient(t, eps, fastOptions())
		rc := r.NewRecordingClient(c)
		if rc.Client() != c {
			t.Fatal("RecordingClient.Client is not the wrapped client")
		}
		orng := rand.New(rand.NewPCG(seed, uint64(i)+10))
		wg.Go(func() {
			for range opsPerClient {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				cmu.Lock()
				cancels[c.ID()] = cancel
				cmu.Unlock()
				key := []byte(fmt.Sprint("k", orng.IntN(3)))
				val := []byte(fmt.Sprint(orng.IntN(4)))
				var err error
				switch orng.IntN(6) {
				case 0, 1:
					_, _, err = rc.Get(ctx, key)
				case 2:
					err = rc.Put(ctx, key, val)
				case 3:
					_, err = rc.Delete(ctx, key)
				case 4:
					_, err = rc.CAS(ctx, key, []byte(fmt.Sprint(orng.IntN(4))), val)
				case 5:
					_, err = rc.CASAbsent(ctx, key, val)
				}
				cancel()
				if err != nil && !errors.Is(err, ErrOutcomeUnknown) {
					t.Errorf("unexpected error: %v", err)
				}
			}
		})
	}
	wg.Wait()
	return r
}

func TestRecordingClientHistoryIsLinearizable(t *testing.T) {
	fc, eps := newFakeCluster(t, 3, 0)
	r := runWorkload(t, fc, eps, 1, 4, 60)
	ops := r.Operations()
	var unknowns int
	for _, op := range ops {
		if op.Output.(ModelOutput).Unknown {
			unknowns++
		}
	}
	if unknowns == 0 || len(ops) < 200 {
		t.Fatalf("%d operations, %d unknown: the faults did not exercise unknown outcomes", len(ops), unknowns)
	}
	if st := fc.store.Stats(); st.Duplicates == 0 {
		t.Fatalf("stats %+v: no retry was answered from a session", st)
	}
	res, info := r.Check(30 * time.Second)
	if res != porcupine.Ok {
		path, err := Visualize(info, filepath.Join(t.TempDir(), "history.html"))
		t.Fatalf("history of %d operations is %v (visualisation %s, %v)", len(ops), res, path, err)
	}
}

// TestCheckCatchesStaleReads runs the same pipeline against a cluster whose
// reads come from a lagging replica, and expects the check to say so.
func TestCheckCatchesStaleReads(t *testing.T) {
	fc, eps := newFakeCluster(t, 1, 0)
	r := NewRecorder()
	rc := r.NewRecordingClient(newTestClient(t, eps, fastOptions()))
	ctx := context.Background()
	if err := rc.Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	snap, _ := fc.store.Snapshot()
	lagging, _ := NewStore(StoreOptions{})
	if err := lagging.Restore(snap); err != nil {
		t.Fatal(err)
	}
	fc.readFrom = lagging
	if err := rc.Put(ctx, []byte("k"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if v, _, err := rc.Get(ctx, []byte("k")); err != nil || string(v) != "1" {
		t.Fatalf("lagging read = %q, %v", v, err)
	}
	res, info := r.Check(10 * time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("check = %v, want Illegal", res)
	}
	path, err := Visualize(info, filepath.Join(t.TempDir(), "stale.html"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(path) || !strings.Contains(string(b), "<html") || !strings.Contains(string(b), `get(\"k\")`) {
		t.Fatalf("visualisation %s does not look like porcupine's page for this history", path)
	}
}

func TestVisualizeToTempFile(t *testing.T) {
	r := NewRecorder()
	r.Begin(0, pPut("k", "v")).End(done)
	_, info := r.Check(0)
	path, err := Visualize(info, "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || !strings.HasSuffix(path, ".html") {
		t.Fatalf("visualisation at %s: %v, %v", path, fi, err)
	}
}

func TestDescribeOperation(t *testing.T) {
	for _, tc := range []struct {
		in   ModelInput
		out  ModelOutput
		want string
	}{
		{pPut("k", "v"), done, `put("k", "v")`},
		{pGet("k"), got("v"), `get("k") -> "v"`},
		{pGet("k"), absent, `get("k") -> absent`},
		{pDel("k"), existed, `delete("k") -> existed=true`},
		{pCAS("k", "a", "b"), swapped, `cas("k", "a" -> "b") -> true`},
		{pCASAbsent("k", "b"), rejected, `cas("k", absent -> "b") -> false`},
		{pPut("k", "v"), unknown, `put("k", "v") -> ?`},
	} {
		if got := Model().DescribeOperation(tc.in, tc.out); got != tc.want {
			t.Errorf("describe = %s, want %s", got, tc.want)
		}
	}
}

// TestRecordingClientErrors: a write refused before it could run leaves no
// trace; an error that cannot be classified is recorded as unknown, which
// only makes the check more permissive.
func TestRecordingClientErrors(t *testing.T) {
	fc, eps := newFakeCluster(t, 1, 0)
	r := NewRecorder()
	rc := r.NewRecordingClient(newTestClient(t, eps, fastOptions()))
	fc.script[1] = []fault{{}, {err: node.ErrProposalTooLarge}}
	if err := rc.Put(context.Background(), []byte("k"), []byte("v")); !errors.Is(err, node.ErrProposalTooLarge) {
		t.Fatalf("got %v", err)
	}
	if n := len(r.Operations()); n != 0 {
		t.Fatalf("a refused put was recorded (%d operations)", n)
	}
	odd := r.NewRecordingClient(newTestClient(t, []Endpoint{wrongEndpoint{}}, fastOptions()))
	if err := odd.Put(context.Background(), []byte("k"), []byte("v")); err == nil {
		t.Fatal("no error from a foreign endpoint")
	}
	ops := r.Operations()
	if len(ops) != 1 || !ops[0].Output.(ModelOutput).Unknown || ops[0].ClientId != 1 {
		t.Fatalf("unclassified error recorded as %+v, want one unknown op of client 1", ops)
	}
}

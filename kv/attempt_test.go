package kv

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An attempt that ends before its deadline leaves its context usable, and
// the next attempt reuses it with the new deadline.
func TestAttemptContextReused(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent := context.Background()
	first := h.begin(parent, time.Now(), time.Hour)
	d1, ok := first.Deadline()
	if !ok || time.Until(d1) < 59*time.Minute {
		t.Fatalf("first deadline %v, %v; want about an hour from now", d1, ok)
	}
	h.end()
	second := h.begin(parent, time.Now(), time.Minute)
	defer h.end()
	if second != first {
		t.Fatal("a context that did not expire was not reused")
	}
	d2, _ := second.Deadline()
	if !d2.Before(d1) || time.Until(d2) > time.Minute {
		t.Fatalf("second deadline %v; want at most a minute from now", d2)
	}
	if second.Err() != nil {
		t.Fatalf("reused context's Err = %v", second.Err())
	}
	select {
	case <-second.Done():
		t.Fatal("reused context is done")
	default:
	}
}

// An attempt whose deadline passes is cancelled with DeadlineExceeded, as
// its error and its cause; the next attempt gets a fresh context.
func TestAttemptContextExpires(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent := context.Background()
	ctx := h.begin(parent, time.Now(), 5*time.Millisecond)
	waitDone(t, ctx, "after its 5 ms deadline")
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Cause = %v, want DeadlineExceeded", err)
	}
	h.end()
	next := h.begin(parent, time.Now(), time.Hour)
	defer h.end()
	if next == ctx {
		t.Fatal("an expired context was reused")
	}
	if next.Err() != nil {
		t.Fatalf("fresh context's Err = %v", next.Err())
	}
}

// The caller's context ending ends the attempt with its error and cause,
// and a child derived from the attempt ends with it.
func TestAttemptContextFollowsCaller(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent, cancel := context.WithCancelCause(context.Background())
	why := errors.New("run over")
	ctx := h.begin(parent, time.Now(), time.Hour)
	child, stop := context.WithTimeout(ctx, time.Hour)
	defer stop()
	cancel(why)
	for _, c := range []context.Context{ctx, child} {
		waitDone(t, c, "after the caller's context was cancelled")
		if err := c.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want Canceled", err)
		}
		if err := context.Cause(c); !errors.Is(err, why) {
			t.Fatalf("Cause = %v, want the caller's cause", err)
		}
	}
	h.end()
	if next := h.begin(parent, time.Now(), time.Hour); next == ctx || next.Err() == nil {
		t.Fatalf("after the caller's context ended: got the old context %v, Err %v", next == ctx, next.Err())
	}
	h.end()
}

// The attempt's deadline is the caller's when that comes first, as with
// context.WithDeadline.
func TestAttemptContextCallerDeadlineFirst(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	want := time.Now().Add(time.Minute)
	parent, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	ctx := h.begin(parent, time.Now(), time.Hour)
	defer h.end()
	if got, ok := ctx.Deadline(); !ok || !got.Equal(want) {
		t.Fatalf("Deadline = %v, %v; want the caller's %v", got, ok, want)
	}
}

// A new caller context gets a new attempt context; the old one is released
// (cancelled, so it leaves the old caller context's children).
func TestAttemptContextNewCaller(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	p1, c1 := context.WithCancel(context.Background())
	defer c1()
	a1 := h.begin(p1, time.Now(), time.Hour)
	h.end()
	p2, c2 := context.WithCancel(context.Background())
	defer c2()
	a2 := h.begin(p2, time.Now(), time.Hour)
	h.end()
	if a1 == a2 {
		t.Fatal("an attempt context was reused under another caller context")
	}
	if a1.Err() == nil {
		t.Fatal("the replaced attempt context was not released")
	}
	if a2.Err() != nil {
		t.Fatalf("new attempt context's Err = %v", a2.Err())
	}
}

// valueCtx is a context of a type == cannot compare.
type valueCtx struct {
	context.Context
	tags []string
}

// A caller context whose type == cannot compare does not panic; its
// attempts get a context each.
func TestAttemptContextUncomparableCaller(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent := valueCtx{Context: context.Background(), tags: []string{"x"}}
	a1 := h.begin(parent, time.Now(), time.Hour)
	h.end()
	a2 := h.begin(parent, time.Now(), time.Hour)
	h.end()
	if a1 == a2 || a2.Err() != nil {
		t.Fatalf("uncomparable caller: reused %v, Err %v", a1 == a2, a2.Err())
	}
}

// A caller's context that ends during an attempt leaves the attempt with
// its error, also once the attempt's deadline has passed.
func TestAttemptCallerErrorOutlivesDeadline(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent, cancel := context.WithCancel(context.Background())
	ctx := h.begin(parent, time.Now(), 100*time.Millisecond) // long enough to cancel first
	cancel()
	waitDone(t, ctx, "after the caller's context was cancelled")
	waitArmed(t, h, time.Time{}, "after the attempt's deadline")
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v after the deadline passed, want the caller's Canceled", err)
	}
	h.end()
}

// armedFor is when h's current attempt context's timer is set to fire.
func armedFor(h *attempts) time.Time {
	a := h.cur
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.armedFor
}

// waitArmed waits up to 10 s for h's timer to stand at want (zero: unset).
func waitArmed(t *testing.T, h *attempts, want time.Time, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !armedFor(h).Equal(want); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timer set for %v 10 s %s, want %v", armedFor(h), what, want)
		}
	}
}

// The lazy timer is brought forward for an attempt whose deadline comes
// before the one it is set for, and that attempt expires on time.
func TestAttemptTimerBroughtForward(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent := context.Background()
	first := h.begin(parent, time.Now(), time.Hour)
	h.end()
	now := time.Now()
	second := h.begin(parent, now, 5*time.Millisecond)
	if second != first {
		t.Fatal("a context that did not expire was not reused")
	}
	if got := armedFor(h); !got.Equal(now.Add(5 * time.Millisecond)) {
		t.Fatalf("timer set for %v, want the second attempt's deadline", got)
	}
	waitDone(t, second, "after the second attempt's 5 ms deadline")
	if err := second.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	h.end()
}

// A timer left set for an earlier attempt's deadline does not cancel a
// later attempt whose deadline has not passed: it sets itself for that one.
func TestAttemptTimerOutlivesEarlierDeadline(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent := context.Background()
	first := h.begin(parent, time.Now(), 100*time.Millisecond) // long enough to end in time
	h.end()
	now := time.Now()
	second := h.begin(parent, now, time.Hour)
	defer h.end()
	if second != first {
		t.Fatal("a context that did not expire was not reused")
	}
	waitArmed(t, h, now.Add(time.Hour), "after the first attempt's deadline")
	if err := second.Err(); err != nil {
		t.Fatalf("the second attempt ended (%v) when the first one's deadline passed", err)
	}
}

// A timer that fires between attempts cancels nothing and stays unset; the
// next attempt sets it again and expires on time.
func TestAttemptTimerFiresBetweenAttempts(t *testing.T) {
	h := &attempts{}
	defer h.drop()
	parent := context.Background()
	first := h.begin(parent, time.Now(), 100*time.Millisecond) // long enough to end in time
	h.end()
	waitArmed(t, h, time.Time{}, "after the idle fire")
	if err := first.Err(); err != nil {
		t.Fatalf("the timer cancelled an idle context: %v", err)
	}
	second := h.begin(parent, time.Now(), 5*time.Millisecond)
	if second != first {
		t.Fatal("a context that did not expire was not reused")
	}
	waitDone(t, second, "after the second attempt's 5 ms deadline")
	if err := second.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	h.end()
}

// waitDone fails the test unless ctx is done within 10 s (after what).
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("context not done 10 s %s", what)
	}
}

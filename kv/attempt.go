package kv

import (
	"context"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// attemptCtx is the context a Client gives one attempt on one endpoint: the
// caller's context, bounded by the attempt's deadline. A Client reuses it
// from attempt to attempt, because context.WithTimeout per attempt cost
// 0.85 s of 12.5 s of CPU in a 256-client run (6.8%): a timer, three
// allocations, and a registration with the caller's context, which every
// client shares, so each attempt took and released the same contended
// lock and map entry twice.
//
// It wraps a cancel context derived from the caller's once (cctx), so
// Done, Value and context.Cause, and the children an endpoint derives from
// it, behave as those of a standard context; only its deadline moves. The
// timer cancels cctx with context.DeadlineExceeded as its cause when an
// attempt runs out. One difference remains: a child an endpoint derives
// ends then with Err context.Canceled (its cause is DeadlineExceeded),
// where a child of a standard timeout context reports DeadlineExceeded;
// no endpoint here tells the two apart. A context that has ended cannot be
// reopened, so one that expired, or whose caller's context ended, is
// discarded and the next attempt gets a new one.
//
// The timer is lazy. An attempt usually ends long before its deadline, and
// resetting the timer at every begin and stopping it at every end cost
// another 0.9 s of 14.9 s of CPU in a 256-client run with the memory WAL
// (both take the runtime's timer lock). So end leaves the timer running,
// and begin moves it only when the new deadline comes before the time it
// is set for. When it fires before the current attempt's deadline (it was
// set for an earlier attempt's) or between attempts, it sets itself for
// the current deadline, if any, instead of cancelling: at most one fire
// per AttemptTimeout while attempts keep finishing in time.
//
// Only the Client's command goroutine (holding Client.mu) begins and ends
// attempts and drops the context (as does the cleanup of a collected
// Client); the timer's goroutine only cancels it or sets the timer again,
// under mu. Endpoints must not use the context after their call returns,
// which is the context package's rule too.
type attemptCtx struct {
	cctx    context.Context
	cancel  context.CancelCauseFunc
	parent  context.Context
	timer   *time.Timer
	expired atomic.Bool // set by the timer (under mu) before it cancels cctx

	// mu orders begin and end against the timer's fire, which reads the
	// current deadline (zero between attempts) and re-sets the timer.
	mu sync.Mutex
	// current is the running attempt's deadline, zero between attempts:
	// the timer cancels only when it has passed.
	current time.Time
	// armedFor is when the timer is set to fire, zero when it is not set
	// (it fired and found nothing to wait for, or was never set).
	armedFor time.Time

	// deadline is this attempt's: set by begin, read by the endpoint
	// during the call it was begun for.
	deadline time.Time
}

// Deadline returns the current attempt's deadline.
func (a *attemptCtx) Deadline() (time.Time, bool) { return a.deadline, true }

// Done is closed when the attempt's deadline passes or the caller's context
// ends.
func (a *attemptCtx) Done() <-chan struct{} { return a.cctx.Done() }

// Err is context.DeadlineExceeded when the attempt's deadline passed first,
// the caller's context's error when that ended first, and
// context.Canceled once the Client released it.
func (a *attemptCtx) Err() error {
	err := a.cctx.Err()
	if err != nil && a.expired.Load() {
		return context.DeadlineExceeded
	}
	return err
}

// Value is the caller's context's value for key.
func (a *attemptCtx) Value(key any) any { return a.cctx.Value(key) }

// fire is the timer's function: it cancels the attempt whose deadline has
// passed, and otherwise sets the timer again for the current attempt's
// deadline (or leaves it unset between attempts).
func (a *attemptCtx) fire() {
	now := time.Now()
	a.mu.Lock()
	if now.Before(a.armedFor) {
		// Set again (earlier or later) after this fire was due, or early:
		// the timer stands for armedFor; make sure it does.
		a.timer.Reset(a.armedFor.Sub(now))
		a.mu.Unlock()
		return
	}
	a.armedFor = time.Time{}
	if a.current.IsZero() {
		a.mu.Unlock()
		return // between attempts: the next begin sets it
	}
	if now.Before(a.current) {
		a.armedFor = a.current
		a.timer.Reset(a.current.Sub(now))
		a.mu.Unlock()
		return
	}
	if a.cctx.Err() != nil {
		// The caller's context ended first: the attempt ended with its
		// error, which Err must keep reporting.
		a.mu.Unlock()
		return
	}
	a.expired.Store(true)
	a.mu.Unlock()
	a.cancel(context.DeadlineExceeded)
}

// attempts holds a Client's current attempt context. It is separate from
// the Client, and refers to nothing of it, so the cleanup that releases the
// context's registration with the caller's context when the Client is
// collected can hold it without keeping the Client alive.
type attempts struct {
	cur *attemptCtx
}

// newAttempts returns the attempt holder of owner, whose registration with
// a caller's context is released when owner becomes unreachable: a caller
// that makes many short-lived Clients under one long-lived context would
// otherwise grow that context's child set by one per Client.
func newAttempts(owner *Client) *attempts {
	h := &attempts{}
	runtime.AddCleanup(owner, func(h *attempts) { h.drop() }, h)
	return h
}

// begin returns the context of an attempt on parent, begun at now, that
// must end within d (d > 0), reusing the last attempt's when it is still
// usable.
func (h *attempts) begin(parent context.Context, now time.Time, d time.Duration) context.Context {
	a := h.cur
	if a != nil && (!sameContext(a.parent, parent) || a.expired.Load() || a.cctx.Err() != nil) {
		h.drop()
		a = nil
	}
	own := now.Add(d)
	deadline := own
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		// The caller's context ends first and cancels cctx then; as with
		// context.WithDeadline, that deadline is the attempt's.
		deadline = pd
	}
	if a == nil {
		a = &attemptCtx{parent: parent, deadline: deadline, current: own, armedFor: own}
		a.cctx, a.cancel = context.WithCancelCause(parent)
		a.timer = time.AfterFunc(d, a.fire)
		h.cur = a
		return a
	}
	a.deadline = deadline
	a.mu.Lock()
	a.current = own
	if a.armedFor.IsZero() || own.Before(a.armedFor) {
		a.armedFor = own
		a.timer.Reset(d)
	}
	a.mu.Unlock()
	return a
}

// sameContext reports whether a and b are the same context. A context of a
// type == cannot compare (a struct holding a slice, say) would make a plain
// comparison panic; such a context is never taken for the same, so its
// attempts simply do not share a context.
func sameContext(a, b context.Context) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta != nil && ta == tb && ta.Comparable() && a == b
}

// end finishes the attempt begun last, leaving the timer set (see
// attemptCtx). A context whose deadline passed is spent: the next begin
// makes a new one.
func (h *attempts) end() {
	a := h.cur
	if a == nil {
		return
	}
	a.mu.Lock()
	a.current = time.Time{}
	a.mu.Unlock()
	if a.expired.Load() {
		h.drop()
	}
}

// drop releases the current context, if any: its timer and its
// registration with the caller's context.
func (h *attempts) drop() {
	if a := h.cur; a != nil {
		a.mu.Lock()
		a.current, a.armedFor = time.Time{}, time.Time{} // a fire now running sets nothing
		a.timer.Stop()
		a.mu.Unlock()
		a.cancel(context.Canceled)
		h.cur = nil
	}
}

package kv

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/raftbench/raftbench/node"
)

// Endpoint is what a Client needs of one replica. *node.Node satisfies it,
// cluster.Endpoint follows an in-process node across restarts, and
// clientapi.Endpoint reaches a `raftbench node` process over the network;
// tests use fakes. Propose and Read must return the Store's Result as their
// `any`, and must not use their context once they return: a Client reuses
// one attempt context from attempt to attempt (attempt.go).
type Endpoint interface {
	ID() uint64
	Propose(ctx context.Context, cmd []byte) (any, error)
	Read(ctx context.Context, query []byte) (any, error)
}

// ErrOutcomeUnknown is wrapped by a Client error when the command may or may
// not have been applied: the caller's context ended (or the command's
// OpTimeout passed) while attempts were unanswered, or the session expired after an attempt that may have reached
// the log. Any other Client error means the command was not applied.
var ErrOutcomeUnknown = errors.New("kv: outcome unknown")

// ErrNotSent may be wrapped by an Endpoint's error to say the attempt never
// left the client (the replica could not be reached: no connection, a
// refused handshake), so it cannot have reached any log. The Client then
// tries the next endpoint as after any failure, but, unlike after a
// timeout or a broken connection, still knows the command did not run,
// which keeps an expired session's retry exact.
var ErrNotSent = errors.New("kv: request not sent")

// DefaultAttemptTimeout is ClientOptions.AttemptTimeout's default: half
// the node's default election timeout (node.DefaultElectionTicks ×
// node.DefaultTickInterval = 1 s). A leader cut off from its quorum steps
// down within an election timeout and no successor exists before one has
// passed, so an attempt stuck on the old leader should end before that:
// the client is then asking the other replicas when the successor is
// elected, instead of still waiting. An attempt on a live leader takes
// milliseconds (p99 4 ms at 256 clients, README.md), far below it.
const DefaultAttemptTimeout = 500 * time.Millisecond

// ClientOptions configures a Client. Zero fields take the defaults named.
type ClientOptions struct {
	// ID is the client ID: it must be unique among every client that ever
	// talks to the group, because the store answers by ID. Default: random
	// (64 bits from crypto/rand, so collisions are negligible).
	ID uint64
	// AttemptTimeout bounds one attempt on one endpoint, so a dead or
	// partitioned node costs one timeout, not the caller's whole deadline.
	// Keep it below the cluster's election timeout. Default
	// DefaultAttemptTimeout (500ms).
	AttemptTimeout time.Duration
	// OpTimeout, if set, bounds each command (or read) across all its
	// attempts and pauses, as a deadline on the caller's context would;
	// the command's outcome is then unknown, with an error wrapping
	// context.DeadlineExceeded. It costs nothing per command: a context
	// with a deadline costs a runtime timer, a channel and a registration
	// with its parent per command, which made two thirds of the harness's
	// context overhead at 256 clients (see bench's workload). Default 0:
	// only the caller's context bounds a command.
	OpTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between failed attempts,
	// which doubles from MinBackoff up to MaxBackoff (with jitter, so
	// clients that failed together do not retry in lockstep). Defaults 2ms
	// and 200ms: long enough not to spin on a cluster with no leader,
	// short next to the second an election takes.
	MinBackoff, MaxBackoff time.Duration
}

// EnsureDefaults fills zero fields with their defaults, a random ID
// included. It never validates, and calling it again changes nothing.
func (o *ClientOptions) EnsureDefaults() {
	if o.ID == 0 {
		o.ID = randomID()
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 2 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 200 * time.Millisecond
	}
}

// Validate reports every invalid field with its value and limit, joined
// into one error wrapping ErrInvalidOptions. It expects defaults applied.
func (o ClientOptions) Validate() error {
	var errs []error
	if o.OpTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: OpTimeout is %v, must not be negative", ErrInvalidOptions, o.OpTimeout))
	}
	if o.AttemptTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: AttemptTimeout is %v, must not be negative", ErrInvalidOptions, o.AttemptTimeout))
	}
	if o.MinBackoff < 0 {
		errs = append(errs, fmt.Errorf("%w: MinBackoff is %v, must not be negative", ErrInvalidOptions, o.MinBackoff))
	}
	if o.MaxBackoff < o.MinBackoff {
		errs = append(errs, fmt.Errorf("%w: MaxBackoff is %v, must be at least MinBackoff %v", ErrInvalidOptions, o.MaxBackoff, o.MinBackoff))
	}
	return errors.Join(errs...)
}

// Client issues commands to a replicated Store through a set of endpoints,
// as one client session: it finds the leader, follows redirects, and retries
// a command with the same sequence number until it is answered, the
// caller's context ends or its OpTimeout passes, so the store applies it at
// most once.
//
// A Client is safe for concurrent use, but runs one command at a time (a
// session answers only its last command); use several Clients for
// concurrent load.
type Client struct {
	opts      ClientOptions
	endpoints []Endpoint
	byID      map[uint64]int

	// mu serialises commands; everything below is guarded by it.
	mu sync.Mutex
	id uint64
	// seq is the last sequence number used. Invariant: each number is
	// used for one command only, and numbers only grow, so an abandoned
	// command that reaches the log late is stale, not re-applied.
	seq uint64
	// open says the store has answered this ID's open command.
	open bool
	// leader is the index of the endpoint to try first.
	leader int
	rng    *rand.Rand
	// attempts gives each attempt its context (attempt.go says why it
	// is reused).
	attempts *attempts
}

// NewClient returns a client that talks to endpoints (each with a distinct
// non-zero ID). No request is sent until the first command.
func NewClient(endpoints []Endpoint, opts ClientOptions) (*Client, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrInvalidOptions)
	}
	byID := make(map[uint64]int, len(endpoints))
	for i, ep := range endpoints {
		if ep == nil {
			return nil, fmt.Errorf("%w: endpoint %d is nil", ErrInvalidOptions, i)
		}
		id := ep.ID()
		if id == 0 {
			return nil, fmt.Errorf("%w: endpoint %d has ID 0", ErrInvalidOptions, i)
		}
		if j, dup := byID[id]; dup {
			return nil, fmt.Errorf("%w: endpoints %d and %d both have ID %d", ErrInvalidOptions, j, i, id)
		}
		byID[id] = i
	}
	c := &Client{opts: opts, endpoints: endpoints, byID: byID, id: opts.ID}
	c.rng = rand.New(rand.NewPCG(c.id, uint64(time.Now().UnixNano())))
	c.attempts = newAttempts(c)
	return c, nil
}

func randomID() uint64 {
	var b [8]byte
	for {
		_, _ = crand.Read(b[:]) // never fails (crypto/rand docs)
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// ID returns the client ID in use. It changes after the session expires:
// the client then opens a new session under a fresh random ID, because
// reusing the old one could let a late duplicate of an old command run.
func (c *Client) ID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Put sets key to value.
func (c *Client) Put(ctx context.Context, key, value []byte) error {
	_, err := c.command(ctx, Command{Op: OpPut, Key: key, Value: value})
	return err
}

// Delete removes key and reports whether it existed.
func (c *Client) Delete(ctx context.Context, key []byte) (existed bool, err error) {
	r, err := c.command(ctx, Command{Op: OpDelete, Key: key})
	return r.Found, err
}

// CAS sets key to value if it currently holds expected, and reports whether
// it did. A key that is absent holds no value, not even an empty one: use
// CASAbsent for that.
func (c *Client) CAS(ctx context.Context, key, expected, value []byte) (swapped bool, err error) {
	r, err := c.command(ctx, Command{Op: OpCAS, Key: key, Expected: expected, Value: value})
	return err == nil && r.Status == StatusOK, err
}

// CASAbsent sets key to value if key is absent, and reports whether it did.
func (c *Client) CASAbsent(ctx context.Context, key, value []byte) (swapped bool, err error) {
	r, err := c.command(ctx, Command{Op: OpCAS, Key: key, ExpectAbsent: true, Value: value})
	return err == nil && r.Status == StatusOK, err
}

// Get returns key's value (which must not be modified) and whether it
// exists, by a linearizable read (Endpoint.Read): it reflects every command
// that completed before Get was called.
func (c *Client) Get(ctx context.Context, key []byte) (value []byte, found bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	r, _, err := c.send(ctx, now, c.deadline(now), AppendGetQuery(nil, key), true)
	if err != nil {
		return nil, false, fmt.Errorf("kv: get %q (client %d): %w", key, c.id, err)
	}
	if err := r.Err(); err != nil {
		return nil, false, fmt.Errorf("kv: get %q (client %d): %w", key, c.id, err)
	}
	return r.Value, r.Found, nil
}

// command runs one session command: it opens the session if needed, gives
// the command the next sequence number, and sends it until answered.
func (c *Client) command(ctx context.Context, cmd Command) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	deadline := c.deadline(now) // one for the command: session opening and renewal included
	for {
		if !c.open {
			if err := c.openSession(ctx, now, deadline); err != nil {
				return Result{}, fmt.Errorf("kv: %v %q: %w", cmd.Op, cmd.Key, err)
			}
			now = time.Now()
		}
		c.seq++
		cmd.ClientID, cmd.Seq = c.id, c.seq
		enc, err := AppendCommand(nil, cmd)
		if err != nil {
			return Result{}, fmt.Errorf("kv: %v %q: %w", cmd.Op, cmd.Key, err)
		}
		r, mayHaveApplied, err := c.send(ctx, now, deadline, enc, false)
		if err != nil {
			return Result{}, fmt.Errorf("kv: %v %q (client %d seq %d): %w", cmd.Op, cmd.Key, cmd.ClientID, cmd.Seq, err)
		}
		if r.Status == StatusSessionExpired {
			c.renew()
			if !mayHaveApplied {
				// Every earlier attempt was refused before reaching a
				// log, so nothing of this command ran: run it again
				// under the new session.
				now = time.Now()
				continue
			}
			return Result{}, fmt.Errorf("kv: %v %q (client %d seq %d): %w: %w",
				cmd.Op, cmd.Key, cmd.ClientID, cmd.Seq, ErrOutcomeUnknown, r.Err())
		}
		if err := r.Err(); err != nil {
			return Result{}, fmt.Errorf("kv: %v %q (client %d seq %d): %w", cmd.Op, cmd.Key, cmd.ClientID, cmd.Seq, err)
		}
		return r, nil
	}
}

// openSession sends the open command (seq 1). A retried or duplicated open
// is answered from the session like any retry, so it is safe to repeat.
func (c *Client) openSession(ctx context.Context, now, deadline time.Time) error {
	enc, err := AppendCommand(nil, Command{Op: OpOpen, ClientID: c.id, Seq: 1})
	if err != nil {
		return err
	}
	r, _, err := c.send(ctx, now, deadline, enc, false)
	if err != nil {
		return fmt.Errorf("open session for client %d: %w", c.id, err)
	}
	if err := r.Err(); err != nil {
		// Stale: this ID's session is already past seq 1, so another
		// client is using it — a caller-given ID that is not unique.
		return fmt.Errorf("open session for client %d (client IDs must be unique): %w", c.id, err)
	}
	c.open, c.seq = true, 1
	return nil
}

// renew drops an expired session: the next command opens a new one under a
// fresh ID.
func (c *Client) renew() {
	c.id, c.seq, c.open = randomID(), 0, false
}

// deadline is the end of a command begun at now: OpTimeout from now, or
// zero without one.
func (c *Client) deadline(now time.Time) time.Time {
	if c.opts.OpTimeout > 0 {
		return now.Add(c.opts.OpTimeout)
	}
	return time.Time{}
}

// send sends payload (a command, or a query if read) until some endpoint
// answers, ctx ends or the command's deadline (zero for none) passes. now
// is the time the caller read last, the first attempt's start: the clock
// is read once per attempt, as it costs ~100 ns on some virtual machines.
// mayHaveApplied reports whether any attempt ended in a way that leaves
// open whether the payload reached a log (anything but a not-leader or
// overloaded refusal, or an ErrNotSent).
//
// An endpoint whose attempt timed out (or failed without a verdict) is
// suspect: followers that have not noticed yet still name it as leader,
// and following them back would cost another whole attempt on a leader
// that may be gone. A hint to the suspect is therefore not followed until
// every other endpoint has been tried since; if they all still point at
// it, it is asked again.
func (c *Client) send(ctx context.Context, now, deadline time.Time, payload []byte, read bool) (r Result, mayHaveApplied bool, err error) {
	var lastErr error
	attempts, failures, redirects := 0, 0, 0
	s := suspicion{suspect: -1}
	for {
		if attempts > 0 {
			now = time.Now()
		}
		attempt := c.opts.AttemptTimeout
		if !deadline.IsZero() {
			attempt = min(attempt, deadline.Sub(now))
		}
		if ctx.Err() != nil || attempt <= 0 {
			return Result{}, mayHaveApplied, c.outcomeUnknown(ctx, attempts, lastErr)
		}
		s.tried(c.leader)
		ep := c.endpoints[c.leader]
		actx := c.attempts.begin(ctx, now, attempt)
		var v any
		if read {
			v, err = ep.Read(actx, payload)
		} else {
			v, err = ep.Propose(actx, payload)
		}
		c.attempts.end()
		attempts++
		if err == nil {
			r, ok := v.(Result)
			if !ok {
				return Result{}, mayHaveApplied, fmt.Errorf("endpoint %d answered a %T, not a kv.Result: is it running a kv.Store?", ep.ID(), v)
			}
			return r, mayHaveApplied, nil
		}
		lastErr = fmt.Errorf("endpoint %d: %w", ep.ID(), err)
		if errors.Is(err, node.ErrProposalTooLarge) || errors.Is(err, ErrBadEncoding) {
			// Permanent: no replica will take it. A proposal too large
			// is refused before it reaches the log.
			return Result{}, mayHaveApplied, lastErr
		}
		if errors.Is(err, node.ErrOverloaded) {
			// Refused before reaching the log: the leader's quorum is
			// behind. Back off and ask the same leader again.
			failures++
			if err := c.backoff(ctx, deadline, failures); err != nil {
				return Result{}, mayHaveApplied, c.outcomeUnknown(ctx, attempts, lastErr)
			}
			continue
		}
		var nle *node.NotLeaderError
		if errors.Is(err, ErrNotSent) {
			// Never left the client: try the next endpoint, and the
			// outcome stays known. The endpoint is suspect all the same:
			// followers may still name it as leader.
			redirects = 0
			s.suspectOf(c.leader, len(c.endpoints))
			c.next()
		} else if errors.As(err, &nle) {
			if i, known := c.byID[nle.Leader]; known && i != c.leader && !s.avoid(i, len(c.endpoints)) {
				c.leader = i
				redirects++
				if redirects == 1 {
					continue // a fresh hint: follow it at once
				}
				// Repeated hints: nodes disagree during an election;
				// pause like any failure.
			} else {
				c.nextAvoiding(&s)
			}
		} else {
			// Timeout, lost leadership, stopped node, or a transport
			// error: the leader may be gone, so try the next endpoint.
			mayHaveApplied = true
			redirects = 0
			s.suspectOf(c.leader, len(c.endpoints))
			c.next()
		}
		failures++
		if err := c.backoff(ctx, deadline, failures); err != nil {
			return Result{}, mayHaveApplied, c.outcomeUnknown(ctx, attempts, lastErr)
		}
	}
}

func (c *Client) next() { c.leader = (c.leader + 1) % len(c.endpoints) }

// nextAvoiding moves to the next endpoint, past the suspect while it is to
// be avoided.
func (c *Client) nextAvoiding(s *suspicion) {
	c.next()
	if s.avoid(c.leader, len(c.endpoints)) {
		c.next()
	}
}

// suspicion is one command's memory of the endpoint whose attempt last
// ended without a verdict, and of which others were tried since.
type suspicion struct {
	suspect int    // index of the endpoint, or -1
	since   []bool // since[i]: endpoint i was tried after the suspect's failure
	others  int    // how many distinct others that is
}

// suspectOf makes endpoint i the suspect, with nothing tried since.
func (s *suspicion) suspectOf(i, n int) {
	s.suspect, s.others = i, 0
	if s.since == nil {
		s.since = make([]bool, n)
	} else {
		clear(s.since)
	}
}

// tried records an attempt on endpoint i.
func (s *suspicion) tried(i int) {
	if s.suspect >= 0 && i != s.suspect && !s.since[i] {
		s.since[i] = true
		s.others++
	}
}

// avoid reports whether endpoint i is the suspect and some of the n-1
// others have not been tried since it failed.
func (s *suspicion) avoid(i, n int) bool { return i == s.suspect && s.others < n-1 }

// backoff pauses before the failures-th retry: MinBackoff doubled per
// failure, capped at MaxBackoff, with up to half of it taken off at random.
// It returns early with an error when ctx ends, and stops at the command's
// deadline (OpTimeout; zero for none), where the caller's next look at the
// time gives up.
func (c *Client) backoff(ctx context.Context, deadline time.Time, failures int) error {
	d := c.opts.MinBackoff
	for i := 1; i < failures && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	if half := d / 2; half > 0 {
		d = half + time.Duration(c.rng.Int64N(int64(half)+1))
	}
	if !deadline.IsZero() {
		if d = min(d, time.Until(deadline)); d <= 0 {
			return context.DeadlineExceeded
		}
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outcomeUnknown is the error of a command given up on: ctx ended, or its
// OpTimeout passed.
func (c *Client) outcomeUnknown(ctx context.Context, attempts int, lastErr error) error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = fmt.Errorf("OpTimeout %v passed: %w", c.opts.OpTimeout, context.DeadlineExceeded)
	}
	if lastErr == nil {
		return fmt.Errorf("%w: %w before any attempt", ErrOutcomeUnknown, cause)
	}
	return fmt.Errorf("%w: %w after %d attempts (last: %w)", ErrOutcomeUnknown, cause, attempts, lastErr)
}

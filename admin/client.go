package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/raftbench/raftbench/transport/fault"
)

// Errors an admin Client returns; every answer that is not a success is an
// *Error, which matches one of these with errors.Is.
var (
	// ErrUnauthorized: no token or the wrong one.
	ErrUnauthorized = errors.New("admin: unauthorized")
	// ErrBehind: /hash waited and the node has not applied the index yet.
	ErrBehind = errors.New("admin: node has not applied the index yet")
	// ErrMovedPast: /hash for an index the state has moved past; stop the
	// load and ask for the index every replica has applied.
	ErrMovedPast = errors.New("admin: state has moved past the index")
	// ErrNoHasher: the node's state machine cannot hash its state.
	ErrNoHasher = errors.New("admin: state machine cannot hash its state")
	// ErrNotLeader: a leader-only call went to a follower (Error.Leader
	// names the leader when known).
	ErrNotLeader = errors.New("admin: not the leader")
	// ErrStopped: the node has stopped.
	ErrStopped = errors.New("admin: node stopped")
	// ErrBadRequest: the call was refused as malformed.
	ErrBadRequest = errors.New("admin: bad request")
)

// Error is an admin API error answer.
type Error struct {
	// Status is the HTTP status; Reason the API's reason ("behind",
	// "moved-past", ...); Message the server's explanation.
	Status  int
	Reason  string
	Message string
	// Leader is who leads, for ErrNotLeader (0: unknown); Applied and
	// StateIndex where the node stood, for ErrBehind and ErrMovedPast.
	Leader, Applied, StateIndex uint64
}

func (e *Error) Error() string {
	return fmt.Sprintf("admin: HTTP %d (%s): %s", e.Status, e.Reason, e.Message)
}

// Is matches the sentinel of the error's reason.
func (e *Error) Is(target error) bool {
	switch e.Reason {
	case reasonUnauthorized:
		return target == ErrUnauthorized
	case reasonBehind:
		return target == ErrBehind
	case reasonMovedPast:
		return target == ErrMovedPast
	case reasonNoHasher:
		return target == ErrNoHasher
	case reasonNotLeader:
		return target == ErrNotLeader
	case reasonStopped:
		return target == ErrStopped
	case reasonBadRequest:
		return target == ErrBadRequest
	}
	return false
}

// Client calls one node's admin API. It is what a harness driving
// `raftbench node` processes (or a cluster someone else runs) uses for
// status, state hashes, faults and profiles. Safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the admin API at addr ("host:port", or a
// URL such as "https://host:7200"), authenticating with token when it is
// not empty. hc nil means a client with a 30 s timeout (a CPU profile
// asks for longer: give one of your own).
func NewClient(addr, token string, hc *http.Client) (*Client, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: admin address %q is not host:port or a URL", ErrInvalidConfig, addr)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), token: token, http: hc}, nil
}

// do sends a request and decodes a JSON answer into out (nil: discard).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	defer drainBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin: %s %s: answer does not decode: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	var eb errorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := json.Unmarshal(b, &eb); err != nil || eb.Reason == "" {
		eb = errorBody{Reason: "http", Message: strings.TrimSpace(string(b))}
	}
	return &Error{Status: resp.StatusCode, Reason: eb.Reason, Message: eb.Message, Leader: eb.Leader, Applied: eb.Applied, StateIndex: eb.StateIndex}
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/status", nil, &s)
	return s, err
}

// Hash returns the hash of the node's state at exactly index, waiting up to
// wait for the node to apply it (ErrBehind after that; ErrMovedPast when
// its state already holds a later command). index 0 asks for the state at
// whatever the node has applied.
func (c *Client) Hash(ctx context.Context, index uint64, wait time.Duration) (Hash, error) {
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	path := "/hash"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var h Hash
	err := c.do(ctx, http.MethodGet, path, nil, &h)
	return h, err
}

// Leadership returns the node's role, term and leader (cheap: poll it).
func (c *Client) Leadership(ctx context.Context) (Leadership, error) {
	var l Leadership
	err := c.do(ctx, http.MethodGet, "/leadership", nil, &l)
	return l, err
}

// Stats returns the node's counters and its process's.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.do(ctx, http.MethodGet, "/stats", nil, &s)
	return s, err
}

// State returns the node's state machine state at exactly index (its
// snapshot image; kv.Store's for raftbench node), by /hash's rule: waiting
// up to wait for the node to apply index (ErrBehind after that), and
// ErrMovedPast when the state already holds a later command. index 0 asks
// for the state at whatever the node has applied.
func (c *Client) State(ctx context.Context, index uint64, wait time.Duration) ([]byte, StateInfo, error) {
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	path := "/state"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var buf bytes.Buffer
	hdr, err := c.rawHeader(ctx, path, &buf)
	if err != nil {
		return nil, StateInfo{}, err
	}
	var info StateInfo
	for _, f := range []struct {
		name string
		v    *uint64
	}{{headerIndex, &info.Index}, {headerApplied, &info.Applied}, {headerStateIndex, &info.StateIndex}} {
		n, err := strconv.ParseUint(hdr.Get(f.name), 10, 64)
		if err != nil {
			return nil, StateInfo{}, fmt.Errorf("admin: GET %s: header %s %q is not an index", path, f.name, hdr.Get(f.name))
		}
		*f.v = n
	}
	return buf.Bytes(), info, nil
}

// Faults returns the faults in force on the node.
func (c *Client) Faults(ctx context.Context) (Faults, error) {
	var f Faults
	err := c.do(ctx, http.MethodGet, "/faults", nil, &f)
	return f, err
}

// Network applies one change to the node's partitions.
func (c *Client) Network(ctx context.Context, op NetworkOp) error {
	return c.do(ctx, http.MethodPost, "/faults/network", op, nil)
}

// Isolate cuts node id off from every other node, as this node sees it.
func (c *Client) Isolate(ctx context.Context, id uint64) error {
	return c.Network(ctx, NetworkOp{Op: "isolate", Node: id})
}

// Unisolate lifts an Isolate of id.
func (c *Client) Unisolate(ctx context.Context, id uint64) error {
	return c.Network(ctx, NetworkOp{Op: "unisolate", Node: id})
}

// Cut blocks messages from from to to (one way).
func (c *Client) Cut(ctx context.Context, from, to uint64) error {
	return c.Network(ctx, NetworkOp{Op: "cut", From: from, To: to})
}

// Uncut lifts a Cut.
func (c *Client) Uncut(ctx context.Context, from, to uint64) error {
	return c.Network(ctx, NetworkOp{Op: "uncut", From: from, To: to})
}

// Split partitions the nodes into groups that cannot reach each other.
func (c *Client) Split(ctx context.Context, groups ...[]uint64) error {
	return c.Network(ctx, NetworkOp{Op: "split", Groups: groups})
}

// HealNetwork removes every partition (rules and slow disk stay).
func (c *Client) HealNetwork(ctx context.Context) error {
	return c.Network(ctx, NetworkOp{Op: "heal"})
}

// SetRules sets the node's message faults (loss, duplication, reordering,
// delay).
func (c *Client) SetRules(ctx context.Context, r fault.Rules) error {
	return c.do(ctx, http.MethodPut, "/faults/rules", RulesOf(r), nil)
}

// SetDiskDelay makes every WAL save of the node sleep d first.
func (c *Client) SetDiskDelay(ctx context.Context, d time.Duration) error {
	return c.do(ctx, http.MethodPut, "/faults/disk", DiskFault{Delay: Duration(d)}, nil)
}

// Heal lifts every fault on the node: partitions, rules, slow disk.
func (c *Client) Heal(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/faults/heal", nil, nil)
}

// TransferLeadership asks the node (the leader) to hand leadership to to.
func (c *Client) TransferLeadership(ctx context.Context, to uint64) error {
	return c.do(ctx, http.MethodPost, "/transfer-leadership", Transfer{To: to}, nil)
}

// Members applies a membership change through the node (the leader).
func (c *Client) Members(ctx context.Context, op MemberOp) error {
	return c.do(ctx, http.MethodPost, "/members", op, nil)
}

// Snapshot makes the node take a snapshot now.
func (c *Client) Snapshot(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/snapshot", nil, nil)
}

// Metrics returns the node's metrics in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var buf bytes.Buffer
	if err := c.raw(ctx, "/metrics", &buf); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Profile writes the node's pprof profile name ("profile" for CPU, "heap",
// "mutex", "block", "goroutine", "trace", ...) to w; seconds > 0 asks for
// that long a window (CPU profile and trace). The Client's HTTP timeout
// must exceed it.
func (c *Client) Profile(ctx context.Context, name string, seconds int, w io.Writer) error {
	path := "/debug/pprof/" + url.PathEscape(name)
	if seconds > 0 {
		path += "?seconds=" + strconv.Itoa(seconds)
	}
	return c.raw(ctx, path, w)
}

func (c *Client) raw(ctx context.Context, path string, w io.Writer) error {
	_, err := c.rawHeader(ctx, path, w)
	return err
}

// rawHeader GETs path, copies the body of a success to w, and returns its
// header.
func (c *Client) rawHeader(ctx context.Context, path string, w io.Writer) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin: GET %s: %w", path, err)
	}
	defer drainBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return nil, fmt.Errorf("admin: GET %s: %w", path, err)
	}
	return resp.Header, nil
}

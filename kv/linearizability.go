package kv

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftbench/raftbench/node"
)

// This file is linearizability checking for the KV with porcupine. It is not
// test-only: the benchmark harness records histories of real clusters under
// faults and checks them too.

// ModelInput is a recorded operation's input, porcupine's Operation.Input.
type ModelInput struct {
	Op    Op // OpPut, OpGet, OpDelete or OpCAS
	Key   string
	Value string // put's value, cas's new value
	// Expected and ExpectAbsent are a CAS's condition.
	Expected     string
	ExpectAbsent bool
}

// ModelOutput is a recorded operation's output, porcupine's
// Operation.Output.
type ModelOutput struct {
	// Unknown marks an operation that ended without a definite answer: it
	// may have taken effect at any time after its call, or never. The
	// model then checks nothing about it and lets it take effect.
	Unknown bool
	// Found is a get's "the key has a value" and a delete's "it existed".
	Found bool
	// Value is a get's value.
	Value string
	// Swapped is a CAS's answer.
	Swapped bool
}

// modelState is one key's state (the model is partitioned by key). It is
// comparable, so porcupine's default == is the right equality.
type modelState struct {
	present bool
	value   string
}

// Model returns a porcupine model of the KV, partitioned by key: a history
// is linearizable if and only if each key's sub-history is, which keeps the
// (NP-hard) check fast for histories of many keys.
//
// An unknown outcome (ModelOutput.Unknown) is represented the way
// porcupine's author recommends for timed-out calls: the operation returns
// at time infinity (math.MaxInt64), so it may be linearized at any point
// after its call, including after everything else, i.e. as if it never
// happened; and the step function applies its effect without checking its
// output.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return modelState{} },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(modelState), input.(ModelInput), output.(ModelOutput)
			return modelStep(st, in, out)
		},
		Hash: func(state any) uint64 {
			st := state.(modelState)
			h := fnv.New64a()
			if st.present {
				h.Write([]byte{1})
			}
			h.Write([]byte(st.value))
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			return describeOperation(input.(ModelInput), output.(ModelOutput))
		},
		DescribeState: func(state any) string {
			if st := state.(modelState); st.present {
				return fmt.Sprintf("%q", st.value)
			}
			return "(absent)"
		},
	}
}

func modelStep(st modelState, in ModelInput, out ModelOutput) (bool, any) {
	switch in.Op {
	case OpPut:
		return true, modelState{present: true, value: in.Value}
	case OpGet:
		if out.Unknown {
			return true, st
		}
		return out.Found == st.present && out.Value == st.value, st
	case OpDelete:
		return out.Unknown || out.Found == st.present, modelState{}
	case OpCAS:
		match := !st.present
		if !in.ExpectAbsent {
			match = st.present && st.value == in.Expected
		}
		if !out.Unknown && out.Swapped != match {
			return false, st
		}
		if match {
			return true, modelState{present: true, value: in.Value}
		}
		return true, st
	}
	return false, st
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	index := make(map[string]int)
	var parts [][]porcupine.Operation
	for _, op := range history {
		k := op.Input.(ModelInput).Key
		i, ok := index[k]
		if !ok {
			i = len(parts)
			index[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

func describeOperation(in ModelInput, out ModelOutput) string {
	var call string
	switch in.Op {
	case OpPut:
		call = fmt.Sprintf("put(%q, %q)", in.Key, in.Value)
	case OpGet:
		call = fmt.Sprintf("get(%q)", in.Key)
	case OpDelete:
		call = fmt.Sprintf("delete(%q)", in.Key)
	case OpCAS:
		if in.ExpectAbsent {
			call = fmt.Sprintf("cas(%q, absent -> %q)", in.Key, in.Value)
		} else {
			call = fmt.Sprintf("cas(%q, %q -> %q)", in.Key, in.Expected, in.Value)
		}
	default:
		call = in.Op.String()
	}
	switch {
	case out.Unknown:
		return call + " -> ?"
	case in.Op == OpGet && out.Found:
		return fmt.Sprintf("%s -> %q", call, out.Value)
	case in.Op == OpGet:
		return call + " -> absent"
	case in.Op == OpDelete:
		return fmt.Sprintf("%s -> existed=%t", call, out.Found)
	case in.Op == OpCAS:
		return fmt.Sprintf("%s -> %t", call, out.Swapped)
	}
	return call
}

// UnknownReturn is the return time of an operation with an unknown outcome:
// infinity, for porcupine's purposes.
const UnknownReturn int64 = math.MaxInt64

// Recorder collects a history of operations from concurrent clients. Times
// are nanoseconds on the monotonic clock since NewRecorder, so they are
// comparable across goroutines and immune to wall-clock steps. It is safe
// for concurrent use.
type Recorder struct {
	start time.Time

	mu         sync.Mutex
	ops        []porcupine.Operation
	nextClient int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

func (r *Recorder) now() int64 { return time.Since(r.start).Nanoseconds() }

// Pending is an operation that has been called and not yet returned. Exactly
// one of End or Unknown must be called on it.
type Pending struct {
	r        *Recorder
	clientID int
	in       ModelInput
	call     int64
}

// Begin records the call of an operation by the given client (a small
// zero-based number, porcupine's ClientId: it picks the visualisation row).
// Call it just before sending the operation.
func (r *Recorder) Begin(clientID int, in ModelInput) *Pending {
	return &Pending{r: r, clientID: clientID, in: in, call: r.now()}
}

// End records a definite answer, taking the return time now. Call it as
// soon as the answer arrives.
func (p *Pending) End(out ModelOutput) {
	ret := p.r.now()
	if out.Unknown {
		ret = UnknownReturn
	}
	p.r.add(porcupine.Operation{ClientId: p.clientID, Input: p.in, Call: p.call, Output: out, Return: ret})
}

// Unknown records that the operation ended without a definite answer: it
// returns at infinity with an output the model does not check. An unknown
// get is dropped instead: it changed nothing and promised nothing.
func (p *Pending) Unknown() {
	if p.in.Op == OpGet {
		return
	}
	p.End(ModelOutput{Unknown: true})
}

func (r *Recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Operations returns a copy of the history so far.
func (r *Recorder) Operations() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// Check checks the history so far for linearizability against Model. A
// timeout of 0 means none; with one, the result may be porcupine.Unknown.
// The LinearizationInfo feeds Visualize.
func (r *Recorder) Check(timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(Model(), r.Operations(), timeout)
}

// Visualize writes porcupine's HTML visualisation of a check to path, or to
// a new temporary file when path is "", and returns the file's absolute
// path, for a failing test to print.
func Visualize(info porcupine.LinearizationInfo, path string) (string, error) {
	if path == "" {
		f, err := os.CreateTemp("", "kv-linearizability-*.html")
		if err != nil {
			return "", fmt.Errorf("kv: visualize: %w", err)
		}
		path = f.Name()
		if err := f.Close(); err != nil {
			return "", fmt.Errorf("kv: visualize: %w", err)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("kv: visualize: %w", err)
	}
	if err := porcupine.VisualizePath(Model(), info, abs); err != nil {
		return "", fmt.Errorf("kv: visualize to %s: %w", abs, err)
	}
	return abs, nil
}

// RecordingClient wraps a Client and records every operation in a Recorder,
// with an unknown outcome for every error that leaves the effect open (see
// ErrOutcomeUnknown) and nothing for a write that definitely did not apply.
type RecordingClient struct {
	c        *Client
	r        *Recorder
	clientID int
}

// NewRecordingClient wraps c; the recorder numbers the wrapped clients for
// the visualisation in the order they are wrapped.
func (r *Recorder) NewRecordingClient(c *Client) *RecordingClient {
	r.mu.Lock()
	id := r.nextClient
	r.nextClient++
	r.mu.Unlock()
	return &RecordingClient{c: c, r: r, clientID: id}
}

// Client returns the wrapped client.
func (rc *RecordingClient) Client() *Client { return rc.c }

// finish records p from err: a definite answer when err is nil, unknown
// when the outcome is open, nothing when the operation surely did not run.
func (rc *RecordingClient) finish(p *Pending, out ModelOutput, err error) {
	switch {
	case err == nil:
		p.End(out)
	case errors.Is(err, ErrOutcomeUnknown):
		p.Unknown()
	case errors.Is(err, ErrBadCommand), errors.Is(err, ErrBadEncoding),
		errors.Is(err, ErrStaleSequence), errors.Is(err, node.ErrProposalTooLarge):
		// Refused without running: nothing to record.
	default:
		// An error we cannot classify: assume the worst, that it may
		// have run, which can only make the check more permissive.
		p.Unknown()
	}
}

// Put is Client.Put, recorded.
func (rc *RecordingClient) Put(ctx context.Context, key, value []byte) error {
	p := rc.r.Begin(rc.clientID, ModelInput{Op: OpPut, Key: string(key), Value: string(value)})
	err := rc.c.Put(ctx, key, value)
	rc.finish(p, ModelOutput{}, err)
	return err
}

// Get is Client.Get, recorded.
func (rc *RecordingClient) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	p := rc.r.Begin(rc.clientID, ModelInput{Op: OpGet, Key: string(key)})
	v, found, err := rc.c.Get(ctx, key)
	rc.finish(p, ModelOutput{Found: found, Value: string(v)}, err)
	return v, found, err
}

// Delete is Client.Delete, recorded.
func (rc *RecordingClient) Delete(ctx context.Context, key []byte) (bool, error) {
	p := rc.r.Begin(rc.clientID, ModelInput{Op: OpDelete, Key: string(key)})
	existed, err := rc.c.Delete(ctx, key)
	rc.finish(p, ModelOutput{Found: existed}, err)
	return existed, err
}

// CAS is Client.CAS, recorded.
func (rc *RecordingClient) CAS(ctx context.Context, key, expected, value []byte) (bool, error) {
	p := rc.r.Begin(rc.clientID, ModelInput{Op: OpCAS, Key: string(key), Expected: string(expected), Value: string(value)})
	swapped, err := rc.c.CAS(ctx, key, expected, value)
	rc.finish(p, ModelOutput{Swapped: swapped}, err)
	return swapped, err
}

// CASAbsent is Client.CASAbsent, recorded.
func (rc *RecordingClient) CASAbsent(ctx context.Context, key, value []byte) (bool, error) {
	p := rc.r.Begin(rc.clientID, ModelInput{Op: OpCAS, Key: string(key), ExpectAbsent: true, Value: string(value)})
	swapped, err := rc.c.CASAbsent(ctx, key, value)
	rc.finish(p, ModelOutput{Swapped: swapped}, err)
	return swapped, err
}

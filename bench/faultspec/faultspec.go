// Package faultspec parses raftbench's fault grammar: the small language of
// the repeatable --fault flag that says what goes wrong during a run, and
// when.
//
// A fault is
//
//	NAME[:NODE][=VALUE][@AT[+FOR]]
//
// AT is when it starts, measured from the end of the warm-up; FOR is how long
// it lasts, after which it is undone (a killed node restarts, a partition
// heals, a rule is lifted). Events (kill, isolate, ...) need @AT; rules
// (loss, delay, ...) without @AT hold for the whole measured run.
//
// Events:
//
//	kill-leader@AT[+FOR]      stop the current leader (restart it after FOR)
//	kill:N@AT[+FOR]           stop node N
//	restart[:N]@AT            start node N again (without N: every stopped node)
//	partition-leader@AT[+FOR] cut the current leader off from every other node
//	isolate:N@AT[+FOR]        cut node N off from every other node
//	heal@AT                   remove every partition
//
// Durability events (see Crashes below):
//
//	crash-leader@AT[+FOR]     crash the current leader: everything it has not
//	                          synced is lost; it restarts from what remains
//	                          (at once, or after FOR)
//	crash:N@AT[+FOR]          crash node N
//	bitflip-wal:N@AT[+FOR]    stop node N, flip one bit of its live Pebble WAL
//	                          file, restart it (at once, or after FOR)
//	truncate-wal:N@AT[+FOR]   stop node N, cut its live WAL file short, restart
//
// Membership events (each one at a time, retried against whoever leads):
//
//	add-node@AT               start a new node that joins as a learner, is
//	                          added, and is promoted to voter once caught up
//	remove:N@AT               remove node N from the membership, then stop it
//	remove-leader@AT          hand leadership to a caught-up follower, then
//	                          remove the old leader and stop it
//	replace:N@AT              stop node N, start a new node and swap them in
//	                          one joint change (add the new voter, remove N)
//
// New nodes take the IDs after the initial ones in schedule order: with 3
// nodes, the first add-node or replace starts node 4, the next node 5, so
// later faults can name them (kill:4@8s).
//
// Rules (on node N's outgoing messages, or on every node's without :N):
//
//	loss=P        drop each message with probability P (0..1)
//	dup=P         send each message twice with probability P
//	reorder=P     hold each message back a little with probability P
//	delay=D[~J]   delay each message by D plus a uniform jitter in [0,J)
//	slow-disk=D   sleep D in every WAL save (node N's, or every node's)
//
// Crashes: a kill is a graceful stop (queued saves complete); a crash is
// the in-process equivalent of pulling the plug under Jepsen's lazyfs. The
// node's WAL must run on a filesystem that can lose what was not synced
// (the harness's --wal crashable); the crash keeps exactly the data synced
// before it, cuts the node off so nothing it does afterwards reaches a peer
// or a client, and restarts it on what remains. A node whose damaged WAL
// is refused (wal.ErrCorrupt) stays down, and the run says so; one that
// starts must have lost nothing it reported durable.
//
// Examples: kill-leader@5s, kill:2@5s+3s, restart@8s, partition-leader@10s+3s,
// isolate:3@4s+2s, loss=0.05, delay=2ms~1ms, dup=0.01@2s+2s, slow-disk=5ms@3s+4s,
// add-node@2s, remove:2@4s, remove-leader@6s, replace:1@8s, crash-leader@2s,
// crash:2@4s+1s, bitflip-wal:3@5s, truncate-wal:1@5s+2s.
package faultspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Grammar is the one-line summary of the grammar that every parse error
// carries, so a user sees what would have been accepted.
const Grammar = "NAME[:NODE][=VALUE][@AT[+FOR]] with events kill-leader, kill:N, restart[:N], partition-leader, isolate:N, heal, " +
	"crash-leader, crash:N, bitflip-wal:N, truncate-wal:N, add-node, remove:N, remove-leader, replace:N and rules loss=P, dup=P, reorder=P, delay=D[~J], slow-disk=D (e.g. kill-leader@5s+3s, isolate:3@4s+2s, delay=2ms~1ms)"

// ErrBadSpec is wrapped by every parse error.
var ErrBadSpec = errors.New("bad fault spec")

// Kind names a fault.
type Kind string

// The fault kinds.
const (
	KillLeader      Kind = "kill-leader"
	Kill            Kind = "kill"
	Restart         Kind = "restart"
	PartitionLeader Kind = "partition-leader"
	Isolate         Kind = "isolate"
	Heal            Kind = "heal"
	Loss            Kind = "loss"
	Dup             Kind = "dup"
	Reorder         Kind = "reorder"
	Delay           Kind = "delay"
	SlowDisk        Kind = "slow-disk"
	AddNode         Kind = "add-node"
	Remove          Kind = "remove"
	RemoveLeader    Kind = "remove-leader"
	Replace         Kind = "replace"
	CrashLeader     Kind = "crash-leader"
	Crash           Kind = "crash"
	BitflipWAL      Kind = "bitflip-wal"
	TruncateWAL     Kind = "truncate-wal"
)

// kinds describes each kind: whether it is a rule (lasts, has a value),
// whether it needs or forbids a node.
var kinds = map[Kind]struct {
	rule      bool
	needsNode bool
	noNode    bool
	noFor     bool
}{
	KillLeader:      {noNode: true},
	Kill:            {needsNode: true},
	Restart:         {noFor: true},
	PartitionLeader: {noNode: true},
	Isolate:         {needsNode: true},
	Heal:            {noNode: true, noFor: true},
	Loss:            {rule: true},
	Dup:             {rule: true},
	Reorder:         {rule: true},
	Delay:           {rule: true},
	SlowDisk:        {rule: true},
	AddNode:         {noNode: true, noFor: true},
	Remove:          {needsNode: true, noFor: true},
	RemoveLeader:    {noNode: true, noFor: true},
	Replace:         {needsNode: true, noFor: true},
	CrashLeader:     {noNode: true},
	Crash:           {needsNode: true},
	BitflipWAL:      {needsNode: true},
	TruncateWAL:     {needsNode: true},
}

// Fault is one parsed fault.
type Fault struct {
	// Spec is the text it was parsed from.
	Spec string `json:"spec"`
	Kind Kind   `json:"kind"`
	// Node is the node it targets; 0 means the leader (for *-leader), every
	// node (for rules), or every stopped node (for restart).
	Node uint64 `json:"node,omitempty"`
	// At is when it starts, from the end of the warm-up. For is how long it
	// lasts; 0 means until the end of the run.
	At  time.Duration `json:"at"`
	For time.Duration `json:"for,omitempty"`
	// Prob is the probability of loss, dup and reorder.
	Prob float64 `json:"prob,omitempty"`
	// Delay is delay's fixed part and slow-disk's sleep; Jitter delay's
	// random part.
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
}

// IsRule reports whether f is a rule (loss, dup, reorder, delay, slow-disk)
// rather than an event.
func (f Fault) IsRule() bool { return kinds[f.Kind].rule }

// IsMembership reports whether f changes the membership (add-node, remove,
// remove-leader, replace).
func (f Fault) IsMembership() bool {
	switch f.Kind {
	case AddNode, Remove, RemoveLeader, Replace:
		return true
	}
	return false
}

// StartsNode reports whether f starts a new node (add-node, replace), which
// takes the next free ID.
func (f Fault) StartsNode() bool { return f.Kind == AddNode || f.Kind == Replace }

// Parse parses one fault for a cluster whose node IDs are 1..nodes (the
// initial nodes and those the schedule will add).
func Parse(spec string, nodes int) (Fault, error) {
	f, err := parse(spec, nodes)
	if err != nil {
		return Fault{}, fmt.Errorf("%w %q: %v (grammar: %s)", ErrBadSpec, spec, err, Grammar)
	}
	return f, nil
}

func parse(spec string, nodes int) (Fault, error) {
	f := Fault{Spec: spec}
	rest := strings.TrimSpace(spec)
	if rest == "" {
		return f, errors.New("empty")
	}
	var when string
	hasAt := false
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, when, hasAt = rest[:i], rest[i+1:], true
	}
	var value string
	hasValue := false
	if i := strings.IndexByte(rest, '='); i >= 0 {
		rest, value, hasValue = rest[:i], rest[i+1:], true
	}
	name, target, hasTarget := strings.Cut(rest, ":")
	f.Kind = Kind(name)
	k, ok := kinds[f.Kind]
	if !ok {
		return f, fmt.Errorf("unknown fault %q", name)
	}
	if hasTarget {
		if k.noNode {
			return f, fmt.Errorf("%s takes no node", name)
		}
		id, err := strconv.ParseUint(target, 10, 64)
		if err != nil || id < 1 || id > uint64(nodes) {
			return f, fmt.Errorf("node %q is not a node ID between 1 and %d", target, nodes)
		}
		f.Node = id
	} else if k.needsNode {
		return f, fmt.Errorf("%s needs a node, as in %s:2", name, name)
	}
	if k.rule != hasValue {
		if k.rule {
			return f, fmt.Errorf("%s needs a value, as in %s", name, example(f.Kind))
		}
		return f, fmt.Errorf("%s takes no value", name)
	}
	if hasValue {
		if err := f.parseValue(value); err != nil {
			return f, err
		}
	}
	if !hasAt {
		if !k.rule {
			return f, fmt.Errorf("%s needs a time, as in %s@5s", name, rest)
		}
		return f, nil
	}
	at, dur, hasFor := strings.Cut(when, "+")
	var err error
	if f.At, err = parseDur(at, "time"); err != nil {
		return f, err
	}
	if hasFor {
		if k.noFor {
			return f, fmt.Errorf("%s takes no duration (+FOR)", name)
		}
		if f.For, err = parseDur(dur, "duration"); err != nil {
			return f, err
		}
		if f.For == 0 {
			return f, errors.New("duration after + must be positive")
		}
	}
	return f, nil
}

func (f *Fault) parseValue(v string) error {
	switch f.Kind {
	case Loss, Dup, Reorder:
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			return fmt.Errorf("%s=%s: want a probability between 0 and 1", f.Kind, v)
		}
		f.Prob = p
	case Delay:
		d, j, hasJ := strings.Cut(v, "~")
		var err error
		if f.Delay, err = parseDur(d, "delay"); err != nil {
			return err
		}
		if hasJ {
			if f.Jitter, err = parseDur(j, "jitter"); err != nil {
				return err
			}
		}
	case SlowDisk:
		var err error
		if f.Delay, err = parseDur(v, "disk delay"); err != nil {
			return err
		}
	}
	return nil
}

func parseDur(s, what string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q is not a non-negative duration like 5s or 200ms", what, s)
	}
	return d, nil
}

func example(k Kind) string {
	switch k {
	case Delay:
		return "delay=2ms~1ms"
	case SlowDisk:
		return "slow-disk=5ms"
	default:
		return string(k) + "=0.05"
	}
}

// Event is one change to apply at a point of the run: a fault starting
// (Undo false) or ending (Undo true).
type Event struct {
	At    time.Duration
	Fault Fault
	Undo  bool
}

// Schedule turns faults into their start and end events, in time order
// (stable: faults at the same time keep their order on the command line).
// Rules without a time start at 0 and never end.
func Schedule(faults []Fault) []Event {
	var evs []Event
	for _, f := range faults {
		evs = append(evs, Event{At: f.At, Fault: f})
		if f.For > 0 {
			evs = append(evs, Event{At: f.At + f.For, Fault: f, Undo: true})
		}
	}
	// Insertion sort keeps it stable and the lists are short.
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].At < evs[j-1].At; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	return evs
}

// NeedsRestart reports whether f restarts a node (restart itself, a kill
// with a duration, a crash, a WAL damage), which a memory WAL cannot
// survive.
func NeedsRestart(f Fault) bool {
	return f.Kind == Restart || ((f.Kind == Kill || f.Kind == KillLeader) && f.For > 0) || f.IsCrash() || f.DamagesWAL()
}

// IsCrash reports whether f is a crash (crash, crash-leader), which needs
// a WAL that can lose what was not synced.
func (f Fault) IsCrash() bool { return f.Kind == Crash || f.Kind == CrashLeader }

// DamagesWAL reports whether f damages a WAL file (bitflip-wal,
// truncate-wal), which needs a WAL with files.
func (f Fault) DamagesWAL() bool { return f.Kind == BitflipWAL || f.Kind == TruncateWAL }

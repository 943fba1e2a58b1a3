package faultspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Process faults act on the operating-system process of a node, so only a
// cluster of `raftbench node` processes (raftbench run --procs) can inject
// them; ParseProcess accepts them, Parse does not:
//
//	kill9:N@AT[+FOR]          SIGKILL node N's process (restart it from its
//	                          directory after FOR)
//	kill9-leader@AT[+FOR]     SIGKILL the current leader's process
//	pause:N@AT+FOR            SIGSTOP node N's process, SIGCONT after FOR
//	pause-leader@AT+FOR       SIGSTOP the current leader's process
//
// kill9 differs from kill: kill is a graceful node.Stop (queued saves
// complete), kill9 gives the process no chance to finish anything, so what
// the node wrote but did not fsync may be gone. A kill9 without FOR leaves
// the node down until a restart[:N]@AT or the end of the run. A pause
// needs FOR: a stopped process keeps its sockets open and its peers'
// connections half-alive, and the schedule must say when it resumes.
const (
	Kill9       Kind = "kill9"
	Kill9Leader Kind = "kill9-leader"
	Pause       Kind = "pause"
	PauseLeader Kind = "pause-leader"
)

// ProcessGrammar summarises the process faults, which error messages of
// ParseProcess add to Grammar.
const ProcessGrammar = "with --procs also kill9:N@AT[+FOR], kill9-leader@AT[+FOR], pause:N@AT+FOR, pause-leader@AT+FOR (e.g. kill9-leader@3s+2s, pause:2@4s+1500ms)"

// processKinds describes each process kind as kinds does the others.
var processKinds = map[Kind]struct {
	needsNode bool
	needsFor  bool
}{
	Kill9:       {needsNode: true},
	Kill9Leader: {},
	Pause:       {needsNode: true, needsFor: true},
	PauseLeader: {needsFor: true},
}

// IsProcess reports whether f is a process fault (kill9, kill9-leader,
// pause, pause-leader), which needs a cluster of node processes.
func (f Fault) IsProcess() bool {
	_, ok := processKinds[f.Kind]
	return ok
}

// IsProcessSpec reports whether spec names a process fault, well-formed or
// not, so that a run without --procs can answer "kill9 needs --procs"
// rather than "unknown fault".
func IsProcessSpec(spec string) bool {
	_, ok := processKinds[Kind(specName(spec))]
	return ok
}

// specName is the fault name of spec: what precedes ':', '=' and '@'.
func specName(spec string) string {
	s := strings.TrimSpace(spec)
	if i := strings.IndexAny(s, ":=@"); i >= 0 {
		s = s[:i]
	}
	return s
}

// ParseProcess parses one fault for a cluster of node processes with node
// IDs 1..nodes: a process fault, or any fault Parse accepts (which it
// parses exactly as Parse does).
func ParseProcess(spec string, nodes int) (Fault, error) {
	name := Kind(specName(spec))
	if _, ok := processKinds[name]; !ok {
		if _, ok := kinds[name]; !ok && strings.TrimSpace(spec) != "" {
			return Fault{}, fmt.Errorf("%w %q: unknown fault %q (grammar: %s; %s)", ErrBadSpec, spec, name, Grammar, ProcessGrammar)
		}
		return Parse(spec, nodes)
	}
	f, err := parseProcess(spec, nodes)
	if err != nil {
		return Fault{}, fmt.Errorf("%w %q: %v (grammar: %s; %s)", ErrBadSpec, spec, err, Grammar, ProcessGrammar)
	}
	return f, nil
}

// parseProcess parses a spec whose name is a process kind.
func parseProcess(spec string, nodes int) (Fault, error) {
	f := Fault{Spec: spec}
	rest := strings.TrimSpace(spec)
	rest, when, hasAt := strings.Cut(rest, "@")
	if strings.Contains(rest, "=") {
		name, _, _ := strings.Cut(rest, "=")
		return f, fmt.Errorf("%s takes no value", name)
	}
	name, target, hasTarget := strings.Cut(rest, ":")
	f.Kind = Kind(name)
	k := processKinds[f.Kind]
	switch {
	case hasTarget && !k.needsNode:
		return f, fmt.Errorf("%s takes no node (it picks the leader when it fires)", name)
	case hasTarget:
		id, err := strconv.ParseUint(target, 10, 64)
		if err != nil || id < 1 || id > uint64(nodes) {
			return f, fmt.Errorf("node %q is not a node ID between 1 and %d", target, nodes)
		}
		f.Node = id
	case k.needsNode:
		return f, fmt.Errorf("%s needs a node, as in %s:2", name, name)
	}
	if !hasAt {
		return f, fmt.Errorf("%s needs a time, as in %s", name, processExample(f.Kind))
	}
	at, dur, hasFor := strings.Cut(when, "+")
	var err error
	if f.At, err = parseDur(at, "time"); err != nil {
		return f, err
	}
	if !hasFor {
		if k.needsFor {
			return f, fmt.Errorf("%s needs a duration after which the process resumes, as in %s", name, processExample(f.Kind))
		}
		return f, nil
	}
	if f.For, err = parseDur(dur, "duration"); err != nil {
		return f, err
	}
	if f.For == 0 {
		return f, errors.New("duration after + must be positive")
	}
	return f, nil
}

func processExample(k Kind) string {
	switch k {
	case Kill9:
		return "kill9:2@5s or kill9:2@5s+3s"
	case Kill9Leader:
		return "kill9-leader@5s or kill9-leader@5s+3s"
	case Pause:
		return "pause:2@5s+2s"
	default:
		return "pause-leader@5s+2s"
	}
}

// ProcessNeedsRestart reports whether f restarts a node from its directory:
// what NeedsRestart says, and a kill9 with a duration. A memory WAL cannot
// survive either.
func ProcessNeedsRestart(f Fault) bool {
	return NeedsRestart(f) || ((f.Kind == Kill9 || f.Kind == Kill9Leader) && f.For > 0)
}

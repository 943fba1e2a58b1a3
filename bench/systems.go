package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/raftbench/raftbench/bench/faultspec"
)

// The registry of systems --system selects.
var (
	systemsMu sync.Mutex
	systems   = map[string]System{}
)

// ErrSystem is wrapped by RegisterSystem's errors.
var ErrSystem = errors.New("bench: bad system")

// RegisterSystem makes s selectable by --system s.Name. A module that runs
// another Raft library under the harness calls it (from an init function
// or before Run) and then drives the harness as raftbench's CLI does.
func RegisterSystem(s System) error {
	switch {
	case s.Name == "" || strings.ContainsAny(s.Name, " \t\n,=/"):
		return fmt.Errorf("%w: name %q (want a plain word)", ErrSystem, s.Name)
	case s.Start == nil:
		return fmt.Errorf("%w: %s has no Start", ErrSystem, s.Name)
	}
	systemsMu.Lock()
	defer systemsMu.Unlock()
	if _, dup := systems[s.Name]; dup {
		return fmt.Errorf("%w: %s is registered already", ErrSystem, s.Name)
	}
	systems[s.Name] = s
	return nil
}

// LookupSystem returns the system registered as name.
func LookupSystem(name string) (System, bool) {
	systemsMu.Lock()
	defer systemsMu.Unlock()
	s, ok := systems[name]
	return s, ok
}

// SystemNames lists the registered systems, raftbench first.
func SystemNames() []string {
	systemsMu.Lock()
	defer systemsMu.Unlock()
	var names []string
	for n := range systems {
		if n != DefaultSystem {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return append([]string{DefaultSystem}, names...)
}

func init() {
	if err := RegisterSystem(System{
		Name:  DefaultSystem,
		Doc:   "raftbench's own nodes: in this process, as `raftbench node` processes (--procs), or a cluster someone else runs (--cluster)",
		Start: startRaftbench,
	}); err != nil {
		panic(err) // a programming error: the registry is empty at init
	}
}

// startRaftbench starts raftbench's own target of cfg's mode.
func startRaftbench(ctx context.Context, cfg *Config, env Env) (Target, error) {
	switch cfg.Mode() {
	case ModeProcs:
		return startProcs(ctx, cfg, env)
	case ModeCluster:
		return startRemote(ctx, cfg, env)
	}
	return startInProcess(cfg, env)
}

// checkModeFault reports whether raftbench's target of mode can inject f:
// the same answer its CheckFault gives, available before it starts.
func checkModeFault(cfg *Config, mode string, f faultspec.Fault) error {
	switch mode {
	case ModeProcs:
		return procsFault(cfg, f)
	case ModeCluster:
		return clusterFault(f)
	}
	return inProcessFault(f)
}

// remoteNode is one node of --cluster: its client API and admin
// addresses.
type remoteNode struct {
	ID            uint64
	Client, Admin string
}

// parseRemote parses --cluster and --admin, lists of ID=HOST:PORT naming
// the same nodes.
func parseRemote(clientList, adminList string) ([]remoteNode, error) {
	clients, err := parseAddrList("cluster", clientList)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(adminList) == "" {
		return nil, fmt.Errorf("--admin: missing: the end-of-run checks read every node's state through its admin endpoint; give --admin 1=HOST:PORT,... for the nodes of --cluster")
	}
	admins, err := parseAddrList("admin", adminList)
	if err != nil {
		return nil, err
	}
	var probs []string
	var nodes []remoteNode
	for _, id := range slices.Sorted(maps.Keys(clients)) {
		a, ok := admins[id]
		if !ok {
			probs = append(probs, fmt.Sprintf("--admin: has no entry for node %d of --cluster", id))
			continue
		}
		nodes = append(nodes, remoteNode{ID: id, Client: clients[id], Admin: a})
	}
	for id := range admins {
		if _, ok := clients[id]; !ok {
			probs = append(probs, fmt.Sprintf("--admin: node %d is not in --cluster", id))
		}
	}
	if len(probs) > 0 {
		slices.Sort(probs)
		return nil, errors.New(strings.Join(probs, "; "))
	}
	return nodes, nil
}

// parseAddrList parses ID=HOST:PORT,... for flag.
// MaxRemoteNodeID bounds the node IDs --cluster and --admin accept: the
// harness keeps a slot per ID up to the largest, so an ID is a size.
const MaxRemoteNodeID = 1<<16 - 1

func parseAddrList(flag, s string) (map[uint64]string, error) {
	m := map[uint64]string{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		idStr, addr, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("--%s: %q is not ID=HOST:PORT", flag, e)
		}
		id, err := strconv.ParseUint(idStr, 10, 64)
		if err != nil || id == 0 || id > MaxRemoteNodeID {
			return nil, fmt.Errorf("--%s: %q: %q is not a node ID from 1 to %d", flag, e, idStr, MaxRemoteNodeID)
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("--%s: %q: %q is not HOST:PORT", flag, e, addr)
		}
		if _, dup := m[id]; dup {
			return nil, fmt.Errorf("--%s: node %d is listed twice", flag, id)
		}
		m[id] = addr
	}
	return m, nil
}

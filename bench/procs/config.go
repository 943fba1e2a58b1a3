package procs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by every Config problem.
var ErrInvalidConfig = errors.New("procs: invalid config")

// IDPlaceholder is what DirTemplate replaces with the node's ID.
const IDPlaceholder = "{id}"

// Config says which node processes a Supervisor runs and how.
type Config struct {
	// Binary is the raftbench executable; each node runs `Binary node ...`.
	Binary string
	// ClusterID is every node's --cluster-id.
	ClusterID uint64
	// Dir is where the supervisor writes: each node's log
	// (node<ID>.log) and the admin token file. Created if missing.
	Dir string
	// DirTemplate is each node's data directory (--dir), IDPlaceholder
	// replaced by the node's ID; it must contain the placeholder when
	// there is more than one node. A template lets each node's WAL sit on
	// a device of its own (/mnt/disk{id}/raftbench). Default
	// Dir/node{id}.
	DirTemplate string
	// Nodes are the nodes, each with its addresses.
	Nodes []NodeSpec
	// Flags go to every node after the supervisor's own: the Raft knobs
	// as `raftbench node` flags ("--tick", "5ms", "--wal", "pebble", ...).
	// The flags the supervisor sets itself (ReservedFlags) are refused.
	Flags []string
	// Token is the admin token every node requires (passed in a file, so
	// it does not show in ps). Default: 32 random hex digits.
	Token string
	// IP is the path of the ip command, for nodes with a Netns. Default:
	// ip on PATH.
	IP string
	// Dial connects to the nodes' admin addresses (and is what clients of
	// their client API should use too). Default: a net.Dialer. Nodes in
	// network namespaces need netns.Net.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// LogLevel is each node's --log-level. Default "info".
	LogLevel string
	// ReadyTimeout bounds the wait for a node to serve and to be ready.
	// Default 30s.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it sends
	// SIGKILL. Default 15s (the node gives requests in progress 5s).
	StopTimeout time.Duration
	// KillTimeout is how long Kill9 waits for the exit after SIGKILL (a
	// process in the middle of a disk write dies when the write returns).
	// Default 15s.
	KillTimeout time.Duration
	// TailLines is how many of its last output lines an Exit carries.
	// Default 20.
	TailLines int
	// OnExit, when set, is called with every exit, from the goroutine
	// that reaped the process, after Exits has it and before anything
	// waiting on the exit returns (Kill9, Stop, the Restart of a node
	// that refuses to start). Until it returns the node still counts as
	// running, so it must not block for long nor act on that node.
	OnExit func(Exit)
}

// NodeSpec is one node.
type NodeSpec struct {
	// ID is the node's ID, non-zero.
	ID uint64
	// RaftAddr, ClientAddr and AdminAddr are host:port where the node's
	// peers, clients and the supervisor reach it; the node listens on
	// exactly these (--raft-addr, --client-addr, --admin-addr), never on
	// every interface.
	RaftAddr, ClientAddr, AdminAddr string
	// Netns is the network namespace the node runs in (through `ip netns
	// exec`); empty for this process's.
	Netns string
	// Flags go to this node only, after Config.Flags.
	Flags []string
}

// ReservedFlags are the `raftbench node` flags the supervisor sets from
// the Config; Config.Flags and NodeSpec.Flags may not give them.
var ReservedFlags = []string{
	"id", "id-from-hostname", "peers", "dir", "cluster-id", "raft-addr", "client-addr", "admin-addr",
	"admin-token", "admin-token-file", "log-level", "join", "config",
}

// EnsureDefaults fills zero fields with their defaults, and makes Binary
// absolute (exec would look a bare name up on PATH).
func (c *Config) EnsureDefaults() {
	if c.Binary != "" {
		if abs, err := filepath.Abs(c.Binary); err == nil {
			c.Binary = abs
		}
	}
	if c.DirTemplate == "" && c.Dir != "" {
		c.DirTemplate = filepath.Join(c.Dir, "node"+IDPlaceholder)
	}
	if c.IP == "" && slices.ContainsFunc(c.Nodes, func(n NodeSpec) bool { return n.Netns != "" }) {
		if p, err := exec.LookPath("ip"); err == nil {
			c.IP = p
		}
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 15 * time.Second
	}
	if c.KillTimeout == 0 {
		c.KillTimeout = 15 * time.Second
	}
	if c.TailLines == 0 {
		c.TailLines = 20
	}
}

// Validate reports every invalid field with its value and what is wanted.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	switch fi, err := os.Stat(c.Binary); {
	case c.Binary == "":
		bad("Binary is empty (the raftbench executable)")
	case err != nil:
		bad("Binary %s: %v", c.Binary, err)
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		bad("Binary %s is not an executable file", c.Binary)
	}
	if c.ClusterID == 0 {
		bad("ClusterID is 0, want a non-zero cluster ID")
	}
	if c.Dir == "" {
		bad("Dir is empty (where the logs go)")
	}
	if len(c.Nodes) == 0 {
		bad("no Nodes")
	}
	if len(c.Nodes) > 1 && !strings.Contains(c.DirTemplate, IDPlaceholder) {
		bad("DirTemplate %q has no %s, so every node would share one data directory", c.DirTemplate, IDPlaceholder)
	}
	ids := map[uint64]bool{}
	addrs := map[string]string{}
	netns := false
	for i, n := range c.Nodes {
		if n.ID == 0 {
			bad("Nodes[%d] has ID 0", i)
		} else if ids[n.ID] {
			bad("node %d is listed twice", n.ID)
		}
		ids[n.ID] = true
		for _, a := range []struct{ what, v string }{{"RaftAddr", n.RaftAddr}, {"ClientAddr", n.ClientAddr}, {"AdminAddr", n.AdminAddr}} {
			host, port, err := net.SplitHostPort(a.v)
			if err != nil || host == "" || port == "" {
				bad("node %d: %s %q is not host:port", n.ID, a.what, a.v)
				continue
			}
			key := n.Netns + " " + a.v
			if prev, dup := addrs[key]; dup {
				bad("node %d: %s %s is also %s", n.ID, a.what, a.v, prev)
			}
			addrs[key] = fmt.Sprintf("node %d's %s", n.ID, a.what)
		}
		if n.Netns != "" {
			netns = true
		}
		if err := checkFlags(n.Flags); err != nil {
			bad("node %d: Flags: %v", n.ID, err)
		}
	}
	if netns && c.IP == "" {
		bad("a node runs in a network namespace, and the ip command is not on PATH (install iproute2)")
	}
	if err := checkFlags(c.Flags); err != nil {
		bad("Flags: %v", err)
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		bad("Token contains white space")
	}
	for _, d := range []struct {
		what string
		v    time.Duration
	}{{"ReadyTimeout", c.ReadyTimeout}, {"StopTimeout", c.StopTimeout}, {"KillTimeout", c.KillTimeout}} {
		if d.v <= 0 {
			bad("%s %v, want > 0", d.what, d.v)
		}
	}
	if c.TailLines < 1 || c.TailLines > 1000 {
		bad("TailLines %d outside 1..1000", c.TailLines)
	}
	return errors.Join(errs...)
}

// checkFlags refuses the reserved flags, in every spelling ("--id 2",
// "--id=2", "-id").
func checkFlags(flags []string) error {
	var errs []string
	for _, f := range flags {
		name, ok := strings.CutPrefix(f, "-")
		if !ok {
			continue // a value
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		if slices.Contains(ReservedFlags, name) {
			errs = append(errs, fmt.Sprintf("--%s is set by the supervisor", name))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// dataDir is node id's data directory.
func (c *Config) dataDir(id uint64) string {
	return strings.ReplaceAll(c.DirTemplate, IDPlaceholder, strconv.FormatUint(id, 10))
}

// peers is the --peers value: every node as ID=RAFT/CLIENT.
func (c *Config) peers() string {
	var ps []string
	for _, n := range c.Nodes {
		ps = append(ps, fmt.Sprintf("%d=%s/%s", n.ID, n.RaftAddr, n.ClientAddr))
	}
	return strings.Join(ps, ",")
}

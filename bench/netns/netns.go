package netns

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prefix starts the name of every namespace this package creates; Sweep
// removes only names that carry it.
const Prefix = "raftbench-"

// MaxNodeID is the highest node ID a Net can hold: node N has the address
// .N of the run's /24, and the hub has .254.
const MaxNodeID = 250

// hubHost is the hub's host part in the run's /24.
const hubHost = 254

// runDir is where ip keeps the namespace names (iproute2's NETNS_RUN_DIR).
const runDir = "/var/run/netns"

// commandTimeout bounds one ip command, so a wedged one cannot hang a run.
const commandTimeout = 30 * time.Second

// Errors; each is wrapped with what it is about.
var (
	// ErrUnsupported: not Linux.
	ErrUnsupported = errors.New("netns: network namespaces need Linux")
	// ErrNotRoot: this process is not root.
	ErrNotRoot = errors.New("netns: creating network namespaces needs root")
	// ErrNoIP: the ip command (iproute2) is not on PATH.
	ErrNoIP = errors.New("netns: the ip command (iproute2) is not installed")
	// ErrInvalidConfig: a Config field is wrong.
	ErrInvalidConfig = errors.New("netns: invalid config")
	// ErrCommand: an ip command failed (the error carries its output).
	ErrCommand = errors.New("netns: ip command failed")
	// ErrUnknownNode: an ID the Net was not created with.
	ErrUnknownNode = errors.New("netns: unknown node")
	// ErrClosed: the Net was closed.
	ErrClosed = errors.New("netns: closed")
	// ErrBusy: Close found processes still running in a namespace.
	ErrBusy = errors.New("netns: namespace still has processes")
)

// Check reports whether this process can create namespaces here, with the
// reason when it cannot (ErrUnsupported, ErrNotRoot, ErrNoIP): what a
// harness asks before it starts anything, so --netns fails with one line.
func Check() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w (this is %s)", ErrUnsupported, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (CAP_SYS_ADMIN and CAP_NET_ADMIN): run as root, or run without --netns", ErrNotRoot)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: %v (install iproute2)", ErrNoIP, err)
	}
	return nil
}

// Config says which nodes a Net holds.
type Config struct {
	// Nodes are the node IDs, each 1..MaxNodeID, no two alike.
	Nodes []uint64
	// IP is the path of the ip command. Default: ip on PATH.
	IP string
}

// EnsureDefaults fills IP from PATH when it is empty.
func (c *Config) EnsureDefaults() {
	if c.IP == "" {
		if p, err := exec.LookPath("ip"); err == nil {
			c.IP = p
		}
	}
}

// Validate reports every invalid field with its value and limit.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Nodes) == 0 {
		errs = append(errs, fmt.Errorf("%w: no nodes", ErrInvalidConfig))
	}
	seen := map[uint64]bool{}
	for _, id := range c.Nodes {
		if id < 1 || id > MaxNodeID {
			errs = append(errs, fmt.Errorf("%w: node ID %d outside 1..%d", ErrInvalidConfig, id, MaxNodeID))
		}
		if seen[id] {
			errs = append(errs, fmt.Errorf("%w: node ID %d listed twice", ErrInvalidConfig, id))
		}
		seen[id] = true
	}
	if c.IP == "" {
		errs = append(errs, fmt.Errorf("%w: not on PATH and Config.IP is empty", ErrNoIP))
	}
	return errors.Join(errs...)
}

// Net is one run's namespaces, bridge and links. Its methods are safe for
// concurrent use.
type Net struct {
	ip     string
	tag    string
	subnet netip.Prefix
	hub    string
	names  map[uint64]string
	ids    []uint64

	// hubMu guards hubNS, the hub namespace open while the Net is, which
	// DialContext enters.
	hubMu sync.RWMutex
	hubNS *os.File

	mu       sync.Mutex
	created  []string // namespaces created, in order; Close removes them
	isolated map[uint64]bool
	cuts     map[[2]uint64]bool
	closed   bool
}

// New creates the namespaces, the bridge and the links of cfg.Nodes, with
// loopback and every link up. On any failure it removes what it created.
func New(cfg Config) (_ *Net, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("netns: random tag: %w", err)
	}
	r := binary.BigEndian.Uint32(b[:])
	n := &Net{
		ip:       cfg.IP,
		tag:      fmt.Sprintf("%d-%08x", os.Getpid(), r),
		subnet:   subnetOf(r),
		names:    map[uint64]string{},
		ids:      slices.Sorted(slices.Values(cfg.Nodes)),
		isolated: map[uint64]bool{},
		cuts:     map[[2]uint64]bool{},
	}
	n.hub = Prefix + n.tag + "-hub"
	for _, id := range n.ids {
		n.names[id] = fmt.Sprintf("%s%s-n%d", Prefix, n.tag, id)
	}
	defer func() {
		if err != nil {
			if cerr := n.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if err := n.addNamespace(n.hub); err != nil {
		return nil, err
	}
	if err := n.batch(n.hub,
		"link set lo up",
		"link add br0 type bridge",
		fmt.Sprintf("addr add %s/24 dev br0", n.HubAddr()),
		"link set br0 up",
	); err != nil {
		return nil, err
	}
	for _, id := range n.ids {
		name := n.names[id]
		if err := n.addNamespace(name); err != nil {
			return nil, err
		}
		// The veth is made in the hub with its other end placed straight
		// in the node's namespace: neither end ever exists in ours.
		if err := n.batch(n.hub,
			fmt.Sprintf("link add %s type veth peer name eth0 netns %s", port(id), name),
			fmt.Sprintf("link set %s master br0", port(id)),
			fmt.Sprintf("link set %s up", port(id)),
		); err != nil {
			return nil, err
		}
		addr, _ := n.Addr(id)
		if err := n.batch(name,
			"link set lo up",
			fmt.Sprintf("addr add %s/24 dev eth0", addr),
			"link set eth0 up",
			// The sink Cut routes a peer to: sink1 stays down, so
			// whatever sink0 sends is dropped. arp off: nothing waits on
			// a neighbour that cannot answer.
			"link add sink0 type veth peer name sink1",
			"link set sink0 arp off",
			"link set sink0 up",
		); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(filepath.Join(runDir, n.hub))
	if err != nil {
		return nil, fmt.Errorf("netns: open hub namespace: %w", err)
	}
	n.hubMu.Lock()
	n.hubNS = f
	n.hubMu.Unlock()
	return n, nil
}

// subnetOf picks one /24 of 198.18.0.0/15 from r.
func subnetOf(r uint32) netip.Prefix {
	k := r % 512
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, byte(18 + k/256), byte(k % 256), 0}), 24)
}

// port is the name of node id's bridge port in the hub.
func port(id uint64) string { return "n" + strconv.FormatUint(id, 10) }

// addNamespace creates namespace name and records it for Close.
func (n *Net) addNamespace(name string) error {
	if err := n.run(nil, "netns", "add", name); err != nil {
		return err
	}
	n.mu.Lock()
	n.created = append(n.created, name)
	n.mu.Unlock()
	return nil
}

// batch runs ip commands inside namespace ns, in one ip process.
func (n *Net) batch(ns string, cmds ...string) error {
	return n.run(strings.NewReader(strings.Join(cmds, "\n")+"\n"), "-n", ns, "-batch", "-")
}

// run runs ip with args (stdin, when not nil, feeds -batch -).
func (n *Net) run(stdin *strings.Reader, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.ip, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		what := "ip " + strings.Join(args, " ")
		if stdin != nil {
			what += " <<" + strings.ReplaceAll(strings.TrimSpace(readAll(stdin)), "\n", "; ")
		}
		return fmt.Errorf("%w: %s: %v: %s", ErrCommand, what, err, strings.Join(strings.Fields(string(out)), " "))
	}
	return nil
}

func readAll(r *strings.Reader) string {
	_, _ = r.Seek(0, 0)
	var b strings.Builder
	_, _ = r.WriteTo(&b)
	return b.String()
}

// Subnet is the run's /24.
func (n *Net) Subnet() netip.Prefix { return n.subnet }

// HubAddr is the hub's address, where the sockets of DialContext come
// from.
func (n *Net) HubAddr() netip.Addr {
	a := n.subnet.Addr().As4()
	a[3] = hubHost
	return netip.AddrFrom4(a)
}

// Addr is node id's address (on eth0 in its namespace).
func (n *Net) Addr(id uint64) (netip.Addr, error) {
	if _, ok := n.names[id]; !ok {
		return netip.Addr{}, fmt.Errorf("%w %d", ErrUnknownNode, id)
	}
	a := n.subnet.Addr().As4()
	a[3] = byte(id)
	return netip.AddrFrom4(a), nil
}

// Namespace is the name of node id's namespace: a process runs in it
// through `ip netns exec NAME command...`.
func (n *Net) Namespace(id uint64) (string, error) {
	name, ok := n.names[id]
	if !ok {
		return "", fmt.Errorf("%w %d", ErrUnknownNode, id)
	}
	return name, nil
}

// HubNamespace is the name of the hub's namespace.
func (n *Net) HubNamespace() string { return n.hub }

// Names are every namespace the Net created and has not removed.
func (n *Net) Names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.created)
}

// Nodes are the node IDs, in order.
func (n *Net) Nodes() []uint64 { return slices.Clone(n.ids) }

// check returns ErrClosed or ErrUnknownNode for ids; n.mu is held.
func (n *Net) check(ids ...uint64) error {
	if n.closed {
		return ErrClosed
	}
	for _, id := range ids {
		if _, ok := n.names[id]; !ok {
			return fmt.Errorf("%w %d (the Net holds %v)", ErrUnknownNode, id, n.ids)
		}
	}
	return nil
}

// Isolate cuts node id off from everyone, its peers and the hub: its
// bridge port goes down, so its link loses carrier and drops every packet.
// Isolating an isolated node does nothing.
func (n *Net) Isolate(id uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(id); err != nil {
		return err
	}
	if n.isolated[id] {
		return nil
	}
	if err := n.batch(n.hub, fmt.Sprintf("link set %s down", port(id))); err != nil {
		return fmt.Errorf("netns: isolate node %d: %w", id, err)
	}
	n.isolated[id] = true
	return nil
}

// Unisolate ends an Isolate of id (cuts of its pairs stay).
func (n *Net) Unisolate(id uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(id); err != nil {
		return err
	}
	return n.unisolate(id)
}

func (n *Net) unisolate(id uint64) error {
	if !n.isolated[id] {
		return nil
	}
	if err := n.batch(n.hub, fmt.Sprintf("link set %s up", port(id))); err != nil {
		return fmt.Errorf("netns: unisolate node %d: %w", id, err)
	}
	delete(n.isolated, id)
	return nil
}

// Isolated are the isolated nodes, in order.
func (n *Net) Isolated() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []uint64
	for id := range n.isolated {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func pairOf(a, b uint64) [2]uint64 { return [2]uint64{min(a, b), max(a, b)} }

// Cut drops every packet between nodes a and b, both ways; each still
// reaches every other node and the hub. Cutting a cut pair does nothing.
func (n *Net) Cut(a, b uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(a, b); err != nil {
		return err
	}
	if a == b {
		return fmt.Errorf("%w: cut of node %d from itself", ErrInvalidConfig, a)
	}
	p := pairOf(a, b)
	if n.cuts[p] {
		return nil
	}
	if err := n.route("add", a, b); err != nil {
		return fmt.Errorf("netns: cut %d-%d: %w", a, b, err)
	}
	if err := n.route("add", b, a); err != nil {
		// Not half a cut: take the first route back.
		return errors.Join(fmt.Errorf("netns: cut %d-%d: %w", a, b, err), n.route("del", a, b))
	}
	n.cuts[p] = true
	return nil
}

// Uncut ends a Cut of a and b.
func (n *Net) Uncut(a, b uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(a, b); err != nil {
		return err
	}
	return n.uncut(pairOf(a, b))
}

func (n *Net) uncut(p [2]uint64) error {
	if !n.cuts[p] {
		return nil
	}
	// Both routes, even when one fails; the pair counts as cut until both
	// are gone, so Heal tries again.
	if err := errors.Join(n.route("del", p[0], p[1]), n.route("del", p[1], p[0])); err != nil {
		if !n.routeExists(p[0], p[1]) && !n.routeExists(p[1], p[0]) {
			delete(n.cuts, p)
		}
		return fmt.Errorf("netns: uncut %d-%d: %w", p[0], p[1], err)
	}
	delete(n.cuts, p)
	return nil
}

// Cuts are the cut pairs, each as {lower ID, higher ID}, in order.
func (n *Net) Cuts() [][2]uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ps [][2]uint64
	for p := range n.cuts {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(x, y [2]uint64) int {
		return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1]))
	})
	return ps
}

// route adds or deletes, in from's namespace, the sink route to to.
func (n *Net) route(op string, from, to uint64) error {
	addr, _ := n.Addr(to)
	return n.batch(n.names[from], fmt.Sprintf("route %s %s/32 dev sink0", op, addr))
}

// routeExists reports whether from's namespace still routes to to through
// the sink (false also when it cannot tell).
func (n *Net) routeExists(from, to uint64) bool {
	addr, _ := n.Addr(to)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.ip, "-n", n.names[from], "route", "show", addr.String()+"/32", "dev", "sink0").Output()
	return err == nil && strings.TrimSpace(string(out)) != ""
}

// Heal ends every Isolate and Cut. It tries them all and reports every
// one that failed.
func (n *Net) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	for id := range n.isolated {
		errs = append(errs, n.unisolate(id))
	}
	for p := range n.cuts {
		errs = append(errs, n.uncut(p))
	}
	return errors.Join(errs...)
}

// DialContext dials addr ("IP:port", the IP a literal) from the hub
// namespace, as a clientapi.Options.Dial or an http.Transport's
// DialContext: the connection's socket lives in the hub, so it reaches
// every node that is not isolated.
func (n *Net) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(addr); err != nil {
		// A name would be resolved by goroutines outside the namespace.
		return nil, fmt.Errorf("netns: dial %s: want IP:port, the IP a literal: %w", addr, err)
	}
	// The read lock keeps Close from closing the namespace file before
	// the dialling thread has entered it; it is let go before the dial
	// itself, which may take long.
	n.hubMu.RLock()
	if n.hubNS == nil {
		n.hubMu.RUnlock()
		return nil, fmt.Errorf("netns: dial %s: %w", addr, ErrClosed)
	}
	var c net.Conn
	entered := false
	err := within(n.hubNS, func() error {
		n.hubMu.RUnlock()
		entered = true
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if !entered {
		n.hubMu.RUnlock()
	}
	return c, err
}

// Close removes every namespace the Net created (which takes their links
// and the bridge with them), trying them all; it reports any that still
// held processes (their namespace lives on, unnamed, until they exit) and
// any removal that failed. Stop the processes and close the connections
// made through DialContext first. Close is idempotent.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	n.hubMu.Lock()
	if n.hubNS != nil {
		errs = append(errs, n.hubNS.Close())
		n.hubNS = nil
	}
	n.hubMu.Unlock()
	for i := len(n.created) - 1; i >= 0; i-- {
		name := n.created[i]
		if pids := n.pids(name); len(pids) > 0 {
			errs = append(errs, fmt.Errorf("%w: %s holds processes %v; its name is removed, the namespace ends when they exit", ErrBusy, name, pids))
		}
		if err := n.run(nil, "netns", "del", name); err != nil {
			errs = append(errs, err)
			continue
		}
		n.created = slices.Delete(n.created, i, i+1)
	}
	return errors.Join(errs...)
}

// pids are the processes running in namespace name (none when it cannot
// tell).
func (n *Net) pids(name string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.ip, "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

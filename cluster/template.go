package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/transport"
	"github.com/raftbench/raftbench/transport/quic"
	"github.com/raftbench/raftbench/transport/tcp"
	"github.com/raftbench/raftbench/wal"
)

// Sentinel errors; each is wrapped with the detail, test with errors.Is.
var (
	// ErrInvalidTemplate is wrapped by every problem Template.Validate
	// finds, including an unknown transport or WAL name.
	ErrInvalidTemplate = errors.New("cluster: invalid template")
	// ErrInvalidSpec is wrapped by every problem with a NodeSpec or with
	// cluster Options.
	ErrInvalidSpec = errors.New("cluster: invalid node spec")
)

// Template is what every node of a cluster shares: the node.Config knobs,
// the transport and WAL chosen by name, and the state machine. A node is
// built from it plus a NodeSpec (its ID, peers, address and directory), so
// the in-process Cluster, the tests and `raftbench node` all wire a node the
// same way.
type Template struct {
	// ClusterID is exchanged in every transport handshake (and the client
	// API's): nodes of another cluster are refused. Zero is allowed, but
	// then every zero-ID cluster matches.
	ClusterID uint64
	// Transport names the transport between nodes: one of TransportNames.
	// Default "tcp".
	Transport string
	// WAL names the write-ahead log: one of WALNames. Default "pebble".
	WAL string
	// OpenWAL, when set, opens each node's log in place of the named WAL's
	// own opener; the name still says whether the log survives a restart
	// and whether it lives in the data directory (dir is its wal/
	// subdirectory then, "" otherwise). A harness uses it to keep per-node
	// state across restarts, such as a filesystem that can lose what was
	// not synced.
	OpenWAL func(id uint64, dir string) (wal.Log, error)
	// Pebble configures the Pebble WAL (memtable size, and a FS for tests);
	// other WALs ignore it.
	Pebble wal.PebbleOptions
	// Wire holds the transport settings every transport shares (queue
	// length, timeouts, snapshot chunking). ID and ClusterID are set per
	// node; MaxFrameSize is raised to FrameSize(Node.MaxSizePerMsg) when it
	// is lower, so a full AppendEntries always fits.
	Wire transport.Options
	// TLS, when set, makes the transport use these certificate files (QUIC
	// generates a self-signed certificate without them; TCP runs in clear).
	TLS *transport.TLSFiles

	// Snapshots gives every node a snapshot directory (snap/ in its data
	// directory), so it can take snapshots on demand and install the
	// leader's. It is implied when Node.SnapshotEntries or
	// Node.SnapshotBytes is set. The state machine must then be a
	// node.Snapshotter.
	Snapshots bool

	// Node is the template of every node's Config: ticks, election and
	// heartbeat, batching, flow control, pre-vote, check-quorum, sync,
	// snapshot policy, logger. The per-node fields (ID, Peers, Transport,
	// Log, StateMachine, SnapshotDir, JoinAsLearner) must be left zero: the
	// NodeSpec decides them. Seed is not a node's seed but the cluster's:
	// each node's is derived from it, its ID and its incarnation (see
	// NodeSeed), so runs with one seed repeat.
	Node node.Config

	// NewStateMachine makes node id's state machine, fresh on every start
	// (a restarted node rebuilds its state from its snapshot and log).
	// Default: an empty kv.Store with default options.
	NewStateMachine func(id uint64) (node.StateMachine, error)

	// Logger receives the transports' connection events. nil discards
	// them. (The nodes log to Node.Logger.)
	Logger *slog.Logger
}

// Transport and WAL names.
const (
	TransportTCP  = "tcp"
	TransportQUIC = "quic"
	WALPebble     = "pebble"
	WALMemory     = "memory"
)

// transportKind builds one named transport.
type transportKind struct {
	name string
	open func(opts transport.Options, listen string, tls *transport.TLSFiles) (transport.Transport, error)
}

// transportKinds lists every transport Template.Transport may name, default
// first.
var transportKinds = []transportKind{
	{TransportTCP, func(o transport.Options, listen string, tls *transport.TLSFiles) (transport.Transport, error) {
		return tcp.New(tcp.Config{Options: o, ListenAddr: listen, TLS: tls})
	}},
	{TransportQUIC, func(o transport.Options, listen string, tls *transport.TLSFiles) (transport.Transport, error) {
		return quic.New(quic.Config{Options: o, ListenAddr: listen, TLS: tls})
	}},
}

// walKind opens one named kind of log.
//
// A new kind (a crashable log for fault injection, say) is one more entry
// here. open gets the node's ID and its WAL directory ("" when the kind
// does not use one); a kind that must keep state across a node's restarts
// (a filesystem that survives the process, say) keeps it keyed by that
// directory.
type walKind struct {
	name string
	// durable: the log survives a restart of its node. Faults that restart
	// a node need it.
	durable bool
	// usesDir: the log lives in the node's data directory (wal/).
	usesDir bool
	open    func(id uint64, dir string, t *Template) (wal.Log, error)
}

// walKinds lists every WAL Template.WAL may name, default first.
var walKinds = []walKind{
	{WALPebble, true, true, func(_ uint64, dir string, t *Template) (wal.Log, error) {
		return wal.OpenPebble(dir, t.Pebble)
	}},
	{WALMemory, false, false, func(uint64, string, *Template) (wal.Log, error) {
		return wal.NewMemory(), nil
	}},
}

// TransportNames lists the names Template.Transport accepts, default first.
func TransportNames() []string {
	names := make([]string, len(transportKinds))
	for i, k := range transportKinds {
		names[i] = k.name
	}
	return names
}

// WALNames lists the names Template.WAL accepts, default first.
func WALNames() []string {
	names := make([]string, len(walKinds))
	for i, k := range walKinds {
		names[i] = k.name
	}
	return names
}

func (t *Template) transportKind() (transportKind, bool) {
	name := t.Transport
	if name == "" {
		return transportKinds[0], true
	}
	i := slices.IndexFunc(transportKinds, func(k transportKind) bool { return k.name == name })
	if i < 0 {
		return transportKind{}, false
	}
	return transportKinds[i], true
}

func (t *Template) walKind() (walKind, bool) {
	name := t.WAL
	if name == "" {
		return walKinds[0], true
	}
	i := slices.IndexFunc(walKinds, func(k walKind) bool { return k.name == name })
	if i < 0 {
		return walKind{}, false
	}
	return walKinds[i], true
}

// Durable reports whether the template's WAL survives a restart of its
// node, which faults that restart nodes need.
func (t *Template) Durable() bool {
	k, ok := t.walKind()
	return ok && k.durable
}

// snapshots reports whether nodes get a snapshot directory.
func (t *Template) snapshots() bool {
	return t.Snapshots || t.Node.SnapshotEntries > 0 || t.Node.SnapshotBytes > 0
}

// NeedsDir reports whether a node of this template keeps anything on disk
// (a durable WAL or snapshots), so a NodeSpec must name a data directory.
func (t *Template) NeedsDir() bool {
	k, ok := t.walKind()
	return (ok && k.usesDir) || t.snapshots()
}

// frameOverhead is what an AppendEntries frame carries beside its entries'
// data: the header and, per entry, term, index and type varints. 1 MiB
// covers tens of thousands of entries' headers.
const frameOverhead = 1 << 20

// FrameSize is the maximum transport frame a cluster needs for appends of
// up to maxSizePerMsg entry bytes (node.Config.MaxSizePerMsg; 0 means its
// default): core fills a message up to that limit and may add one more
// entry, itself at most maxSizePerMsg (a larger proposal is refused), so a
// message holds less than twice the limit plus its headers. It is never
// below transport.DefaultMaxFrameSize.
func FrameSize(maxSizePerMsg uint64) int {
	if maxSizePerMsg == 0 {
		maxSizePerMsg = node.DefaultMaxSizePerMsg
	}
	need := 2*maxSizePerMsg + frameOverhead
	if need > transport.MaxMaxFrameSize {
		need = transport.MaxMaxFrameSize
	}
	return max(transport.DefaultMaxFrameSize, int(need))
}

// Validate reports every problem with the template, joined into one error
// wrapping ErrInvalidTemplate: an unknown transport or WAL (naming the
// valid ones), per-node fields set in Node, and whatever node.Config's own
// validation finds in the shared knobs.
func (t *Template) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTemplate}, args...)...))
	}
	if _, ok := t.transportKind(); !ok {
		bad("unknown transport %q, want one of %s", t.Transport, strings.Join(TransportNames(), ", "))
	}
	if _, ok := t.walKind(); !ok {
		bad("unknown WAL %q, want one of %s", t.WAL, strings.Join(WALNames(), ", "))
	}
	n := t.Node
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"ID", n.ID != 0}, {"Peers", n.Peers != nil}, {"Transport", n.Transport != nil}, {"Log", n.Log != nil},
		{"StateMachine", n.StateMachine != nil}, {"SnapshotDir", n.SnapshotDir != ""}, {"JoinAsLearner", n.JoinAsLearner},
	} {
		if f.set {
			bad("Node.%s is set; it is per node and comes from the NodeSpec", f.name)
		}
	}
	if err := validatePebble(t.Pebble); err != nil {
		bad("Pebble: %v", err)
	}
	// The shared knobs, through node.Config's own validation on a probe
	// config with the per-node fields filled in.
	probe := n
	probe.ID, probe.Peers = 1, map[uint64]string{1: "probe"}
	probe.Transport, probe.Log, probe.StateMachine = probeTransport{frame: t.frameSize()}, wal.NewMemory(), probeSM{}
	if t.snapshots() {
		probe.SnapshotDir = "probe"
	}
	probe.EnsureDefaults()
	if err := probe.Validate(); err != nil {
		bad("Node: %v", err)
	}
	return errors.Join(errs...)
}

// validatePebble checks the fields of o that were set (zero fields take the
// wal package's defaults, which are valid).
func validatePebble(o wal.PebbleOptions) error {
	o.EnsureDefaults()
	return o.Validate()
}

// newStateMachine makes node id's state machine.
func (t *Template) newStateMachine(id uint64) (node.StateMachine, error) {
	if t.NewStateMachine != nil {
		sm, err := t.NewStateMachine(id)
		if err != nil {
			return nil, fmt.Errorf("state machine of node %d: %w", id, err)
		}
		if sm == nil {
			return nil, fmt.Errorf("%w: NewStateMachine returned nil for node %d", ErrInvalidTemplate, id)
		}
		return sm, nil
	}
	return kv.NewStore(kv.StoreOptions{})
}

// NodeSeed is the seed node id's incarnation-th start gets from the
// cluster seed: distinct per node and per restart, the same in every run
// with that seed.
func NodeSeed(seed, id uint64, incarnation int) uint64 {
	return seed*1000 + id + uint64(incarnation)*7919
}

// frameSize is the MaxFrameSize Listen gives every node's transport.
func (t *Template) frameSize() int {
	return max(t.Wire.MaxFrameSize, FrameSize(t.Node.MaxSizePerMsg))
}

// probeTransport and probeSM only exist so Validate can run node.Config's
// checks on the template's shared knobs; the probe reports the frame limit
// the nodes' transports will have.
type probeTransport struct {
	transport.Transport
	frame int
}

func (p probeTransport) MaxFrameSize() int { return p.frame }

type probeSM struct{}

func (probeSM) Apply(cmds []node.Command) []any { return make([]any, len(cmds)) }
func (probeSM) Read([]byte) (any, error)        { return nil, nil }
func (probeSM) Snapshot() ([]byte, error)       { return nil, nil }
func (probeSM) Restore([]byte) error            { return nil }

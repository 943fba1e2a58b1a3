// Package peers runs clusters of the Raft libraries people would otherwise
// pick — go.etcd.io/raft/v3, github.com/hashicorp/raft and
// github.com/lni/dragonboat/v4 — in one process, behind the interface
// raftbench drives its own nodes with, so the same workload, faults and
// verdicts apply to them.
//
// It is its own Go module so that those libraries (and dragonboat's old
// Pebble) stay out of the raftbench library's module graph: this module
// imports the main one, never the other way round.
//
// # The shape
//
// A Library (one per sub-package: etcd, hashicorp, dragonboat) checks a
// Config and starts a System: N nodes (IDs 1..N), each with its own data
// directory under Config.Dir and its own loopback address, all replicating
// kv.Store, the state machine raftbench's own nodes run. A System offers
// per node a kv.Endpoint (Propose returns the store's kv.Result once the
// command is applied on that node; Read is a linearizable read), Status for
// the timeline and the end-of-run quiesce, Stop and Restart for the crash
// faults, and a fault.Network plus per-node fault.Rules for the network
// faults, with the semantics of the main module's transport/fault package.
//
// A System may run several independent Raft groups over the same nodes
// (dragonboat shards): every per-group call takes a group index in
// [0, Groups()); each group has its own stores, so replica hashes,
// acknowledged writes and histories are checked per group.
//
// # Errors
//
// A non-leader answers Propose and Read with a *node.NotLeaderError (which
// matches node.ErrNotLeader) naming the leader when it knows it, so
// kv.Client's redirects work unchanged; a stopped node answers
// node.ErrStopped; a caller whose context ends gets node.ErrTimeout; a
// leader that loses its leadership with commands in flight answers them
// node.ErrLeadershipLost (outcome unknown). A knob or a fault a library
// cannot express is refused with an error wrapping ErrUnsupported that
// names the library and the knob, never silently ignored.
//
// # What each library supports
//
// Knobs (by raftbench flag; each package's doc says how they map):
//
//	knob                 etcd   hashicorp  dragonboat
//	tick                 yes    no         yes (whole ms)
//	election-timeout     yes    yes        yes
//	heartbeat            yes    no         yes
//	max-inflight         yes    yes        no
//	max-msg-bytes        yes    no         no
//	batch-entries        no     yes        no
//	batch-bytes          no     no         no
//	sync (=false)        yes    yes        no
//	prevote (=false)     yes    yes        yes
//	checkquorum (=false) yes    no         yes
//	snapshot-every       no     yes        yes
//	snapshot-trailing    no     yes        yes
//	groups               no     no         yes
//	etcd-async-storage   yes    no         no
//
// Faults: every system supports crash and restart (Stop, Restart from the
// same directory, on the same address) and partitions (Network: Isolate,
// Split, Cut, Heal — Cut is one-way for etcd and dragonboat, and for
// hashicorp it fails an RPC whose request or response would cross it).
// Message rules:
//
//	rule            etcd         hashicorp                      dragonboat
//	loss            per message  per RPC (request or response)  per message
//	delay + jitter  per message  per stream write, in order     per message
//	dup             per message  refused                        per message
//	reorder         per message  refused                        per message
//
// A slow disk (raftbench's slow-disk fault) is not offered: none of the
// libraries' storage is wrapped.
package peers

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/transport/fault"
)

var (
	// ErrUnsupported is wrapped by every error refusing a knob or a fault
	// the library cannot express.
	ErrUnsupported = errors.New("peers: not supported")
	// ErrInvalidConfig is wrapped by every error Config.Validate reports.
	ErrInvalidConfig = errors.New("peers: invalid config")
	// ErrUnknownNode is returned for a node ID outside 1..Nodes or a group
	// index outside [0, Groups()).
	ErrUnknownNode = errors.New("peers: unknown node or group")
	// ErrRunning is returned by Restart for a node that is running.
	ErrRunning = errors.New("peers: node is running")
)

// Library is one Raft library's adapter: its name, how to check a
// configuration against what it can express, and how to start it.
type Library struct {
	// Name is the system name `--system` takes: "etcd", "hashicorp" or
	// "dragonboat".
	Name string
	// Module is the Go module path of the library, for Version.
	Module string
	// Check reports every knob of cfg the library cannot express (each
	// wrapping ErrUnsupported) and every invalid value (ErrInvalidConfig),
	// without starting anything.
	Check func(cfg Config) error
	// CheckRules reports the message faults the library's transport seam
	// cannot apply, wrapping ErrUnsupported.
	CheckRules func(r fault.Rules) error
	// Start starts a cluster; it checks cfg first.
	Start func(cfg Config) (System, error)
}

// Version returns the library's module version as built into this binary,
// or "unknown" when the build carries no module information (test
// binaries carry none).
func (l Library) Version() string { return ModuleVersion(l.Module) }

// ModuleVersion returns the version of module path in this binary's build
// information, or "unknown".
func ModuleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range bi.Deps {
		if m.Path == path {
			if m.Replace != nil && m.Replace.Version != "" {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}

// System is a running cluster of one library.
type System interface {
	// Name is the Library's name.
	Name() string
	// Version is the library's module version.
	Version() string
	// Nodes lists the node IDs, ascending: 1..Config.Nodes.
	Nodes() []uint64
	// Groups is the number of Raft groups every node runs (1 unless
	// Knobs.Groups asked for more).
	Groups() int
	// Endpoint returns node id's endpoint into group g. It follows the
	// node across restarts: while the node is stopped its calls fail with
	// node.ErrStopped.
	Endpoint(g int, id uint64) kv.Endpoint
	// Store returns the kv.Store of group g on node id's current
	// incarnation, or nil while it is stopped. A restart makes a new
	// Store, rebuilt from the node's durable state.
	Store(g int, id uint64) *kv.Store
	// Leader returns the leader of group g with the highest term among the
	// running nodes that say they lead, or 0.
	Leader(g int) (id, term uint64)
	// MaxTerm is the highest term any running node is in, in group g. Like
	// Leader it is cheap: harnesses poll both often.
	MaxTerm(g int) uint64
	// Status returns node id's state in group g; it fails with
	// node.ErrStopped while the node is stopped.
	Status(g int, id uint64) (Status, error)
	// Running reports whether node id is running.
	Running(id uint64) bool
	// Stop stops node id as a crash would, as far as the library allows:
	// nothing is flushed or synced that the library had not already made
	// durable. Calls in flight on it fail with node.ErrStopped.
	Stop(id uint64) error
	// Restart starts a stopped node again from its directory, on its
	// address.
	Restart(id uint64) error
	// Network is the partition state every node's transport obeys
	// (Isolate, Split, Cut, Heal take effect at once).
	Network() *fault.Network
	// SetRules sets the message faults of what node id sends (kept across
	// its restarts). Rules the library cannot apply are refused with an
	// error wrapping ErrUnsupported, and nothing changes.
	SetRules(id uint64, r fault.Rules) error
	// FaultCounters sums what the fault layers of every node did.
	FaultCounters() fault.Counters
	// Close stops every node and removes nothing: Config.Dir is the
	// caller's.
	Close() error
}

// Status is one node's state in one group, as the library reports it.
type Status struct {
	ID   uint64
	Role core.Role
	Term uint64
	// Leader is the leader this node knows of, 0 when none.
	Leader uint64
	// Commit is the commit index this node knows.
	Commit uint64
	// Applied is the log index through which this node's state machine
	// reflects the log (entries the library keeps from the state machine,
	// such as no-ops and configuration entries, count as applied once
	// every command before them is).
	Applied uint64
	// LastIndex is the index of the last entry in this node's log.
	LastIndex uint64
	// InFlight counts the calls made through this node's endpoint that
	// have not been answered yet. None of the libraries exposes its own
	// proposal queue, so this is what a harness can see of "proposals
	// still queued".
	InFlight int
}

// Config configures a System.
type Config struct {
	// Dir is where node i keeps its data, in Dir/node<i>. It must exist or
	// be creatable; the System never removes it.
	Dir string
	// Nodes is the cluster size. Default 3.
	Nodes int
	// Seed seeds the fault decisions (and election randomness where a
	// library takes a source). Default 1.
	Seed uint64
	// Logger receives the libraries' warnings and errors. Default: discard.
	Logger *slog.Logger
	// Knobs are the Raft settings; zero means the library's default.
	Knobs Knobs
}

// Knobs are the raftbench settings a library may or may not be able to
// express. Zero means "not set": the library's own default. A knob set on
// a library that has no such setting is refused (ErrUnsupported) by
// Library.Check, naming the library and the knob by its raftbench flag.
type Knobs struct {
	// Tick is the length of one logical clock tick (--tick).
	Tick time.Duration
	// ElectionTimeout (--election-timeout) and Heartbeat (--heartbeat).
	ElectionTimeout time.Duration
	Heartbeat       time.Duration
	// MaxInflight is the pipeline window per follower (--max-inflight).
	MaxInflight int
	// MaxMsgBytes bounds the entry bytes of one append message
	// (--max-msg-bytes).
	MaxMsgBytes int
	// BatchEntries and BatchBytes bound how many proposals one log append
	// takes (--batch-entries, --batch-bytes).
	BatchEntries int
	BatchBytes   int
	// NoSync writes the log without fsync (--sync=false).
	NoSync bool
	// DisablePreVote and DisableCheckQuorum turn those off (--prevote=false,
	// --checkquorum=false).
	DisablePreVote     bool
	DisableCheckQuorum bool
	// SnapshotEntries snapshots the state machine every this many applied
	// entries and compacts the log behind it, keeping SnapshotTrailing
	// entries (--snapshot-every, --snapshot-trailing).
	SnapshotEntries  int
	SnapshotTrailing int
	// Groups is the number of Raft groups (--groups; dragonboat shards).
	Groups int
	// AsyncStorageWrites runs etcd raft with Config.AsyncStorageWrites
	// (--etcd-async-storage).
	AsyncStorageWrites bool
}

// knobs names every Knobs field by its raftbench flag, with whether it is
// set, so every library refuses what it lacks in the same words.
var knobs = []struct {
	flag string
	set  func(k *Knobs) bool
}{
	{"tick", func(k *Knobs) bool { return k.Tick != 0 }},
	{"election-timeout", func(k *Knobs) bool { return k.ElectionTimeout != 0 }},
	{"heartbeat", func(k *Knobs) bool { return k.Heartbeat != 0 }},
	{"max-inflight", func(k *Knobs) bool { return k.MaxInflight != 0 }},
	{"max-msg-bytes", func(k *Knobs) bool { return k.MaxMsgBytes != 0 }},
	{"batch-entries", func(k *Knobs) bool { return k.BatchEntries != 0 }},
	{"batch-bytes", func(k *Knobs) bool { return k.BatchBytes != 0 }},
	{"sync", func(k *Knobs) bool { return k.NoSync }},
	{"prevote", func(k *Knobs) bool { return k.DisablePreVote }},
	{"checkquorum", func(k *Knobs) bool { return k.DisableCheckQuorum }},
	{"snapshot-every", func(k *Knobs) bool { return k.SnapshotEntries != 0 }},
	{"snapshot-trailing", func(k *Knobs) bool { return k.SnapshotTrailing != 0 }},
	{"groups", func(k *Knobs) bool { return k.Groups > 1 }},
	{"etcd-async-storage", func(k *Knobs) bool { return k.AsyncStorageWrites }},
}

// KnobFlags lists every knob's raftbench flag name, in Knobs order.
func KnobFlags() []string {
	names := make([]string, len(knobs))
	for i, k := range knobs {
		names[i] = k.flag
	}
	return names
}

// Unsupported returns one error per knob set in k that is not in
// supported (flag names), each naming the system and the knob and
// wrapping ErrUnsupported; why, when it has an entry for the knob, says
// what the library has instead.
func (k Knobs) Unsupported(system string, supported []string, why map[string]string) error {
	ok := make(map[string]bool, len(supported))
	for _, s := range supported {
		ok[s] = true
	}
	var errs []error
	for _, kn := range knobs {
		if ok[kn.flag] || !kn.set(&k) {
			continue
		}
		msg := fmt.Sprintf("%s has no --%s knob", system, kn.flag)
		if w := why[kn.flag]; w != "" {
			msg += " (" + w + ")"
		}
		errs = append(errs, &UnsupportedError{System: system, What: "--" + kn.flag, msg: msg})
	}
	return errors.Join(errs...)
}

// UnsupportedError refuses a knob or a fault a library cannot express.
type UnsupportedError struct {
	// System is the library's name, What the knob ("--max-inflight") or
	// the fault ("dup").
	System, What string
	msg          string
}

// Error says which library lacks what.
func (e *UnsupportedError) Error() string { return "peers: " + e.msg }

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Unsupportedf returns an UnsupportedError for what, with a message made
// from format (which should name the system).
func Unsupportedf(system, what, format string, args ...any) error {
	return &UnsupportedError{System: system, What: what, msg: fmt.Sprintf(format, args...)}
}

// RefuseRules reports each rule set in r that is in refused (by the
// faultspec name: "loss", "dup", "reorder", "delay"), naming the system,
// with why for each.
func RefuseRules(system string, r fault.Rules, refused map[string]string) error {
	if err := r.Validate(); err != nil {
		return err
	}
	set := map[string]bool{
		"loss": r.DropRate > 0, "dup": r.DuplicateRate > 0,
		"reorder": r.ReorderRate > 0, "delay": r.Delay > 0 || r.Jitter > 0,
	}
	var errs []error
	for _, name := range []string{"loss", "dup", "reorder", "delay"} {
		if why, no := refused[name]; no && set[name] {
			errs = append(errs, Unsupportedf(system, name, "%s cannot inject %s faults: %s", system, name, why))
		}
	}
	return errors.Join(errs...)
}

// DefaultNodes is Config.Nodes' default: the smallest cluster that keeps a
// quorum through one crash.
const DefaultNodes = 3

// EnsureDefaults fills the zero fields that have a default.
func (c *Config) EnsureDefaults() {
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field common to all libraries, each
// wrapping ErrInvalidConfig; the libraries add their own.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Dir == "" {
		bad("Dir is empty; every node needs a data directory")
	}
	if c.Nodes < 1 || c.Nodes > 64 {
		bad("Nodes is %d, must be in [1, 64]", c.Nodes)
	}
	k := c.Knobs
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"tick", k.Tick}, {"election-timeout", k.ElectionTimeout}, {"heartbeat", k.Heartbeat}} {
		if d.v < 0 {
			bad("--%s is %v, must not be negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"max-inflight", k.MaxInflight}, {"max-msg-bytes", k.MaxMsgBytes}, {"batch-entries", k.BatchEntries},
		{"batch-bytes", k.BatchBytes}, {"snapshot-every", k.SnapshotEntries}, {"snapshot-trailing", k.SnapshotTrailing},
		{"groups", k.Groups}} {
		if n.v < 0 {
			bad("--%s is %d, must not be negative", n.name, n.v)
		}
	}
	if k.SnapshotTrailing > 0 && k.SnapshotEntries == 0 {
		bad("--snapshot-trailing is %d but --snapshot-every is 0: no snapshots to keep a tail behind", k.SnapshotTrailing)
	}
	return errors.Join(errs...)
}

// Ticks converts the timing knobs to ticks for a library that counts
// ticks, with the given defaults for what is unset (etcd raft and
// dragonboat have no timing defaults of their own; their adapters pass
// raftbench's node defaults, so a run that sets nothing compares like with
// like): the tick length, the election timeout and the heartbeat interval
// in ticks. Each
// must come out at least 1 tick and the heartbeat below the election
// timeout.
func (k Knobs) Ticks(system string, defTick time.Duration, defElection, defHeartbeat int) (tick time.Duration, election, heartbeat int, err error) {
	tick = k.Tick
	if tick == 0 {
		tick = defTick
	}
	election, heartbeat = defElection, defHeartbeat
	if k.ElectionTimeout != 0 {
		election = int(k.ElectionTimeout / tick)
	}
	if k.Heartbeat != 0 {
		heartbeat = int(k.Heartbeat / tick)
	}
	var errs []error
	if tick < time.Millisecond {
		errs = append(errs, fmt.Errorf("%w: %s: --tick %v is below 1ms", ErrInvalidConfig, system, tick))
	}
	if election < 2 {
		errs = append(errs, fmt.Errorf("%w: %s: --election-timeout %v is %d ticks of %v, must be at least 2", ErrInvalidConfig, system, k.ElectionTimeout, election, tick))
	}
	if heartbeat < 1 || heartbeat >= election {
		errs = append(errs, fmt.Errorf("%w: %s: --heartbeat is %d ticks of %v, must be in [1, election timeout %d ticks)", ErrInvalidConfig, system, heartbeat, tick, election))
	}
	return tick, election, heartbeat, errors.Join(errs...)
}

// NodeDir is node id's data directory under dir.
func NodeDir(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("node%d", id))
}

package bench

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/raftbench/raftbench/bench/faultspec"
	"github.com/raftbench/raftbench/bench/netns"
	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/wal"
)

// ErrBadConfig is wrapped by every configuration error: a bad flag, config
// key or value, or fault spec. The CLI answers it with exit code 2.
var ErrBadConfig = errors.New("bad configuration")

// Duration is a time.Duration that reads and writes as text ("10ms") in
// JSON and YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is the full configuration of one run. Every field is a knob (see
// Knobs): a flag of `raftbench run`, a key of its YAML config file, and a
// name `raftbench sweep --set` accepts. The JSON names are the knob names,
// so a run's config.json is a valid --config file (JSON is YAML).
//
// WAL is "pebble" (Pebble on disk), "crashable" (Pebble on an in-memory
// filesystem that a crash fault cuts back to what was synced, see
// crashDisk) or "memory" (wal.MemoryLog). Validate switches "pebble" to
// "crashable" when the faults include a crash, so config.json records
// what the run really used.
type Config struct {
	// Where the nodes run: System names the Raft implementation (see
	// RegisterSystem; default "raftbench"); with Procs each raftbench node
	// is a `raftbench node` process this run starts (Netns: each in a
	// network namespace of its own; DirTemplate: each node's data
	// directory); with Cluster the run drives a cluster someone else
	// started, whose client API addresses Cluster lists and admin
	// endpoints Admin lists (ID=HOST:PORT,...). Mode says which.
	System string `json:"system"`
	// SystemVersion is a record, not a setting: the version of the
	// system a run ran (a peer library's module version), written into
	// config.json by the run for every system but raftbench (whose
	// version is env.commit); a --config file's is ignored.
	SystemVersion  string `json:"system-version,omitempty"`
	Procs          bool   `json:"procs,omitempty"`
	Netns          bool   `json:"netns,omitempty"`
	DirTemplate    string `json:"dir-template,omitempty"`
	Cluster        string `json:"cluster,omitempty"`
	Admin          string `json:"admin,omitempty"`
	AdminTokenFile string `json:"admin-token-file,omitempty"`
	// AdminToken is the admin endpoints' token with --cluster. It is a
	// secret, so config.json leaves it out (give --admin-token-file to
	// have a run repeatable from its config.json).
	AdminToken string `json:"-"`

	// Cluster.
	Nodes int `json:"nodes"`
	// Groups is the number of Raft groups (shards) a system that runs
	// several runs over the same nodes (0 and 1: one); the clients and
	// the keys are spread over them. raftbench runs one per cluster.
	Groups    int    `json:"groups,omitempty"`
	Transport string `json:"transport"`
	WAL       string `json:"wal"`
	Sync      bool   `json:"sync"`
	Dir       string `json:"dir,omitempty"`
	Seed      uint64 `json:"seed"`

	// Raft knobs (node.Config).
	BatchEntries int `json:"batch-entries"`
	BatchBytes   int `json:"batch-bytes"`
	// ProposalPipeline is node.Config.MaxProposalPipeline: how many
	// proposal batches the leader lets be uncommitted at once.
	ProposalPipeline int `json:"proposal-pipeline"`
	MaxInflight      int `json:"max-inflight"`
	MaxMsgBytes      int `json:"max-msg-bytes"`
	// MaxInflightBytes and MaxUncommittedBytes are node.Config's byte
	// limits on a follower's pipeline window and on a leader's
	// uncommitted proposals.
	MaxInflightBytes    int      `json:"max-inflight-bytes"`
	MaxUncommittedBytes int      `json:"max-uncommitted-bytes"`
	Tick                Duration `json:"tick"`
	ElectionTimeout     Duration `json:"election-timeout"`
	Heartbeat           Duration `json:"heartbeat"`
	PreVote             bool     `json:"prevote"`
	CheckQuorum         bool     `json:"checkquorum"`
	// ReadMode is how leaders confirm reads: "index" (a heartbeat round)
	// or "lease" (node.ReadModeLease: none while the lease holds).
	ReadMode string `json:"read-mode"`
	// SnapshotEvery takes a snapshot every this many applied entries (0:
	// never) and compacts the log behind it, keeping SnapshotTrailing
	// entries (node.Config SnapshotEntries and SnapshotTrailing).
	SnapshotEvery    int `json:"snapshot-every"`
	SnapshotTrailing int `json:"snapshot-trailing"`
	// WALMemtable is Pebble's memtable size in bytes (0: the wal package's
	// default, 32 MiB). Pebble keeps its own log file of every write until
	// the memtable holding them is flushed, so it bounds the WAL directory
	// as much as compaction does.
	WALMemtable int `json:"wal-memtable"`
	// WALSpare is the size of the spare WAL file each node keeps ready
	// (wal.PebbleOptions.SpareWAL, whose doc has the measured trade-off);
	// 0, the default, keeps none.
	WALSpare int `json:"wal-spare"`
	// WALMarkerLag is how far the WAL's durable-index marker may trail
	// synced saves (wal.PebbleOptions.MarkerLag); 0 makes it exact, every
	// synced save waiting for it (ExactMarker). Default
	// wal.DefaultMarkerLag.
	WALMarkerLag Duration `json:"wal-marker-lag"`

	// Workload.
	Payload   int      `json:"payload"`
	Clients   int      `json:"clients"`
	Rate      float64  `json:"rate"`
	Duration  Duration `json:"duration"`
	Warmup    Duration `json:"warmup"`
	ReadRatio float64  `json:"read-ratio"`
	Keys      int      `json:"keys"`
	OpTimeout Duration `json:"op-timeout"`
	// AttemptTimeout bounds one client attempt on one node
	// (kv.ClientOptions.AttemptTimeout).
	AttemptTimeout Duration `json:"attempt-timeout"`
	Count          int      `json:"count"`

	// Faults, as written (see package faultspec).
	Faults []string `json:"faults"`

	// Profiling: file names inside the result directory ("" = off).
	CPUProfile   string `json:"cpuprofile,omitempty"`
	MemProfile   string `json:"memprofile,omitempty"`
	MutexProfile string `json:"mutexprofile,omitempty"`
	BlockProfile string `json:"blockprofile,omitempty"`
	Trace        string `json:"trace,omitempty"`
	PprofAddr    string `json:"pprof-addr,omitempty"`
	// MetricsAddr serves every node's Prometheus metrics ("" = off).
	MetricsAddr string `json:"metrics-addr,omitempty"`

	// Check records the history and checks it for linearizability.
	Check bool `json:"check"`
	// Out is the result directory ("" = results/runs/<UTC time>-<Short>).
	// It is where a run goes, not what it is, so config.json leaves it
	// out (feeding config.json back must not aim at the same directory).
	Out string `json:"-"`

	faults []faultspec.Fault
	maxID  uint64
	// remote is the parsed --cluster and --admin (ID order).
	remote []remoteNode
	// given names the knobs a flag, a config file or a sweep set (see
	// Given). It is copied on write, so copies of a Config never share a
	// change.
	given map[string]bool
}

// WAL names of --wal.
const (
	WALPebble    = "pebble"
	WALCrashable = "crashable"
	WALMemory    = "memory"
)

// DefaultSystem is --system's default: raftbench's own nodes.
const DefaultSystem = "raftbench"

// Mode is how the run's nodes run: ModeCluster with --cluster, ModeProcs
// with --procs, ModeInProcess otherwise.
func (c *Config) Mode() string {
	switch {
	case c.Cluster != "":
		return ModeCluster
	case c.Procs:
		return ModeProcs
	}
	return ModeInProcess
}

// Snapshot defaults. node takes no snapshots unless asked, so these are the
// harness's own policy: a snapshot every 10,000 applied entries, keeping
// node's own default tail (node.DefaultSnapshotTrailing, 4,096 entries)
// behind it, so a node's log holds at most about 14,000 entries (some 2.5
// MB at the default 128-byte payload) for one image of the kv state (1,000
// keys by default, well under a megabyte) per interval.
//
// They were chosen for the tail. Pebble's memtable flush writes whatever
// of the log the last compaction left, and the three nodes of a run flush
// together, so the live log is what each flush puts on the disk at once:
// 1.3–4.9 MB per 32 MiB memtable with a snapshot every 100,000 entries and
// 10,000 trailing (the old defaults), 245–486 KB with these, and every
// flush showed as the longest operation of its second of the timeline.
// Measured with `raftbench run --clients C --duration 10s --warmup 2s`
// against the same with `--snapshot-every 100000 --snapshot-trailing
// 10000`, rounds interleaved, fsync on, 2 cores, over one afternoon (this
// disk's noise is large, so every round counts):
//   - 256 clients, p99.9: median 34 ms over 10 rounds (27.6–88.5) against
//     65 ms over 16 (53.0–99.2); p99 12.0–18.9 against 10.5–15.8;
//     throughput alike within the noise (39–57k against 38–59k ops/s).
//     50,000 / 4,096 gave a median of 38 ms over 5 rounds (34.7–46.8);
//     20,000 / 4,096 33–53 ms; 5,000 / 2,000 39–59 ms with p99 up to 15
//     ms (snapshots that often cost more than they save).
//   - 1024 clients, 6 rounds each: p99.9 50.6–76.9 ms against 89.8–139.9;
//     69.6–88.7k ops/s against 74.5–99.1k.
//   - 64 clients (make run), 12 rounds each: p99 median 9.5 ms (7.2–10.7)
//     against 7.6 (6.8–10.1) — each snapshot's synced image and compaction
//     is an fsync more on the disk — and p99.9 alike (14–22 against
//     11–27).
//
// A follower more than 4,096 entries behind (a tenth of a second at full
// speed) catches up by snapshot, which with the kv store's small state is
// cheap.
const (
	DefaultSnapshotEvery    = 10000
	DefaultSnapshotTrailing = node.DefaultSnapshotTrailing
)

// MaxNodes bounds --nodes: far beyond what one machine can run well, but
// short of exhausting its ports and file descriptors on a typo.
const MaxNodes = 1000

// MaxGroups bounds --groups.
const MaxGroups = 1024

// Default returns the defaults of `raftbench run`: 3 nodes on TCP, Pebble
// with sync, 128-byte payloads from 64 closed-loop clients for 10 s, with
// snapshots every DefaultSnapshotEvery entries. Every Raft knob is node's
// own default, read from package node.
func Default() Config {
	return Config{
		System: DefaultSystem,
		Nodes:  3, Transport: "tcp", WAL: "pebble", Sync: true, Seed: 1,
		BatchEntries: node.DefaultMaxBatchEntries, BatchBytes: node.DefaultMaxBatchBytes,
		ProposalPipeline: node.DefaultMaxProposalPipeline, MaxInflight: node.DefaultMaxInflight,
		MaxMsgBytes: node.DefaultMaxSizePerMsg, MaxInflightBytes: node.DefaultMaxInflightBytes, MaxUncommittedBytes: node.DefaultMaxUncommittedBytes,
		Tick: Duration(node.DefaultTickInterval), ElectionTimeout: Duration(node.DefaultElectionTicks * node.DefaultTickInterval),
		Heartbeat: Duration(node.DefaultHeartbeatTicks * node.DefaultTickInterval), PreVote: true, CheckQuorum: true, ReadMode: "index",
		SnapshotEvery: DefaultSnapshotEvery, SnapshotTrailing: DefaultSnapshotTrailing, WALMarkerLag: Duration(wal.DefaultMarkerLag),
		Payload: 128, Clients: 64, Duration: Duration(10 * time.Second), Warmup: Duration(2 * time.Second),
		Keys: 1000, OpTimeout: Duration(10 * time.Second), AttemptTimeout: Duration(kv.DefaultAttemptTimeout), Count: 1,
	}
}

// cpusAtStart is GOMAXPROCS as the process started: the CPUs, or the
// container's CPU limit (or what the GOMAXPROCS variable set). Package
// variables are set before main runs, so this is read before the raftbench
// binary raises GOMAXPROCS above the CPUs (cli.DefaultProcsPerCPU); it is
// the CPUs the nodes compete for.
var cpusAtStart = runtime.GOMAXPROCS(0)

// Warnings are what the configuration asks of this machine that will make
// its numbers say more about the machine than about Raft.
func (c *Config) Warnings() []string {
	var w []string
	if cpus := cpusAtStart; c.Nodes > 4*cpus {
		w = append(w, fmt.Sprintf("--nodes %d on %d CPUs: more than 4 nodes per CPU compete for them, so elections and latency will reflect the machine as much as Raft", c.Nodes, cpus))
	}
	return w
}

// Given reports whether a flag, a config file or a sweep set the knob
// name, whatever the value: --transport tcp is given even though it is the
// default. A system whose Check fixes a knob uses it to refuse a value it
// would otherwise override without a word.
func (c *Config) Given(name string) bool { return c.given[name] }

// markGiven records that name was set, copying the set first so a Config
// copied before (a sweep's base) does not see it.
func (c *Config) markGiven(name string) {
	if c.given[name] {
		return
	}
	m := make(map[string]bool, len(c.given)+1)
	maps.Copy(m, c.given)
	m[name] = true
	c.given = m
}

// ParsedFaults returns the faults parsed by the last successful Validate.
func (c *Config) ParsedFaults() []faultspec.Fault { return c.faults }

// MaxNodeID is the highest node ID the run can have: the initial nodes plus
// one per add-node and replace in the faults (valid after Validate).
func (c *Config) MaxNodeID() uint64 { return max(c.maxID, uint64(c.Nodes)) }

// startsNodes counts the faults that start a new node, parsing them
// leniently (Validate reports their errors).
func startsNodes(specs []string) int {
	n := 0
	for _, s := range specs {
		if f, err := faultspec.Parse(s, 1<<16); err == nil && f.StartsNode() {
			n++
		}
	}
	return n
}

// Validate checks every field and parses the faults. It is the one place
// configuration is checked; each problem names its flag, and all of them
// are joined into one line wrapping ErrBadConfig.
func (c *Config) Validate() error {
	var probs []string
	bad := func(flag string, format string, args ...any) {
		probs = append(probs, "--"+flag+": "+fmt.Sprintf(format, args...))
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		bad("nodes", "%d, want 1..%d", c.Nodes, MaxNodes)
	}
	if c.Groups < 0 || c.Groups > MaxGroups {
		bad("groups", "%d, want 1..%d", c.Groups, MaxGroups)
	} else if c.Groups > 1 && c.System == DefaultSystem {
		bad("groups", "%d: raftbench runs one Raft group per cluster (a system that runs several, such as dragonboat, takes it)", c.Groups)
	}
	if c.Transport != "tcp" && c.Transport != "quic" {
		bad("transport", "%q, want tcp or quic", c.Transport)
	}
	if c.WAL != "pebble" && c.WAL != "crashable" && c.WAL != "memory" {
		bad("wal", "%q, want pebble, crashable or memory", c.WAL)
	}
	if c.BatchEntries < 1 {
		bad("batch-entries", "%d, want at least 1", c.BatchEntries)
	}
	if c.BatchBytes < 1024 {
		bad("batch-bytes", "%d, want at least 1024", c.BatchBytes)
	}
	if c.ProposalPipeline < 1 {
		bad("proposal-pipeline", "%d, want at least 1 batch", c.ProposalPipeline)
	}
	if c.MaxInflight < 1 {
		bad("max-inflight", "%d, want at least 1", c.MaxInflight)
	}
	if c.MaxInflightBytes < 1 {
		bad("max-inflight-bytes", "%d, want at least 1", c.MaxInflightBytes)
	}
	if c.MaxUncommittedBytes < 1 {
		bad("max-uncommitted-bytes", "%d, want at least 1", c.MaxUncommittedBytes)
	}
	if c.MaxMsgBytes < 1024 || c.MaxMsgBytes > 512<<20 {
		bad("max-msg-bytes", "%d, want 1024..%d", c.MaxMsgBytes, 512<<20)
	}
	if c.Tick < Duration(time.Millisecond) {
		bad("tick", "%v, want at least 1ms", c.Tick.D())
	}
	if c.Tick > 0 {
		if c.Heartbeat < c.Tick {
			bad("heartbeat", "%v, want at least one tick (%v)", c.Heartbeat.D(), c.Tick.D())
		}
		if c.ElectionTimeout <= c.Heartbeat {
			bad("election-timeout", "%v, want more than the heartbeat (%v)", c.ElectionTimeout.D(), c.Heartbeat.D())
		}
	}
	switch c.ReadMode {
	case "index":
	case "lease":
		if !c.CheckQuorum {
			bad("read-mode", "lease needs --checkquorum (followers keep the lease by refusing votes)")
		}
	default:
		bad("read-mode", "%q, want index or lease", c.ReadMode)
	}
	if c.Payload < PayloadMin || c.Payload > 64<<20 {
		bad("payload", "%d, want %d..%d bytes (values start with a %d-byte unique ID)", c.Payload, PayloadMin, 64<<20, PayloadMin)
	} else if c.Payload+256 > c.BatchBytes || c.Payload+256 > c.MaxMsgBytes {
		bad("payload", "%d does not fit with its header in --batch-bytes %d and --max-msg-bytes %d", c.Payload, c.BatchBytes, c.MaxMsgBytes)
	}
	if c.Clients < 1 || c.Clients > 10000 {
		bad("clients", "%d, want 1..10000", c.Clients)
	}
	if c.Rate < 0 || c.Rate > 1e7 {
		bad("rate", "%g, want 0 (closed loop) or up to 1e7 ops/s", c.Rate)
	}
	if c.Duration < Duration(100*time.Millisecond) {
		bad("duration", "%v, want at least 100ms", c.Duration.D())
	}
	if c.Warmup < 0 {
		bad("warmup", "%v, want at least 0", c.Warmup.D())
	}
	if c.ReadRatio < 0 || c.ReadRatio > 1 {
		bad("read-ratio", "%g, want 0..1", c.ReadRatio)
	}
	if c.Keys < 1 {
		bad("keys", "%d, want at least 1", c.Keys)
	}
	if c.OpTimeout < Duration(10*time.Millisecond) {
		bad("op-timeout", "%v, want at least 10ms", c.OpTimeout.D())
	}
	if c.AttemptTimeout < Duration(time.Millisecond) || c.AttemptTimeout > c.OpTimeout {
		bad("attempt-timeout", "%v, want 1ms up to --op-timeout %v", c.AttemptTimeout.D(), c.OpTimeout.D())
	}
	if c.SnapshotEvery < 0 {
		bad("snapshot-every", "%d, want 0 (off) or a number of entries", c.SnapshotEvery)
	}
	if c.SnapshotTrailing < 1 {
		bad("snapshot-trailing", "%d, want at least 1 entry", c.SnapshotTrailing)
	}
	if c.WALMemtable != 0 && (c.WALMemtable < 1<<20 || c.WALMemtable >= 4<<30) {
		bad("wal-memtable", "%d, want 0 (default) or 1MiB..4GiB", c.WALMemtable)
	}
	if c.WALSpare != 0 && (c.WALSpare < 1<<20 || c.WALSpare >= 4<<30) {
		bad("wal-spare", "%d, want 0 (none, the default) or 1MiB..4GiB", c.WALSpare)
	}
	if c.WALMarkerLag < 0 || c.WALMarkerLag > Duration(time.Second) {
		bad("wal-marker-lag", "%v, want 0 (exact) up to 1s", c.WALMarkerLag.D())
	}
	if c.Count < 1 || c.Count > 100 {
		bad("count", "%d, want 1..100", c.Count)
	}
	for _, p := range []struct{ flag, v string }{
		{"cpuprofile", c.CPUProfile}, {"memprofile", c.MemProfile}, {"mutexprofile", c.MutexProfile},
		{"blockprofile", c.BlockProfile}, {"trace", c.Trace},
	} {
		if strings.ContainsAny(p.v, `/\`) || p.v == "." || p.v == ".." {
			bad(p.flag, "%q, want a plain file name (it lands in the result directory)", p.v)
		}
	}
	// --cluster first: the faults below name its nodes.
	c.remote = nil
	switch {
	case c.Cluster != "":
		nodes, err := parseRemote(c.Cluster, c.Admin)
		if err != nil {
			probs = append(probs, err.Error())
			break
		}
		if d := Default(); c.Nodes != d.Nodes && c.Nodes != len(nodes) {
			bad("nodes", "%d, but --cluster lists %d nodes (leave --nodes out: the list is the cluster)", c.Nodes, len(nodes))
		}
		if c.Dir != "" {
			bad("dir", "%q: with --cluster the nodes keep their data where they were started; the run has no data directory", c.Dir)
		}
		c.remote = nodes
		c.Nodes = len(nodes)
	case c.Admin != "":
		bad("admin", "needs --cluster (the client addresses of the cluster it administers)")
	}
	probs = append(probs, c.validateMode()...)
	mode := c.Mode()
	c.faults = c.faults[:0]
	c.maxID = uint64(c.Nodes + startsNodes(c.Faults))
	for _, n := range c.remote {
		c.maxID = max(c.maxID, n.ID)
	}
	for _, s := range c.Faults {
		var f faultspec.Fault
		var err error
		switch {
		case mode == ModeInProcess && faultspec.IsProcessSpec(s):
			err = fmt.Errorf("%q acts on a node's process (SIGKILL, SIGSTOP): it needs --procs, which runs each node as a process of its own", s)
		case mode == ModeInProcess:
			f, err = faultspec.Parse(s, int(c.maxID))
		default:
			f, err = faultspec.ParseProcess(s, int(c.maxID))
		}
		if err != nil {
			bad("fault", "%v", err)
			continue
		}
		if c.remote != nil && f.Node != 0 && !slices.ContainsFunc(c.remote, func(n remoteNode) bool { return n.ID == f.Node }) {
			bad("fault", "%q names node %d, which --cluster does not list", s, f.Node)
			continue
		}
		if c.System == DefaultSystem {
			if err := checkModeFault(c, mode, f); err != nil {
				bad("fault", "%v", err)
				continue
			}
		}
		if c.WAL == "memory" && faultspec.ProcessNeedsRestart(f) {
			bad("fault", "%q restarts a node, but --wal memory loses the log on restart; use --wal pebble", s)
			continue
		}
		if f.IsCrash() && c.WAL == "pebble" {
			// A crash must lose exactly what was not synced, which only
			// the crashable filesystem can do in-process.
			c.WAL = "crashable"
		}
		if end := f.At + f.For; f.At > c.Duration.D() || end > c.Duration.D() {
			bad("fault", "%q ends at %v, after the run's --duration %v", s, end, c.Duration.D())
			continue
		}
		c.faults = append(c.faults, f)
	}
	if len(probs) == 0 && c.System != DefaultSystem {
		if sys, ok := LookupSystem(c.System); ok && sys.Check != nil {
			if err := sys.Check(c); err != nil {
				return err
			}
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrBadConfig, strings.Join(probs, "; "))
	}
	return nil
}

// validateMode checks the knobs that say where the nodes run, and parses
// --cluster and --admin; it returns the problems, each naming its flag.
func (c *Config) validateMode() []string {
	var probs []string
	bad := func(flag string, format string, args ...any) {
		probs = append(probs, "--"+flag+": "+fmt.Sprintf(format, args...))
	}
	if _, ok := LookupSystem(c.System); !ok {
		bad("system", "%q, want one of %s", c.System, strings.Join(SystemNames(), ", "))
	} else if c.System != DefaultSystem && (c.Procs || c.Cluster != "") {
		bad("system", "%s runs its nodes in this process; --procs and --cluster run raftbench nodes", c.System)
	}
	if c.Procs && c.Cluster != "" {
		bad("cluster", "give --procs (start node processes here) or --cluster (drive a running cluster), not both")
	}
	if c.Netns {
		if !c.Procs {
			bad("netns", "needs --procs: it puts each node process in a network namespace of its own")
		} else if err := netns.Check(); err != nil {
			bad("netns", "%v", err)
		} else if c.Nodes > netns.MaxNodeID || c.MaxNodeID() > netns.MaxNodeID {
			bad("netns", "holds at most %d nodes, the run has %d", netns.MaxNodeID, c.MaxNodeID())
		}
	}
	if c.DirTemplate != "" {
		switch {
		case !c.Procs:
			bad("dir-template", "needs --procs: it names each node process's data directory")
		case c.Nodes > 1 && !strings.Contains(c.DirTemplate, "{id}"):
			bad("dir-template", "%q has no {id}, so every node would share one data directory", c.DirTemplate)
		}
	}
	if c.Mode() != ModeInProcess && c.WAL == WALCrashable {
		bad("wal", "crashable is the in-process harness's in-memory filesystem; node processes run pebble or memory (SIGKILL, kill9, is their crash)")
	}
	if c.Cluster != "" {
		// The nodes were started with knobs of their own; a run that
		// says otherwise would record settings it never had.
		d := Default()
		for _, name := range NodeKnobs {
			if k, ok := KnobByName(name); ok && clusterFixedKnob(name) && k.Get(c) != k.Get(&d) {
				bad(name, "%s: with --cluster the nodes run the knobs they were started with (give it to raftbench node); the run cannot change it", k.Get(c))
			}
		}
	}
	if c.Cluster == "" && (c.AdminToken != "" || c.AdminTokenFile != "") {
		bad("admin-token", "needs --cluster (with --procs the harness makes the token itself)")
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		bad("admin-token", "give --admin-token or --admin-token-file, not both")
	}
	return probs
}

// clusterFixedKnob reports whether node knob name belongs to the nodes
// alone, so that --cluster refuses a value other than the default: all but
// seed (which also seeds the run's workload, and --count steps it) and
// max-msg-bytes (which also sizes the client API's frames).
func clusterFixedKnob(name string) bool { return name != "seed" && name != "max-msg-bytes" }

// PayloadMin is the smallest payload: every value starts with a unique
// 16-byte ID (client and sequence) so the harness can tell whose write a
// replica holds.
const PayloadMin = 16

// Short is a compact description for directory names, like
// "tcp-n3-pebble-p128-c64".
func (c *Config) Short() string {
	s := fmt.Sprintf("%s-n%d-%s-p%d", c.Transport, c.Nodes, c.WAL, c.Payload)
	switch {
	case c.Mode() == ModeCluster:
		s = fmt.Sprintf("cluster-n%d-p%d", c.Nodes, c.Payload)
	case c.Mode() == ModeProcs:
		s = "procs-" + s
	case c.System != DefaultSystem && c.System != "":
		s = fmt.Sprintf("%s-n%d-p%d", c.System, c.Nodes, c.Payload)
	}
	if c.Rate > 0 {
		s += fmt.Sprintf("-r%g", c.Rate)
	} else {
		s += fmt.Sprintf("-c%d", c.Clients)
	}
	if !c.Sync {
		s += "-nosync"
	}
	if len(c.Faults) > 0 {
		s += "-faults"
	}
	return s
}

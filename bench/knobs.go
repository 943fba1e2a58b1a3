package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Knob is one setting of Config under its flag name, which is also its key
// in a YAML config file and its name for `sweep --set`.
type Knob struct {
	Name  string
	Usage string
	// Kind is the value's type as help shows it: "int", "bytes" (an
	// integer with an optional KiB, MiB or GiB suffix), "duration",
	// "float", "bool", "string" or "spec" (a fault).
	Kind string
	// Bool knobs may be given as a bare flag (--sync means --sync=true).
	Bool bool
	// Repeat knobs (fault) collect every value given.
	Repeat bool
	// Sweepable knobs can be swept.
	Sweepable bool
	set       func(c *Config, v string) error
	get       func(c *Config) string
}

// Set parses v into c's field and records that the knob was given
// (Config.Given).
func (k *Knob) Set(c *Config, v string) error {
	if err := k.set(c, v); err != nil {
		return fmt.Errorf("%w: --%s: %v", ErrBadConfig, k.Name, err)
	}
	c.markGiven(k.Name)
	return nil
}

// Get formats c's field.
func (k *Knob) Get(c *Config) string { return k.get(c) }

// Show formats c's field for people: sizes in binary units (4MiB).
func (k *Knob) Show(c *Config) string {
	v := k.get(c)
	if k.Kind == "bytes" {
		if n, err := strconv.Atoi(v); err == nil {
			return FormatSize(n)
		}
	}
	return v
}

// FormatSize writes n bytes as parseSize reads them: with the largest
// binary suffix that divides it (4194304 is 4MiB, 1536 is 1536).
func FormatSize(n int) string {
	for _, u := range []struct {
		s string
		m int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.m == 0 {
			return strconv.Itoa(n/u.m) + u.s
		}
	}
	return strconv.Itoa(n)
}

func intKnob(name, usage string, f func(*Config) *int) Knob {
	return Knob{Name: name, Usage: usage, Kind: "int", Sweepable: true,
		set: func(c *Config, v string) error {
			n, err := parseSize(v)
			if err != nil {
				return err
			}
			*f(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*f(c)) }}
}

// bytesKnob is an intKnob whose value is a size in bytes.
func bytesKnob(name, usage string, f func(*Config) *int) Knob {
	k := intKnob(name, usage, f)
	k.Kind = "bytes"
	return k
}

func floatKnob(name, usage string, f func(*Config) *float64) Knob {
	return Knob{Name: name, Usage: usage, Kind: "float", Sweepable: true,
		set: func(c *Config, v string) error {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			*f(c) = x
			return nil
		},
		get: func(c *Config) string { return strconv.FormatFloat(*f(c), 'g', -1, 64) }}
}

func durKnob(name, usage string, f func(*Config) *Duration) Knob {
	return Knob{Name: name, Usage: usage, Kind: "duration", Sweepable: true,
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration like 10ms or 2s", v)
			}
			*f(c) = Duration(d)
			return nil
		},
		get: func(c *Config) string { return f(c).D().String() }}
}

func boolKnob(name, usage string, f func(*Config) *bool) Knob {
	return Knob{Name: name, Usage: usage, Kind: "bool", Bool: true, Sweepable: true,
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*f(c) = b
			return nil
		},
		get: func(c *Config) string { return strconv.FormatBool(*f(c)) }}
}

func strKnob(name, usage string, sweep bool, f func(*Config) *string) Knob {
	return Knob{Name: name, Usage: usage, Kind: "string", Sweepable: sweep,
		set: func(c *Config, v string) error { *f(c) = v; return nil },
		get: func(c *Config) string { return *f(c) }}
}

// parseSize parses an integer with an optional binary suffix (KiB, MiB,
// GiB, or K, M, G).
func parseSize(v string) (int, error) {
	s := strings.TrimSpace(v)
	mult := 1
	for _, suf := range []struct {
		s string
		m int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, suf.s) {
			s, mult = strings.TrimSuffix(s, suf.s), suf.m
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer (suffixes KiB, MiB, GiB allowed)", v)
	}
	if n > math.MaxInt/mult || n < math.MinInt/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}

// Knobs lists every setting, in the order help shows them.
var Knobs = []Knob{
	strKnob("system", "the Raft implementation to run (raftbench; raftbench-peers, built by make build-peers, adds raftbench-quic, etcd, etcd-async, hashicorp and dragonboat)", true, func(c *Config) *string { return &c.System }),
	boolKnob("procs", "run each node as a `raftbench node` process of its own on this machine, with its own data directory, heap and profiles; kill9 and pause faults need it", func(c *Config) *bool { return &c.Procs }),
	boolKnob("netns", "with --procs, put each node process in a network namespace of its own joined by veth links on a bridge, so partitions are real link cuts (Linux, root)", func(c *Config) *bool { return &c.Netns }),
	strKnob("dir-template", "with --procs, each node's data directory, {id} standing for its ID (e.g. /mnt/disk{id}/raftbench, so each WAL has a device of its own); each must be empty or absent, and is emptied or removed after the run (default: node{id} in a temporary directory under --dir, removed after the run)", false, func(c *Config) *string { return &c.DirTemplate }),
	strKnob("cluster", "drive a cluster someone else started: its nodes' client API addresses, ID=HOST:PORT,... (needs --admin)", false, func(c *Config) *string { return &c.Cluster }),
	strKnob("admin", "with --cluster, the nodes' admin endpoints, ID=HOST:PORT,... (status, state at an index, faults, profiles)", false, func(c *Config) *string { return &c.Admin }),
	strKnob("admin-token", "with --cluster, the admin endpoints' bearer token (shows in ps: prefer --admin-token-file; never written to config.json)", false, func(c *Config) *string { return &c.AdminToken }),
	strKnob("admin-token-file", "with --cluster, a file holding the admin endpoints' bearer token", false, func(c *Config) *string { return &c.AdminTokenFile }),
	intKnob("groups", "Raft groups (shards) over the same nodes, the clients and keys spread over them, for systems that run several (dragonboat); 0 or 1: one", func(c *Config) *int { return &c.Groups }),
	intKnob("nodes", "cluster size, 1..1000 (more than 4 nodes per CPU draws a warning: they compete for it)", func(c *Config) *int { return &c.Nodes }),
	strKnob("transport", "transport between nodes: tcp or quic", true, func(c *Config) *string { return &c.Transport }),
	strKnob("wal", "write-ahead log: pebble (on disk), crashable (Pebble on an in-memory filesystem that a crash fault cuts back to what was synced; chosen instead of pebble when --fault has a crash) or memory", true, func(c *Config) *string { return &c.WAL }),
	boolKnob("sync", "fsync every WAL save", func(c *Config) *bool { return &c.Sync }),
	strKnob("dir", "where the nodes' WAL directories go (default: a temporary directory, removed after the run)", false, func(c *Config) *string { return &c.Dir }),
	{Name: "seed", Usage: "seed of the workload, election and fault randomness", Kind: "int", Sweepable: true,
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not an unsigned integer", v)
			}
			c.Seed = n
			return nil
		},
		get: func(c *Config) string { return strconv.FormatUint(c.Seed, 10) }},
	intKnob("batch-entries", "most proposals folded into one Raft append", func(c *Config) *int { return &c.BatchEntries }),
	bytesKnob("batch-bytes", "most proposal bytes folded into one Raft append", func(c *Config) *int { return &c.BatchBytes }),
	intKnob("proposal-pipeline", "proposal batches the leader lets be uncommitted at once; further proposals wait and join the next batch (node.Config.MaxProposalPipeline)", func(c *Config) *int { return &c.ProposalPipeline }),
	intKnob("max-inflight", "pipeline window: appends in flight per follower", func(c *Config) *int { return &c.MaxInflight }),
	bytesKnob("max-msg-bytes", "most entry bytes in one AppendEntries", func(c *Config) *int { return &c.MaxMsgBytes }),
	bytesKnob("max-inflight-bytes", "pipeline window in bytes: entry bytes in flight per follower", func(c *Config) *int { return &c.MaxInflightBytes }),
	bytesKnob("max-uncommitted-bytes", "most bytes of proposals a leader holds uncommitted (and, separately, queued) before refusing more as overloaded", func(c *Config) *int { return &c.MaxUncommittedBytes }),
	durKnob("tick", "Raft tick", func(c *Config) *Duration { return &c.Tick }),
	durKnob("election-timeout", "election timeout (rounded down to ticks)", func(c *Config) *Duration { return &c.ElectionTimeout }),
	durKnob("heartbeat", "heartbeat interval (rounded down to ticks)", func(c *Config) *Duration { return &c.Heartbeat }),
	boolKnob("prevote", "pre-vote before elections", func(c *Config) *bool { return &c.PreVote }),
	boolKnob("checkquorum", "leaders step down without a quorum", func(c *Config) *bool { return &c.CheckQuorum }),
	strKnob("read-mode", "how leaders confirm linearizable reads: index (a heartbeat round to a quorum) or lease (no round trip while the leader's lease holds; assumes bounded clock drift)", true, func(c *Config) *string { return &c.ReadMode }),
	intKnob("snapshot-every", "snapshot the state machine and compact the log every this many applied entries (0 = never; the WAL then grows for the whole run)", func(c *Config) *int { return &c.SnapshotEvery }),
	intKnob("snapshot-trailing", "log entries kept behind each snapshot, so a follower slightly behind catches up from the log", func(c *Config) *int { return &c.SnapshotTrailing }),
	bytesKnob("wal-memtable", "Pebble memtable size (0 = the wal default, 32 MiB): Pebble's own log file holds every write until its memtable is flushed, so this bounds a node's WAL directory as much as snapshots do", func(c *Config) *int { return &c.WALMemtable }),
	bytesKnob("wal-spare", "size of a pre-written spare WAL file per node (0 = none, the default; 32MiB fits the default memtable's WAL): a new node's WAL fsyncs then overwrite instead of appending, and a restarted node's after its first WAL, at the cost of about seven such files in each WAL directory", func(c *Config) *int { return &c.WALSpare }),
	durKnob("wal-marker-lag", "how far the WAL's durable-index marker may trail synced saves (0 = exact: each synced save also waits for the marker's fsync); a restart refuses a log that lost entries acknowledged before the marker", func(c *Config) *Duration { return &c.WALMarkerLag }),
	bytesKnob("payload", "value size", func(c *Config) *int { return &c.Payload }),
	intKnob("clients", "closed loop: concurrent clients, each waiting for its reply (open loop: initial client pool)", func(c *Config) *int { return &c.Clients }),
	floatKnob("rate", "open loop: operations per second started on schedule (0 = closed loop)", func(c *Config) *float64 { return &c.Rate }),
	durKnob("duration", "measured run length", func(c *Config) *Duration { return &c.Duration }),
	durKnob("warmup", "unmeasured load before the measured run", func(c *Config) *Duration { return &c.Warmup }),
	floatKnob("read-ratio", "fraction of operations that are linearizable reads (ReadIndex)", func(c *Config) *float64 { return &c.ReadRatio }),
	intKnob("keys", "number of distinct keys", func(c *Config) *int { return &c.Keys }),
	durKnob("op-timeout", "give up on one operation after this long (its outcome is then unknown)", func(c *Config) *Duration { return &c.OpTimeout }),
	durKnob("attempt-timeout", "give up on one attempt at one node after this long and try the others (keep it below the election timeout)", func(c *Config) *Duration { return &c.AttemptTimeout }),
	intKnob("count", "repeat the whole run this many times (for variance)", func(c *Config) *int { return &c.Count }),
	{Name: "fault", Usage: "fault to inject, repeatable: NAME[:NODE][=VALUE][@AT[+FOR]] (see: raftbench help faults)", Kind: "spec", Repeat: true,
		set: func(c *Config, v string) error { c.Faults = append(c.Faults, v); return nil },
		get: func(c *Config) string { return strings.Join(c.Faults, ",") }},
	strKnob("cpuprofile", "write a CPU profile to this file in the result directory", false, func(c *Config) *string { return &c.CPUProfile }),
	strKnob("memprofile", "write a heap profile to this file in the result directory", false, func(c *Config) *string { return &c.MemProfile }),
	strKnob("mutexprofile", "write a mutex contention profile to this file in the result directory", false, func(c *Config) *string { return &c.MutexProfile }),
	strKnob("blockprofile", "write a blocking profile to this file in the result directory", false, func(c *Config) *string { return &c.BlockProfile }),
	strKnob("trace", "write an execution trace to this file in the result directory", false, func(c *Config) *string { return &c.Trace }),
	strKnob("pprof-addr", "serve net/http/pprof on this address while running (e.g. localhost:6060)", false, func(c *Config) *string { return &c.PprofAddr }),
	strKnob("metrics-addr", "serve every node's Prometheus metrics (labelled by node) at /metrics on this address while running (e.g. localhost:9090)", false, func(c *Config) *string { return &c.MetricsAddr }),
	boolKnob("check", "record every operation and check the history for linearizability", func(c *Config) *bool { return &c.Check }),
	strKnob("out", "result directory (default results/runs/<UTC time>-<config>)", false, func(c *Config) *string { return &c.Out }),
}

// ProfileDefaults are the file names a bare profiling flag takes.
var ProfileDefaults = map[string]string{
	"cpuprofile": "cpu.pprof", "memprofile": "mem.pprof", "mutexprofile": "mutex.pprof",
	"blockprofile": "block.pprof", "trace": "trace.out",
}

// IsProfileKnob reports whether the knob names a profile file.
func IsProfileKnob(name string) bool {
	_, ok := ProfileDefaults[name]
	return ok
}

// KnobByName finds a knob.
func KnobByName(name string) (*Knob, bool) {
	for i := range Knobs {
		if Knobs[i].Name == name {
			return &Knobs[i], true
		}
	}
	return nil, false
}

// Assignment is one knob set to a value, from a flag or a file.
type Assignment struct {
	Name  string
	Value string
}

// Merge builds the effective configuration: the defaults, then the YAML
// config file (when path is not ""), then the flags, which override the
// file (a repeated flag such as --fault replaces the file's list). It does
// not validate; call Validate on the result.
func Merge(path string, flags []Assignment) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("%w: --config: %v", ErrBadConfig, err)
		}
		if err := applyYAML(&c, path, b); err != nil {
			return c, err
		}
	}
	cleared := map[string]bool{}
	for _, a := range flags {
		k, ok := KnobByName(a.Name)
		if !ok {
			return c, fmt.Errorf("%w: unknown flag --%s", ErrBadConfig, a.Name)
		}
		if k.Repeat && !cleared[k.Name] {
			c.Faults, cleared[k.Name] = nil, true
		}
		if err := k.Set(&c, a.Value); err != nil {
			return c, err
		}
	}
	return c, nil
}

// applyYAML sets the knobs a YAML mapping names. Keys are flag names
// (config.json's keys); "fault" (or "faults") takes a list. Underscores
// read as dashes, for the config.json of older runs (batch_entries).
func applyYAML(c *Config, path string, b []byte) error {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil // an empty file sets nothing
	} else if err != nil {
		return fmt.Errorf("%w: config file %s: %v", ErrBadConfig, path, err)
	}
	if len(root.Content) == 0 {
		return nil // an empty file sets nothing
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%w: config file %s: want a mapping of flag names to values", ErrBadConfig, path)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, m.Content[i+1]
		name := strings.ReplaceAll(key, "_", "-")
		if name == "faults" {
			name = "fault"
		}
		if name == "system-version" {
			continue // a record of what ran (see Config.SystemVersion)
		}
		k, ok := KnobByName(name)
		if !ok || name == "config" {
			return fmt.Errorf("%w: config file %s line %d: unknown key %q", ErrBadConfig, path, m.Content[i].Line, key)
		}
		var vals []string
		switch {
		case val.Kind == yaml.SequenceNode && k.Repeat:
			for _, e := range val.Content {
				vals = append(vals, e.Value)
			}
			c.Faults = nil
		case val.Kind == yaml.ScalarNode && val.Tag == "!!null" && k.Repeat:
			c.Faults = nil
		case val.Kind == yaml.ScalarNode:
			vals = []string{val.Value}
		default:
			return fmt.Errorf("%w: config file %s line %d: key %q wants a single value", ErrBadConfig, path, val.Line, key)
		}
		for _, v := range vals {
			if err := k.Set(c, v); err != nil {
				return fmt.Errorf("%w (config file %s line %d)", err, path, val.Line)
			}
		}
	}
	return nil
}

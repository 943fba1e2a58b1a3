package wal

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// PebbleOptions configures OpenPebble. The zero value is usable: every zero
// field takes the default named in its comment.
type PebbleOptions struct {
	// GroupID is the Raft group whose log this is. Every key carries it, so
	// several groups can share one Pebble instance later. Default 0.
	GroupID uint64

	// FS is the filesystem Pebble runs on. Default vfs.Default (the OS);
	// tests pass vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS

	// MemTableSize is the size of one Pebble memtable, in [1 MiB, 4 GiB).
	// Default DefaultMemTableSize, 32 MiB. See pebbleOptions for why: it
	// bounds the WAL's disk footprint and sets the tail.
	MemTableSize uint64

	// CacheSize is Pebble's block cache in bytes, at least 1 MiB. Default
	// DefaultCacheSize, 16 MiB: reads are mostly of the recent tail, which
	// the memtables hold.
	CacheSize int64

	// WALMinSyncInterval delays each WAL fsync until at least this long
	// after the previous one, so more concurrent saves share it (higher
	// throughput, higher latency). At most 10ms. Default 0: a synced save
	// is never held back; concurrent saves still share fsyncs through
	// Pebble's group commit.
	WALMinSyncInterval time.Duration

	// ExactMarker makes every synced save wait for the durable-index
	// marker (durable.go) to cover it before returning: two fsyncs per
	// synced save, and Open then refuses a log that lost any entry a save
	// reported durable. Default false: the marker trails by up to
	// MarkerLag. Durability itself is the same either way: a save returns
	// only once Pebble's fsync has.
	ExactMarker bool

	// MarkerLag bounds how far the durable-index marker trails synced
	// saves when ExactMarker is off: the log's marker goroutine raises it
	// over every save noted durable, at most once per MarkerLag, so Open
	// refuses a log that lost any entry reported durable more than
	// MarkerLag plus up to two marker fsyncs before a crash (durable.go).
	// In (0, 1s]. Default DefaultMarkerLag (see its measurement).
	MarkerLag time.Duration

	// TermCacheRuns bounds the term cache: how many runs of equal terms in
	// the log's tail are answered from memory, in [1, 1<<20]. Default
	// DefaultTermCacheRuns, 1024.
	TermCacheRuns int

	// SpareWAL, when not 0, is the size in bytes of a spare WAL file the
	// log keeps ready (spare.go): zeros, written and synced ahead of time,
	// that Pebble takes instead of creating an empty WAL file, so a new or
	// restarted store's WAL fsyncs overwrite instead of appending (on the
	// OS filesystem an appending fdatasync also writes the inode); a
	// restarted store's first WAL, created at open before the log's checks
	// have passed, is an ordinary file, and the spare serves the next. In
	// [1 MiB, 4 GiB); MemTableSize fits a full memtable's WAL. Default 0,
	// none: every WAL file Pebble makes from a spare is then recycled at
	// that size, so the WAL directory holds about seven of them (the live
	// WAL, Pebble's five recycled ones and the spare) however light the
	// load, and each spare costs a write of its size. Measured with
	// `raftbench run --clients C --duration 8s --warmup 2s`, interleaved
	// with `--wal-spare 32MiB`: at 256 clients 60.5–77.8k ops/s (median
	// 70.5k over 8 rounds) against 58.2–71.8k (68.8k), p50 2.83–3.68 against
	// 3.17–3.92 ms, p99 10.6–12.3 against 8.2–12.2 ms; at 8 clients with
	// `--snapshot-every 300` the WAL directory peaked at 160 MiB per node
	// against 3.1 MiB, with 1.4 s more system CPU in a 5 s run.
	//
	// Re-measured once the rest of a write had become cheaper (the same
	// command with `--duration 10s`, 4 rounds interleaved ABBA): 124.3k,
	// 126.7k, 69.4k and 58.2k ops/s with a 32 MiB spare against 69.3k,
	// 79.2k, 49.3k and 57.0k without — better in every pair, because a
	// 10 s run after 2 s of warm-up sits inside the transient described in
	// spare.go. After `--warmup 20s` (steady state: full-size memtables,
	// every WAL file recycled at about 28 MB) no gain was measured: 112.0k,
	// 88.7k, 81.9k, 125.4k, 138.0k and 95.9k with the spare against 134.6k,
	// 139.0k, 113.0k, 109.1k, 118.4k and 100.7k without, over 6 rounds
	// (without it ahead in 4 of 6 pairs, within this disk's noise). At that
	// load the WAL directory holds about 213 MiB per node either way, so
	// the spare's files add disk mainly at light load (besides the write of
	// each spare). It stays opt-in: it helps a new or restarted store's
	// first 15–20 s and nothing measurable after.
	SpareWAL uint64

	// Logger receives Pebble's log messages. Default: errors go to Pebble's
	// default logger (the standard log package) and informational messages,
	// a few lines per open and flush, are dropped.
	Logger pebble.Logger
}

// ErrInvalidOptions is wrapped by every error PebbleOptions.Validate
// returns (and so by OpenPebble's for bad options).
var ErrInvalidOptions = errors.New("wal: invalid options")

// Defaults of PebbleOptions, and the limits Validate enforces (named so
// error messages can quote them).
const (
	DefaultMemTableSize  = 32 << 20
	DefaultCacheSize     = 16 << 20
	DefaultTermCacheRuns = 1024
	// DefaultMarkerLag is PebbleOptions.MarkerLag's default. The disk
	// serialises fsyncs, so a marker fsync after every synced save delays
	// the next save's fsync as much when it runs in the background as when
	// the save waits for it; only fewer marker fsyncs help. See durable.go
	// for the measurement that chose it.
	DefaultMarkerLag = 10 * time.Millisecond

	minMemTableSize       = 1 << 20
	maxMemTableSize       = 4 << 30 // Pebble's own limit: must be < 4 GiB
	minCacheSize          = 1 << 20
	maxWALMinSyncInterval = 10 * time.Millisecond
	maxTermCacheRuns      = 1 << 20
	maxMarkerLag          = time.Second
)

// EnsureDefaults sets every zero field to its default. It never validates
// (a value already set stays, however wrong) and calling it again changes
// nothing.
func (o *PebbleOptions) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.TermCacheRuns == 0 {
		o.TermCacheRuns = DefaultTermCacheRuns
	}
	if o.MarkerLag == 0 {
		o.MarkerLag = DefaultMarkerLag
	}
	if o.Logger == nil {
		o.Logger = quietLogger{}
	}
}

// Validate reports every field outside its allowed range, each naming the
// field, its value and the limit, joined into one error wrapping
// ErrInvalidOptions. It expects defaults applied (a zero MemTableSize is an
// error); OpenPebble applies them, then validates.
func (o PebbleOptions) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	if o.MemTableSize < minMemTableSize || o.MemTableSize >= maxMemTableSize {
		bad("MemTableSize %d outside [%d, %d)", o.MemTableSize, minMemTableSize, maxMemTableSize)
	}
	if o.SpareWAL != 0 && (o.SpareWAL < minMemTableSize || o.SpareWAL >= maxMemTableSize) {
		bad("SpareWAL %d outside [%d, %d)", o.SpareWAL, minMemTableSize, maxMemTableSize)
	}
	if o.CacheSize < minCacheSize {
		bad("CacheSize %d below minimum %d", o.CacheSize, minCacheSize)
	}
	if o.WALMinSyncInterval < 0 || o.WALMinSyncInterval > maxWALMinSyncInterval {
		bad("WALMinSyncInterval %v outside [0, %v]", o.WALMinSyncInterval, maxWALMinSyncInterval)
	}
	if o.MarkerLag <= 0 || o.MarkerLag > maxMarkerLag {
		bad("MarkerLag %v outside (0, %v]", o.MarkerLag, maxMarkerLag)
	}
	if o.TermCacheRuns < 1 || o.TermCacheRuns > maxTermCacheRuns {
		bad("TermCacheRuns %d outside [1, %d]", o.TermCacheRuns, maxTermCacheRuns)
	}
	return errors.Join(errs...)
}

// pebbleFormat is the Pebble on-disk format we create and expect. It is
// pinned rather than left to Pebble's default so an upgrade of Pebble never
// changes the files we write without a deliberate change here. It includes
// FormatWALSyncChunks, with which Pebble's WAL replay tells a torn unsynced
// tail (dropped, as the durability contract allows) from corruption of
// synced data (an error) — but only in WALs created once the store is at
// that format, which openDB ensures for a new store's first WAL too.
const pebbleFormat = pebble.FormatValueSeparation

// pebbleOptions translates o (defaults applied) into Pebble options chosen
// for a Raft log: sequential appends, reads of the recent tail, and a prefix
// deleted wholesale at each compaction.
func (o PebbleOptions) pebbleOptions() *pebble.Options {
	minSync := o.WALMinSyncInterval
	logger := o.Logger
	return &pebble.Options{
		FS:     o.FS,
		Logger: logger,
		// Pebble's default reaction to a damaged file is Fatalf, which ends
		// the process. The read that found it returns the error too, which
		// we report as ErrCorrupt: log it and let the caller decide.
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) { logger.Errorf("wal: %s", info) },
		},
		FormatMajorVersion: pebbleFormat,
		// checkTables does this check instead, reporting ErrCorrupt.
		DisableConsistencyCheck: true,
		CacheSize:               o.CacheSize,

		// The memtable size bounds the log's disk footprint: Pebble keeps a
		// memtable's WAL file until the memtable flushes, and the entries a
		// Raft compaction range-deletes only leave the disk at flushes and
		// compactions. It also sets the tail: the three nodes of a group
		// receive the same entries, so they fill and flush their memtables
		// (and compact the flushed tables) at the same moments, and smaller
		// memtables mean more of those moments. Measured with raftbench in
		// one sitting, `raftbench run --clients 256 --duration 10s --warmup
		// 2s --wal-memtable M`, three rounds each: 8 MiB p99 24.5–29.3 ms,
		// p99.9 100–149 ms, 59.5–63.5k ops/s, WAL directory peak 39–42 MiB
		// per node; 16 MiB p99 10.5–25.6, p99.9 97–695, 50.3–63.3k, 85 MiB;
		// 32 MiB p99 9.1–17.0, p99.9 55–101, 57.3–74.0k, 102–143 MiB. An
		// earlier session measured 64 MiB at 328 MiB per node (about all the
		// log written in 30 s) with no further gain, so 32 MiB. The cost is
		// memory too: the default `raftbench run` (64 clients, three nodes
		// in one process) peaked at 222 MB RSS against 109 MB with 8 MiB,
		// with p99 4.1 against 6.4 ms and p99.9 24 against 50 ms.
		MemTableSize: o.MemTableSize,
		// Four queued memtables let appends continue while one or two
		// flush, instead of stalling every save behind a slow flush.
		MemTableStopWritesThreshold: 4,

		// Appends have ever-increasing keys, so flushed sstables barely
		// overlap and L0 compactions are cheap moves; a high stop threshold
		// keeps a burst of flushes from stalling writes, since Raft latency
		// is what we sell.
		L0CompactionThreshold: 4,
		L0StopWritesThreshold: 64,
		// Compactions mostly drop range-deleted prefixes, which is cheap.
		// One at a time normally leaves the CPU and disk to the WAL; a
		// second is allowed when compaction debt builds up.
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },

		// WAL: synced saves fsync it on every commit already, so background
		// syncing (WALBytesPerSync) would only add I/O on the hot path. It
		// stays 0, as does WALMinSyncInterval unless the caller trades
		// latency for fewer fsyncs.
		WALBytesPerSync:    0,
		WALMinSyncInterval: func() time.Duration { return minSync },
	}
}

// quietLogger drops Pebble's informational messages and passes errors and
// fatal errors on to Pebble's default logger.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}

func (quietLogger) Errorf(format string, args ...any) { pebble.DefaultLogger.Errorf(format, args...) }

func (quietLogger) Fatalf(format string, args ...any) { pebble.DefaultLogger.Fatalf(format, args...) }

package core

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns, so
// callers can tell a configuration mistake from a storage failure.
var ErrInvalidConfig = errors.New("core: invalid config")

// Rand is the random source core draws election timeouts from. A seeded
// *math/rand/v2.Rand satisfies it; keeping it in Config (rather than using a
// global source) is what makes every execution reproducible from a seed.
type Rand interface {
	// IntN returns a uniform value in [0, n). n is always > 0.
	IntN(n int) int
}

// ReadOnlyOption says how a leader makes sure it still leads before it
// hands out a read point (ReadIndex).
type ReadOnlyOption uint8

const (
	// ReadOnlySafe confirms every read point with a heartbeat round: the
	// read is answered once a quorum has replied to a heartbeat sent after
	// it was asked (thesis §6.4). It costs a round trip to a quorum per read
	// (reads asked together share one) and assumes nothing about clocks.
	ReadOnlySafe ReadOnlyOption = iota
	// ReadOnlyLeaseBased answers a read point at once, without a round
	// trip, while the leader's lease holds: a quorum answered a heartbeat
	// the leader sent fewer than ElectionTicks-1-LeaseDriftTicks ticks ago
	// (thesis §6.4.1). Outside the lease (or during a leadership transfer)
	// it falls back to ReadOnlySafe's round.
	//
	// Why that is safe, and what it assumes: a follower that answered the
	// heartbeat received it after the leader sent it, and with check-quorum
	// it will not vote for anyone else (nor campaign itself) until it has
	// heard from no leader for ElectionTicks of its own ticks. Any new
	// leader needs the vote of one of that quorum, so none can exist until
	// ElectionTicks after the heartbeat was sent — as long as the nodes'
	// clocks run at the same rate. So this mode assumes bounded clock
	// drift: over an election timeout, no follower's ticks may run ahead of
	// the leader's by more than LeaseDriftTicks. One more tick is kept off
	// because a follower's first tick after hearing the leader may come at
	// once. A leader whose process pauses, or whose ticks fall behind real
	// time, breaks the assumption: the runtime must tick by a monotonic
	// clock, and pauses longer than the margin (a stopped VM, SIGSTOP) are
	// outside what the lease can survive. ReadOnlySafe assumes nothing of
	// the kind; choose the lease only when the saved round trip matters.
	//
	// The followers' side of the promise holds only if every node runs with
	// check-quorum, and a node that starts (say, after a crash) cannot know
	// whose heartbeat it answered before: in this mode it refuses to vote
	// for its first ElectionTicks ticks. Configure the whole cluster alike.
	ReadOnlyLeaseBased
)

// String names the option.
func (o ReadOnlyOption) String() string {
	switch o {
	case ReadOnlySafe:
		return "ReadOnlySafe"
	case ReadOnlyLeaseBased:
		return "ReadOnlyLeaseBased"
	}
	return fmt.Sprintf("ReadOnlyOption(%d)", uint8(o))
}

// Defaults EnsureDefaults gives the zero fields that have one. The tick
// counts suit a 10 ms tick (the node runtime's default): an election
// timeout of 1 s and a heartbeat every 100 ms. See MaxInflight for the
// flow-control numbers.
const (
	DefaultElectionTicks  = 100
	DefaultHeartbeatTicks = 10
	DefaultMaxInflight    = 256
	DefaultMaxSizePerMsg  = 1 << 20
)

// Config is everything New needs. ElectionTicks, HeartbeatTicks,
// MaxInflight and MaxSizePerMsg have defaults (EnsureDefaults, which New
// applies); the other fields either must be set or say what their zero
// value means. Validate names every violation.
type Config struct {
	// ID is this node's identity; never None.
	ID uint64
	// Voters and Learners are the initial membership, used only when Storage
	// holds none (a cluster's first start). After that the membership comes
	// from the log and snapshots.
	Voters   []uint64
	Learners []uint64
	// ElectionTicks is the election timeout ET: a follower that hears nothing
	// from a leader for a random number of ticks in [ET, 2·ET) campaigns.
	// Default DefaultElectionTicks.
	ElectionTicks int
	// HeartbeatTicks is how often a leader asserts itself. It must be below
	// ElectionTicks, or followers would time out between heartbeats.
	// Default DefaultHeartbeatTicks.
	HeartbeatTicks int
	// MaxInflight is how many AppendEntries may be outstanding to one
	// follower in replicate state. With round trip RTT and messages of
	// MaxSizePerMsg bytes, one follower's throughput is bounded by
	// MaxInflight·MaxSizePerMsg/RTT: 256 × 1 MiB over a 1 ms loopback RTT is
	// far above any disk, while 1 would be stop-and-wait. Default
	// DefaultMaxInflight.
	MaxInflight int
	// MaxInflightBytes bounds the entry bytes (Entry.Size) of the appends
	// outstanding to one follower, beside MaxInflight's count; 0 means no
	// byte limit. The count alone lets MaxInflight·MaxSizePerMsg bytes
	// (256 MiB at node's defaults) queue per follower — in the transport,
	// toward a follower that is slow or gone; the byte limit bounds that
	// memory while still allowing MaxInflightBytes/RTT of throughput per
	// follower. An append into an empty window always goes, however large.
	MaxInflightBytes uint64
	// MaxSizePerMsg bounds the entry bytes (Entry.Size) in one
	// AppendEntries. A single larger entry still travels alone. Default
	// DefaultMaxSizePerMsg.
	MaxSizePerMsg uint64
	// MaxUncommittedBytes caps the entry bytes (Entry.Size) the leader may
	// hold appended in its term but not committed; Propose refuses a batch
	// beyond it with ErrUncommittedLimit (a batch is always accepted when
	// nothing is uncommitted). It is what keeps a leader whose quorum has
	// stalled from growing its log in memory without bound. 0 means no cap.
	MaxUncommittedBytes uint64
	// DisablePreVote turns off the pre-vote phase (thesis §9.6), which
	// otherwise stops a node returning from a partition from forcing a term
	// bump on a healthy cluster.
	DisablePreVote bool
	// DisableCheckQuorum turns off check-quorum: otherwise a leader that has
	// not heard from a quorum within an election timeout steps down, and a
	// follower that has heard from a leader within the timeout ignores
	// vote requests (the leader lease).
	DisableCheckQuorum bool
	// ReadOnlyOption chooses how ReadIndex confirms leadership; the zero
	// value is ReadOnlySafe. ReadOnlyLeaseBased requires check-quorum.
	ReadOnlyOption ReadOnlyOption
	// LeaseDriftTicks is the clock-drift margin of ReadOnlyLeaseBased, in
	// ticks: how far a follower's clock may run ahead of the leader's over
	// an election timeout. The lease lasts ElectionTicks-1-LeaseDriftTicks
	// ticks from the heartbeat a quorum answered, and must outlast
	// HeartbeatTicks, or it would lapse between heartbeats. Unused with
	// ReadOnlySafe.
	LeaseDriftTicks int
	// Storage is the durable log core reads from.
	Storage Storage
	// Rand draws election timeouts.
	Rand Rand
	// Applied is the index the state machine has already applied, on a
	// restart; committed entries up to it are not handed out again.
	Applied uint64
}

// EnsureDefaults sets ElectionTicks, HeartbeatTicks, MaxInflight and
// MaxSizePerMsg to their defaults when they are zero. The other zero
// values either mean something (no byte limit, no drift margin, the
// ReadOnlySafe option) or have no default: ID, Voters, Storage, and Rand,
// which core must not invent, since a random source of its own would make
// executions irreproducible. It never validates (a value already set
// stays, however wrong) and calling it again changes nothing.
func (c *Config) EnsureDefaults() {
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
}

// Validate reports every invalid field of c, each naming the field, its value
// and the limit it breaks, joined into one error wrapping ErrInvalidConfig.
// It expects defaults applied (a zero ElectionTicks is an error) and does
// not change c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.ID == None {
		bad("ID is 0; node IDs must be non-zero")
	}
	if len(c.Voters) == 0 {
		bad("Voters is empty; at least one voter is required")
	}
	seen := make(map[uint64]bool, len(c.Voters)+len(c.Learners))
	for _, ids := range [][]uint64{c.Voters, c.Learners} {
		for _, id := range ids {
			if id == None {
				bad("membership lists node ID 0; node IDs must be non-zero")
			} else if seen[id] {
				bad("node %d is listed twice in Voters/Learners", id)
			}
			seen[id] = true
		}
	}
	if c.ID != None && len(c.Voters) > 0 && !slices.Contains(c.Voters, c.ID) && !slices.Contains(c.Learners, c.ID) {
		bad("ID %d is not among Voters %v or Learners %v", c.ID, c.Voters, c.Learners)
	}
	if c.ElectionTicks <= 0 {
		bad("ElectionTicks is %d; must be at least 1", c.ElectionTicks)
	}
	if c.HeartbeatTicks <= 0 {
		bad("HeartbeatTicks is %d; must be at least 1", c.HeartbeatTicks)
	}
	if c.HeartbeatTicks > 0 && c.ElectionTicks > 0 && c.HeartbeatTicks >= c.ElectionTicks {
		bad("HeartbeatTicks %d must be less than ElectionTicks %d", c.HeartbeatTicks, c.ElectionTicks)
	}
	switch c.ReadOnlyOption {
	case ReadOnlySafe:
	case ReadOnlyLeaseBased:
		if c.DisableCheckQuorum {
			bad("ReadOnlyOption %s requires check-quorum, but DisableCheckQuorum is set: followers would not keep the lease's promise", c.ReadOnlyOption)
		}
		if c.LeaseDriftTicks < 0 {
			bad("LeaseDriftTicks is %d; must be at least 0", c.LeaseDriftTicks)
		} else if lease := c.ElectionTicks - 1 - c.LeaseDriftTicks; c.HeartbeatTicks > 0 && lease <= c.HeartbeatTicks {
			bad("the lease (ElectionTicks %d - 1 - LeaseDriftTicks %d = %d ticks) must be longer than HeartbeatTicks %d, or it lapses between heartbeats", c.ElectionTicks, c.LeaseDriftTicks, lease, c.HeartbeatTicks)
		}
	default:
		bad("ReadOnlyOption is %d; want ReadOnlySafe (0) or ReadOnlyLeaseBased (1)", uint8(c.ReadOnlyOption))
	}
	if c.MaxInflight <= 0 {
		bad("MaxInflight is %d; must be at least 1", c.MaxInflight)
	}
	if c.MaxSizePerMsg == 0 {
		bad("MaxSizePerMsg is 0; must be at least 1 byte")
	}
	if c.Storage == nil {
		bad("Storage is nil")
	}
	if c.Rand == nil {
		bad("Rand is nil; pass a seeded source such as rand.New(rand.NewPCG(seed, seed))")
	}
	return errors.Join(errs...)
}

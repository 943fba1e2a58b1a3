package peers_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/peers"
	"github.com/raftbench/raftbench/transport/fault"
)

// Every knob set and not supported is refused, each naming the system and
// the flag, in one joined error; supported and unset knobs pass.
func TestKnobsUnsupported(t *testing.T) {
	k := peers.Knobs{Tick: time.Millisecond, MaxInflight: 64, NoSync: true, Groups: 1}
	err := k.Unsupported("sys", []string{"tick"}, map[string]string{"max-inflight": "it has no window"})
	if !errors.Is(err, peers.ErrUnsupported) {
		t.Fatalf("Unsupported = %v, want ErrUnsupported", err)
	}
	msg := err.Error()
	for _, want := range []string{"sys has no --max-inflight knob (it has no window)", "sys has no --sync knob"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	for _, not := range []string{"--tick", "--groups"} {
		if strings.Contains(msg, not) {
			t.Errorf("error %q refuses %s, which is supported or unset (groups 1 is the default)", msg, not)
		}
	}
	if err := (peers.Knobs{}).Unsupported("sys", nil, nil); err != nil {
		t.Errorf("no knob set: %v", err)
	}
	if got := len(peers.KnobFlags()); got != 14 {
		t.Errorf("KnobFlags has %d names, want one per Knobs field (14)", got)
	}
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		k                   peers.Knobs
		tick                time.Duration
		election, heartbeat int
		bad                 bool
	}{
		{peers.Knobs{}, 10 * time.Millisecond, 100, 10, false},
		{peers.Knobs{Tick: 5 * time.Millisecond, ElectionTimeout: time.Second, Heartbeat: 50 * time.Millisecond}, 5 * time.Millisecond, 200, 10, false},
		{peers.Knobs{ElectionTimeout: 15 * time.Millisecond}, 10 * time.Millisecond, 1, 10, true},
		{peers.Knobs{Heartbeat: time.Second}, 10 * time.Millisecond, 100, 100, true},
		{peers.Knobs{Tick: time.Microsecond}, time.Microsecond, 100, 10, true},
	} {
		tick, e, h, err := tc.k.Ticks("sys", 10*time.Millisecond, 100, 10)
		if (err != nil) != tc.bad || tick != tc.tick || e != tc.election || h != tc.heartbeat {
			t.Errorf("Ticks(%+v) = %v %d %d %v; want %v %d %d, error %t", tc.k, tick, e, h, err, tc.tick, tc.election, tc.heartbeat, tc.bad)
		}
		if err != nil && !errors.Is(err, peers.ErrInvalidConfig) {
			t.Errorf("Ticks(%+v) error %v does not wrap ErrInvalidConfig", tc.k, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := peers.Config{Nodes: 100, Knobs: peers.Knobs{MaxInflight: -1, SnapshotTrailing: 10}}
	c.EnsureDefaults()
	err := c.Validate()
	for _, want := range []string{"Dir is empty", "Nodes is 100", "--max-inflight is -1", "--snapshot-trailing is 10 but --snapshot-every is 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to report %q", err, want)
		}
	}
	good := peers.Config{Dir: t.TempDir()}
	good.EnsureDefaults()
	if err := good.Validate(); err != nil || good.Nodes != peers.DefaultNodes {
		t.Errorf("defaults: Validate() = %v, Nodes %d", err, good.Nodes)
	}
}

// A Link decides like fault.Transport: partitions and drops lose
// messages, duplicates give two copies, delays fall in [Delay,
// Delay+Jitter), and the counters say so.
func TestLinkDecide(t *testing.T) {
	net := fault.NewNetwork()
	l := peers.NewLink(1, 7, net)
	if n, d := l.Decide(2); n != 1 || d[0] != 0 {
		t.Fatalf("no rules: %d copies delayed %v, want 1 now", n, d[0])
	}
	net.Isolate(2)
	if n, _ := l.Decide(2); n != 0 || !l.Lose(2) {
		t.Fatal("a message to an isolated node was not lost")
	}
	if !l.BlockedFrom(2) {
		t.Fatal("a message from an isolated node was not blocked")
	}
	net.Heal()
	if err := l.SetRules(fault.Rules{DropRate: 2}); err == nil {
		t.Fatal("SetRules took a drop rate of 2")
	}
	if err := l.SetRules(fault.Rules{DropRate: 0.3, DuplicateRate: 0.3, Delay: 2 * time.Millisecond, Jitter: 3 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var lost, dup int
	for range 2000 {
		n, d := l.Decide(3)
		switch n {
		case 0:
			lost++
		case 2:
			dup++
		}
		for i := range n {
			if d[i] < 2*time.Millisecond || d[i] >= 5*time.Millisecond {
				t.Fatalf("delay %v outside [2ms, 5ms)", d[i])
			}
		}
	}
	if lost < 450 || lost > 750 || dup < 300 || dup > 550 {
		t.Fatalf("of 2000 messages %d lost and %d duplicated; want about 600 and 420", lost, dup)
	}
	c := l.Counters()
	if c.Dropped != uint64(lost) || c.Duplicated != uint64(dup) || c.PartitionedSend != 3 || c.Delayed == 0 {
		t.Fatalf("counters %+v disagree with %d lost, %d duplicated, 3 partitioned", c, lost, dup)
	}
}

// A Delayer releases in due order, equal times in send order, and drops
// what it holds at Close.
func TestDelayer(t *testing.T) {
	var mu sync.Mutex
	var got []int
	done := make(chan struct{}, 8)
	d := peers.NewDelayer(func(xs []int) {
		mu.Lock()
		got = append(got, xs...)
		mu.Unlock()
		done <- struct{}{}
	})
	d.After(30*time.Millisecond, 3)
	d.After(10*time.Millisecond, 1)
	d.After(20*time.Millisecond, 2)
	d.After(time.Hour, 99)
	deadline := time.After(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 {
			break
		}
		select {
		case <-done:
		case <-deadline:
			t.Fatalf("released %v within 5s, want [1 2 3]", got)
		}
	}
	d.Close()
	d.After(0, 100) // after Close: dropped
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("released %v, want [1 2 3] and nothing after Close", got)
	}
}

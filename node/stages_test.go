package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
)

// proposeN proposes n commands from a few goroutines to whichever node
// leads, and returns how many succeeded.
func proposeN(t *testing.T, c *nodetest.Cluster, n int) int64 {
	t.Helper()
	var ok atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if l := c.LeaderNode(); l != nil {
					if _, err := l.Propose(ctx, []byte("some command of a few bytes")); err == nil {
						ok.Add(1)
					}
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatal("no proposal succeeded")
	}
	return ok.Load()
}

// merged sums the stage timings of every running node.
func merged(t *testing.T, c *nodetest.Cluster) *node.StageTimings {
	t.Helper()
	all := node.NewStageTimings()
	for _, n := range c.Nodes() {
		st := n.StageTimings()
		if st == nil {
			t.Fatalf("node %d: StageTimings is nil with timing on", n.ID())
		}
		all.Merge(st)
	}
	return all
}

// On a real 3-node cluster (TCP, Pebble with fsync), every answered write
// is split into stages whose sums add up exactly to the sum of the
// writes' latencies, the follower reports arrive and split the round
// trip, and the accounting survives a window difference and a JSON round
// trip exactly.
func TestStageTimingsOnACluster(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Nodes: 3, NewSM: func(uint64) node.StateMachine { return &nopSM{} }})
	c.WaitLeader(10 * time.Second)
	first := proposeN(t, c, 100)
	before := merged(t, c)
	second := proposeN(t, c, 200)
	after := merged(t, c)

	for _, st := range []struct {
		name string
		t    *node.StageTimings
		want int64
	}{{"first 100", before, first}, {"all", after, first + second}} {
		tm := st.t
		var sum int64
		for s := range node.NumStages {
			if got := tm.Stages[s].Count(); got != st.want {
				t.Errorf("%s: stage %s counted %d writes, %d succeeded", st.name, s, got, st.want)
			}
			if tm.Stages[s].SumNanos < 0 {
				t.Errorf("%s: stage %s sums to %d ns: a stage went backwards", st.name, s, tm.Stages[s].SumNanos)
			}
			sum += tm.Stages[s].SumNanos
		}
		if tm.Total.Count() != st.want {
			t.Errorf("%s: total counted %d writes, want %d", st.name, tm.Total.Count(), st.want)
		}
		if sum != tm.Total.SumNanos {
			t.Errorf("%s: stages sum to %d ns, the writes' latencies to %d ns: they must be equal", st.name, sum, tm.Total.SumNanos)
		}
		toCommit := tm.Stages[node.StageLeaderAppend].SumNanos + tm.Stages[node.StageReplication].SumNanos
		if got := tm.Detail[node.DetailToCommit].SumNanos; got != toCommit {
			t.Errorf("%s: to_commit sums to %d ns, leader_append + replication to %d", st.name, got, toCommit)
		}
	}

	d := after.Detail
	acks := d[node.DetailAppendRTT].Count()
	if acks == 0 {
		t.Fatal("no follower acknowledgement was timed: the followers' reports did not arrive")
	}
	if d[node.DetailNetwork].Count() != acks || d[node.DetailFollowerHold].Count() != acks {
		t.Errorf("network %d and hold %d counts differ from the %d round trips", d[node.DetailNetwork].Count(), d[node.DetailFollowerHold].Count(), acks)
	}
	if d[node.DetailFollowerPersist].Count() == 0 {
		t.Error("no follower reported a WAL save, though every append was saved with fsync")
	}
	if got, rtt := d[node.DetailNetwork].SumNanos+d[node.DetailFollowerHold].SumNanos, d[node.DetailAppendRTT].SumNanos; got < rtt {
		t.Errorf("network + hold = %d ns < round trips %d ns", got, rtt)
	}
	if d[node.DetailFollowerHold].SumNanos < d[node.DetailFollowerPersist].SumNanos {
		t.Errorf("followers held appends %d ns in all but saved them for %d ns: a hold includes its save", d[node.DetailFollowerHold].SumNanos, d[node.DetailFollowerPersist].SumNanos)
	}
	for _, n := range c.Nodes() {
		if n.StageTimings().Detail[node.DetailWALFsync].Count() == 0 {
			t.Errorf("node %d timed no synced WAL save", n.ID())
		}
	}

	// The window between the two copies holds exactly the second round.
	win, err := after.Sub(before)
	if err != nil {
		t.Fatal(err)
	}
	for s := range node.NumStages {
		if got := win.Stages[s].Count(); got != second {
			t.Errorf("window: stage %s counted %d, want %d", s, got, second)
		}
		if got := win.Stages[s].SumNanos; got != after.Stages[s].SumNanos-before.Stages[s].SumNanos {
			t.Errorf("window: stage %s sum %d", s, got)
		}
	}
	if _, err := before.Sub(after); !errors.Is(err, node.ErrNotEarlier) {
		t.Errorf("subtracting a later copy: %v, want ErrNotEarlier", err)
	}

	// JSON carries everything exactly.
	b, err := json.Marshal(after)
	if err != nil {
		t.Fatal(err)
	}
	var back node.StageTimings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"queue", "answer", "total", "to_commit", "follower_fsync", "wal_fsync"} {
		x, _ := after.ByName(name)
		y, ok := back.ByName(name)
		if !ok || x.SumNanos != y.SumNanos || !x.Hist.Equals(y.Hist) {
			t.Errorf("%s changed in a JSON round trip", name)
		}
	}

	// The Prometheus collector exports the same counts and sums.
	l := c.LeaderNode()
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	own := l.StageTimings()
	found := false
	for _, f := range fams {
		if f.GetName() != "raftbench_write_stage_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "stage") != "total" {
				continue
			}
			found = true
			h := m.GetHistogram()
			// The collector reads the timings after our copy; nothing is
			// proposed meanwhile, so they are equal.
			if int64(h.GetSampleCount()) != own.Total.Count() || h.GetSampleSum() != float64(own.Total.SumNanos)/1e9 {
				t.Errorf("exported total count %d sum %g, node has %d and %g", h.GetSampleCount(), h.GetSampleSum(), own.Total.Count(), float64(own.Total.SumNanos)/1e9)
			}
			if last := h.GetBucket()[len(h.GetBucket())-1]; last.GetCumulativeCount() > h.GetSampleCount() {
				t.Errorf("bucket le=%g counts %d of %d", last.GetUpperBound(), last.GetCumulativeCount(), h.GetSampleCount())
			}
		}
	}
	if !found {
		t.Error("the collector exports no raftbench_write_stage_seconds{stage=\"total\"}")
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// With NoStageTiming a node keeps no timings and, as a follower, sends no
// reports: a leader that does time its writes sees no acknowledgement
// timings from such followers.
func TestNoStageTiming(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Nodes: 3, NewSM: func(uint64) node.StateMachine { return &nopSM{} },
		Configure: func(cfg *node.Config) { cfg.NoStageTiming = cfg.ID != 1 }})
	// Node 1 must lead: it is the one that times.
	deadline := time.Now().Add(20 * time.Second)
	for c.WaitLeader(10*time.Second) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("node 1 never became leader")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.LeaderNode().TransferLeadership(ctx, 1)
		cancel()
	}
	done := proposeN(t, c, 50)
	for _, n := range c.Nodes() {
		st := n.StageTimings()
		if n.ID() != 1 {
			if st != nil {
				t.Errorf("node %d: StageTimings with NoStageTiming = %v, want nil", n.ID(), st)
			}
			continue
		}
		if st.Total.Count() != done && c.LeaderNode() == n {
			t.Errorf("leader timed %d writes, %d succeeded", st.Total.Count(), done)
		}
		if got := st.Detail[node.DetailAppendRTT].Count(); got != 0 {
			t.Errorf("leader timed %d acknowledgements from followers that send no reports", got)
		}
	}
}

// Decoding stage timings from another process reports what is wrong with
// them instead of accepting it.
func TestStageTimingsBadJSON(t *testing.T) {
	good, err := json.Marshal(node.NewStageTimings())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(map[string]map[string]any)) []byte {
		var c map[string]map[string]any
		_ = json.Unmarshal(good, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"not an object":  {[]byte(`[1]`), "stage timings"},
		"missing":        {edit(func(c map[string]map[string]any) { delete(c, "answer") }), `"answer" is missing`},
		"bad histogram":  {edit(func(c map[string]map[string]any) { c["queue"]["hdr"] = "not base64!" }), `"queue" histogram`},
		"count mismatch": {edit(func(c map[string]map[string]any) { c["total"]["count"] = 3 }), `"total" says count 3`},
	}
	for name, tc := range cases {
		var st node.StageTimings
		err := json.Unmarshal(tc.in, &st)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}

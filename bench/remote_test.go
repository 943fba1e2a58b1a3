package bench

import (
	"strings"
	"testing"
	"time"
)

// agreedKnobs takes the knobs every node reports when they agree, none
// when some node reports none, and names each disagreement with both
// nodes and both values.
func TestAgreedKnobs(t *testing.T) {
	ids := []uint64{1, 2, 3}
	a := map[string]string{"tick": "5ms", "batch-entries": "64"}
	b := map[string]string{"tick": "5ms", "batch-entries": "4096"}
	got, probs := agreedKnobs(ids, map[uint64]map[string]string{1: a, 2: a, 3: a})
	if len(probs) > 0 || got["batch-entries"] != "64" || got["tick"] != "5ms" {
		t.Errorf("agreeing nodes: %v, %v", got, probs)
	}
	got, probs = agreedKnobs(ids, map[uint64]map[string]string{1: a, 2: nil, 3: a})
	if got != nil || len(probs) > 0 {
		t.Errorf("a node reporting nothing: %v, %v; want nil, none", got, probs)
	}
	got, probs = agreedKnobs(ids, map[uint64]map[string]string{1: a, 2: a, 3: b})
	if got != nil || len(probs) != 1 {
		t.Fatalf("disagreeing nodes: %v, %v; want nil and one problem", got, probs)
	}
	for _, w := range []string{"node 1", "--batch-entries=64", "node 3", "--batch-entries=4096"} {
		if !strings.Contains(probs[0], w) {
			t.Errorf("%q does not name %q", probs[0], w)
		}
	}
}

// setNodeKnobs records what the nodes reported, keeps the run's own seed
// and max-msg-bytes, and says so when it cannot.
func TestSetNodeKnobs(t *testing.T) {
	nodes := Default()
	nodes.Tick, nodes.BatchEntries, nodes.Seed, nodes.MaxMsgBytes = Duration(5*time.Millisecond), 64, 99, 1<<16
	c := Default()
	if err := setNodeKnobs(&c, nodes.NodeKnobValues()); err != nil {
		t.Fatal(err)
	}
	if c.Tick.D() != 5*time.Millisecond || c.BatchEntries != 64 {
		t.Errorf("tick %v batch-entries %d: want the nodes' 5ms and 64", c.Tick.D(), c.BatchEntries)
	}
	if d := Default(); c.Seed != d.Seed || c.MaxMsgBytes != d.MaxMsgBytes {
		t.Errorf("seed %d max-msg-bytes %d: the run's own must stay", c.Seed, c.MaxMsgBytes)
	}
	if err := setNodeKnobs(&c, nil); err == nil || !strings.Contains(err.Error(), "did not report") {
		t.Errorf("nothing reported: %v", err)
	}
	bad := nodes.NodeKnobValues()
	bad["tick"] = "soon"
	delete(bad, "wal")
	err := setNodeKnobs(&c, bad)
	if err == nil || !strings.Contains(err.Error(), "--tick=soon") || !strings.Contains(err.Error(), "--wal (not reported)") {
		t.Errorf("an unreadable and a missing knob: %v", err)
	}
}

package target

import (
	"testing"

	"github.com/raftbench/raftbench/bench"
)

// TestKnobsClassified: every bench knob is the harness's, mapped onto the
// libraries, or refused with a reason, in exactly one of the three, so a
// knob added to bench is classified here before a peer run can take it.
func TestKnobsClassified(t *testing.T) {
	for _, k := range bench.Knobs {
		_, refused := notMapped[k.Name]
		n := 0
		for _, in := range []bool{harnessKnobs[k.Name], mappedKnobs[k.Name], refused} {
			if in {
				n++
			}
		}
		if n != 1 {
			t.Errorf("knob --%s is in %d of harnessKnobs, mappedKnobs and notMapped; want exactly one", k.Name, n)
		}
	}
	for _, m := range []map[string]bool{harnessKnobs, mappedKnobs} {
		for name := range m {
			if _, ok := bench.KnobByName(name); !ok {
				t.Errorf("%q is classified but is not a bench knob", name)
			}
		}
	}
	for name := range notMapped {
		if _, ok := bench.KnobByName(name); !ok {
			t.Errorf("%q is classified but is not a bench knob", name)
		}
	}
}

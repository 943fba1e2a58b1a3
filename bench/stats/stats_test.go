package stats

import (
	"math"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/bench/results"
)

func group(name string, tput ...float64) Group {
	g := Group{Name: name}
	for _, v := range tput {
		g.Summaries = append(g.Summaries, results.Summary{ThroughputOpsPerSec: v, LatencyUS: results.Latency{P99: 1000}})
	}
	return g
}

func TestCompareSignificance(t *testing.T) {
	m := Metrics[0] // throughput, higher is better
	base := Summarize(group("a", 100, 101, 99, 100, 102, 98), m)
	if base.Center != 100 || base.N != 6 {
		t.Fatalf("median %v n %d, want 100 and 6", base.Center, base.N)
	}
	if !(base.Lo <= 100 && base.Hi >= 100 && base.Hi-base.Lo < 10) {
		t.Errorf("confidence interval [%v, %v] should be tight around 100", base.Lo, base.Hi)
	}
	faster := Summarize(group("b", 120, 121, 119, 122, 118, 120), m)
	d := Compare(base, faster, m)
	if !d.Significant || !d.Better || math.Abs(d.Pct-20) > 0.01 || d.P >= 0.05 {
		t.Errorf("clearly faster: %+v, want a significant +20%% improvement", d)
	}
	same := Summarize(group("c", 101, 99, 100, 98, 102, 100), m)
	if d := Compare(base, same, m); d.Significant || !strings.HasPrefix(d.Text, "~") {
		t.Errorf("same distribution: %+v, want ~", d)
	}
	p99 := Metrics[4]
	worse := Summarize(Group{Summaries: []results.Summary{{LatencyUS: results.Latency{P99: 2000}}, {LatencyUS: results.Latency{P99: 2100}},
		{LatencyUS: results.Latency{P99: 1900}}, {LatencyUS: results.Latency{P99: 2050}}, {LatencyUS: results.Latency{P99: 1950}}, {LatencyUS: results.Latency{P99: 2000}}}}, p99)
	if d := Compare(Summarize(group("a", 1, 1, 1, 1, 1, 1), p99), worse, p99); !d.Significant || d.Better {
		t.Errorf("doubled p99: %+v, want significant and worse", d)
	}
	one := Summarize(group("d", 150), m)
	if d := Compare(base, one, m); d.Significant || !strings.Contains(d.Text, "no test") {
		t.Errorf("single run: %+v, want no test", d)
	}
}

func TestTable(t *testing.T) {
	tab := Table([]Group{group("base", 100, 101, 99, 100, 102, 98), group("new", 120, 121, 119, 122, 118, 120)})
	for _, want := range []string{"| throughput (ops/s) | 100 ±", "+20.00% (p=", "better", "base (n=6)"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}

package results

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func sampleData() (*Summary, []TimelineRow) {
	yes := true
	s := &Summary{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationSec: 3, ThroughputOpsPerSec: 1234.5, ThroughputMBPerSec: 0.158,
		Ops: 3703, Writes: 3703, Errors: map[string]int64{"outcome_unknown": 2},
		LatencyUS:     Latency{P50: 100, P90: 200, P99: 300, P999: 400, Max: 500, Mean: 120},
		LeaderChanges: 1, Failovers: []Failover{{Fault: "kill-leader@1s", OldLeader: 1, NewLeader: 2, AtMS: 1000, ToLeaderMS: 350, ToCommitMS: 360}},
		Faults:       []AppliedFault{{AtMS: 1000, Spec: "kill-leader@1s", What: "killed node 1"}},
		Linearizable: &yes, LinearizabilityCheck: "ok", ReplicasAgree: true, ReplicaHashes: map[string]string{"1": "ab"},
		AckedOpsFound: true, AckedWrites: 3703, Env: CurrentEnv(),
	}
	rows := []TimelineRow{{Second: 0, Ops: 2000, P50US: 90, P99US: 250, Leader: 1, Term: 1},
		{Second: 1, Ops: 1000, Errors: 2, P50US: 110, P99US: 350000, Leader: 2, Term: 2, Faults: "kill-leader@1s: killed node 1, then, \"quoted\""}}
	return s, rows
}

// TestRoundTrip writes a result directory and reads it back: summary.json
// and timeline.csv exactly, latency.hlog through HdrHistogram's own log
// reader, and latency.hgrm's percentiles against the histogram's.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, rows := sampleData()
	total := NewHistogram()
	var ivs []*hdrhistogram.Histogram
	for i := range 3 {
		st := s.Started.Add(time.Duration(i) * time.Second)
		h := IntervalHistogram(st, st.Add(time.Second))
		for v := 1; v <= 1000*(i+1); v++ {
			RecordUS(h, time.Duration(v*(i+1))*time.Microsecond)
			RecordUS(total, time.Duration(v*(i+1))*time.Microsecond)
		}
		ivs = append(ivs, h)
	}
	RecordUS(total, 2*time.Minute) // beyond the range: clamped, not lost
	cfg := map[string]any{"nodes": 3.0, "faults": []any{"kill-leader@1s"}}
	if err := WriteData(dir, cfg, s, total, ivs, rows); err != nil {
		t.Fatal(err)
	}
	run, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(s)
	got, _ := json.Marshal(run.Summary)
	if !bytes.Equal(want, got) {
		t.Errorf("summary round trip:\n got %s\nwant %s", got, want)
	}
	if !reflect.DeepEqual(run.Timeline, rows) {
		t.Errorf("timeline round trip:\n got %+v\nwant %+v", run.Timeline, rows)
	}
	if !reflect.DeepEqual(run.Config, cfg) {
		t.Errorf("config round trip: got %v", run.Config)
	}
	if len(run.Intervals) != 3 {
		t.Fatalf("hlog: %d intervals, want 3", len(run.Intervals))
	}
	for i, h := range run.Intervals {
		if h.TotalCount() != ivs[i].TotalCount() || h.Max() != ivs[i].Max() || h.ValueAtQuantile(99) != ivs[i].ValueAtQuantile(99) {
			t.Errorf("hlog interval %d: count %d max %d p99 %d, want %d %d %d", i, h.TotalCount(), h.Max(), h.ValueAtQuantile(99),
				ivs[i].TotalCount(), ivs[i].Max(), ivs[i].ValueAtQuantile(99))
		}
		if h.StartTimeMs() != ivs[i].StartTimeMs() {
			t.Errorf("hlog interval %d starts at %d, want %d", i, h.StartTimeMs(), ivs[i].StartTimeMs())
		}
	}

	f, err := os.Open(filepath.Join(dir, HgrmFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, mean, maxMS, count, err := ReadHgrm(f)
	if err != nil {
		t.Fatal(err)
	}
	if count != total.TotalCount() || len(lines) < 10 {
		t.Fatalf("hgrm: count %d with %d rows, want %d", count, len(lines), total.TotalCount())
	}
	if math.Abs(maxMS*HgrmScale-float64(total.Max())) > 1 || math.Abs(mean*HgrmScale-total.Mean()) > 1 {
		t.Errorf("hgrm footer: max %v mean %v ms, want %v %v µs", maxMS, mean, total.Max(), total.Mean())
	}
	if total.Max() != HighestUS && !total.ValuesAreEquivalent(total.Max(), HighestUS) {
		t.Errorf("a 2-minute latency must be clamped to %d µs, max is %d", HighestUS, total.Max())
	}
	// Each row's value is the histogram's value at the row's cumulative
	// count (to the histogram's 3 significant digits).
	for _, l := range lines {
		want := float64(total.ValueAtQuantile(100*float64(l.TotalCount)/float64(count))) / HgrmScale
		if math.Abs(l.ValueMS-want) > want*0.002 {
			t.Errorf("hgrm row at %v (count %d): %v ms, histogram says %v ms", l.Percentile, l.TotalCount, l.ValueMS, want)
		}
	}
}

func TestReadRejectsNonResultDir(t *testing.T) {
	if _, err := Read(t.TempDir()); err == nil {
		t.Error("reading an empty directory must fail")
	}
	if _, err := ReadTimeline([]byte("second,ops\n1,2\n")); err == nil {
		t.Error("a short timeline row must fail")
	}
}

// A timeline written before the incomplete and max_us columns still reads.
func TestReadOldTimeline(t *testing.T) {
	rows, err := ReadTimeline([]byte("second,ops,errors,p50_us,p99_us,leader,term,faults\n0,10,1,100,200,1,2,x\n"))
	if err != nil || len(rows) != 1 || rows[0].Ops != 10 || rows[0].P99US != 200 || rows[0].Term != 2 || rows[0].Faults != "x" || rows[0].MaxUS != 0 {
		t.Errorf("old timeline: %+v, %v", rows, err)
	}
	if _, err := ReadTimeline([]byte("second,ops\n1,2\n")); err == nil {
		t.Error("a timeline without its columns read")
	}
}

// The commit is the one stamped at build time; without one it comes from
// the binary's own build info, never from the directory it runs in.
func TestCommitStamp(t *testing.T) {
	old := stampedCommit
	defer func() { stampedCommit = old }()
	stampedCommit = "0123abcd-dirty"
	if c := CurrentEnv().Commit; c != "0123abcd-dirty" {
		t.Errorf("stamped commit: env.commit %q", c)
	}
	stampedCommit = ""
	wd, _ := os.Getwd()
	dir := t.TempDir() // not a repository at all
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	c := Commit()
	if c == "" || (c != "unknown" && len(strings.TrimSuffix(c, "-dirty")) != 40) {
		t.Errorf("unstamped commit %q, want unknown or the build's revision", c)
	}
	if !strings.Contains(Version(), c) {
		t.Errorf("Version %q lacks the commit %q", Version(), c)
	}
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftbench/raftbench/bench/results"
)

// TestVersionAndHelp: --version names the build's commit; help shows each
// flag's type with units and the defaults each command really uses.
func TestVersionAndHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "raftbench "+results.Commit()) {
		t.Errorf("--version: exit %d, %q", code, stdout.String())
	}
	help := func(args ...string) string {
		var out bytes.Buffer
		if code := realMain(context.Background(), append(args, "--help"), &out, &out); code != 0 {
			t.Fatalf("%v --help: exit %d", args, code)
		}
		return out.String()
	}
	flagLine := func(h, flag string) string {
		_, flags, _ := strings.Cut(h, "\nFlags:\n")
		for _, l := range strings.Split(flags, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "--"+flag+" ") {
				return l
			}
		}
		t.Fatalf("help has no --%s:\n%s", flag, h)
		return ""
	}
	run := help("run")
	for flag, want := range map[string][]string{
		"batch-bytes":       {"bytes", "(default 4MiB)"},
		"payload":           {"bytes", "(default 128)"},
		"duration":          {"duration", "(default 10s)"},
		"proposal-pipeline": {"int", "(default 1)"},
		"cpuprofile":        {"file[=cpu.pprof]"},
		"fault":             {"spec", "raftbench help faults"},
		"metrics-addr":      {"host:port"},
		"election-timeout":  {"duration", "(default 1s)"},
	} {
		l := flagLine(run, flag)
		for _, w := range want {
			if !strings.Contains(l, w) {
				t.Errorf("run --%s help %q lacks %q", flag, l, w)
			}
		}
	}
	tb := help("tune", "batch")
	for flag, want := range map[string]string{"duration": "(default 3s)", "warmup": "(default 1s)", "count": "(default 3)"} {
		if l := flagLine(tb, flag); !strings.Contains(l, want) {
			t.Errorf("tune batch --%s help %q lacks its real default %q", flag, l, want)
		}
	}
	if l := flagLine(help("tune", "election"), "warmup"); !strings.Contains(l, "(default 1s)") {
		t.Errorf("tune election --warmup help %q", l)
	}
}

func TestJoinProfileArgs(t *testing.T) {
	got := joinProfileArgs([]string{"run", "--cpuprofile", "my.pprof", "--memprofile", "--out", "x", "--trace", "t.out", "--", "--blockprofile", "b"})
	want := []string{"run", "--cpuprofile=my.pprof", "--memprofile", "--out", "x", "--trace=t.out", "--", "--blockprofile", "b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("joinProfileArgs = %q, want %q", got, want)
	}
}

// TestCountAndCompare: --count writes one directory per repetition, each
// with a config.json that reproduces it alone, and a combined summary on
// top; compare reads it as one sample in every format, and refuses to pool
// a directory whose runs have different configurations.
func TestCountAndCompare(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "count")
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), []string{"run", "--count", "2", "--wal", "memory", "--snapshot-every", "0", "--duration", "300ms", "--warmup", "100ms",
		"--clients", "8", "--tick", "5ms", "--election-timeout", "300ms", "--heartbeat", "30ms", "--memprofile", "mem.out", "--seed", "7", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, f := range []string{"combined.json", "combined.md", "config.json", "run-01/summary.json", "run-02/summary.json", "run-01/mem.out", "run-02/report.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("--count directory lacks %s", f)
		}
	}
	var comb struct {
		Runs    []string `json:"runs"`
		Metrics []struct {
			Key      string  `json:"key"`
			N        int     `json:"n"`
			Median   float64 `json:"median"`
			Min, Max float64
		} `json:"metrics"`
		VerdictsHold bool `json:"verdicts_hold"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "combined.json"))
	if err := json.Unmarshal(b, &comb); err != nil || len(comb.Runs) != 2 || !comb.VerdictsHold || comb.Metrics[0].Key != "throughput_ops_per_sec" ||
		comb.Metrics[0].N != 2 || comb.Metrics[0].Median <= 0 || comb.Metrics[0].Min > comb.Metrics[0].Max {
		t.Errorf("combined.json: %v\n%s", err, b)
	}
	if !strings.Contains(stdout.String(), "combined (") {
		t.Errorf("stdout lacks the combined summary:\n%s", stdout.String())
	}
	seedOf := func(f string) (seed, count float64) {
		var m map[string]any
		b, _ := os.ReadFile(f)
		_ = json.Unmarshal(b, &m)
		seed, _ = m["seed"].(float64)
		count, _ = m["count"].(float64)
		return seed, count
	}
	if s, c := seedOf(filepath.Join(out, "config.json")); s != 7 || c != 2 {
		t.Errorf("top config.json: seed %v count %v, want 7 and 2", s, c)
	}
	if s, c := seedOf(filepath.Join(out, "run-02", "config.json")); s != 8 || c != 1 {
		t.Errorf("run-02/config.json: seed %v count %v, want 8 and 1", s, c)
	}

	for _, format := range []string{"text", "csv", "json", "markdown"} {
		stdout.Reset()
		stderr.Reset()
		if code := realMain(context.Background(), []string{"compare", "--format", format, out, out}, &stdout, &stderr); code != 0 {
			t.Errorf("compare --format %s: exit %d: %s", format, code, stderr.String())
		}
		if format == "json" && !json.Valid(stdout.Bytes()) {
			t.Errorf("compare --format json is not JSON:\n%s", stdout.String())
		}
		if format == "text" && (!strings.Contains(stdout.String(), "count (n=2)") || !strings.Contains(stdout.String(), "at least 6 runs")) {
			t.Errorf("compare text:\n%s", stdout.String())
		}
	}
	// A third repetition with other settings may not join the sample.
	if err := os.CopyFS(filepath.Join(out, "run-03"), os.DirFS(filepath.Join(out, "run-02"))); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(out, "run-03", "config.json")
	b, _ = os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, bytes.Replace(b, []byte(`"clients": 8`), []byte(`"clients": 99`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := realMain(context.Background(), []string{"compare", out, out}, &stdout, &stderr); code != exitBadInput || !strings.Contains(stderr.String(), "clients (8 vs 99)") {
		t.Errorf("compare of mixed configurations: exit %d, %q", code, stderr.String())
	}
	if code := realMain(context.Background(), []string{"compare", "--force", out, out}, &stdout, &stderr); code != 0 {
		t.Errorf("compare --force: exit %d", code)
	}
	if code := realMain(context.Background(), []string{"compare", "--format", "yaml", out, out}, &stdout, &stderr); code != exitBadInput {
		t.Errorf("compare --format yaml: exit %d", code)
	}
}

// TestOpenLoopOutageAtEnd: an open-loop run whose leader is killed in its
// last second (and not replaced before the window closes, with the default
// 1 s election timeout) must show the outage: the operations scheduled
// after the kill are incomplete, in the tail with their time until the
// close, and in the last second's row.
func TestOpenLoopOutageAtEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), []string{"run", "--rate", "400", "--duration", "2s", "--warmup", "300ms", "--sync=false",
		"--snapshot-every", "0", "--fault", "kill-leader@1200ms", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	s := run.Summary
	t.Logf("incomplete %d, p99 %.0f µs, max %.0f µs, errors %v, failovers %+v", s.IncompleteOps, s.LatencyUS.P99, s.LatencyUS.Max, s.Errors, s.Failovers)
	// 800 ms of schedule at 400/s after the kill: 320 operations, less
	// whatever the new leader (1 s election timeout, so not before ~2.2 s)
	// could answer before the close.
	if s.IncompleteOps < 200 {
		t.Errorf("incomplete_ops %d, want the ~320 operations scheduled after the kill", s.IncompleteOps)
	}
	if s.LatencyUS.Max < 600_000 || s.LatencyUS.P99 < 400_000 {
		t.Errorf("p99 %.0f µs, max %.0f µs: the 800 ms outage at the end does not show", s.LatencyUS.P99, s.LatencyUS.Max)
	}
	if len(run.Timeline) != 2 || run.Timeline[1].Incomplete < 200 || run.Timeline[1].MaxUS < 600_000 || run.Timeline[1].P99US < run.Timeline[0].P99US {
		t.Errorf("timeline %+v: the last second must carry the outage", run.Timeline)
	}
	if !s.ReplicasAgree || !s.AckedOpsFound {
		t.Errorf("verdicts: agree %v, acked found %v, problems %v", s.ReplicasAgree, s.AckedOpsFound, s.Problems)
	}
}

// TestInterrupt: an interrupt during the window stops the load, settles,
// checks, and writes the result directory marked interrupted, with the
// window cut at the interrupt; the exit code is 130.
func TestInterrupt(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	code := realMain(ctx, []string{"run", "--wal", "memory", "--snapshot-every", "0", "--duration", "20s", "--warmup", "200ms", "--clients", "8",
		"--tick", "5ms", "--election-timeout", "300ms", "--heartbeat", "30ms", "--out", out}, &stdout, &stderr)
	if code != exitInterrupted || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q; want 130", code, stderr.String())
	}
	run, err := results.Read(out)
	if err != nil {
		t.Fatalf("no result directory after the interrupt: %v", err)
	}
	s := run.Summary
	if !s.Interrupted || s.DurationSec <= 0 || s.DurationSec > 5 || s.Ops == 0 || !s.ReplicasAgree || !s.AckedOpsFound {
		t.Errorf("interrupted run: interrupted %v, measured %.2f s, %d ops, agree %v, acked found %v, problems %v",
			s.Interrupted, s.DurationSec, s.Ops, s.ReplicasAgree, s.AckedOpsFound, s.Problems)
	}
	if md, _ := os.ReadFile(filepath.Join(out, results.ReportFile)); !strings.HasPrefix(string(md), "# raftbench run run (interrupted)\n") {
		t.Errorf("report.md title: %q", strings.SplitN(string(md), "\n", 2)[0])
	}
	if !strings.Contains(stdout.String(), "INTERRUPTED") {
		t.Errorf("stdout does not say interrupted:\n%s", stdout.String())
	}
}

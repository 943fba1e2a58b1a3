package faultspec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseProcessGood(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Fault
	}{
		{"kill9:2@5s", Fault{Kind: Kill9, Node: 2, At: 5 * time.Second}},
		{"kill9:3@1s+2s", Fault{Kind: Kill9, Node: 3, At: time.Second, For: 2 * time.Second}},
		{"kill9-leader@3s", Fault{Kind: Kill9Leader, At: 3 * time.Second}},
		{"kill9-leader@3s+500ms", Fault{Kind: Kill9Leader, At: 3 * time.Second, For: 500 * time.Millisecond}},
		{" pause:1@4s+1500ms ", Fault{Kind: Pause, Node: 1, At: 4 * time.Second, For: 1500 * time.Millisecond}},
		{"pause-leader@0s+2s", Fault{Kind: PauseLeader, At: 0, For: 2 * time.Second}},
		// Every other fault parses exactly as Parse parses it.
		{"kill:2@5s+3s", Fault{Kind: Kill, Node: 2, At: 5 * time.Second, For: 3 * time.Second}},
		{"isolate:3@4s+2s", Fault{Kind: Isolate, Node: 3, At: 4 * time.Second, For: 2 * time.Second}},
		{"delay=2ms~1ms", Fault{Kind: Delay, Delay: 2 * time.Millisecond, Jitter: time.Millisecond}},
		{"restart@8s", Fault{Kind: Restart, At: 8 * time.Second}},
	} {
		got, err := ParseProcess(tc.spec, 3)
		if err != nil {
			t.Errorf("ParseProcess(%q): %v", tc.spec, err)
			continue
		}
		tc.want.Spec = tc.spec
		if got != tc.want {
			t.Errorf("ParseProcess(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
		wantProc := tc.want.Kind == Kill9 || tc.want.Kind == Kill9Leader || tc.want.Kind == Pause || tc.want.Kind == PauseLeader
		if got.IsProcess() != wantProc {
			t.Errorf("%q: IsProcess() = %v, want %v", tc.spec, got.IsProcess(), wantProc)
		}
		if got.IsProcess() != IsProcessSpec(tc.spec) {
			t.Errorf("%q: IsProcess() = %v but IsProcessSpec = %v", tc.spec, got.IsProcess(), IsProcessSpec(tc.spec))
		}
	}
}

func TestParseProcessBad(t *testing.T) {
	for _, tc := range []struct{ spec, why string }{
		{"kill9@1s", "needs a node"},
		{"kill9:4@1s", "between 1 and 3"},
		{"kill9:0@1s", "between 1 and 3"},
		{"kill9:two@1s", "between 1 and 3"},
		{"kill9:2", "needs a time"},
		{"kill9:2=1@1s", "takes no value"},
		{"kill9:2@1s+0s", "must be positive"},
		{"kill9:2@soon", "time"},
		{"kill9-leader:1@1s", "takes no node"},
		{"kill9-leader", "needs a time"},
		{"pause:2@1s", "needs a duration"},
		{"pause:2@1s+x", "duration"},
		{"pause@1s+1s", "needs a node"},
		{"pause-leader@1s", "needs a duration"},
		{"pause-leader:2@1s+1s", "takes no node"},
		{"kil9:2@1s", "unknown fault"},
		{"kill:9@1s", "between 1 and 3"}, // a non-process fault, refused as Parse refuses it
		{"", "empty"},
	} {
		_, err := ParseProcess(tc.spec, 3)
		if err == nil {
			t.Errorf("ParseProcess(%q) succeeded, want an error about %q", tc.spec, tc.why)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(msg, tc.why) || !strings.Contains(msg, "grammar: NAME[:NODE]") {
			t.Errorf("ParseProcess(%q) = %q, want ErrBadSpec naming %q and showing the grammar", tc.spec, msg, tc.why)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("ParseProcess(%q) error spans lines: %q", tc.spec, msg)
		}
	}
	// A misspelt name under --procs lists the process faults too.
	if _, err := ParseProcess("kil9:2@1s", 3); err == nil || !strings.Contains(err.Error(), "kill9-leader@AT") {
		t.Errorf("unknown fault under --procs: %v, want the process grammar in the message", err)
	}
}

// Parse, the in-process parser, refuses the process faults; IsProcessSpec
// lets its caller say why.
func TestParseRefusesProcessFaults(t *testing.T) {
	for _, spec := range []string{"kill9:2@1s", "kill9-leader@1s", "pause:1@1s+1s", "pause-leader@1s+1s", "pause:1@1s"} {
		if _, err := Parse(spec, 3); err == nil {
			t.Errorf("Parse(%q) succeeded; process faults need --procs", spec)
		}
		if !IsProcessSpec(spec) {
			t.Errorf("IsProcessSpec(%q) = false", spec)
		}
	}
	for _, spec := range []string{"kill:2@1s", "kill-leader@1s", "loss=0.1", "", "explode@1s"} {
		if IsProcessSpec(spec) {
			t.Errorf("IsProcessSpec(%q) = true", spec)
		}
	}
}

func TestProcessSchedule(t *testing.T) {
	var fs []Fault
	for _, s := range []string{"kill9-leader@3s+2s", "pause:2@1s+500ms", "kill9:1@4s"} {
		f, err := ParseProcess(s, 3)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	var got []string
	for _, e := range Schedule(fs) {
		s := e.Fault.Spec + "@" + e.At.String()
		if e.Undo {
			s += " undo"
		}
		got = append(got, s)
	}
	want := "pause:2@1s+500ms@1s pause:2@1s+500ms@1.5s undo kill9-leader@3s+2s@3s kill9:1@4s@4s kill9-leader@3s+2s@5s undo"
	if strings.Join(got, " ") != want {
		t.Errorf("schedule:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if !ProcessNeedsRestart(fs[0]) || ProcessNeedsRestart(fs[1]) || ProcessNeedsRestart(fs[2]) {
		t.Error("ProcessNeedsRestart: kill9 with a duration restarts; a pause and a kill9 without one do not")
	}
}

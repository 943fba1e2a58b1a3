package faultspec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Fault
	}{
		{"kill-leader@5s", Fault{Kind: KillLeader, At: 5 * time.Second}},
		{"kill-leader@5s+3s", Fault{Kind: KillLeader, At: 5 * time.Second, For: 3 * time.Second}},
		{"restart@8s", Fault{Kind: Restart, At: 8 * time.Second}},
		{"restart:2@8s", Fault{Kind: Restart, Node: 2, At: 8 * time.Second}},
		{"kill:2@5s", Fault{Kind: Kill, Node: 2, At: 5 * time.Second}},
		{"partition-leader@10s+3s", Fault{Kind: PartitionLeader, At: 10 * time.Second, For: 3 * time.Second}},
		{"isolate:3@4s+2s", Fault{Kind: Isolate, Node: 3, At: 4 * time.Second, For: 2 * time.Second}},
		{"heal@1s", Fault{Kind: Heal, At: time.Second}},
		{"loss=0.05", Fault{Kind: Loss, Prob: 0.05}},
		{"loss:2=1", Fault{Kind: Loss, Node: 2, Prob: 1}},
		{"delay=2ms~1ms", Fault{Kind: Delay, Delay: 2 * time.Millisecond, Jitter: time.Millisecond}},
		{"delay=2ms", Fault{Kind: Delay, Delay: 2 * time.Millisecond}},
		{"dup=0.01", Fault{Kind: Dup, Prob: 0.01}},
		{"reorder=0.1@1s+1s", Fault{Kind: Reorder, Prob: 0.1, At: time.Second, For: time.Second}},
		{"slow-disk=5ms@3s+4s", Fault{Kind: SlowDisk, Delay: 5 * time.Millisecond, At: 3 * time.Second, For: 4 * time.Second}},
		{"slow-disk:1=5ms", Fault{Kind: SlowDisk, Node: 1, Delay: 5 * time.Millisecond}},
		{"add-node@1s", Fault{Kind: AddNode, At: time.Second}},
		{"remove:2@3s", Fault{Kind: Remove, Node: 2, At: 3 * time.Second}},
		{"remove-leader@3s", Fault{Kind: RemoveLeader, At: 3 * time.Second}},
		{"replace:1@5s", Fault{Kind: Replace, Node: 1, At: 5 * time.Second}},
		{"crash-leader@2s", Fault{Kind: CrashLeader, At: 2 * time.Second}},
		{"crash:2@4s", Fault{Kind: Crash, Node: 2, At: 4 * time.Second}},
		{"crash:2@4s+1s", Fault{Kind: Crash, Node: 2, At: 4 * time.Second, For: time.Second}},
		{"bitflip-wal:3@5s", Fault{Kind: BitflipWAL, Node: 3, At: 5 * time.Second}},
		{"truncate-wal:1@5s+2s", Fault{Kind: TruncateWAL, Node: 1, At: 5 * time.Second, For: 2 * time.Second}},
	} {
		got, err := Parse(tc.spec, 3)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		tc.want.Spec = tc.spec
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct{ spec, why string }{
		{"", "empty"},
		{"explode@1s", "unknown fault"},
		{"kill-leader", "needs a time"},
		{"kill@1s", "needs a node"},
		{"kill:4@1s", "between 1 and 3"},
		{"kill:0@1s", "between 1 and 3"},
		{"kill:x@1s", "between 1 and 3"},
		{"kill-leader:1@1s", "takes no node"},
		{"loss", "needs a value"},
		{"loss=2", "probability"},
		{"loss=-0.1", "probability"},
		{"kill-leader=1@1s", "takes no value"},
		{"delay=fast", "not a non-negative duration"},
		{"delay=1ms~x", "jitter"},
		{"kill-leader@soon", "time"},
		{"add-node", "needs a time"},
		{"add-node:4@1s", "takes no node"},
		{"add-node@1s+1s", "takes no duration"},
		{"remove@1s", "needs a node"},
		{"remove:9@1s", "between 1 and 3"},
		{"remove-leader:1@1s", "takes no node"},
		{"remove-leader@1s+2s", "takes no duration"},
		{"replace@1s", "needs a node"},
		{"replace:2=1@1s", "takes no value"},
		{"kill-leader@1s+0s", "must be positive"},
		{"restart@1s+1s", "takes no duration"},
		{"heal@1s+1s", "takes no duration"},
		{"crash@1s", "needs a node"},
		{"crash-leader:2@1s", "takes no node"},
		{"crash:4@1s", "between 1 and 3"},
		{"bitflip-wal@1s", "needs a node"},
		{"truncate-wal:2", "needs a time"},
		{"crash:1=2@1s", "takes no value"},
	} {
		_, err := Parse(tc.spec, 3)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error about %q", tc.spec, tc.why)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(msg, tc.why) || !strings.Contains(msg, "grammar: NAME[:NODE]") {
			t.Errorf("Parse(%q) = %q, want ErrBadSpec naming %q and showing the grammar", tc.spec, msg, tc.why)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("Parse(%q) error spans lines: %q", tc.spec, msg)
		}
	}
}

func TestSchedule(t *testing.T) {
	var fs []Fault
	for _, s := range []string{"kill-leader@5s+3s", "loss=0.1", "isolate:2@1s+1s", "heal@5s"} {
		f, err := Parse(s, 3)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	evs := Schedule(fs)
	var got []string
	for _, e := range evs {
		s := e.Fault.Spec + "@" + e.At.String()
		if e.Undo {
			s += " undo"
		}
		got = append(got, s)
	}
	want := "loss=0.1@0s isolate:2@1s+1s@1s isolate:2@1s+1s@2s undo kill-leader@5s+3s@5s heal@5s@5s kill-leader@5s+3s@8s undo"
	if strings.Join(got, " ") != want {
		t.Errorf("schedule:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if !NeedsRestart(fs[0]) || NeedsRestart(fs[1]) {
		t.Error("NeedsRestart: a kill with a duration restarts, a rule does not")
	}
	for _, spec := range []string{"crash:1@1s", "crash-leader@1s", "bitflip-wal:1@1s", "truncate-wal:2@1s"} {
		f, _ := Parse(spec, 3)
		if !NeedsRestart(f) {
			t.Errorf("NeedsRestart(%s) = false: it restarts the node", spec)
		}
		if f.IsCrash() == f.DamagesWAL() {
			t.Errorf("%s: IsCrash %v, DamagesWAL %v", spec, f.IsCrash(), f.DamagesWAL())
		}
	}
}

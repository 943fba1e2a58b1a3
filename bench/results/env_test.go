package results

import (
	"encoding/json"
	"runtime/debug"
	"testing"
)

// CurrentEnv records the collector's target in force, and reading it
// leaves it as it was; 0 (a legal GOGC) survives JSON, and a result
// without the field reads as not recorded.
func TestCurrentEnvRecordsGCPercent(t *testing.T) {
	old := debug.SetGCPercent(250)
	defer debug.SetGCPercent(old)
	for _, want := range []int{250, -1, 0} {
		debug.SetGCPercent(want)
		e := CurrentEnv()
		if e.GCPercent == nil || *e.GCPercent != want {
			t.Errorf("CurrentEnv().GCPercent = %v with the target at %d", e.GCPercent, want)
			continue
		}
		if got := debug.SetGCPercent(want); got != want {
			t.Errorf("reading the target changed it from %d to %d", want, got)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back Env
		if err := json.Unmarshal(b, &back); err != nil || back.GCPercent == nil || *back.GCPercent != want {
			t.Errorf("gc_percent %d did not survive JSON: %s", want, b)
		}
	}
	var old2 Env
	if err := json.Unmarshal([]byte(`{"go_version":"go1.25"}`), &old2); err != nil || old2.GOGC() != "" {
		t.Errorf("a result without gc_percent reads as %q, %v", old2.GOGC(), err)
	}
}

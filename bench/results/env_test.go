package results

import (
	"runtime/debug"
	"testing"
)

// CurrentEnv records the collector's target in force, and reading it
// leaves it as it was.
func TestCurrentEnvRecordsGCPercent(t *testing.T) {
	old := debug.SetGCPercent(250)
	defer debug.SetGCPercent(old)
	if got := CurrentEnv().GCPercent; got != 250 {
		t.Errorf("CurrentEnv().GCPercent = %d with the target at 250", got)
	}
	if got := debug.SetGCPercent(250); got != 250 {
		t.Errorf("reading the target changed it to %d", got)
	}
	debug.SetGCPercent(-1)
	if got := CurrentEnv().GCPercent; got != -1 {
		t.Errorf("CurrentEnv().GCPercent = %d with the collector off", got)
	}
}

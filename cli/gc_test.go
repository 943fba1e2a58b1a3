package cli

import (
	"runtime/debug"
	"testing"
)

// The binary's collector target is DefaultGCPercent unless GOGC names one.
func TestApplyGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	t.Setenv("GOGC", "")
	applyGCPercent()
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("without GOGC the target is %d, want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "100")
	applyGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 the target is %d: GOGC was overridden", got)
	}
}

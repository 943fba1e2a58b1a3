package cli

import (
	"runtime"
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

// The binary runs DefaultProcsPerCPU processors per CPU unless GOMAXPROCS
// names the number.
func TestApplyProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(base)
	t.Setenv("GOMAXPROCS", "")
	applyProcs()
	if got := runtime.GOMAXPROCS(base); got != DefaultProcsPerCPU*base {
		t.Errorf("without GOMAXPROCS the binary runs %d processors, want %d", got, DefaultProcsPerCPU*base)
	}
	t.Setenv("GOMAXPROCS", "1")
	applyProcs()
	if got := runtime.GOMAXPROCS(base); got != base {
		t.Errorf("with GOMAXPROCS set the binary runs %d processors, want them left at %d", got, base)
	}
	// A value the runtime ignores is no setting: the default applies.
	for _, v := range []string{"0", "-3", "four", "+4", "99999999999"} {
		t.Setenv("GOMAXPROCS", v)
		applyProcs()
		if got := runtime.GOMAXPROCS(base); got != DefaultProcsPerCPU*base {
			t.Errorf("with GOMAXPROCS=%q the binary runs %d processors, want %d", v, got, DefaultProcsPerCPU*base)
		}
	}
}

package node

import (
	"math"
	"testing"
	"time"
)

// TestSaturationWindow: the loop's busy share is published once a second of
// rounds has passed, from the rounds of that second only.
func TestSaturationWindow(t *testing.T) {
	var m metrics
	sat := func() float64 { return math.Float64frombits(m.saturation.Load()) }
	const ms = int64(time.Millisecond)
	// A window may open at the stage clock's zero: it is the first round
	// that opens it, not a non-zero start.
	t0 := int64(0)
	m.addRound(0, 100*ms, t0)
	// 300 ms busy and 600 ms idle in all by t0+900ms: not yet a second.
	m.addRound(400*ms, 100*ms, t0+500*ms)
	m.addRound(200*ms, 100*ms, t0+900*ms)
	if got := sat(); got != 0 {
		t.Fatalf("saturation %v published before a second passed", got)
	}
	// This round ends the second: 400 ms busy of 1 s in all.
	m.addRound(0, 100*ms, t0+1000*ms)
	if got := sat(); math.Abs(got-0.4) > 1e-9 {
		t.Fatalf("saturation %v, want 0.4", got)
	}
	// The next second starts afresh: all busy.
	m.addRound(0, 1000*ms, t0+2000*ms)
	if got := sat(); got != 1 {
		t.Fatalf("saturation %v after a busy second, want 1", got)
	}
}

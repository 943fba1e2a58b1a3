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
	t0 := time.Unix(1000, 0)
	m.addRound(0, 100*time.Millisecond, t0)
	// 300 ms busy and 600 ms idle in all by t0+900ms: not yet a second.
	m.addRound(400*time.Millisecond, 100*time.Millisecond, t0.Add(500*time.Millisecond))
	m.addRound(200*time.Millisecond, 100*time.Millisecond, t0.Add(900*time.Millisecond))
	if got := sat(); got != 0 {
		t.Fatalf("saturation %v published before a second passed", got)
	}
	// This round ends the second: 400 ms busy of 1 s in all.
	m.addRound(0, 100*time.Millisecond, t0.Add(time.Second))
	if got := sat(); math.Abs(got-0.4) > 1e-9 {
		t.Fatalf("saturation %v, want 0.4", got)
	}
	// The next second starts afresh: all busy.
	m.addRound(0, time.Second, t0.Add(2*time.Second))
	if got := sat(); got != 1 {
		t.Fatalf("saturation %v after a busy second, want 1", got)
	}
}

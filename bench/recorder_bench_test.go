package bench

import (
	"testing"
	"time"
)

// BenchmarkRecorderBeginFinish is the recorder's cost per measured
// operation: its registration in flight and its completion, on parallel
// goroutines as the clients do.
func BenchmarkRecorderBeginFinish(b *testing.B) {
	t0 := time.Now()
	r := newLatencyRecorder(t0, t0.Add(time.Hour))
	b.RunParallel(func(pb *testing.PB) {
		at := t0.Add(time.Millisecond)
		for pb.Next() {
			o := r.begin(at)
			r.finish(o, opWrite, nil, at, at.Add(time.Millisecond))
		}
	})
}

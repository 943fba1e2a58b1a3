package procstat

import (
	"math"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Between keeps only the waits sampled in the window, bucket by bucket,
// and leaves out buckets that did not grow.
func TestSubWait(t *testing.T) {
	a := []WaitBucket{{64, 10}, {128, 5}, {1024, 2}}
	b := []WaitBucket{{64, 10}, {128, 9}, {512, 3}, {1024, 2}, {math.MaxInt64, 1}}
	want := []WaitBucket{{128, 4}, {512, 3}, {math.MaxInt64, 1}}
	if got := subWait(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("subWait = %v, want %v", got, want)
	}
	if got := subWait(nil, b); !reflect.DeepEqual(got, b) {
		t.Errorf("from nothing: %v, want %v", got, b)
	}
	if got := subWait(b, b); got != nil {
		t.Errorf("an empty window: %v", got)
	}
}

// A quantile is the upper bound of the bucket it falls in.
func TestWaitQuantile(t *testing.T) {
	h := []WaitBucket{{1000, 50}, {2000, 40}, {8000, 9}, {math.MaxInt64, 1}}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 1000}, {0.51, 2000}, {0.9, 2000}, {0.99, 8000}, {1, math.MaxInt64}} {
		if got := WaitQuantile(h, c.q); got != c.want {
			t.Errorf("q %v: %v, want %v", c.q, got, c.want)
		}
	}
	if got := WaitQuantile(nil, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if n := WaitSamples(h); n != 100 {
		t.Errorf("samples %d, want 100", n)
	}
}

// Goroutines kept runnable behind one another on a single P wait for it,
// and a window around them samples those waits.
func TestSchedWaitSamplesAWindow(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	a := Read()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				for start := time.Now(); time.Since(start) < 20*time.Microsecond; {
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	c := Between(a, Read())
	if n := WaitSamples(c.SchedWait); n == 0 {
		t.Fatalf("no scheduling wait sampled among 64 goroutines taking turns on one P: %v", c.SchedWait)
	}
	// 63 others spin 20 µs each before a goroutine's turn comes back.
	if p90 := WaitQuantile(c.SchedWait, 0.9); p90 < 100*time.Microsecond {
		t.Errorf("p90 wait %v, want at least 100 µs with 63 goroutines ahead", p90)
	}
	for i := 1; i < len(c.SchedWait); i++ {
		if c.SchedWait[i-1].UpperNs >= c.SchedWait[i].UpperNs {
			t.Fatalf("buckets out of order: %v", c.SchedWait)
		}
	}
}

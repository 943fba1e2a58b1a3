package procstat

import (
	"math"
	"runtime/metrics"
	"time"
)

// schedLatencies is the runtime's histogram of scheduling latency: how
// long goroutines spent runnable before they ran.
const schedLatencies = "/sched/latencies:seconds"

// WaitBucket is one bucket of a scheduling-latency histogram: Count
// waits of at most UpperNs nanoseconds (and more than the bucket
// before's bound). The runtime's buckets are a quarter of a power of two
// wide, so a quantile read from them is known to about 25%.
type WaitBucket struct {
	// UpperNs is the bucket's upper bound; math.MaxInt64 for the last,
	// unbounded, bucket.
	UpperNs int64  `json:"le_ns"`
	Count   uint64 `json:"count"`
}

// readSchedWait is the runtime's scheduling-latency histogram now,
// cumulative since the process started, nonzero buckets only, in
// ascending order (nil when the runtime does not offer it). Buckets are
// named by their bounds rather than positions so that two processes
// built by different Go releases, whose bucket layouts may differ, still
// add up (Plus) without mixing buckets.
func readSchedWait() []WaitBucket {
	s := []metrics.Sample{{Name: schedLatencies}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := s[0].Value.Float64Histogram()
	var out []WaitBucket
	for i, n := range h.Counts {
		if n == 0 {
			continue
		}
		out = append(out, WaitBucket{UpperNs: upperNs(h.Buckets[i+1]), Count: n})
	}
	return out
}

// upperNs converts a bucket bound in seconds to nanoseconds, the
// unbounded one to math.MaxInt64.
func upperNs(sec float64) int64 {
	if math.IsInf(sec, 1) || sec*1e9 >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Ceil(sec * 1e9))
}

// subWait is the histogram of the waits b holds beyond a's, both
// cumulative readings of one process with a taken first. A bucket whose
// count did not grow is left out.
func subWait(a, b []WaitBucket) []WaitBucket {
	var out []WaitBucket
	i := 0
	for _, wb := range b {
		for i < len(a) && a[i].UpperNs < wb.UpperNs {
			i++
		}
		n := wb.Count
		if i < len(a) && a[i].UpperNs == wb.UpperNs {
			n -= min(n, a[i].Count)
		}
		if n > 0 {
			out = append(out, WaitBucket{wb.UpperNs, n})
		}
	}
	return out
}

// addWait merges two histograms (each in ascending order) into one.
func addWait(a, b []WaitBucket) []WaitBucket {
	out := make([]WaitBucket, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].UpperNs < b[j].UpperNs):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].UpperNs < a[i].UpperNs:
			out = append(out, b[j])
			j++
		default:
			out = append(out, WaitBucket{a[i].UpperNs, a[i].Count + b[j].Count})
			i++
			j++
		}
	}
	return out
}

// WaitSamples is how many waits h holds.
func WaitSamples(h []WaitBucket) uint64 {
	var n uint64
	for _, b := range h {
		n += b.Count
	}
	return n
}

// WaitQuantile is the upper bound of the bucket that holds quantile q (0
// < q ≤ 1) of h's waits: no more than that fraction of them waited
// longer. It is 0 for an empty histogram, and math.MaxInt64 when the
// quantile falls in the unbounded last bucket.
func WaitQuantile(h []WaitBucket, q float64) time.Duration {
	total := WaitSamples(h)
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for _, b := range h {
		seen += b.Count
		if seen >= rank {
			return time.Duration(b.UpperNs)
		}
	}
	return time.Duration(h[len(h)-1].UpperNs)
}

package wal

import (
	"math/rand/v2"
	"testing"
)

// TestTermCacheMatchesModel drives the cache with random appends,
// truncations and compactions next to a plain slice of terms, and checks
// that every answer it gives is right and that it always knows the tail.
func TestTermCacheMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := newTermCache(8)
	model := []uint64{0} // model[i] is the term of index i; index 0 is a sentinel
	first := uint64(1)
	term := uint64(1)
	for step := 0; step < 3000; step++ {
		last := uint64(len(model) - 1)
		switch op := rng.IntN(10); {
		case op < 7 || last < first: // append or overwrite from lo
			lo := last + 1
			if op < 2 && last >= first {
				lo = first + rng.Uint64N(last-first+1)
				term++
			}
			if rng.IntN(4) == 0 {
				term++
			}
			n := 1 + rng.IntN(20)
			model = model[:lo]
			for k := 0; k < n; k++ {
				if rng.IntN(15) == 0 {
					term++
				}
				model = append(model, term)
			}
			terms := model[lo:]
			c.add(lo, n, func(k int) uint64 { return terms[k] })
		default: // compact
			first += rng.Uint64N(last - first + 1)
			c.compact(first)
		}
		last = uint64(len(model) - 1)
		if last >= first {
			if got, ok := c.term(last); !ok || got != model[last] {
				t.Fatalf("step %d: term(last=%d) = %d, %v; want %d", step, last, got, ok, model[last])
			}
		}
		for i := uint64(0); i <= last+1; i++ {
			got, ok := c.term(i)
			if !ok {
				continue
			}
			if i < first || i > last || got != model[i] {
				t.Fatalf("step %d: term(%d) = %d (first %d, last %d, want %d)", step, i, got, first, last, model[min(i, last)])
			}
		}
		if len(c.runs) > c.maxRuns {
			t.Fatalf("step %d: %d runs, bound %d", step, len(c.runs), c.maxRuns)
		}
	}
}

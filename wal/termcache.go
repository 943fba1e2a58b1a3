package wal

import "sort"

// termRun says that the entries from index on, up to the next run's index
// (or the cache's last index), all have term.
type termRun struct {
	index, term uint64
}

// termCache answers Term for the tail of the log from memory. Terms change
// only at elections, so the terms of a long stretch of log fit in a handful
// of runs: a cache of a few hundred runs covers in practice every index the
// Raft goroutine asks about (its own tail, and followers' recent
// next-indexes), without reading Pebble on the hot path.
//
// Invariant: runs is sorted by index with strictly increasing indexes, and
// when not empty covers exactly [runs[0].index, last]. It is not safe for
// concurrent use; PebbleLog guards it with its mutex.
type termCache struct {
	runs    []termRun
	last    uint64
	maxRuns int
}

func newTermCache(maxRuns int) *termCache { return &termCache{maxRuns: maxRuns} }

// reset makes the cache know only that index has term.
func (c *termCache) reset(index, term uint64) {
	c.runs = append(c.runs[:0], termRun{index, term})
	c.last = index
}

// term returns the term of index i if the cache covers it.
func (c *termCache) term(i uint64) (uint64, bool) {
	if len(c.runs) == 0 || i < c.runs[0].index || i > c.last {
		return 0, false
	}
	// The last run answers almost every lookup; check it before searching.
	if r := c.runs[len(c.runs)-1]; i >= r.index {
		return r.term, true
	}
	k := sort.Search(len(c.runs), func(k int) bool { return c.runs[k].index > i })
	return c.runs[k-1].term, true
}

// add records a run of entries given as (first index, terms in order) by
// the callback; the entries replace whatever the cache held at first and
// after. first must be at most last+1; if it lies below the covered range
// the cache restarts at first.
func (c *termCache) add(first uint64, n int, termAt func(k int) uint64) {
	if n == 0 {
		return
	}
	if len(c.runs) == 0 || first < c.runs[0].index || first > c.last+1 {
		c.runs = c.runs[:0]
	} else {
		// Drop runs starting at or after first: they are overwritten.
		k := sort.Search(len(c.runs), func(k int) bool { return c.runs[k].index >= first })
		c.runs = c.runs[:k]
	}
	for k := 0; k < n; k++ {
		t := termAt(k)
		if len(c.runs) == 0 || c.runs[len(c.runs)-1].term != t {
			c.runs = append(c.runs, termRun{first + uint64(k), t})
		}
	}
	c.last = first + uint64(n) - 1
	if extra := len(c.runs) - c.maxRuns; extra > 0 {
		// Forget the oldest runs; lookups there fall back to Pebble.
		c.runs = append(c.runs[:0], c.runs[extra:]...)
	}
}

// compact forgets every index below first.
func (c *termCache) compact(first uint64) {
	if len(c.runs) == 0 || first <= c.runs[0].index {
		return
	}
	if first > c.last {
		c.runs = c.runs[:0]
		return
	}
	k := sort.Search(len(c.runs), func(k int) bool { return c.runs[k].index > first })
	c.runs = append(c.runs[:0], c.runs[k-1:]...)
	c.runs[0].index = first
}

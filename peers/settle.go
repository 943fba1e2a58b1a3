package peers

import (
	"context"
	"fmt"
	"time"
)

// Settled polls group g once: it reports the leader's commit index and
// true when a leader leads, its last log index equals its commit index,
// every running node knows that commit index and has applied it, and no
// call is in flight on any node. A harness waits for it (WaitSettled)
// before comparing replicas.
func Settled(sys System, g int) (uint64, bool) {
	lead, _ := sys.Leader(g)
	if lead == 0 {
		return 0, false
	}
	ls, err := sys.Status(g, lead)
	if err != nil || ls.LastIndex != ls.Commit {
		return 0, false
	}
	for _, id := range sys.Nodes() {
		if !sys.Running(id) {
			continue
		}
		s, err := sys.Status(g, id)
		if err != nil || s.Commit != ls.Commit || s.Applied != ls.Commit || s.InFlight != 0 {
			return 0, false
		}
	}
	return ls.Commit, true
}

// WaitSettled waits until group g is Settled at the same index on two
// polls in a row, poll apart, and returns that index; it gives up when
// ctx ends, saying what it saw last.
func WaitSettled(ctx context.Context, sys System, g int, poll time.Duration) (uint64, error) {
	var prev uint64
	var have bool
	for {
		idx, ok := Settled(sys, g)
		if ok && have && idx == prev {
			return idx, nil
		}
		prev, have = idx, ok
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s group %d did not settle: %s: %w", sys.Name(), g, describe(sys, g), context.Cause(ctx))
		case <-time.After(poll):
		}
	}
}

// describe prints every node's status in group g, for errors.
func describe(sys System, g int) string {
	out := ""
	for _, id := range sys.Nodes() {
		s, err := sys.Status(g, id)
		if err != nil {
			out += fmt.Sprintf("[%d: %v] ", id, err)
			continue
		}
		out += fmt.Sprintf("[%d: %v term %d leader %d commit %d applied %d last %d inflight %d] ",
			id, s.Role, s.Term, s.Leader, s.Commit, s.Applied, s.LastIndex, s.InFlight)
	}
	return out
}

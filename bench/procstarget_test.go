package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftbench/raftbench/admin"
)

// awaitStepDown fails while a resumed node still leads in a term older
// than the newest under way, and passes once it follows, or leads in the
// newest term.
func TestAwaitStepDown(t *testing.T) {
	r := &remote{ids: []uint64{1, 2}}
	r.views = make([]atomic.Pointer[view], 3)
	tgt := &procsTarget{remote: r}
	r.views[1].Store(&view{ok: true, leads: true, term: 3, maxTerm: 3})
	r.views[2].Store(&view{ok: true, leads: true, term: 5, maxTerm: 5})
	err := tgt.awaitStepDown(context.Background(), 1, 30*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not step down") {
		t.Fatalf("a stale leader: %v, want an error saying it did not step down", err)
	}
	r.views[1].Store(&view{})
	if err := tgt.awaitStepDown(context.Background(), 1, 30*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("a node that does not answer: %v, want an error saying so", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.views[1].Store(&view{ok: true, term: 5, leader: 2, maxTerm: 5})
	}()
	if err := tgt.awaitStepDown(context.Background(), 1, 5*time.Second); err != nil {
		t.Fatalf("a node that stepped down: %v", err)
	}
	r.views[1].Store(&view{ok: true, leads: true, term: 6, maxTerm: 6})
	if err := tgt.awaitStepDown(context.Background(), 1, 30*time.Millisecond); err != nil {
		t.Fatalf("a node leading in the newest term: %v", err)
	}
}

// FaultCounters counts only the run's part of a long-running node's
// counters, and the whole of a node that restarted since.
func TestFaultCountsSinceBase(t *testing.T) {
	base := countsOf([6]uint64{10, 2, 2, 0, 5, 0})
	now := countsOf([6]uint64{15, 2, 4, 1, 5, 0})
	if got := now.less(base); got != countsOf([6]uint64{5, 0, 2, 1, 0, 0}) {
		t.Errorf("since the base: %+v", got)
	}
	restarted := countsOf([6]uint64{3, 0, 0, 0, 0, 0})
	if !base.after(restarted) || base.after(now) {
		t.Errorf("after: a restarted node's counters must read as restarted, a running node's not")
	}
	if got := now.plus(restarted); got != countsOf([6]uint64{18, 2, 4, 1, 5, 0}) {
		t.Errorf("sum: %+v", got)
	}
}

// FaultCounters names the nodes it could not count in full: one down at
// the end, one the run restarted (its earlier process's counts died with
// it), and one whose counters fell below the run's start (restarted from
// outside). The one running throughout is counted since its base.
func TestFaultCountGaps(t *testing.T) {
	metrics := func(dropped int) string {
		return fmt.Sprintf("# TYPE raftbench_fault_messages_total counter\nraftbench_fault_messages_total{action=\"dropped\"} %d\n", dropped)
	}
	serve := func(body string) *admin.Client {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) }))
		t.Cleanup(srv.Close)
		c, err := admin.NewClient(srv.URL, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more
	downClient, err := admin.NewClient(downURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &remote{
		ids: []uint64{1, 2, 3, 4},
		admins: map[uint64]*admin.Client{
			1: serve(metrics(15)), // running throughout: 15 - 10
			2: serve(metrics(7)),  // restarted by the run
			3: serve(metrics(3)),  // fell below its base of 8
			4: downClient,
		},
		restartCnt: map[uint64]int{2: 1},
		faultBase:  map[uint64]faultCounts{1: countsOf([6]uint64{10}), 3: countsOf([6]uint64{8})},
	}
	got := r.FaultCounters()
	if want := uint64(5 + 7 + 3); got.Dropped != want {
		t.Errorf("dropped %d, want %d", got.Dropped, want)
	}
	if gaps := r.FaultCountGaps(); !slices.Equal(gaps, []uint64{2, 3, 4}) {
		t.Errorf("gaps %v, want [2 3 4]", gaps)
	}
}

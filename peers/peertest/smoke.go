package peertest

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/peers"
)

// smoke turns on Smoke: a quick throughput number, not a benchmark (the
// harness measures; this is a sanity check of an adapter's speed).
var smoke = flag.Duration("peers.smoke", 0, "run the smoke load for this long (e.g. 3s); 0 skips it")

// Smoke runs 64 closed-loop clients putting 128-byte values (into group
// c mod Groups) for -peers.smoke and logs ops/s and latency percentiles.
// It is skipped unless the flag is given.
func Smoke(t *testing.T, lib peers.Library, k peers.Knobs) {
	if *smoke == 0 {
		t.Skip("run with -peers.smoke=3s")
	}
	sys := Start(t, lib, k)
	for g := range sys.Groups() {
		WaitLeader(t, sys, g, 0, 0, 10*time.Second)
	}
	const clients = 64
	value := make([]byte, 128)
	var ops, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		cl, err := kv.NewClient(Endpoints(sys, c%sys.Groups()), kv.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; ; i++ {
				select {
				case <-stop:
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := cl.Put(ctx, []byte(fmt.Sprintf("k%d", (c*7919+i)%1000)), value)
				cancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				ops.Add(1)
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	time.Sleep(time.Second) // warm-up
	start, n0 := time.Now(), ops.Load()
	time.Sleep(*smoke)
	n := ops.Load() - n0
	el := time.Since(start)
	close(stop)
	wg.Wait()
	if len(lat) == 0 {
		t.Fatalf("%s: no put completed in %v (%d errors)", lib.Name, el, errs.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	t.Logf("%s %s: %d clients, 128 B puts, %d groups: %.0f ops/s over %v, p50 %v p99 %v, %d errors",
		lib.Name, sys.Version(), clients, sys.Groups(), float64(n)/el.Seconds(), el.Round(time.Millisecond),
		pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), errs.Load())
}

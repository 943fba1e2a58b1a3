package node_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
)

// nopSM is the cheapest state machine: the benchmark measures replication.
type nopSM struct{ n atomic.Uint64 }

func (s *nopSM) Apply(cmds []node.Command) []any {
	s.n.Add(uint64(len(cmds)))
	return make([]any, len(cmds))
}

func (s *nopSM) Read([]byte) (any, error) { return s.n.Load(), nil }

// BenchmarkCluster drives a 3-node in-process cluster (real loopback
// transport, Pebble WAL with fsync) with closed-loop proposers, each
// submitting a 128-byte command and waiting for it to apply, and reports
// ops/s and latency percentiles. Compare with ../shared/peers, which runs
// the same workload on hashicorp/raft and etcd raft.
//
// Knobs for experiments: RAFTBENCH_NOSYNC=1 skips fsync (everything but the
// disk); RAFTBENCH_PIPELINE=N sets MaxProposalPipeline.
func BenchmarkCluster(b *testing.B) {
	for _, kind := range []string{"tcp", "quic"} {
		for _, clients := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("transport=%s/clients=%d", kind, clients), func(b *testing.B) {
				benchCluster(b, kind, clients)
			})
		}
	}
}

func benchCluster(b *testing.B, kind string, clients int) {
	c := nodetest.New(b, nodetest.Options{
		Nodes: 3, Transport: kind,
		NewSM: func(uint64) node.StateMachine { return &nopSM{} },
		Configure: func(cfg *node.Config) {
			cfg.NoSync = os.Getenv("RAFTBENCH_NOSYNC") == "1"
			if v, err := strconv.Atoi(os.Getenv("RAFTBENCH_PIPELINE")); err == nil {
				cfg.MaxProposalPipeline = v
			}
		},
	})
	leader := c.Node(c.WaitLeader(10 * time.Second))
	payload := make([]byte, 128)
	var next, failed atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := leader.Propose(ctx, payload)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatalf("no proposal succeeded (%d failed)", failed.Load())
	}
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(failed.Load()), "failed")
	m := leader.Metrics()
	if m.Batches > 0 {
		b.ReportMetric(float64(m.Proposals)/float64(m.Batches), "cmds/batch")
	}
	if m.Fsyncs > 0 {
		b.ReportMetric(float64(m.Proposals)/float64(m.Fsyncs), "cmds/fsync")
	}
	b.ReportMetric(m.LoopSaturation, "loop-sat")
	b.ReportMetric(float64(m.FsyncMean.Microseconds())/1000, "fsync-ms")
}

// BenchmarkStageTimingOverhead measures what latency attribution costs: a
// 3-node in-process cluster (loopback TCP, Pebble WAL without fsync, so
// the disk does not hide the CPU) under 16 closed-loop proposers, with
// stage timing on and off. It reports the whole process's heap
// allocations and bytes per committed write (every node, both sides of
// the transport, the proposers) and the leader's Raft-loop saturation;
// ns/op is there too but is only meaningful on a quiet machine.
func BenchmarkStageTimingOverhead(b *testing.B) {
	for _, timed := range []bool{true, false} {
		b.Run(fmt.Sprintf("stage-timing=%v", timed), func(b *testing.B) {
			c := nodetest.New(b, nodetest.Options{
				Nodes: 3, NewSM: func(uint64) node.StateMachine { return &nopSM{} },
				Configure: func(cfg *node.Config) { cfg.NoSync, cfg.NoStageTiming = true, !timed },
			})
			leader := c.Node(c.WaitLeader(10 * time.Second))
			payload := make([]byte, 128)
			const clients = 16
			var next, done atomic.Int64
			var wg sync.WaitGroup
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						if _, err := leader.Propose(ctx, payload); err == nil {
							done.Add(1)
						}
						cancel()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			runtime.ReadMemStats(&after)
			n := float64(max(done.Load(), 1))
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/commit")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/commit")
			b.ReportMetric(leader.Metrics().LoopSaturation, "loop-sat")
		})
	}
}

package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the progress writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMetricsAddr: --metrics-addr serves every node's Prometheus metrics,
// labelled by node, while the run runs.
func TestMetricsAddr(t *testing.T) {
	cfg := Default()
	cfg.WAL, cfg.SnapshotEvery, cfg.Clients = "memory", 0, 4
	cfg.Duration, cfg.Warmup = Duration(1500*time.Millisecond), Duration(100*time.Millisecond)
	cfg.Tick, cfg.ElectionTimeout, cfg.Heartbeat = Duration(5*time.Millisecond), Duration(300*time.Millisecond), Duration(30*time.Millisecond)
	cfg.MetricsAddr, cfg.Out = "127.0.0.1:0", filepath.Join(t.TempDir(), "run")
	var progress syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg, Options{Progress: &progress, hooks: &testHooks{noPlots: true}})
		done <- err
	}()
	addr := regexp.MustCompile(`metrics of every node on (http://\S+/metrics)`)
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m := addr.FindStringSubmatch(progress.String())
		if m != nil {
			if resp, err := http.Get(m[1]); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				if strings.Contains(body, `raftbench_proposals_total{node="1"}`) && strings.Contains(body, `raftbench_proposals_total{node="2"}`) &&
					strings.Contains(body, `raftbench_proposals_total{node="3"}`) && strings.Contains(body, "go_goroutines") {
					break
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`raftbench_proposals_total{node="1"}`, `raftbench_wal_fsyncs_total{node="3"}`, `raftbench_applied_index{node="2"}`, "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%.2000s", want, body)
		}
	}
}

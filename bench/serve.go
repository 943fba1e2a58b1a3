package bench

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// nodeMetrics is a Prometheus collector of every node running in the
// current repetition's cluster, each node's metrics carrying its "node"
// label (node.Collector). Nodes come and go with kills, restarts and
// membership changes, so it collects whatever runs at scrape time and
// describes nothing up front (an unchecked collector).
type nodeMetrics struct{ c atomic.Pointer[cluster] }

// set makes c (nil: none) the cluster scraped.
func (m *nodeMetrics) set(c *cluster) { m.c.Store(c) }

// Describe implements prometheus.Collector: unchecked, see nodeMetrics.
func (m *nodeMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (m *nodeMetrics) Collect(ch chan<- prometheus.Metric) {
	c := m.c.Load()
	if c == nil {
		return
	}
	for _, n := range c.running() {
		n.Collector().Collect(ch)
	}
}

// serveDebug serves net/http/pprof on pprofAddr and Prometheus metrics
// (every node's, and the process's) on metricsAddr at /metrics, each when
// not "" — on one server when the addresses are the same. It returns the
// function that stops them.
func serveDebug(pprofAddr, metricsAddr string, nodes *nodeMetrics, pr *progress) (func(), error) {
	var srvs []*http.Server
	stop := func() {
		for _, s := range srvs {
			_ = s.Close()
		}
	}
	muxes := map[string]*http.ServeMux{}
	var order []string
	mux := func(addr string) *http.ServeMux {
		if m, ok := muxes[addr]; ok {
			return m
		}
		m := http.NewServeMux()
		muxes[addr] = m
		order = append(order, addr)
		return m
	}
	if pprofAddr != "" {
		registerPprof(mux(pprofAddr))
	}
	if metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(nodes, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux(metricsAddr).Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	for _, addr := range order {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			stop()
			flag := "--pprof-addr"
			if addr == metricsAddr {
				flag = "--metrics-addr"
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrBadConfig, flag, err)
		}
		srv := &http.Server{Handler: muxes[addr], ReadHeaderTimeout: 5 * time.Second}
		srvs = append(srvs, srv)
		go func() { _ = srv.Serve(ln) }()
		if addr == metricsAddr {
			pr.logf("serving Prometheus metrics of every node on http://%s/metrics", ln.Addr())
		}
		if addr == pprofAddr {
			pr.logf("serving pprof on http://%s/debug/pprof/", ln.Addr())
		}
	}
	return stop, nil
}

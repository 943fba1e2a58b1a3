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

// nodeMetrics is a Prometheus collector of the current repetition's
// target, when it is one (the in-process target collects every node
// running at scrape time, each node's metrics carrying its "node" label).
// Targets come and go with repetitions, so it describes nothing up front
// (an unchecked collector).
type nodeMetrics struct{ c atomic.Pointer[collectorBox] }

type collectorBox struct{ prometheus.Collector }

// set makes c (nil: none) the collector scraped.
func (m *nodeMetrics) set(c prometheus.Collector) {
	if c == nil {
		m.c.Store(nil)
		return
	}
	m.c.Store(&collectorBox{c})
}

// Describe implements prometheus.Collector: unchecked, see nodeMetrics.
func (m *nodeMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (m *nodeMetrics) Collect(ch chan<- prometheus.Metric) {
	if c := m.c.Load(); c != nil {
		c.Collect(ch)
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

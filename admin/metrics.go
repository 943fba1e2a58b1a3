package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftbench/raftbench/clientapi"
	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/transport"
)

// transportCollector exports a node's transport counters (summed over its
// peers) and what its fault wrapper did.
type transportCollector struct{ rep *cluster.Replica }

var (
	trMsgs    = prometheus.NewDesc("raftbench_transport_messages_total", "Raft messages written to or decoded from peers.", []string{"direction"}, nil)
	trBytes   = prometheus.NewDesc("raftbench_transport_bytes_total", "Bytes written to or decoded from peers (frame headers included).", []string{"direction"}, nil)
	trDrops   = prometheus.NewDesc("raftbench_transport_drops_total", "Messages not sent, by reason.", []string{"reason"}, nil)
	trRejects = prometheus.NewDesc("raftbench_transport_rejected_connections_total", "Inbound connections closed for bad input, by reason.", []string{"reason"}, nil)
	trDials   = prometheus.NewDesc("raftbench_transport_dial_failures_total", "Failed dials or handshakes to peers.", nil, nil)
	flt       = prometheus.NewDesc("raftbench_fault_messages_total", "Messages the fault injector dropped, cut, duplicated, delayed or reordered.", []string{"action"}, nil)
)

func (transportCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{trMsgs, trBytes, trDrops, trRejects, trDials, flt} {
		ch <- d
	}
}

func (c transportCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.rep.Fault.Stats()
	t := st.Totals()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(trMsgs, t.MsgsSent, "sent")
	counter(trMsgs, t.MsgsRecv, "received")
	counter(trBytes, t.BytesSent, "sent")
	counter(trBytes, t.BytesRecv, "received")
	for r := transport.DropReason(0); r < transport.NumDropReasons; r++ {
		counter(trDrops, t.Drops[r], r.String())
	}
	for r := transport.RejectReason(0); r < transport.NumRejectReasons; r++ {
		counter(trRejects, st.Rejects[r], r.String())
	}
	counter(trDials, t.DialFailures)
	f := c.rep.Fault.Counters()
	counter(flt, f.Dropped, "dropped")
	counter(flt, f.PartitionedSend, "cut-at-send")
	counter(flt, f.PartitionedRecv, "cut-at-receive")
	counter(flt, f.Duplicated, "duplicated")
	counter(flt, f.Delayed, "delayed")
	counter(flt, f.Reordered, "reordered")
}

// ClientAPICollector exports a client API server's counters.
func ClientAPICollector(s *clientapi.Server) prometheus.Collector { return apiCollector{s} }

type apiCollector struct{ s *clientapi.Server }

var (
	apiConns    = prometheus.NewDesc("raftbench_clientapi_connections_total", "Client connections accepted, refused at the handshake, or closed for a bad frame.", []string{"outcome"}, nil)
	apiOpen     = prometheus.NewDesc("raftbench_clientapi_connections_open", "Client connections open now.", nil, nil)
	apiRequests = prometheus.NewDesc("raftbench_clientapi_requests_total", "Client requests, by kind.", []string{"kind"}, nil)
	apiErrors   = prometheus.NewDesc("raftbench_clientapi_errors_total", "Client requests answered with an error, by code.", []string{"code"}, nil)
)

func (apiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{apiConns, apiOpen, apiRequests, apiErrors} {
		ch <- d
	}
}

func (c apiCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(apiConns, st.Accepted, "accepted")
	counter(apiConns, st.Refused, "refused")
	counter(apiConns, st.BadFrames, "bad-frame")
	ch <- prometheus.MustNewConstMetric(apiOpen, prometheus.GaugeValue, float64(st.Open))
	counter(apiRequests, st.Proposes, "propose")
	counter(apiRequests, st.Reads, "read")
	counter(apiRequests, st.Members, "members")
	for code := range st.Errors {
		if code == 0 {
			continue
		}
		label := clientapi.Code(code).String()
		if label == "" {
			label = strconv.Itoa(code)
		}
		counter(apiErrors, st.Errors[code], label)
	}
}

// Package transporttest is the conformance suite every transport.Transport
// implementation runs from its own tests, plus helpers for such tests
// (a recording Handler, test certificates, message builders).
//
// It imports testing, so production code must never import it.
package transporttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/core"
	"github.com/raftbench/raftbench/transport"
)

// Options is what a Factory must honour; zero fields mean "your test
// default". Factories should use short backoffs and timeouts (tens of
// milliseconds) so reconnect tests stay fast.
type Options struct {
	ID           uint64
	ClusterID    uint64
	Addr         string // listen address; "" means "127.0.0.1:0"
	MaxFrameSize int
	QueueLen     int
	// Snapshot settings (transport.Options fields of the same names).
	SnapshotChunkSize int
	MaxSnapshotSize   int64
	SnapshotRate      int64
}

// ListenAddr returns o.Addr or the loopback default.
func (o Options) ListenAddr() string {
	if o.Addr == "" {
		return "127.0.0.1:0"
	}
	return o.Addr
}

// Factory builds an unstarted transport. It must fail the test on error.
type Factory func(t testing.TB, o Options) transport.Transport

// Recorder is a Handler (and transport.SnapshotReporter) that keeps
// everything it is given and lets a test wait for a condition on it.
type Recorder struct {
	mu          sync.Mutex
	msgs        []core.Message
	unreachable map[uint64]int
	snapStatus  map[uint64][]bool
	changed     chan struct{}
	// Block, if set, is received from before each Deliver returns: a test
	// holds the handler (a slow receiver) by not sending on it.
	Block chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{unreachable: make(map[uint64]int), snapStatus: make(map[uint64][]bool), changed: make(chan struct{}, 1)}
}

var _ transport.SnapshotReporter = (*Recorder)(nil)

// SnapshotStatus implements transport.SnapshotReporter.
func (r *Recorder) SnapshotStatus(to uint64, ok bool) {
	r.mu.Lock()
	r.snapStatus[to] = append(r.snapStatus[to], ok)
	r.mu.Unlock()
	r.poke()
}

// SnapshotStatuses returns the snapshot outcomes reported for peer to, in
// order.
func (r *Recorder) SnapshotStatuses(to uint64) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.snapStatus[to]...)
}

func (r *Recorder) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Deliver implements transport.Handler.
func (r *Recorder) Deliver(msgs []core.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msgs...)
	r.mu.Unlock()
	r.poke()
	if r.Block != nil {
		<-r.Block
	}
}

// Unreachable implements transport.Handler.
func (r *Recorder) Unreachable(peer uint64) {
	r.mu.Lock()
	r.unreachable[peer]++
	r.mu.Unlock()
	r.poke()
}

// Msgs returns a copy of everything delivered so far.
func (r *Recorder) Msgs() []core.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]core.Message(nil), r.msgs...)
}

// Count returns how many delivered messages satisfy keep (nil: all).
func (r *Recorder) Count(keep func(*core.Message) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := range r.msgs {
		if keep == nil || keep(&r.msgs[i]) {
			n++
		}
	}
	return n
}

// UnreachableCount returns how often peer was reported unreachable.
func (r *Recorder) UnreachableCount(peer uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[peer]
}

// WaitFor waits until cond holds, re-checking on every delivery and every
// few milliseconds (for conditions on counters), and fails the test with
// what after timeout.
func (r *Recorder) WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitFor(t, timeout, what, cond, r.changed)
}

// Eventually waits for cond without a recorder (counters, state).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitFor(t, timeout, what, cond, nil)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool, changed chan struct{}) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			if !cond() {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			return
		}
	}
}

// App builds a MsgApp from from to to with index idx and n entries of size
// bytes each, filled with a pattern derived from idx so corruption shows.
func App(from, to, idx uint64, n, size int) core.Message {
	m := core.Message{Type: core.MsgApp, From: from, To: to, Term: 3, LogTerm: 2, Index: idx, Commit: idx / 2}
	for i := 0; i < n; i++ {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(int(idx) + i + j)
		}
		m.Entries = append(m.Entries, core.Entry{Term: 3, Index: idx + uint64(i) + 1, Data: data})
	}
	return m
}

// Snap builds a MsgSnap from from to to for a snapshot at index with size
// bytes of pseudo-random data (seeded by index, so two snapshots differ and
// a misplaced chunk shows).
func Snap(from, to, index uint64, size int) core.Message {
	data := make([]byte, size)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], index)
	_, _ = mrand.NewChaCha8(seed).Read(data)
	return core.Message{Type: core.MsgSnap, From: from, To: to, Term: 3, Snapshot: &core.Snapshot{
		Meta: core.SnapshotMeta{Index: index, Term: 2, Conf: core.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}},
		Data: data,
	}}
}

// IsSnap selects MsgSnap messages (for Recorder.Count).
func IsSnap(m *core.Message) bool { return m.Type == core.MsgSnap }

// Heartbeat builds a MsgHeartbeat carrying seq in Context.
func Heartbeat(from, to, seq uint64) core.Message {
	return core.Message{Type: core.MsgHeartbeat, From: from, To: to, Term: 3, Context: seq}
}

// EqualMessages reports whether a and b carry the same content (nil and
// empty slices are equal), with a description of the first difference.
func EqualMessages(a, b *core.Message) (bool, string) {
	if a.Type != b.Type || a.From != b.From || a.To != b.To || a.Term != b.Term || a.LogTerm != b.LogTerm ||
		a.Index != b.Index || a.Commit != b.Commit || a.Reject != b.Reject || a.RejectHint != b.RejectHint ||
		a.Context != b.Context || a.Timing != b.Timing {
		return false, fmt.Sprintf("header differs: %+v vs %+v", headerOf(a), headerOf(b))
	}
	if len(a.Entries) != len(b.Entries) {
		return false, fmt.Sprintf("%d vs %d entries", len(a.Entries), len(b.Entries))
	}
	for i := range a.Entries {
		x, y := &a.Entries[i], &b.Entries[i]
		if x.Term != y.Term || x.Index != y.Index || x.Type != y.Type || !bytes.Equal(x.Data, y.Data) {
			return false, fmt.Sprintf("entry %d differs", i)
		}
	}
	if (a.Snapshot == nil) != (b.Snapshot == nil) {
		return false, "snapshot presence differs"
	}
	if a.Snapshot != nil {
		x, y := a.Snapshot, b.Snapshot
		if x.Meta.Index != y.Meta.Index || x.Meta.Term != y.Meta.Term || !bytes.Equal(x.Data, y.Data) ||
			!equalIDs(x.Meta.Conf.Voters, y.Meta.Conf.Voters) || !equalIDs(x.Meta.Conf.VotersOutgoing, y.Meta.Conf.VotersOutgoing) ||
			!equalIDs(x.Meta.Conf.Learners, y.Meta.Conf.Learners) {
			return false, "snapshot differs"
		}
	}
	return true, ""
}

func headerOf(m *core.Message) core.Message {
	h := *m
	h.Entries, h.Snapshot = nil, nil
	return h
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// WriteCerts writes a test CA and a node certificate for 127.0.0.1 and
// localhost, signed by it, into a temporary directory, and returns files
// configured for mutual TLS.
func WriteCerts(t testing.TB) transport.TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "raftbench test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "raftbench test node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return transport.TLSFiles{
		CAFile:   write("ca.pem", "CERTIFICATE", caDER),
		CertFile: write("node.pem", "CERTIFICATE", der),
		KeyFile:  write("node-key.pem", "EC PRIVATE KEY", keyDER),
		Mutual:   true,
	}
}

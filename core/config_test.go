package core

import (
	"errors"
	"go/build"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/raftbench/raftbench/internal/configtest"
)

// Config follows the config contract (internal/configtest).
func TestConfig_ConfigShape(t *testing.T) {
	configtest.Check(t, configtest.Case[Config]{
		Sentinel:       ErrInvalidConfig,
		EnsureDefaults: (*Config).EnsureDefaults,
		Validate:       (*Config).Validate,
		Required: func() Config {
			return Config{ID: 1, Voters: []uint64{1}, Storage: NewMemoryStorage(), Rand: rand.New(rand.NewPCG(1, 1))}
		},
		Set: func() Config {
			return Config{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4},
				ElectionTicks: 20, HeartbeatTicks: 2, MaxInflight: 8, MaxInflightBytes: 1 << 20, MaxSizePerMsg: 4096,
				MaxUncommittedBytes: 1 << 22, DisablePreVote: true, ReadOnlyOption: ReadOnlyLeaseBased, LeaseDriftTicks: 2,
				Storage: NewMemoryStorage(), Rand: rand.New(rand.NewPCG(1, 1)), Applied: 5}
		},
		// Lease reads need check-quorum, so Set cannot also disable it.
		Unset: []string{"DisableCheckQuorum"},
		Bad: func() Config {
			return Config{ID: 0, Voters: nil, Learners: []uint64{0, 5, 5}, ElectionTicks: -1, HeartbeatTicks: -1,
				ReadOnlyOption: ReadOnlyLeaseBased, DisableCheckQuorum: true, LeaseDriftTicks: -1,
				MaxInflight: -1, MaxSizePerMsg: 0}
		},
		Want: []string{"ID is 0", "Voters is empty", "membership lists node ID 0", "node 5 is listed twice",
			"ElectionTicks is -1", "HeartbeatTicks is -1", "requires check-quorum", "LeaseDriftTicks is -1",
			"MaxInflight is -1", "MaxSizePerMsg is 0", "Storage is nil", "Rand is nil"},
	})
}

// The rules that tie fields together, and the values only one option
// allows, each name what they compare.
func TestConfig_ValidateCrossFieldRules(t *testing.T) {
	cfg := testConfig(1, []uint64{1, 1, 0}, NewMemoryStorage())
	cfg.ElectionTicks, cfg.HeartbeatTicks = 3, 3
	err := cfg.Validate()
	for _, want := range []string{"node 1 is listed twice", "node ID 0", "HeartbeatTicks 3 must be less than ElectionTicks 3"} {
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	cfg = testConfig(1, []uint64{1}, NewMemoryStorage())
	cfg.ReadOnlyOption = 5
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "ReadOnlyOption is 5") {
		t.Errorf("unknown ReadOnlyOption: %v", err)
	}
	cfg = testConfig(4, []uint64{1, 2, 3}, NewMemoryStorage())
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ID 4 is not among Voters") {
		t.Errorf("ID outside the membership: %v", err)
	}
	cfg = testConfig(1, nil, NewMemoryStorage())
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Voters is empty") {
		t.Errorf("no voters: %v", err)
	}
	cfg = testConfig(1, []uint64{1}, NewMemoryStorage())
	cfg.ElectionTicks, cfg.HeartbeatTicks = 0, -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ElectionTicks is 0") || !strings.Contains(err.Error(), "HeartbeatTicks is -1") {
		t.Errorf("non-positive ticks: %v", err)
	}
}

// New fills the defaults before it validates: a config holding only what
// has no default starts a node with the default timeouts and windows.
func TestNew_FillsDefaults(t *testing.T) {
	r, err := New(Config{ID: 1, Voters: []uint64{1}, Storage: NewMemoryStorage(), Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		t.Fatal(err)
	}
	if r.electionTicks != DefaultElectionTicks || r.heartbeatTicks != DefaultHeartbeatTicks || r.maxSizePerMsg != DefaultMaxSizePerMsg {
		t.Errorf("New used ET %d, HB %d, MaxSizePerMsg %d; want the defaults", r.electionTicks, r.heartbeatTicks, r.maxSizePerMsg)
	}
}

// New returns Validate's error and never panics, whatever the config.
func TestNew_ReturnsErrors(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(zero Config): %v", err)
	}
	// A hard state that commits beyond the stored log means lost data.
	st := storageWith(t, HardState{Term: 1, Commit: 5}, 1, 1)
	if _, err := New(testConfig(1, []uint64{1}, st)); err == nil || !strings.Contains(err.Error(), "beyond the last stored entry") {
		t.Fatalf("commit beyond the log: %v", err)
	}
	st = storageWith(t, HardState{Term: 1, Commit: 1}, 1, 1)
	cfg := testConfig(1, []uint64{1}, st)
	cfg.Applied = 2
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Applied 2") {
		t.Fatalf("applied beyond commit: %v", err)
	}
	if _, err := New(testConfig(1, []uint64{1}, failingStorage{NewMemoryStorage()})); err == nil {
		t.Fatal("New over a failing storage succeeded")
	}
}

// failingStorage fails every read, as a corrupt or unreadable log would.
type failingStorage struct{ *MemoryStorage }

var errDisk = errors.New("disk on fire")

func (failingStorage) InitialState() (HardState, ConfState, error) {
	return HardState{}, ConfState{}, errDisk
}
func (failingStorage) FirstIndex() (uint64, error) { return 0, errDisk }

// termFailStorage fails term lookups only.
type termFailStorage struct{ *MemoryStorage }

func (termFailStorage) Term(uint64) (uint64, error) { return 0, errDisk }

// A storage failure in the middle of the protocol becomes a sticky error:
// the node stops acting instead of guessing.
func TestStorageFailureIsSticky(t *testing.T) {
	st := storageWith(t, HardState{Term: 1}, 1, 1, 1)
	cfg := testConfig(2, []uint64{1, 2}, termFailStorage{st})
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 1, Index: 2, LogTerm: 1})
	if !errors.Is(err, errDisk) {
		t.Fatalf("Step over a failing storage: %v, want errDisk", err)
	}
	if !errors.Is(r.Err(), errDisk) {
		t.Fatalf("Err() = %v", r.Err())
	}
	if err := r.Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 1}); !errors.Is(err, errDisk) {
		t.Fatalf("later Step: %v, want the sticky error", err)
	}
	if _, _, err := r.Propose(Entry{}); !errors.Is(err, errDisk) {
		t.Fatalf("Propose: %v", err)
	}
	if err := r.ReadIndex(1); !errors.Is(err, errDisk) {
		t.Fatalf("ReadIndex: %v", err)
	}
	if err := r.TransferLeader(1); !errors.Is(err, errDisk) {
		t.Fatalf("TransferLeader: %v", err)
	}
	r.Tick() // must not panic
}

// Step refuses malformed messages with ErrInvalidMessage and is unchanged.
func TestStep_InvalidMessages(t *testing.T) {
	bad := []Message{
		{Type: 0, From: 1, To: 2},
		{Type: MaxMessageType + 1, From: 1, To: 2},
		{Type: MsgApp, From: 1, To: 3},
		{Type: MsgApp, From: 0, To: 2},
		{Type: MsgApp, From: 2, To: 2},
		{Type: MsgSnap, From: 1, To: 2, Term: 1},
		{Type: MsgHeartbeat, From: 1, To: 2, Term: 1, Entries: []Entry{{Index: 1, Term: 1}}},
		{Type: MsgApp, From: 1, To: 2, Term: 1, Index: 0, Entries: []Entry{{Index: 2, Term: 1}}},
		{Type: MsgApp, From: 1, To: 2, Term: 1, Index: 0, Entries: []Entry{{Index: 1, Term: 2}}},
		{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 0, Entries: []Entry{{Index: 1, Term: 2}, {Index: 2, Term: 1}}},
	}
	for _, m := range bad {
		r := newTestRaft(t, 2, []uint64{1, 2}, nil)
		before := r.Status()
		err := r.Step(m)
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Step(%+v) = %v, want ErrInvalidMessage", m, err)
		}
		if after := r.Status(); after.Term != before.Term || after.LastIndex != before.LastIndex || r.HasReady() {
			t.Errorf("invalid %s changed the node", m.Type)
		}
		if r.Err() != nil {
			t.Errorf("an invalid message poisoned the node: %v", r.Err())
		}
	}
}

// core and its sub-packages are pure: they import no clock, network, file
// system, locks or randomness of their own (the random source comes in
// Config), and nothing of this module outside core.
func TestCoreImportsNothingImpure(t *testing.T) {
	banned := map[string]bool{
		"net": true, "os": true, "time": true, "sync": true,
		"math/rand": true, "math/rand/v2": true, "crypto/rand": true,
		"unsafe": true, "syscall": true, "runtime": true,
	}
	for _, dir := range []string{".", "tracker", "quorum"} {
		name := strings.TrimSuffix("core/"+dir, "/.")
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			if banned[imp] || strings.HasPrefix(imp, "net/") || strings.HasPrefix(imp, "os/") || strings.HasPrefix(imp, "sync/") {
				t.Errorf("%s imports %q", name, imp)
			}
			if strings.HasPrefix(imp, "github.com/raftbench/raftbench/") && !strings.HasPrefix(imp, "github.com/raftbench/raftbench/core/") {
				t.Errorf("%s imports %q, another package of this module", name, imp)
			}
		}
		if len(pkg.Imports) == 0 {
			t.Fatalf("%s: found no imports at all; is the test looking at the package?", dir)
		}
	}
}

// Status reports the leader's view of every follower.
func TestStatus(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.campaign(1)
	nw.propose(1, "a")
	s := nw.nodes[1].Status()
	if s.Role != Leader || s.Lead != 1 || s.Commit != 2 || len(s.Progress) != 3 {
		t.Fatalf("status %+v", s)
	}
	if p := s.Progress[2]; p.Match != 2 || p.State != "replicate" {
		t.Fatalf("progress of 2: %+v", p)
	}
	if f := nw.nodes[2].Status(); f.Progress != nil || f.Role != Follower {
		t.Fatalf("follower status %+v", f)
	}
	for _, r := range []Role{Follower, PreCandidate, Candidate, Leader, Role(9)} {
		if r.String() == "" {
			t.Fatalf("role %d has no name", r)
		}
	}
	for typ := MessageType(0); typ <= MaxMessageType+1; typ++ {
		if typ.String() == "" {
			t.Fatalf("message type %d has no name", typ)
		}
	}
	_ = rand.N[int]
}

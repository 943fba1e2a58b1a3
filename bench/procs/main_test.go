package procs

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raftbench/raftbench/internal/testbin"
)

// harnessEnv, when set (to a directory), makes the test binary a harness
// that supervises one node and then waits to be killed: the test of what a
// SIGKILLed harness leaves behind. harnessBinEnv holds the raftbench
// binary it runs.
const (
	harnessEnv    = "RAFTBENCH_PROCS_TEST_HARNESS"
	harnessBinEnv = "RAFTBENCH_PROCS_TEST_BIN"
)

// testFlags are the nodes' Raft timing in these tests: short enough for
// quick elections, long enough that three nodes and a -race test binary
// on two cores hold no needless ones.
var testFlags = []string{"--tick", "5ms", "--election-timeout", "500ms", "--heartbeat", "50ms"}

// testClusterID is the cluster ID of the tests' clusters ("procs").
const testClusterID = 0x70726f6373

// TestMain runs the harness helper when asked to; otherwise the tests,
// failing the package if one leaves a goroutine behind (the reapers, the
// forker and the admin clients' connections must end with Close).
func TestMain(m *testing.M) {
	if dir := os.Getenv(harnessEnv); dir != "" {
		os.Exit(harnessMain(dir, os.Getenv(harnessBinEnv)))
	}
	code := 0
	func() {
		defer testbin.Cleanup()
		// goleak.VerifyTestMain would exit before the deferred cleanup.
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}()
	os.Exit(code)
}

// raftbench is the binary the tests start their nodes from.
func raftbench(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Raftbench()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// harnessMain supervises one node and waits: it prints the node's PID and
// blocks until it is killed.
func harnessMain(dir, bin string) int {
	specs, err := LoopbackNodes(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := New(ctx, Config{Binary: bin, ClusterID: testClusterID, Dir: dir, Nodes: specs, Flags: testFlags})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("pid %d\n", s.PID(1))
	<-ctx.Done() // the test kills this process long before
	return 1
}

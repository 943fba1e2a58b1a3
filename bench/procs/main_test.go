package procs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
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

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// TestMain runs the harness helper when asked to; otherwise the tests,
// failing the package if one leaves a goroutine behind (the reapers, the
// forker and the admin clients' connections must end with Close).
func TestMain(m *testing.M) {
	if dir := os.Getenv(harnessEnv); dir != "" {
		os.Exit(harnessMain(dir, os.Getenv(harnessBinEnv)))
	}
	code := 0
	func() {
		defer func() {
			if buildDir != "" {
				os.RemoveAll(buildDir)
			}
		}()
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

// raftbench builds cmd/raftbench once per test binary (without -race: the
// nodes are what the tests drive, not what they check for races).
func raftbench(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the test builds raftbench and needs the go command on PATH: %w", err)
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "procs-test-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "raftbench")
		out, err := exec.Command(goTool, "build", "-o", buildBin, "../../cmd/raftbench").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
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

// Package testbin gives the tests that start node processes (cli,
// bench/procs, bench/crashsoak) one raftbench binary to start them from.
//
// make test builds that binary once before the race-enabled suite and
// names it in RAFTBENCH_TEST_BIN. Each of those packages used to build its
// own: on a machine with a cold build cache, three concurrent non-race
// compiles of Pebble and quic-go, beside the race-enabled test builds, on
// two cores — most of what the slowest packages spent. Run alone (go test
// ./cli/), a package still builds the binary itself, once per test binary.
//
// The binary is built without -race: the nodes are what the tests drive;
// the race detector checks the test binary's own code.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Env names the environment variable that carries a prebuilt raftbench
// binary's path (make test sets it). A path that is set must exist and be
// executable; a stale or wrong one fails the tests rather than quietly
// building another.
const Env = "RAFTBENCH_TEST_BIN"

// pkg is what Raftbench builds when Env is unset: an import path, so the
// build works from any package directory of the module.
const pkg = "github.com/raftbench/raftbench/cmd/raftbench"

var (
	once sync.Once
	bin  string
	dir  string
	err  error
)

// Raftbench returns the path of a raftbench binary: Env's, or one built
// into a temporary directory on the first call (Cleanup removes it). Every
// call returns the same path and error.
func Raftbench() (string, error) {
	once.Do(func() {
		if p := os.Getenv(Env); p != "" {
			if !filepath.IsAbs(p) {
				err = fmt.Errorf("testbin: %s=%q is not an absolute path", Env, p)
				return
			}
			fi, serr := os.Stat(p)
			switch {
			case serr != nil:
				err = fmt.Errorf("testbin: %s: %w", Env, serr)
			case fi.IsDir() || fi.Mode()&0o111 == 0:
				err = fmt.Errorf("testbin: %s=%s is not an executable file", Env, p)
			default:
				bin = p
			}
			return
		}
		goTool, lerr := exec.LookPath("go")
		if lerr != nil {
			err = fmt.Errorf("testbin: building raftbench needs the go command on PATH (or set %s): %w", Env, lerr)
			return
		}
		if dir, err = os.MkdirTemp("", "raftbench-test-bin-"); err != nil {
			err = fmt.Errorf("testbin: %w", err)
			return
		}
		out := filepath.Join(dir, "raftbench")
		if b, berr := exec.Command(goTool, "build", "-o", out, pkg).CombinedOutput(); berr != nil {
			err = fmt.Errorf("testbin: go build %s: %v\n%s", pkg, berr, b)
			return
		}
		bin = out
	})
	return bin, err
}

// Cleanup removes the binary Raftbench built, if it built one; a binary
// named by Env is left alone. Call it from TestMain after m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

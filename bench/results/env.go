package results

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
)

// CurrentEnv describes this process and machine, with the commit the
// binary was built from (Commit).
func CurrentEnv() Env {
	e := Env{
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, CPUModel: cpuModel(), Commit: Commit(),
	}
	e.Hostname, _ = os.Hostname()
	if gc, ok := gcPercent(); ok {
		e.GCPercent = &gc
	}
	return e
}

// gcPercent returns the garbage collector's target in force (-1 for off),
// as the runtime reports it: read, not set, so that reading it neither
// starts a collection nor races with another reader. ok is false when the
// runtime does not report it; the result then records nothing rather than
// a guess.
func gcPercent() (percent int, ok bool) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return int(int64(s[0].Value.Uint64())), true
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// stampedCommit is the commit the binary was built from, set at build time
// by the Makefile:
//
//	go build -ldflags "-X github.com/raftbench/raftbench/bench/results.stampedCommit=$(git rev-parse HEAD)"
//
// (with "-dirty" appended when the tree had changes).
var stampedCommit string

// Commit is the commit the binary was built from: the one stamped at build
// time, else the one Go's VCS stamping recorded (go build in a checkout),
// else "unknown". It never asks git at run time: the directory a run is
// started from may be another repository altogether.
func Commit() string {
	if stampedCommit != "" {
		return stampedCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			return rev + dirty
		}
	}
	return "unknown"
}

// Version describes the binary for --version.
func Version() string {
	return fmt.Sprintf("%s (%s %s/%s)", Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

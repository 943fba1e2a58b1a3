package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Owner parses a namespace name this package makes
// (Prefix<pid>-<8 hex digits>-hub or ...-n<ID>) and returns the PID of the
// process that made it; ok is false for every other name.
func Owner(name string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 || strconv.Itoa(pid) != parts[0] {
		return 0, false
	}
	if len(parts[1]) != 8 {
		return 0, false
	}
	if _, err := strconv.ParseUint(parts[1], 16, 32); err != nil {
		return 0, false
	}
	role := parts[2]
	if role != "hub" {
		id, ok := strings.CutPrefix(role, "n")
		if n, err := strconv.ParseUint(id, 10, 64); !ok || err != nil || n < 1 || n > MaxNodeID || strconv.FormatUint(n, 10) != id {
			return 0, false
		}
	}
	return pid, true
}

// alive reports whether a process pid exists (a zombie, or one of another
// user, counts: it is not known to be gone).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Sweep removes the namespaces left by runs that ended without Close: every
// name that Owner recognises whose PID no longer runs. A namespace of a
// live process (this one's included) is left alone, whoever it is; so is
// every name without Prefix. It returns the names it removed, and every
// removal that failed.
func Sweep() ([]string, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	ip, _ := exec.LookPath("ip")
	ents, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: sweep: %w", err)
	}
	n := &Net{ip: ip}
	var removed []string
	var errs []error
	for _, e := range ents {
		pid, ok := Owner(e.Name())
		if !ok || pid == os.Getpid() || alive(pid) {
			continue
		}
		if err := n.run(nil, "netns", "del", e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("netns: sweep: %w", err))
			continue
		}
		removed = append(removed, e.Name())
	}
	slices.Sort(removed)
	return removed, errors.Join(errs...)
}

package procs

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// sysProcAttr puts a node in a process group of its own (terminal signals
// reach the harness only) and has the kernel SIGKILL it when the harness
// dies (see forker for the thread this is tied to).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// procState is the state letter of process pid in /proc/PID/stat ('R',
// 'S', 'D', 'T' stopped, 'Z' zombie, ...); ok is false when it cannot
// tell (no such process).
func procState(pid int) (state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, so the
	// state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// canSeeStops: procState reports stopped processes here.
const canSeeStops = true

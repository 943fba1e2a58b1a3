//go:build !linux

package procs

import "syscall"

// sysProcAttr puts a node in a process group of its own. Only Linux has
// Pdeathsig; elsewhere a harness killed by SIGKILL leaves its nodes
// running.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// procState cannot tell without /proc.
func procState(int) (byte, bool) { return 0, false }

// canSeeStops: Pause and Resume trust the signal here.
const canSeeStops = false

//go:build unix

package procstat

import (
	"syscall"
	"time"
)

// usage reads the process's user and system CPU time and its page faults
// (minor: a page mapped without I/O, as on the first touch of fresh
// memory; major: one read from storage); ok is false if getrusage fails.
func usage() (user, system time.Duration, minor, major uint64, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0, 0, false
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), uint64(ru.Minflt), uint64(ru.Majflt), true
}

//go:build unix

package procstat

import (
	"syscall"
	"time"
)

// cpuTimes reads the process's user and system CPU time.
func cpuTimes() (user, system time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

//go:build unix

package admin

import (
	"runtime"
	"syscall"
	"time"
)

// usage is the CPU time this process used and its peak resident set size.
func usage() (cpuSeconds float64, maxRSS int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rss := int64(ru.Maxrss)
	if runtime.GOOS != "darwin" {
		rss *= 1024 // kilobytes, except on macOS
	}
	return cpu.Seconds(), rss
}

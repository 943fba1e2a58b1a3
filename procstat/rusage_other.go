//go:build !unix

package procstat

import "time"

// cpuTimes is unknown off Unix.
func cpuTimes() (user, system time.Duration) { return 0, 0 }

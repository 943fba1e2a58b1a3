//go:build !unix

package procstat

import "time"

// usage is unknown off Unix.
func usage() (user, system time.Duration, minor, major uint64, ok bool) { return 0, 0, 0, 0, false }

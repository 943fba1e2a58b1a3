//go:build !linux

package procstat

// writeBytes is unknown off Linux.
func writeBytes() (int64, bool) { return 0, false }

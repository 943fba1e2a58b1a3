package procstat

import "os"

// writeBytes reads /proc/self/io: write_bytes less cancelled_write_bytes.
func writeBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	return parseIO(b)
}

//go:build !unix

package admin

// usage is unknown here.
func usage() (cpuSeconds float64, maxRSS int64) { return 0, 0 }

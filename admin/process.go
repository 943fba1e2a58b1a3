package admin

import (
	"os"
	"runtime"
	"time"
)

// processStats describes this process (the one serving the node).
func processStats(started time.Time) ProcessStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := ProcessStats{PID: os.Getpid(), HeapBytes: int64(ms.HeapInuse), Goroutines: runtime.NumGoroutine(),
		GCCycles: ms.NumGC, Started: started}
	p.CPUSeconds, p.MaxRSSBytes = usage()
	return p
}

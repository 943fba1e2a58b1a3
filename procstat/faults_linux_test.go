package procstat

import (
	"syscall"
	"testing"
)

// Touching fresh anonymous memory faults once per page, and a window
// around it counts every one of those faults.
func TestWindowCountsFirstTouches(t *testing.T) {
	const size = 16 << 20
	pages := size / syscall.Getpagesize()
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	// Huge pages would fault 512 pages at a time.
	if err := syscall.Madvise(m, syscall.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	a := Read()
	for i := 0; i < size; i += syscall.Getpagesize() {
		m[i] = 1
	}
	c := Between(a, Read())
	if !c.HasFaults || c.MinorFaults < uint64(pages) {
		t.Errorf("touching %d fresh pages: %d minor faults (measured %v), want at least %d", pages, c.MinorFaults, c.HasFaults, pages)
	}
	t.Logf("%d pages: %d minor, %d major faults", pages, c.MinorFaults, c.MajorFaults)
}

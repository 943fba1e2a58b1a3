package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// within runs fn on an OS thread that has entered the network namespace
// open as ns (which must stay open until fn starts: hold a lock that
// keeps Close away), so the sockets fn creates belong to that namespace,
// and stay there whichever thread uses them later.
//
// The thread goes back to its own namespace afterwards and only then
// returns to the runtime's pool. If it cannot, it stays locked: no other
// goroutine may run in the wrong namespace, and the runtime ends a thread
// whose goroutine exits locked to it (or, for the main thread, parks it
// for good). A process started from a thread with Pdeathsig is signalled
// when that thread ends, which is why bench/procs starts its processes
// from a thread of its own.
func within(ns *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: this thread's namespace: %w", err)
			return
		}
		defer own.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", ns.Name(), err)
			return
		}
		err = fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

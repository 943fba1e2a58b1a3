package procs

import (
	"os/exec"
	"runtime"
)

// forker starts processes from one OS thread that stays locked until the
// forker stops. Pdeathsig is delivered when the thread that started a
// process ends, not when the process does, and Go ends threads now and
// then (one whose goroutine exits locked to it); starting every node from
// a thread that lives as long as the Supervisor makes Pdeathsig mean
// "the harness died".
type forker struct {
	reqs chan forkReq
	done chan struct{}
}

type forkReq struct {
	cmd *exec.Cmd
	err chan error
}

func newForker() *forker {
	f := &forker{reqs: make(chan forkReq), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		defer close(f.done)
		for r := range f.reqs {
			r.err <- r.cmd.Start()
		}
		// Stay locked: the thread ends with this goroutine, which is fine
		// now that every process it started has been waited for.
	}()
	return f
}

// start runs cmd.Start on the forker's thread.
func (f *forker) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	f.reqs <- forkReq{cmd: cmd, err: errc}
	return <-errc
}

// stop ends the forker; call it only after every process it started has
// exited.
func (f *forker) stop() {
	close(f.reqs)
	<-f.done
}

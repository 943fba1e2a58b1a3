package procs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Causes of an exit the supervisor brought about (Exit.Cause).
const (
	CauseKill9 = "kill9" // Kill9: SIGKILL
	CauseStop  = "stop"  // Stop, StopAll, Close: SIGTERM, then SIGKILL after StopTimeout
)

// ErrExited is matched by every *ExitError: a node process ended when it
// should have served.
var ErrExited = errors.New("procs: node process exited")

// Exit is how one incarnation of a node process ended.
type Exit struct {
	// ID is the node; Incarnation counts its starts from 1.
	ID          uint64
	Incarnation int
	PID         int
	Started, At time.Time
	// Code is the exit code, or -1 when a signal ended the process
	// (Signal says which).
	Code   int
	Signal syscall.Signal
	// Cause is what the supervisor did to end it (CauseKill9, CauseStop),
	// or "" when the process ended on its own.
	Cause string
	// Escalated: a Stop had to send SIGKILL, the process having ignored
	// SIGTERM for StopTimeout.
	Escalated bool
	// Served: the process had served (answered /status) before it ended;
	// false for one that refused to start.
	Served bool
	// Tail is the last lines the process wrote (stdout and stderr).
	Tail []string
	// Log is the file that holds all of its output.
	Log string
}

// Expected reports whether the supervisor caused the exit.
func (e Exit) Expected() bool { return e.Cause != "" }

// Clean reports whether the process exited with code 0.
func (e Exit) Clean() bool { return e.Code == 0 }

// Reason is the line of Tail that says best why the process ended: the
// raftbench command's own error line ("raftbench: ..."), a Go panic or
// fatal error, else the last line; "" when it wrote nothing.
func (e Exit) Reason() string {
	for i := len(e.Tail) - 1; i >= 0; i-- {
		if strings.HasPrefix(e.Tail[i], "raftbench: ") {
			return e.Tail[i]
		}
	}
	for _, l := range e.Tail {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return l
		}
	}
	if n := len(e.Tail); n > 0 {
		return e.Tail[n-1]
	}
	return ""
}

// String says who ended how, and why: "node 2 (pid 4242) exited with code
// 2 before serving, 0.3s after its start: raftbench: ...".
func (e Exit) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %d (pid %d) ", e.ID, e.PID)
	switch {
	case e.Code >= 0:
		fmt.Fprintf(&b, "exited with code %d", e.Code)
	default:
		fmt.Fprintf(&b, "was killed by %s", signalName(e.Signal))
	}
	switch {
	case e.Cause == CauseKill9:
		b.WriteString(" (kill9)")
	case e.Cause == CauseStop && e.Escalated:
		b.WriteString(" (stop: it ignored SIGTERM, so SIGKILL)")
	case e.Cause == CauseStop:
		b.WriteString(" (stop)")
	case !e.Served:
		b.WriteString(" before serving")
	default:
		b.WriteString(" on its own")
	}
	fmt.Fprintf(&b, ", %v after its start", e.At.Sub(e.Started).Round(time.Millisecond))
	// Why a kill9 or an escalated stop ended it is known; why anything
	// else did is in the output.
	if r := e.Reason(); r != "" && (!e.Expected() || (e.Cause == CauseStop && !e.Escalated && !e.Clean())) {
		b.WriteString(": ")
		b.WriteString(r)
	}
	if e.Log != "" && !e.Expected() {
		fmt.Fprintf(&b, " (log: %s)", e.Log)
	}
	return b.String()
}

// signalName is "SIGKILL" for syscall.SIGKILL.
func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// ExitError is an exit returned as an error: a node that refused to start,
// or that died while the supervisor waited on it.
type ExitError struct{ Exit Exit }

func (e *ExitError) Error() string { return "procs: " + e.Exit.String() }

// Is matches ErrExited.
func (e *ExitError) Is(target error) bool { return target == ErrExited }

// tail returns the last n lines of path written from offset on (at most
// the last 64 KiB of them).
func tail(path string, offset int64, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	const window = 64 << 10
	from := max(offset, fi.Size()-window)
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, window))
	if err != nil {
		return nil
	}
	if from > offset {
		// Drop the partial first line.
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

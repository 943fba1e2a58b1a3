// Package procs supervises the `raftbench node` processes of a cluster on
// this machine, for the harness's --procs mode and the crash soak: it starts
// them (optionally each in a network namespace, see bench/netns), captures
// their output, knows when each serves and when each is ready, injects the
// process faults (SIGKILL, SIGSTOP/SIGCONT, SIGTERM) and says how every
// process ended.
//
// # Life of a node
//
// Start launches every node and waits until each serves (its admin
// endpoint answers /status, as this very process: the PID must match) and
// is ready (it knows a leader). Kill9 SIGKILLs and waits for the exit;
// Restart launches a node again on its data directory and waits until it
// serves (not until it is ready: a node restarted while a quorum is down
// cannot know a leader; WaitReady waits for that); Pause and Resume send
// SIGSTOP and SIGCONT and return once the kernel reports the process
// stopped or running again; Stop sends SIGTERM and, after StopTimeout,
// SIGKILL. A node can be restarted after any exit.
//
// # Exits
//
// Every exit is an Exit: who, which PID and incarnation, the exit code or
// signal, what the supervisor did to cause it (Cause "kill9" or "stop", or
// "" when the process ended on its own, which Unexpected lists), and the
// last lines the process wrote. A node that refuses to start (a corrupt
// WAL, a directory of another cluster, a port in use) exits before it
// serves, and Start or Restart return an *ExitError reading, for example,
// "node 2 (pid 4242) exited with code 2 before serving: raftbench: node 2:
// cluster: data directory belongs to another cluster ...".
//
// Each node's stdout and stderr go to Dir/node<ID>.log, appended across
// its restarts, each incarnation between a line the supervisor writes when
// it starts it and one when it ends.
//
// # Only our processes
//
// The supervisor signals only the processes it started, through their
// os.Process (which never signals a PID reused after the exit was reaped),
// and never by name or pattern. Every process is in a process group of its
// own, so a Ctrl-C at the terminal reaches the harness only, which then
// stops the nodes in order; and on Linux each has Pdeathsig SIGKILL, so a
// harness killed by SIGKILL leaves no node behind. Pdeathsig fires when
// the thread that started the process ends, not the process, so every
// node is started from one OS thread the supervisor keeps locked for its
// whole life (Go ends threads whose goroutine exits locked to them, which
// bench/netns does on purpose). Close, and the cancellation of the context
// given to New, stop every node; nothing outlives the Supervisor.
//
// # Network namespaces
//
// A node with NodeSpec.Netns runs as `ip netns exec NAME raftbench node
// ...`, which execs the node in place (the PID is the node's). Its
// addresses are then only reachable from the namespaces' hub, so
// Config.Dial must dial from there (netns.Net.DialContext); the admin
// clients use it, and so should the clientapi endpoints (ClientOptions).
//
// # Profiles
//
// Profile fetches a pprof profile from every running node at once (a CPU
// profile then covers the same window on every node) into one file per
// node. Mutex and block profiles are empty unless the nodes sample them:
// pass --mutex-profile-fraction and --block-profile-rate in Config.Flags.
package procs

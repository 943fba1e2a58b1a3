// Package netns gives each node of a run a network namespace of its own,
// joined by veth links to one bridge, so that partitions are real link cuts
// rather than the in-process fault wrapper (raftbench run --procs --netns).
// Linux only, as root, with the ip command (iproute2).
//
// # Layout
//
// New creates, for a run, a hub namespace holding a bridge (br0) and, per
// node, a namespace holding the node's end of a veth pair (eth0) whose
// other end (nID) is a port of the bridge:
//
//	raftbench-<pid>-<tag>-hub   br0 198.18.S.254/24, ports n1, n2, ...
//	raftbench-<pid>-<tag>-n1    eth0 198.18.S.1/24, lo, sink0
//	raftbench-<pid>-<tag>-n2    eth0 198.18.S.2/24, lo, sink0
//
// Nothing is created in the namespace of the caller: the veth ends are
// made directly in their namespaces, and the only trace a run leaves on the
// host are the namespace names under /run/netns, which Close removes. The
// harness reaches the nodes from the hub: DialContext opens its sockets
// inside the hub namespace, so clientapi and admin clients plug it in as
// their dialer. The nodes run in their namespaces through `ip netns exec
// NAME` (see Namespace).
//
// # Addresses
//
// Every address is in 198.18.0.0/15, the range RFC 2544 reserves for
// benchmarking: a run takes one /24 of its 512, at random (Subnet). Two
// runs at once may draw the same /24; that is harmless, since each run's
// addresses exist only inside its own namespaces and bridge and nothing is
// routed between runs or to the host. The names are what must not clash,
// and they carry the PID and 32 random bits.
//
// # Faults
//
// This machine's kernel has neither netfilter (iptables, nft) nor traffic
// control classifiers (tc filter), and netem is out of the question, so
// the faults use what the routing layer itself offers, and both drop
// packets silently, as a pulled cable or a firewall DROP does, rather than
// failing fast:
//
//   - Isolate(id) sets the bridge's port nID down: the node's eth0 loses
//     its carrier and every packet to or from it is dropped, its peers'
//     and the hub's alike (so clients and the admin endpoint cannot reach
//     an isolated node either). Established TCP connections stall and
//     resume when Unisolate sets the port up again.
//   - Cut(a, b) adds, in a's namespace, a /32 route to b through sink0,
//     and in b's one to a: sink0 is a veth whose peer (sink1) stays down,
//     so what is routed to it is discarded. Only that pair is cut; both
//     still reach every other node and the hub. Adding a route
//     invalidates the routes cached on sockets, so established
//     connections between the pair are cut too.
//
// # Cleaning up
//
// Close removes every namespace the Net created, by name; New calls it
// itself when it fails half-way, and a second Close does nothing. A
// namespace whose processes still run outlives its name until they exit;
// Close reports them (it never signals a process). Sweep removes the
// namespaces of runs that died without Close: those whose names carry
// Prefix and whose PID no longer runs.
package netns

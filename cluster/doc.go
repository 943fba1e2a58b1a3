// Package cluster is the one way to wire Raft nodes: a Template (the shared
// node.Config knobs, the transport and WAL chosen by name, the state
// machine) plus a NodeSpec (ID, peers, address, data directory) makes a
// running node, with its transport wrapped in the fault injector and its
// WAL behind a slow-disk control. The in-process Cluster, node's and kv's
// tests (through node/nodetest), the benchmark harness and `raftbench node`
// all build nodes here, so they cannot drift apart.
//
// # Building one node
//
//	tmpl := cluster.Template{ClusterID: 7, Transport: "tcp", WAL: "pebble", Node: node.Config{...}}
//	tr, err := tmpl.Listen(2, ":7001", cluster.Faults{})
//	rep, err := tmpl.Start(cluster.NodeSpec{ID: 2, Peers: peers, Transport: tr, Dir: "/var/lib/raftbench"})
//	...
//	rep.Stop()
//
// Listen is separate from Start so a cluster on port 0 can learn every
// node's address before any node starts. Start opens the data directory
// (see DataDir: it refuses a directory in use, of another node or of
// another cluster), the WAL, a fresh state machine, and starts the node;
// starting again on the same directory and address resumes the node.
//
// Names: the transport is "tcp" or "quic" (TransportNames), the WAL
// "pebble" or "memory" (WALNames); an unknown name is an error listing the
// valid ones. The state machine is Template.NewStateMachine, a kv.Store by
// default.
//
// # Frame size
//
// Every transport's maximum frame is at least FrameSize(MaxSizePerMsg), so
// the largest AppendEntries the node can produce always fits.
//
// # Many nodes in one process
//
// Cluster runs a whole cluster in this process on loopback, every node with
// its own transport and directory and all fault wrappers sharing one
// fault.Network. It keeps across a node's restarts what must outlive the
// node: its address, its first peers, its message rules and slow disk.
// Endpoints gives kv.Client one endpoint per node ID that follows the node
// across restarts. What every client operation and every leadership poll
// reads (Endpoint, Leader, MaxTerm) takes no lock and allocates nothing.
// Crash takes a node out as a power cut would: answers it gave to calls
// still in flight are withheld, its messages dropped, and a harness takes
// the image of its synced storage before it stops (Template.OpenWAL opens
// the log on storage that can lose what was not synced).
package cluster

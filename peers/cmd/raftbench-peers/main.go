// Command raftbench-peers is raftbench's command line (run, compare,
// sweep, ...) with the peer libraries registered as systems:
//
//	raftbench-peers run --system etcd|etcd-async|hashicorp|dragonboat|raftbench|raftbench-quic [--groups N] ...
//
// It is built in the peers module, so the libraries (and dragonboat's
// older Pebble) stay out of the raftbench module; see package
// peers/target for how each run flag maps onto each library and which are
// refused. `raftbench-peers table DIR` writes the markdown comparison
// table of a `make compare-peers` directory.
package main

import (
	"fmt"
	"os"

	"github.com/raftbench/raftbench/cli"
	"github.com/raftbench/raftbench/peers/target"
)

func main() {
	if err := target.Register(); err != nil {
		fmt.Fprintln(os.Stderr, "raftbench-peers:", err)
		os.Exit(1)
	}
	cli.Run(cli.Options{Name: "raftbench-peers", Commands: commands()})
}

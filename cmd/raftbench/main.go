// Command raftbench runs raftbench clusters under load and faults and
// writes result directories; see `raftbench help` and results/README.md.
// The command tree is package cli.
package main

import "github.com/raftbench/raftbench/cli"

func main() { cli.Run(cli.Options{}) }

package cluster_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/raftbench/raftbench/cluster"
	"github.com/raftbench/raftbench/node"
)

// counter is a user's own state machine: each command adds its one-byte
// value to a total and returns the new total.
type counter struct{ total uint64 }

func (c *counter) Apply(cmds []node.Command) []any {
	out := make([]any, len(cmds))
	for i, cmd := range cmds {
		c.total += uint64(cmd.Data[0])
		out[i] = c.total
	}
	return out
}

func (c *counter) Read([]byte) (any, error) { return c.total, nil }

func (c *counter) Snapshot() ([]byte, error) { return binary.AppendUvarint(nil, c.total), nil }

func (c *counter) Restore(b []byte) error {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return fmt.Errorf("counter: bad snapshot")
	}
	c.total = v
	return nil
}

// A three-node cluster in this process running a state machine of one's
// own instead of the default kv.Store.
func ExampleCluster_stateMachine() {
	c, err := cluster.Start(cluster.Options{
		Nodes: 3,
		Template: cluster.Template{
			Transport: "tcp",
			WAL:       "memory",
			Node: node.Config{
				TickInterval: 5 * time.Millisecond, ElectionTicks: 40, HeartbeatTicks: 4,
				Logger: slog.New(slog.DiscardHandler),
			},
			NewStateMachine: func(uint64) (node.StateMachine, error) { return &counter{}, nil },
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	lead, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, add := range []byte{2, 3, 5} {
		total, err := c.Node(lead).Propose(ctx, []byte{add})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("total", total)
	}
	v, err := c.Node(lead).Read(ctx, nil)
	fmt.Println("read", v, err)
	// Output:
	// total 2
	// total 5
	// total 10
	// read 10 <nil>
}

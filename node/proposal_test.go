package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftbench/raftbench/node"
	"github.com/raftbench/raftbench/node/nodetest"
)

// echoSM answers every command with a copy of the command itself, so a
// caller can tell whose outcome it received.
type echoSM struct{}

func (echoSM) Apply(cmds []node.Command) []any {
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = string(c.Data)
	}
	return out
}

func (echoSM) Read([]byte) (any, error) { return nil, nil }

// Propose recycles a proposal once its caller has the outcome; one whose
// caller gave up stays with the node. Callers that give up at random
// moments (queued, in flight, being applied) beside callers that wait,
// across a change of leader that fails what is pending, must each receive
// their own command's outcome or an error, never another's.
func TestProposeOutcomesAreTheCallers(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Nodes: 3, NewSM: func(uint64) node.StateMachine { return echoSM{} }})
	c.WaitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const clients, each = 32, 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrong []string
	var ok, gaveUp int
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range each {
				n := c.LeaderNode()
				if n == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				cmd := fmt.Sprintf("client %d command %d", w, i)
				pctx, pcancel := ctx, context.CancelFunc(func() {})
				if rng.IntN(3) == 0 { // a third give up within 0–2 ms
					pctx, pcancel = context.WithTimeout(ctx, time.Duration(rng.IntN(2000))*time.Microsecond)
				}
				v, err := n.Propose(pctx, []byte(cmd))
				pcancel()
				mu.Lock()
				switch {
				case err == nil && v != cmd:
					wrong = append(wrong, fmt.Sprintf("%q received %v", cmd, v))
				case err == nil:
					ok++
				case errors.Is(err, node.ErrTimeout):
					gaveUp++
				}
				mu.Unlock()
			}
		}()
	}
	// Move the leadership mid-run: the old leader fails what it holds.
	time.Sleep(100 * time.Millisecond)
	if n := c.LeaderNode(); n != nil {
		to := slices.DeleteFunc(c.IDs(), func(id uint64) bool { return id == n.ID() })[0]
		tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := n.TransferLeadership(tctx, to); err != nil {
			t.Logf("leadership transfer: %v", err)
		}
		tcancel()
	}
	wg.Wait()
	if len(wrong) > 0 {
		t.Fatalf("%d outcomes reached the wrong caller, e.g. %v", len(wrong), wrong[:min(5, len(wrong))])
	}
	if ok == 0 || gaveUp == 0 {
		t.Fatalf("%d acknowledged, %d given up: the test needs both", ok, gaveUp)
	}
	t.Logf("%d acknowledged, %d given up", ok, gaveUp)
}

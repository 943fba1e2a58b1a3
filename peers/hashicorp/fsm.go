package hashicorp

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/raftbench/raftbench/kv"
	"github.com/raftbench/raftbench/node"
)

// fsm is the kv.Store as a raft.BatchingFSM: hashicorp/raft hands it
// whole batches of committed commands (and configuration entries), which
// kv.Store applies under one lock, as raftbench's own applier does.
// Snapshots are kv.Store's own encoding.
type fsm struct {
	store *kv.Store
	// applied is the index of the last log the FSM was given (command or
	// configuration) or restored to.
	applied atomic.Uint64
}

var _ raft.BatchingFSM = (*fsm)(nil)

// Apply implements raft.FSM (used for single logs).
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: one result per log, the
// kv.Result for commands and nil for configuration entries.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	cmds := make([]node.Command, 0, len(logs))
	at := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			cmds = append(cmds, node.Command{Index: l.Index, Term: l.Term, Data: l.Data})
			at = append(at, i)
		}
	}
	if len(cmds) > 0 {
		for j, r := range f.store.Apply(cmds) {
			out[at[j]] = r
		}
	}
	if len(logs) > 0 {
		f.applied.Store(logs[len(logs)-1].Index)
	}
	return out
}

// Snapshot implements raft.FSM: the image is taken now, between batches;
// Persist writes it while the FSM goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.store.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("hashicorp: snapshot the kv store: %w", err)
	}
	return image(b), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("hashicorp: read snapshot: %w", err)
	}
	if err := f.store.Restore(b); err != nil {
		return err
	}
	f.applied.Store(f.store.AppliedIndex())
	return nil
}

// image is a kv.Store snapshot on its way to the snapshot store.
type image []byte

func (i image) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(i); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("hashicorp: write snapshot: %w", err)
	}
	return sink.Close()
}

func (image) Release() {}

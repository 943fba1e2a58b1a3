package core

import (
	"fmt"
	"testing"
)

// benchLeader returns a leader of a 3-node cluster whose followers are in
// replicate state, and its storage.
func benchLeader(b *testing.B, maxInflight int) (*Raft, *MemoryStorage) {
	st := NewMemoryStorage()
	l := newTestRaft(b, 1, []uint64{1, 2, 3}, st, func(c *Config) { c.MaxInflight = maxInflight })
	l.becomeCandidate()
	l.becomeLeader()
	persistAll(b, l, st)
	for _, id := range []uint64{2, 3} {
		if err := l.Step(Message{Type: MsgAppResp, From: id, To: 1, Term: l.Term(), Index: 1}); err != nil {
			b.Fatal(err)
		}
	}
	persistAll(b, l, st)
	return l, st
}

// BenchmarkLeaderAppendResp: the leader's hot path at a full pipeline
// window — an acknowledgement frees a slot, commit advances, and the freed
// slot is refilled with the next batch.
func BenchmarkLeaderAppendResp(b *testing.B) {
	const window = 64
	l, st := benchLeader(b, window)
	payload := make([]byte, 128)
	// Fill the window and keep a backlog so every ack can send again.
	batch := make([]Entry, 16)
	for i := range batch {
		batch[i].Data = payload
	}
	for range 2 * window {
		if _, _, err := l.Propose(batch...); err != nil {
			b.Fatal(err)
		}
	}
	persistAll(b, l, st)
	next := l.prs.Match(2)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next += 16
		for _, id := range []uint64{2, 3} {
			if err := l.Step(Message{Type: MsgAppResp, From: id, To: 1, Term: l.Term(), Index: next}); err != nil {
				b.Fatal(err)
			}
		}
		if l.LastIndex()-next < window*16 {
			b.StopTimer()
			for range window {
				if _, _, err := l.Propose(batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
		rd := l.Ready()
		l.Advance(rd)
		if n := len(rd.Entries); n > 0 {
			if err := st.Append(rd.Entries); err != nil {
				b.Fatal(err)
			}
			l.Persisted(rd.Entries[n-1].Index, rd.Entries[n-1].Term)
		}
	}
}

// BenchmarkReadyAdvance: a leader proposing a batch and running the whole
// Ready/Advance/Persisted cycle for it, with both followers acknowledging.
func BenchmarkReadyAdvance(b *testing.B) {
	for _, size := range []int{64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			l, st := benchLeader(b, 256)
			batch := make([]Entry, size)
			payload := make([]byte, 128)
			b.ReportAllocs()
			b.SetBytes(int64(size * len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = Entry{Data: payload}
				}
				if _, _, err := l.Propose(batch...); err != nil {
					b.Fatal(err)
				}
				rd := l.Ready()
				l.Advance(rd)
				if err := st.Append(rd.Entries); err != nil {
					b.Fatal(err)
				}
				last := rd.Entries[len(rd.Entries)-1]
				l.Persisted(last.Index, last.Term)
				for _, id := range []uint64{2, 3} {
					if err := l.Step(Message{Type: MsgAppResp, From: id, To: 1, Term: l.Term(), Index: last.Index}); err != nil {
						b.Fatal(err)
					}
				}
				rd = l.Ready()
				l.Advance(rd)
				if i%1024 == 1023 {
					// Keep memory bounded as a runtime's compaction would.
					b.StopTimer()
					if err := st.Compact(l.Committed(), l.Conf()); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
		})
	}
}

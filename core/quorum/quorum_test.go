package quorum

import (
	"fmt"
	"testing"
)

// lookup returns an IndexFunc over ids[i] → vals[i]; ids not listed hold 0.
func lookup(ids, vals []uint64) IndexFunc {
	return func(id uint64) uint64 {
		for i, x := range ids {
			if x == id {
				return vals[i]
			}
		}
		return 0
	}
}

func ids(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

func TestMajorityIndex(t *testing.T) {
	for _, tc := range []struct {
		vals []uint64 // vals[i] is held by voter i+1
		want uint64
	}{
		{[]uint64{5}, 5},
		{[]uint64{5, 3}, 3}, // two voters: both are the majority
		{[]uint64{3, 5}, 3},
		{[]uint64{1, 2, 3}, 2},
		{[]uint64{3, 2, 1}, 2},
		{[]uint64{7, 7, 0}, 7},
		{[]uint64{0, 0, 9}, 0},
		{[]uint64{4, 1, 4, 1}, 1}, // four voters need three
		{[]uint64{4, 4, 4, 1}, 4},
		{[]uint64{10, 20, 30, 40, 50}, 30},
		{[]uint64{50, 40, 30, 20, 10}, 30},
		{[]uint64{1, 1, 9, 9, 9}, 9},
		{[]uint64{9, 9, 1, 1, 1}, 1},
		{[]uint64{6, 5, 4, 3, 2, 1}, 3}, // six voters need four
		{[]uint64{7, 6, 5, 4, 3, 2, 1}, 4},
		{[]uint64{1, 1, 1, 7, 7, 7, 7}, 7},
		{[]uint64{^uint64(0), ^uint64(0), 0}, ^uint64(0)},
	} {
		v := ids(len(tc.vals))
		if got := MajorityIndex(v, lookup(v, tc.vals)); got != tc.want {
			t.Errorf("MajorityIndex(%v) = %d, want %d", tc.vals, got, tc.want)
		}
	}
	if got := MajorityIndex(nil, lookup(nil, nil)); got != ^uint64(0) {
		t.Errorf("no voters: %d, want max uint64 (neutral)", got)
	}
	// Above the stack size the result is the same, computed on the heap.
	big := ids(21)
	vals := make([]uint64, 21)
	for i := range vals {
		vals[i] = uint64(100 - i)
	}
	if got := MajorityIndex(big, lookup(big, vals)); got != 90 {
		t.Errorf("21 voters: %d, want 90 (the 11th highest)", got)
	}
	// A voter the function knows nothing of holds 0.
	if got := MajorityIndex([]uint64{1, 2, 3}, lookup([]uint64{1, 2}, []uint64{5, 5})); got != 5 {
		t.Errorf("unknown third voter: %d, want 5", got)
	}
}

func TestJointIndex(t *testing.T) {
	in := []uint64{1, 2, 3}
	out := []uint64{3, 4, 5}
	all := []uint64{1, 2, 3, 4, 5}
	for _, tc := range []struct {
		vals []uint64 // for voters 1..5
		out  []uint64
		want uint64
	}{
		{[]uint64{9, 9, 1, 1, 1}, nil, 9}, // not joint: incoming alone
		{[]uint64{9, 9, 1, 1, 1}, out, 1}, // outgoing holds back
		{[]uint64{9, 9, 5, 5, 1}, out, 5}, // 3 and 4 carry both halves at 5
		{[]uint64{1, 1, 8, 8, 8}, out, 1}, // incoming holds back
		{[]uint64{8, 8, 8, 8, 8}, out, 8}, // everyone
		{[]uint64{2, 3, 4, 5, 6}, out, 3}, // min(3, 5)
		{[]uint64{6, 5, 4, 3, 2}, out, 3}, // min(5, 3)
		{[]uint64{0, 0, 0, 0, 0}, out, 0}, // nothing held
		{[]uint64{5, 5, 5, 0, 0}, in, 5},  // identical halves
		{[]uint64{5, 0, 0, 5, 5}, in, 0},  // incoming majority lacks it
		{[]uint64{5, 5, 0, 5, 5}, out, 5}, // 3 missing in both: still majorities
		{[]uint64{5, 0, 0, 5, 0}, out, 0}, // neither half
		{[]uint64{7, 7, 7, 7, 7}, nil, 7}, // non-joint, unanimous
		{[]uint64{1, 2, 3, 4, 5}, nil, 2}, // non-joint: the median of 1..3
		{[]uint64{1, 2, 3, 4, 5}, out, 2}, // joint: min(2, 4)
		{[]uint64{5, 4, 3, 2, 1}, out, 2}, // joint: min(4, 2)
		{[]uint64{0, 9, 9, 0, 9}, out, 9}, // each half has two at 9
		{[]uint64{9, 0, 9, 0, 0}, out, 0}, // outgoing has only 3
		{[]uint64{3, 3, 3, 3, 3}, []uint64{4}, 3},
	} {
		got := JointIndex(in, tc.out, lookup(all, tc.vals))
		if got != tc.want {
			t.Errorf("JointIndex(%v, out=%v) = %d, want %d", tc.vals, tc.out, got, tc.want)
		}
	}
	if got := JointIndex(nil, nil, lookup(nil, nil)); got != ^uint64(0) {
		t.Errorf("empty configuration: %d", got)
	}
}

// votes builds a VoteFunc: 'y' granted, 'n' refused, '-' not voted, for
// voters 1, 2, ... in order.
func votes(s string) VoteFunc {
	return func(id uint64) (bool, bool) {
		if id == 0 || id > uint64(len(s)) {
			return false, false
		}
		switch s[id-1] {
		case 'y':
			return true, true
		case 'n':
			return false, true
		}
		return false, false
	}
}

func TestTally(t *testing.T) {
	for _, tc := range []struct {
		votes string
		want  Result
	}{
		{"y", Won},
		{"n", Lost},
		{"-", Pending},
		{"y-", Pending},
		{"yy", Won},
		{"yn", Lost},
		{"y--", Pending},
		{"yy-", Won},
		{"yn-", Pending},
		{"ynn", Lost},
		{"-nn", Lost},
		{"yny", Won},
		{"yy--", Pending}, // four voters need three
		{"yyy-", Won},
		{"yynn", Lost}, // two against out of four: three are no longer possible
		{"yyn-", Pending},
		{"yy---", Pending},
		{"yyy--", Won},
		{"nnn--", Lost},
		{"nn---", Pending},
		{"yyyy---", Won},
		{"yyynnn-", Pending},
		{"nnnn---", Lost},
	} {
		if got := Tally(ids(len(tc.votes)), votes(tc.votes)); got != tc.want {
			t.Errorf("Tally(%q) = %s, want %s", tc.votes, got, tc.want)
		}
	}
	if got := Tally(nil, votes("")); got != Won {
		t.Errorf("no voters: %s, want Won", got)
	}
}

func TestJointTally(t *testing.T) {
	in := []uint64{1, 2, 3}
	out := []uint64{3, 4, 5}
	for _, tc := range []struct {
		votes string // voters 1..5
		out   []uint64
		want  Result
	}{
		{"yy---", nil, Won},
		{"yy---", out, Pending}, // outgoing has no majority yet
		{"yyyy-", out, Won},     // 3 and 4 carry the outgoing half
		{"y-yy-", out, Won},
		{"yy-nn", out, Lost}, // outgoing lost
		{"nn-yy", out, Lost}, // incoming lost
		{"yyn-y", out, Pending},
		{"yyyyy", out, Won},
		{"nnnnn", out, Lost},
		{"-----", out, Pending},
		{"--y--", out, Pending},
		{"-yyy-", out, Won},
		{"y-n-n", out, Lost},
	} {
		if got := JointTally(in, tc.out, votes(tc.votes)); got != tc.want {
			t.Errorf("JointTally(%q, out=%v) = %s, want %s", tc.votes, tc.out, got, tc.want)
		}
	}
	for _, r := range []Result{Pending, Won, Lost, Result(9)} {
		if r.String() == "" {
			t.Errorf("result %d has no name", r)
		}
	}
}

func TestMapVotes(t *testing.T) {
	m := map[uint64]bool{1: true, 2: false}
	v := MapVotes(m)
	for _, tc := range []struct {
		id             uint64
		granted, voted bool
	}{{1, true, true}, {2, false, true}, {3, false, false}} {
		if g, ok := v(tc.id); g != tc.granted || ok != tc.voted {
			t.Errorf("vote of %d = %v, %v; want %v, %v", tc.id, g, ok, tc.granted, tc.voted)
		}
	}
	if got := JointTally([]uint64{1, 2, 3}, nil, MapVotes(map[uint64]bool{1: true, 3: true})); got != Won {
		t.Errorf("JointTally over a map: %s", got)
	}
}

// The leader runs these on every acknowledgement: they must not allocate
// for any cluster size Raft is deployed at.
func TestNoAllocations(t *testing.T) {
	for n := 1; n <= 7; n++ {
		voters := ids(n)
		match := make([]uint64, n+1)
		for i := range match {
			match[i] = uint64(i * 3 % 7)
		}
		index := func(id uint64) uint64 { return match[id] }
		votes := map[uint64]bool{1: true, 2: false}
		outgoing := voters[:max(1, n-1)]
		var sink uint64
		var res Result
		allocs := testing.AllocsPerRun(100, func() {
			sink += MajorityIndex(voters, index)
			sink += JointIndex(voters, outgoing, index)
			res = JointTally(voters, outgoing, MapVotes(votes))
			res = Tally(voters, func(id uint64) (bool, bool) { g, ok := votes[id]; return g, ok })
		})
		if allocs != 0 {
			t.Errorf("%d voters: %v allocations per call, want 0", n, allocs)
		}
		_, _ = sink, res
	}
}

// BenchmarkCommitIndex is the leader's commit computation for the cluster
// sizes Raft runs at, joint and not.
func BenchmarkCommitIndex(b *testing.B) {
	for _, n := range []int{3, 5, 7} {
		voters := ids(n)
		match := make([]uint64, n+1)
		for i := range match {
			match[i] = uint64(1000 + (i*7919)%101)
		}
		index := func(id uint64) uint64 { return match[id] }
		b.Run(fmt.Sprintf("voters=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var sink uint64
			for i := 0; i < b.N; i++ {
				match[1+i%n]++
				sink += JointIndex(voters, nil, index)
			}
			_ = sink
		})
		b.Run(fmt.Sprintf("voters=%d/joint", n), func(b *testing.B) {
			b.ReportAllocs()
			outgoing := voters[1:]
			var sink uint64
			for i := 0; i < b.N; i++ {
				match[1+i%n]++
				sink += JointIndex(voters, outgoing, index)
			}
			_ = sink
		})
	}
}

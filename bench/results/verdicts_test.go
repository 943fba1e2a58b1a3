package results

import (
	"strings"
	"testing"
)

// FailedVerdicts never lets a harness problem hide a real failure, and
// never calls a run with problems a success.
func TestFailedVerdicts(t *testing.T) {
	ok := func() *Summary {
		return &Summary{ReplicaCheck: "agree", ReplicasAgree: true, AckedOpsFound: true}
	}
	for _, tc := range []struct {
		name string
		edit func(s *Summary)
		want []string // substrings; nil means no verdict failed
	}{
		{"all hold", func(*Summary) {}, nil},
		{"a durability problem fails the run", func(s *Summary) {
			s.Problems = []string{"node 2 reopened with its log at 10, short of 20 it had reported durable"}
		}, []string{"1 problem(s)", "short of 20"}},
		{"disagreement", func(s *Summary) { s.ReplicaCheck, s.ReplicasAgree = "disagree", false }, []string{"replicas disagree"}},
		{"lost writes beside an incomplete comparison", func(s *Summary) {
			s.ReplicaCheck, s.ReplicasAgree, s.AckedOpsFound, s.LostWrites = "incomplete", false, false, 3
			s.Problems = []string{"group 1: did not quiesce"}
		}, []string{"replicas not compared", "3 acknowledged writes lost"}},
		{"incomplete alone", func(s *Summary) {
			s.ReplicaCheck, s.ReplicasAgree, s.AckedOpsFound = "incomplete", false, false
			s.Problems = []string{"did not quiesce"}
		}, []string{"replicas not compared"}},
	} {
		s := ok()
		tc.edit(s)
		got := FailedVerdicts(s)
		if tc.want == nil {
			if got != "" {
				t.Errorf("%s: FailedVerdicts = %q, want none", tc.name, got)
			}
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: FailedVerdicts = %q, want it to say %q", tc.name, got, w)
			}
		}
	}
}

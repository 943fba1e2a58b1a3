package bench

import (
	"slices"
	"testing"
	"time"
)

// TestVerifyGroup: with the keys spread over groups (key k in group k mod
// groups), a group's replica is checked for the acknowledged writes of its
// own keys only, and a write missing from it is reported.
func TestVerifyGroup(t *testing.T) {
	tr := newAckTracker(workloadKeys(6))
	now := time.Now()
	for k := range 6 {
		tr.done(k, uint64(k+1), now, now.Add(time.Millisecond), true)
	}
	none := func(string) ([]byte, bool) { return nil, false }
	if _, lost := tr.verifyGroup(1, 2, none); !slices.Equal(lost, []string{"k000001", "k000003", "k000005"}) {
		t.Fatalf("group 1 of 2, empty replica: lost %v, want the odd keys", lost)
	}
	if _, lost := tr.verifyGroup(0, 3, none); !slices.Equal(lost, []string{"k000000", "k000003"}) {
		t.Fatalf("group 0 of 3, empty replica: lost %v, want k000000 and k000003", lost)
	}
	if _, lost := tr.verify(none); len(lost) != 6 {
		t.Fatalf("one group, empty replica: lost %v, want all 6 keys", lost)
	}
}

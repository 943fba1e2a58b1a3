package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: Close and
// a failed Start must release every node's transport and goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

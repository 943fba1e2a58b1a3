package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// echoEnv, when set, makes the test binary an echo server on the address
// it holds instead of running the tests: the tests start it inside a
// node's namespace with `ip netns exec`, as the harness starts nodes.
const echoEnv = "RAFTBENCH_NETNS_TEST_ECHO"

// TestMain runs the echo helper when asked to, and otherwise the tests,
// failing the package if one leaves a goroutine behind (DialContext's
// namespace threads must end with their dial).
func TestMain(m *testing.M) {
	if addr := os.Getenv(echoEnv); addr != "" {
		os.Exit(echoMain(addr))
	}
	goleak.VerifyTestMain(m)
}

// echoMain listens on addr, says "ready" on stdout, and echoes every
// connection until it is killed.
func echoMain(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo helper:", err)
		return 1
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo helper:", err)
			return 1
		}
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					c.Close()
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"raftbench-123-0badcafe-hub", 123, true},
		{"raftbench-123-0badcafe-n1", 123, true},
		{"raftbench-7-ffffffff-n250", 7, true},
		{"raftbench-123-0badcafe-n251", 0, false},
		{"raftbench-123-0badcafe-n0", 0, false},
		{"raftbench-123-0badcafe-n01", 0, false},
		{"raftbench-123-0badcafe-x1", 0, false},
		{"raftbench-123-0badcaf-hub", 0, false},
		{"raftbench-123-0badcafg-hub", 0, false},
		{"raftbench-0123-0badcafe-hub", 0, false},
		{"raftbench-0-0badcafe-hub", 0, false},
		{"raftbench-x-0badcafe-hub", 0, false},
		{"raftbench-123-0badcafe-hub-extra", 0, false},
		{"rb-123-0badcafe-hub", 0, false},
		{"myns", 0, false},
	} {
		pid, ok := Owner(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("Owner(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestSubnetOf(t *testing.T) {
	bench := netip.MustParsePrefix("198.18.0.0/15")
	seen := map[netip.Prefix]bool{}
	for r := range uint32(512) {
		p := subnetOf(r + 512*7)
		if p.Bits() != 24 || !bench.Contains(p.Addr()) || p.Masked() != p {
			t.Fatalf("subnetOf(%d) = %v, not a /24 of %v", r, p, bench)
		}
		seen[p] = true
	}
	if len(seen) != 512 {
		t.Errorf("512 draws gave %d distinct /24s, want all 512", len(seen))
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Nodes: []uint64{0, 2, 2, 251}}
	err := c.Validate()
	for _, want := range []string{"node ID 0 outside 1..250", "node ID 2 listed twice", "node ID 251 outside", "not on PATH"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrNoIP) {
		t.Errorf("Validate() = %v, want ErrInvalidConfig and ErrNoIP", err)
	}
	if err := (&Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "no nodes") {
		t.Errorf("empty Config: %v, want \"no nodes\"", err)
	}
	ok := Config{Nodes: []uint64{1, 2, 3}, IP: "/sbin/ip"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid Config: %v", err)
	}
}

package procs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// ErrNoPorts: LoopbackNodes found too few free ports.
var ErrNoPorts = errors.New("procs: no free loopback ports")

// LoopbackNodes returns specs for nodes 1..n on 127.0.0.1, three ports
// each (Raft, client, admin) that were free a moment ago. The ports are
// drawn at random outside the kernel's ephemeral range where it leaves
// room (ip_local_port_range), so that while a node is down for a restart
// no outgoing connection of this machine can be given its port; another
// process binding the same port on purpose in between is the one race
// left, and shows as "address already in use" in the node's Exit.
func LoopbackNodes(n int) ([]NodeSpec, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d nodes", ErrInvalidConfig, n)
	}
	ports, err := freePorts("127.0.0.1", 3*n)
	if err != nil {
		return nil, err
	}
	specs := make([]NodeSpec, n)
	for i := range specs {
		at := func(j int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3*i+j])) }
		specs[i] = NodeSpec{ID: uint64(i + 1), RaftAddr: at(0), ClientAddr: at(1), AdminAddr: at(2)}
	}
	return specs, nil
}

// freePorts returns n distinct ports on host that could be bound just
// now.
func freePorts(host string, n int) ([]int, error) {
	lo, hi := portRange()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n && tries < 100*n; tries++ {
		p := 0 // the kernel's choice, when there is no room outside its range
		if hi > lo {
			p = lo + rand.IntN(hi-lo)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		p = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		return nil, fmt.Errorf("%w: found %d of %d", ErrNoPorts, len(ports), n)
	}
	return ports, nil
}

// portRange is where freePorts draws from: [lo, hi), outside the
// ephemeral range; lo == hi means there is no such room.
func portRange() (lo, hi int) {
	eLo, eHi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				eLo, eHi = a, z
			}
		}
	}
	switch {
	case eLo-10000 >= 1000:
		return 10000, eLo
	case 65535-eHi >= 1000:
		return eHi + 1, 65536
	}
	return 0, 0
}

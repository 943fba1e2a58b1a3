package peers

import (
	"fmt"
	"net"
	"time"
)

// FreeAddrs reserves n loopback addresses: it listens on n free ports and
// returns the listeners, whose addresses stay a node's for all its
// incarnations. The caller owns (and must close or hand on) them.
func FreeAddrs(n int) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("peers: listen on loopback: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// Listen listens on addr again for a restarted node, retrying for about a
// second while the OS releases the port from the previous incarnation.
func Listen(addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("peers: listen on %s: %w", addr, err)
}

package target

import (
	"fmt"

	"github.com/raftbench/raftbench/bench"
)

// registerQUIC registers raftbench-quic: raftbench's own nodes with
// --transport quic, under a system name of its own so that a comparison
// across systems (make compare-peers) has it as a column. Its Check sets
// the transport, so config.json says "transport": "quic", and refuses
// any other transport given by flag or config file.
func registerQUIC() error {
	rb, ok := bench.LookupSystem(bench.DefaultSystem)
	if !ok {
		return fmt.Errorf("%w: %s is not registered", bench.ErrSystem, bench.DefaultSystem)
	}
	return bench.RegisterSystem(bench.System{
		Name: RaftbenchQUIC,
		Doc:  "raftbench's own nodes in this process on the QUIC transport (--system raftbench --transport quic)",
		Check: func(cfg *bench.Config) error {
			if cfg.Groups > 1 {
				return fmt.Errorf("%w: --groups: %d: %s runs one Raft group per cluster", bench.ErrBadConfig, cfg.Groups, RaftbenchQUIC)
			}
			// Always QUIC: --transport tcp is --system raftbench. A
			// transport asked for by name is refused rather than
			// overridden, so a run never measures what was not asked for.
			if cfg.Given("transport") && cfg.Transport != "quic" {
				return fmt.Errorf("%w: --transport %s: %s always runs QUIC; use --system %s --transport %s", bench.ErrBadConfig, cfg.Transport, RaftbenchQUIC, bench.DefaultSystem, cfg.Transport)
			}
			cfg.Transport = "quic"
			return nil
		},
		// raftbench's own start, on cfg as Check left it: its target
		// reports cfg.System as its system.
		Start: rb.Start,
	})
}

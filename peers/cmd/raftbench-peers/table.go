package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raftbench/raftbench/bench"
	"github.com/raftbench/raftbench/bench/stats"
)

func commands() []*cobra.Command { return []*cobra.Command{newTableCmd()} }

// cellDir names a comparison cell's result directory: c<clients>-<system>.
var cellDir = regexp.MustCompile(`^c([0-9]+)-(.+)$`)

// cell is one (system, clients) cell of the table.
type cell struct {
	system, version string
	clients         int
	ops, p50, p99   stats.Cell
	problem         string
}

func newTableCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "table DIR",
		Short: "Print the markdown comparison table of a compare-peers directory",
		Long: `Table reads DIR's result directories named c<CLIENTS>-<SYSTEM> (as
make compare-peers writes them, each a --count directory) and prints one
markdown table: a row per system (with its version), a column per client
count, each cell the median throughput ± the half-width of its 95%
confidence interval (as compare shows it) and the median p50 and p99
latencies. A cell whose runs failed a verdict or had harness problems is
marked, and the problems are listed under the table.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%w: table takes one directory, got %d arguments", bench.ErrBadConfig, len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cells, err := readCells(args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), markdown(cells))
			return nil
		},
	}
}

func readCells(dir string) ([]cell, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", bench.ErrBadConfig, err)
	}
	metric := func(key string) stats.Metric {
		m, ok := stats.MetricByKey(key)
		if !ok {
			panic("stats has no metric " + key) // a programming error
		}
		return m
	}
	var cells []cell
	for _, e := range ents {
		m := cellDir.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		g, err := stats.Load(filepath.Join(dir, e.Name()), false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if len(g.Runs) == 0 {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		ss := g.Summaries()
		c := cell{system: cmp.Or(ss[0].System, m[2]), version: ss[0].SystemVersion, clients: n,
			ops: stats.Summarize(ss, metric("throughput_ops_per_sec")),
			p50: stats.Summarize(ss, metric("p50_us")), p99: stats.Summarize(ss, metric("p99_us"))}
		var probs []string
		for _, r := range g.Runs {
			if p := r.Problem(); p != "" {
				probs = append(probs, r.Name+": "+p)
			}
		}
		c.problem = strings.Join(probs, "; ")
		cells = append(cells, c)
	}
	if len(cells) == 0 {
		return nil, fmt.Errorf("%w: %s holds no c<CLIENTS>-<SYSTEM> result directories", bench.ErrBadConfig, dir)
	}
	return cells, nil
}

// systemOrder is the table's row order; other systems follow, by name.
var systemOrder = []string{"raftbench", "raftbench-quic", "etcd", "etcd-async", "hashicorp", "dragonboat"}

func rank(s string) int {
	if i := slices.Index(systemOrder, s); i >= 0 {
		return i
	}
	return len(systemOrder)
}

func markdown(cells []cell) string {
	var systems []string
	var clients []int
	by := map[string]map[int]cell{}
	version := map[string]string{}
	for _, c := range cells {
		if by[c.system] == nil {
			by[c.system] = map[int]cell{}
			systems = append(systems, c.system)
		}
		by[c.system][c.clients] = c
		version[c.system] = c.version
		if !slices.Contains(clients, c.clients) {
			clients = append(clients, c.clients)
		}
	}
	slices.SortFunc(systems, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b)) })
	slices.Sort(clients)
	var b strings.Builder
	b.WriteString("| system |")
	for _, n := range clients {
		fmt.Fprintf(&b, " %d client%s: ops/s, p50 / p99 |", n, plural(n))
	}
	b.WriteString("\n|---|")
	for range clients {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	var notes []string
	for _, s := range systems {
		name := s
		if v := version[s]; v != "" && v != "unknown" {
			name += " (" + shortVersion(v) + ")"
		}
		fmt.Fprintf(&b, "| %s |", name)
		for _, n := range clients {
			c, ok := by[s][n]
			if !ok {
				b.WriteString(" — |")
				continue
			}
			mark := ""
			if c.problem != "" {
				notes = append(notes, fmt.Sprintf("%s at %d clients: %s", s, n, c.problem))
				mark = fmt.Sprintf(" [%d]", len(notes))
			}
			fmt.Fprintf(&b, " %s, %s / %s%s |", c.ops, ms(c.p50.Center), ms(c.p99.Center), mark)
		}
		b.WriteString("\n")
	}
	if n := cells[0].ops.N; n > 0 {
		fmt.Fprintf(&b, "\nMedians of %d runs per cell (± the 95%% confidence interval's half-width in percent, ∞ when the sample is too small for one).\n", n)
	}
	for i, n := range notes {
		fmt.Fprintf(&b, "\n[%d] %s", i+1, n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// shortVersion shortens a commit (raftbench's version) to 12 digits,
// keeping a "-dirty" suffix; module versions are left whole.
func shortVersion(v string) string {
	c, dirty := strings.CutSuffix(v, "-dirty")
	if len(c) == 40 && strings.Trim(c, "0123456789abcdef") == "" {
		v = c[:12]
		if dirty {
			v += "-dirty"
		}
	}
	return v
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// ms formats microseconds as milliseconds.
func ms(us float64) string { return strconv.FormatFloat(us/1000, 'f', 2, 64) + " ms" }

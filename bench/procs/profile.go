package procs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/raftbench/raftbench/admin"
)

// Profile asks for one pprof profile of every node.
type Profile struct {
	// Name is the pprof name: "profile" (CPU), "heap", "allocs",
	// "mutex", "block", "goroutine", "trace", ...
	Name string
	// Seconds is the window of a CPU profile or trace (and makes the
	// delta profiles heap, allocs, mutex and block cover only that
	// window); 0 for an instant one.
	Seconds int
	// Path is the file of each node's profile, IDPlaceholder replaced by
	// its ID, e.g. <result dir>/node{id}-cpu.pprof.
	Path string
}

// Profile fetches p from every running, unpaused node at once (so CPU
// profiles cover the same window on every node) and writes one file per
// node, each whole or not at all. It returns the files written, by node,
// and an error naming every node it could not profile.
func (s *Supervisor) Profile(ctx context.Context, p Profile) (map[uint64]string, error) {
	switch {
	case p.Name == "" || strings.ContainsAny(p.Name, "/?&"):
		return nil, fmt.Errorf("%w: profile name %q", ErrInvalidConfig, p.Name)
	case p.Seconds < 0:
		return nil, fmt.Errorf("%w: profile window %ds", ErrInvalidConfig, p.Seconds)
	case len(s.ids) > 1 && !strings.Contains(p.Path, IDPlaceholder):
		return nil, fmt.Errorf("%w: profile path %q has no %s", ErrInvalidConfig, p.Path, IDPlaceholder)
	}
	var ids []uint64
	for _, id := range s.ids {
		if s.Running(id) && !s.Paused(id) {
			ids = append(ids, id)
		}
	}
	// A client whose timeout outlasts the window.
	hc := &http.Client{Transport: s.transport, Timeout: time.Duration(p.Seconds)*time.Second + 30*time.Second}
	paths := make([]string, len(ids))
	errs := s.each(len(ids), func(i int) error {
		id := ids[i]
		c, err := admin.NewClient(s.nodes[id].spec.AdminAddr, s.token, hc)
		if err != nil {
			return err
		}
		path := strings.ReplaceAll(p.Path, IDPlaceholder, strconv.FormatUint(id, 10))
		if err := writeProfile(ctx, c, p, path); err != nil {
			return fmt.Errorf("procs: %s profile of node %d: %w", p.Name, id, err)
		}
		paths[i] = path
		return nil
	})
	out := map[uint64]string{}
	for i, path := range paths {
		if path != "" {
			out[ids[i]] = path
		}
	}
	return out, errors.Join(errs...)
}

// writeProfile writes the profile to a temporary file and renames it into
// place once complete.
func writeProfile(ctx context.Context, c *admin.Client, p Profile, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // gone after the rename; cleans up otherwise
	if err := c.Profile(ctx, p.Name, p.Seconds, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

package bench

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	rpprof "runtime/pprof"
	"runtime/trace"
)

// profiles are the profiles a run asked for. The CPU profile and the trace
// cover the warm-up and the measured run and stop before the checks; the
// heap, mutex and block profiles are written at the end.
type profiles struct {
	cfg              *Config
	dir              string
	cpu, tr          *os.File
	stopped          bool
	oldMutex         int
	blockOn, mutexOn bool
}

func startProfiles(cfg *Config, dir string) (*profiles, error) {
	p := &profiles{cfg: cfg, dir: dir}
	if cfg.CPUProfile != "" {
		f, err := os.Create(filepath.Join(dir, cfg.CPUProfile))
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		p.cpu = f
	}
	if cfg.Trace != "" {
		f, err := os.Create(filepath.Join(dir, cfg.Trace))
		if err != nil {
			p.stopEarly()
			return nil, fmt.Errorf("trace: %w", err)
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			p.stopEarly()
			return nil, fmt.Errorf("trace: %w", err)
		}
		p.tr = f
	}
	if cfg.MutexProfile != "" {
		p.oldMutex = runtime.SetMutexProfileFraction(5)
		p.mutexOn = true
	}
	if cfg.BlockProfile != "" {
		runtime.SetBlockProfileRate(10_000) // one sample per 10 µs blocked
		p.blockOn = true
	}
	return p, nil
}

// stopEarly stops the CPU profile and the trace (idempotent).
func (p *profiles) stopEarly() {
	if p.stopped {
		return
	}
	p.stopped = true
	if p.cpu != nil {
		rpprof.StopCPUProfile()
		p.cpu.Close()
	}
	if p.tr != nil {
		trace.Stop()
		p.tr.Close()
	}
}

// finish writes the heap, mutex and block profiles.
func (p *profiles) finish() error {
	p.stopEarly()
	write := func(name, file string) error {
		f, err := os.Create(filepath.Join(p.dir, file))
		if err != nil {
			return fmt.Errorf("%s profile: %w", name, err)
		}
		defer f.Close()
		if err := rpprof.Lookup(name).WriteTo(f, 0); err != nil {
			return fmt.Errorf("%s profile: %w", name, err)
		}
		return nil
	}
	if p.cfg.MemProfile != "" {
		runtime.GC()
		if err := write("heap", p.cfg.MemProfile); err != nil {
			return err
		}
	}
	if p.mutexOn {
		err := write("mutex", p.cfg.MutexProfile)
		runtime.SetMutexProfileFraction(p.oldMutex)
		if err != nil {
			return err
		}
	}
	if p.blockOn {
		err := write("block", p.cfg.BlockProfile)
		runtime.SetBlockProfileRate(0)
		if err != nil {
			return err
		}
	}
	return nil
}

func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// wantsProfiles reports whether the run asked for any profile.
func (c *Config) wantsProfiles() bool {
	return c.CPUProfile != "" || c.MemProfile != "" || c.MutexProfile != "" || c.BlockProfile != "" || c.Trace != ""
}

package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// IsTerminal reports whether f is a character device (a terminal), where a
// live progress bar makes sense; in CI logs and pipes it is not.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressState is what the live line shows.
type progressState struct {
	Elapsed, Total time.Duration
	OpsPerSec      float64
	P99            time.Duration
	Leader         uint64
	Faults         int
}

func (s progressState) String() string {
	return fmt.Sprintf("%5.0f ops/s  p99 %-9v leader %d  faults %d", s.OpsPerSec, s.P99.Round(10*time.Microsecond), s.Leader, s.Faults)
}

// progress shows a run's progress: a live bar on a terminal, otherwise a
// plain line per second (nothing with a nil writer).
type progress struct {
	w     io.Writer
	label string
	p     *mpb.Progress
	bar   *mpb.Bar
	mu    sync.Mutex
	last  progressState
}

func newProgress(w io.Writer, live bool, label string, total time.Duration) *progress {
	pr := &progress{w: w, label: label}
	if w == nil || !live {
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(24), mpb.WithRefreshRate(200*time.Millisecond))
	pr.bar = pr.p.New(int64(total/time.Millisecond), mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(label+" "), decor.Any(func(decor.Statistics) string {
			pr.mu.Lock()
			defer pr.mu.Unlock()
			return elapsedText(pr.last.Elapsed, total)
		})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			pr.mu.Lock()
			defer pr.mu.Unlock()
			return pr.last.String()
		})),
	)
	return pr
}

// update shows s (called once per second of the measured run).
func (pr *progress) update(s progressState) {
	if pr.w == nil {
		return
	}
	pr.mu.Lock()
	pr.last = s
	pr.mu.Unlock()
	if pr.bar != nil {
		pr.bar.SetCurrent(int64(s.Elapsed / time.Millisecond))
		return
	}
	fmt.Fprintf(pr.w, "%s %s %s\n", pr.label, elapsedText(s.Elapsed, s.Total), s)
}

// elapsedText is "3s/10s", or "0.3s/0.5s" for runs shorter than 10 s.
func elapsedText(elapsed, total time.Duration) string {
	if total < 10*time.Second {
		return fmt.Sprintf("%4.1fs/%.1fs", elapsed.Seconds(), total.Seconds())
	}
	return fmt.Sprintf("%4.0fs/%.0fs", elapsed.Seconds(), total.Seconds())
}

// done removes the bar.
func (pr *progress) done() {
	if pr.bar != nil {
		pr.bar.SetTotal(-1, true)
		pr.p.Wait()
	}
}

// logf prints a plain status line (above the bar on a terminal).
func (pr *progress) logf(format string, args ...any) {
	if pr.w == nil {
		return
	}
	fmt.Fprintf(pr.w, format+"\n", args...)
}

package results

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: latencies are recorded in microseconds from 1 µs to
// 60 s with 3 significant digits.
const (
	LowestUS  = 1
	HighestUS = 60_000_000
	SigFigs   = 3
	// HgrmScale converts recorded microseconds to the milliseconds that
	// latency.hgrm shows (the unit HdrHistogram's plotter labels).
	HgrmScale = 1000.0
)

// NewHistogram returns an empty latency histogram in microseconds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(LowestUS, HighestUS, SigFigs)
}

// RecordUS records d in h, clamped to the histogram's range (a latency
// beyond 60 s is recorded as 60 s rather than lost).
func RecordUS(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(us, LowestUS)
	us = min(us, HighestUS)
	_ = h.RecordValue(us) // cannot fail within the range
}

// LatencyOf summarises h.
func LatencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50: float64(h.ValueAtQuantile(50)), P90: float64(h.ValueAtQuantile(90)),
		P99: float64(h.ValueAtQuantile(99)), P999: float64(h.ValueAtQuantile(99.9)),
		Max: float64(h.Max()), Mean: h.Mean(),
	}
}

// WriteHgrm writes h's percentile distribution in HdrHistogram's text
// format (values in milliseconds, 5 ticks per half distance), the format
// HdrHistogram's plotter reads.
func WriteHgrm(w io.Writer, h *hdrhistogram.Histogram) error {
	_, err := h.PercentilesPrint(w, 5, HgrmScale)
	return err
}

// HgrmLine is one row of a .hgrm file.
type HgrmLine struct {
	ValueMS    float64
	Percentile float64 // 0..1
	TotalCount int64
}

// ReadHgrm parses a .hgrm file: its rows and, from the footer, the mean,
// max (milliseconds) and total count.
func ReadHgrm(r io.Reader) (lines []HgrmLine, meanMS, maxMS float64, total int64, err error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		t := strings.TrimSpace(s.Text())
		switch {
		case t == "" || strings.HasPrefix(t, "Value"):
		case strings.HasPrefix(t, "#[Mean"):
			_, err = fmt.Sscanf(strings.ReplaceAll(t, " ", ""), "#[Mean=%f,StdDeviation=", &meanMS)
			if err != nil {
				return nil, 0, 0, 0, fmt.Errorf("hgrm footer %q: %w", t, err)
			}
		case strings.HasPrefix(t, "#[Max"):
			_, err = fmt.Sscanf(strings.ReplaceAll(t, " ", ""), "#[Max=%f,Totalcount=%d]", &maxMS, &total)
			if err != nil {
				return nil, 0, 0, 0, fmt.Errorf("hgrm footer %q: %w", t, err)
			}
		case strings.HasPrefix(t, "#"):
		default:
			f := strings.Fields(t)
			if len(f) != 4 {
				return nil, 0, 0, 0, fmt.Errorf("hgrm row %q: want 4 fields", t)
			}
			var l HgrmLine
			if l.ValueMS, err = strconv.ParseFloat(f[0], 64); err == nil {
				if l.Percentile, err = strconv.ParseFloat(f[1], 64); err == nil {
					l.TotalCount, err = strconv.ParseInt(f[2], 10, 64)
				}
			}
			if err != nil {
				return nil, 0, 0, 0, fmt.Errorf("hgrm row %q: %w", t, err)
			}
			lines = append(lines, l)
		}
	}
	return lines, meanMS, maxMS, total, s.Err()
}

// WriteHlog writes interval histograms in HdrHistogram's log format (V1.3,
// compressed base64 histograms, one line per interval), with start as the
// log's start time. Each interval must carry its start and end times.
func WriteHlog(w io.Writer, start time.Time, intervals []*hdrhistogram.Histogram) error {
	lw := hdrhistogram.NewHistogramLogWriter(w)
	if err := lw.OutputLogFormatVersion(); err != nil {
		return err
	}
	if err := lw.OutputComment("raftbench latency, microseconds, one interval per second"); err != nil {
		return err
	}
	if err := lw.OutputStartTime(start.UnixMilli()); err != nil {
		return err
	}
	lw.SetBaseTime(start.UnixMilli())
	if err := lw.OutputBaseTime(start.UnixMilli()); err != nil {
		return err
	}
	if err := lw.OutputLegend(); err != nil {
		return err
	}
	for _, h := range intervals {
		if err := lw.OutputIntervalHistogram(h); err != nil {
			return err
		}
	}
	return nil
}

// ReadHlog reads every interval histogram of a log with HdrHistogram's own
// reader.
func ReadHlog(r io.Reader) ([]*hdrhistogram.Histogram, error) {
	lr := hdrhistogram.NewHistogramLogReader(r)
	var hs []*hdrhistogram.Histogram
	for {
		h, err := lr.NextIntervalHistogram()
		if err != nil {
			return hs, fmt.Errorf("read hlog interval %d: %w", len(hs), err)
		}
		if h == nil {
			return hs, nil
		}
		hs = append(hs, h)
	}
}

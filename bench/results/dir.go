package results

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Run is everything in a result directory that the tools read back.
type Run struct {
	Dir string
	// Name is the run's name for people: its directory's base name (a run
	// being written sets the name it will have once moved into place).
	Name string
	// Config is config.json as a generic map (keys are its JSON names).
	Config   map[string]any
	Summary  Summary
	Timeline []TimelineRow
	// Intervals are latency.hlog's per-second histograms; Total their
	// merge.
	Intervals []*hdrhistogram.Histogram
	Total     *hdrhistogram.Histogram
}

// WriteData writes the data files of a result directory: config.json,
// summary.json, latency.hgrm, latency.hlog and timeline.csv. config is
// marshalled as is. dir must exist.
func WriteData(dir string, config any, s *Summary, total *hdrhistogram.Histogram, intervals []*hdrhistogram.Histogram, timeline []TimelineRow) error {
	if err := WriteJSON(filepath.Join(dir, ConfigFile), config); err != nil {
		return err
	}
	if err := WriteJSON(filepath.Join(dir, SummaryFile), s); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := WriteHgrm(&b, total); err != nil {
		return fmt.Errorf("encode %s: %w", HgrmFile, err)
	}
	if err := writeFile(dir, HgrmFile, b.Bytes()); err != nil {
		return err
	}
	b.Reset()
	if err := WriteHlog(&b, s.Started, intervals); err != nil {
		return fmt.Errorf("encode %s: %w", HlogFile, err)
	}
	if err := writeFile(dir, HlogFile, b.Bytes()); err != nil {
		return err
	}
	b.Reset()
	if err := WriteTimeline(&b, timeline); err != nil {
		return err
	}
	return writeFile(dir, TimelineFile, b.Bytes())
}

// WriteStages writes one .hgrm per distribution under dir/stages (see
// StagesDir), in latency.hgrm's format. Nothing is written for none.
func WriteStages(dir string, hists map[string]*hdrhistogram.Histogram) error {
	if len(hists) == 0 {
		return nil
	}
	sd := filepath.Join(dir, StagesDir)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return fmt.Errorf("stages directory: %w", err)
	}
	for name, h := range hists {
		var b bytes.Buffer
		if err := WriteHgrm(&b, h); err != nil {
			return fmt.Errorf("encode %s/%s.hgrm: %w", StagesDir, name, err)
		}
		if err := writeFile(sd, name+".hgrm", b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes v to path as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFile(filepath.Dir(path), filepath.Base(path), append(b, '\n'))
}

func writeFile(dir, name string, b []byte) error {
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// TimelineHeader is timeline.csv's header row.
var TimelineHeader = []string{"second", "ops", "errors", "incomplete", "p50_us", "p99_us", "max_us", "leader", "term", "faults"}

// WriteTimeline writes rows as CSV with TimelineHeader.
func WriteTimeline(b *bytes.Buffer, rows []TimelineRow) error {
	w := csv.NewWriter(b)
	_ = w.Write(TimelineHeader)
	for _, r := range rows {
		_ = w.Write([]string{
			strconv.Itoa(r.Second), strconv.FormatInt(r.Ops, 10), strconv.FormatInt(r.Errors, 10), strconv.FormatInt(r.Incomplete, 10),
			strconv.FormatFloat(r.P50US, 'f', 0, 64), strconv.FormatFloat(r.P99US, 'f', 0, 64), strconv.FormatFloat(r.MaxUS, 'f', 0, 64),
			strconv.FormatUint(r.Leader, 10), strconv.FormatUint(r.Term, 10), r.Faults,
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("encode %s: %w", TimelineFile, err)
	}
	return nil
}

// ReadTimeline parses timeline.csv by its header, so files written before
// a column was added still read (the missing columns read as 0).
func ReadTimeline(b []byte) ([]TimelineRow, error) {
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", TimelineFile, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("parse %s: empty", TimelineFile)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, need := range []string{"second", "ops", "errors", "p50_us", "p99_us", "leader", "term", "faults"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("parse %s: no %q column in the header %v", TimelineFile, need, recs[0])
		}
	}
	var rows []TimelineRow
	for i, r := range recs[1:] {
		if len(r) != len(recs[0]) {
			return nil, fmt.Errorf("parse %s row %d: %d fields, want %d", TimelineFile, i+2, len(r), len(recs[0]))
		}
		field := func(name string) string {
			if j, ok := col[name]; ok {
				return r[j]
			}
			return "0"
		}
		var row TimelineRow
		var errs []error
		var e error
		row.Second, e = strconv.Atoi(field("second"))
		errs = append(errs, e)
		for _, f := range []struct {
			name string
			p    *int64
		}{{"ops", &row.Ops}, {"errors", &row.Errors}, {"incomplete", &row.Incomplete}} {
			*f.p, e = strconv.ParseInt(field(f.name), 10, 64)
			errs = append(errs, e)
		}
		for _, f := range []struct {
			name string
			p    *float64
		}{{"p50_us", &row.P50US}, {"p99_us", &row.P99US}, {"max_us", &row.MaxUS}} {
			*f.p, e = strconv.ParseFloat(field(f.name), 64)
			errs = append(errs, e)
		}
		row.Leader, e = strconv.ParseUint(field("leader"), 10, 64)
		errs = append(errs, e)
		row.Term, e = strconv.ParseUint(field("term"), 10, 64)
		errs = append(errs, e)
		row.Faults = field("faults")
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("parse %s row %d: %w", TimelineFile, i+2, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// ReadSummary reads dir's summary.json.
func ReadSummary(dir string) (Summary, error) {
	var s Summary
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return s, fmt.Errorf("not a result directory: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse %s: %w", filepath.Join(dir, SummaryFile), err)
	}
	return s, nil
}

// Read reads a result directory back.
func Read(dir string) (*Run, error) {
	r := &Run{Dir: dir, Name: filepath.Base(filepath.Clean(dir))}
	var err error
	if r.Summary, err = ReadSummary(dir); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(b, &r.Config); err != nil {
		return nil, fmt.Errorf("parse %s: %w", ConfigFile, err)
	}
	if b, err = os.ReadFile(filepath.Join(dir, TimelineFile)); err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	if r.Timeline, err = ReadTimeline(b); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, HlogFile))
	if err != nil {
		return nil, fmt.Errorf("read hlog: %w", err)
	}
	defer f.Close()
	if r.Intervals, err = ReadHlog(f); err != nil {
		return nil, err
	}
	r.Total = NewHistogram()
	for _, h := range r.Intervals {
		r.Total.Merge(h)
	}
	return r, nil
}

// IntervalHistogram returns an empty histogram tagged with the interval
// [start, end).
func IntervalHistogram(start, end time.Time) *hdrhistogram.Histogram {
	h := NewHistogram()
	h.SetStartTimeMs(start.UnixMilli())
	h.SetEndTimeMs(end.UnixMilli())
	return h
}

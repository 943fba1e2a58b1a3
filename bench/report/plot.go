package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one named line or set of points.
type Series struct {
	Name string
	X, Y []float64
	// Labels, when set, label each point (say, the setting it came from).
	Labels []string
}

// Marker is a vertical line at X with a label (a fault, say).
type Marker struct {
	X     float64
	Label string
}

// Plot describes one chart.
type Plot struct {
	Title, XLabel, YLabel string
	Series                []Series
	Markers               []Marker
	// Points draws points instead of lines.
	Points bool
	// LogX and LogY use a log scale on that axis (non-positive values are
	// left out).
	LogX, LogY bool
	// FromZero starts the X axis at 0; XMax, when set, ends it there.
	FromZero bool
	XMax     float64
	// XTicks replaces the X axis ticks.
	XTicks plot.Ticker
}

// Plot size.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 4 * vg.Inch
	// maxMarkerText bounds a marker's or point's description in the
	// legend; maxLegendPoints bounds how many numbered points it lists.
	maxMarkerText   = 44
	maxLegendPoints = 20
	maxLegendWidth  = 4 * vg.Inch
)

// Save renders pl to a PNG (or any format gonum/plot knows by extension).
// The legend — the series, and the markers, numbered — is drawn in a band
// right of the data, so it never covers any; markers are labelled with
// their number only, so no label runs off the canvas.
func Save(pl Plot, path string) error {
	p := plot.New()
	p.Title.Text = pl.Title
	p.X.Label.Text = pl.XLabel
	p.Y.Label.Text = pl.YLabel
	p.Add(plotter.NewGrid())
	if pl.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if pl.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if !pl.LogX {
		p.X.Tick.Marker = plainTicks{}
	}
	if !pl.LogY {
		p.Y.Tick.Marker = plainTicks{}
	}
	if pl.XTicks != nil {
		p.X.Tick.Marker = pl.XTicks
	}
	leg := plot.NewLegend()
	leg.Top, leg.Left = true, true
	ymin, ymax := math.Inf(1), math.Inf(-1)
	shown, numbered := 0, 0
	for i, s := range pl.Series {
		xys := make(plotter.XYs, 0, len(s.X))
		var labels []string
		for j := range s.X {
			x, y := s.X[j], s.Y[j]
			if math.IsNaN(y) || math.IsInf(y, 0) || (pl.LogY && y <= 0) || (pl.LogX && x <= 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: y})
			if len(s.Labels) == len(s.X) {
				labels = append(labels, s.Labels[j])
			}
			ymin, ymax = min(ymin, y), max(ymax, y)
		}
		if len(xys) == 0 {
			continue
		}
		shown++
		if pl.Points {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pl.Title, err)
			}
			sc.Color = plotutil.Color(i)
			sc.Shape = draw.CircleGlyph{}
			p.Add(sc)
			if len(labels) != len(xys) {
				leg.Add(s.Name, sc)
				continue
			}
			// Points are labelled by number, their names listed in the
			// legend: names written beside the points would overlap each
			// other and run off the canvas.
			nums := make([]string, len(labels))
			for j := range labels {
				numbered++
				nums[j] = fmt.Sprint(numbered)
				if numbered <= maxLegendPoints {
					leg.Add(nums[j]+": "+shorten(labels[j], maxMarkerText), sc)
				} else if numbered == maxLegendPoints+1 {
					leg.Add("… (see the table)")
				}
			}
			if lbls, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: nums}); err == nil {
				lbls.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(2)}
				p.Add(lbls)
			}
		} else {
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pl.Title, err)
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
			pts.Color = plotutil.Color(i)
			pts.Shape = draw.CircleGlyph{}
			pts.Radius = vg.Points(2)
			p.Add(l, pts)
			leg.Add(s.Name, l, pts)
		}
	}
	if shown == 0 {
		ymin, ymax = 0, 1
		if pl.LogY {
			ymin = 0.1
		}
	}
	if pl.LogY {
		// Whole decades around the data, so the ticks are labelled.
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(ymin)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(ymax)+1e-9))
	} else {
		p.Y.Min = 0
		p.Y.Max = max(ymax*1.05, 1e-9)
	}
	if pl.FromZero {
		p.X.Min = 0
	}
	if pl.XMax > 0 {
		p.X.Max = pl.XMax
	}
	for i, m := range pl.Markers {
		l, err := plotter.NewLine(plotter.XYs{{X: m.X, Y: p.Y.Min}, {X: m.X, Y: p.Y.Max}})
		if err != nil {
			continue
		}
		l.Color = plotutil.Color(3)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		num := fmt.Sprint(i + 1)
		if lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: m.X, Y: p.Y.Max}}, Labels: []string{num}}); err == nil {
			lbl.Offset = vg.Point{X: vg.Points(2), Y: -vg.Points(10)}
			p.Add(lbl)
		}
		leg.Add(num+": "+shorten(m.Label, maxMarkerText), l)
	}
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	// The legend goes in a band right of the plot, which widens the
	// canvas rather than squeezing the data.
	var band vg.Length
	if len(pl.Series) > 1 || len(pl.Markers) > 0 || numbered > 0 {
		probe, err := draw.NewFormattedCanvas(plotWidth, plotHeight, format)
		if err != nil {
			return fmt.Errorf("save plot %s: %w", path, err)
		}
		band = min(leg.Rectangle(draw.New(probe)).Size().X+vg.Points(24), maxLegendWidth)
	}
	cv, err := draw.NewFormattedCanvas(plotWidth+band, plotHeight, format)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	dc := draw.New(cv)
	if band > 0 {
		p.Draw(draw.Crop(dc, 0, -band, 0, 0))
		leg.Draw(draw.Crop(dc, plotWidth+vg.Points(8), 0, 0, -vg.Points(24)))
	} else {
		p.Draw(dc)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	if _, err := cv.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// plainTicks are gonum's default ticks labelled without padding zeros
// (7500, 2.5, not 7500.00, 2.50).
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	labelled := 0
	for _, t := range ts {
		if t.Label != "" {
			labelled++
		}
	}
	for i := range ts {
		// Two labels on an axis (0 and 25000) say little: label the
		// minor ticks too then.
		if ts[i].Label != "" || labelled < 3 {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// percentileTicks labels a log10(1/(1-q)) axis with percentiles.
type percentileTicks struct{}

func (percentileTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for _, t := range []struct {
		x float64
		l string
	}{{0, "0%"}, {math.Log10(2), "50%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}, {6, "99.9999%"}} {
		if t.x >= lo-1e-9 && t.x <= hi+1e-9 {
			ts = append(ts, plot.Tick{Value: t.x, Label: t.l})
		}
	}
	return ts
}

// StackedBars is a chart of horizontal bars, each split into parts, drawn
// as shares of the bar's own total so that the split of every bar reads
// the same however long its total is (the totals go in the bar labels).
type StackedBars struct {
	Title, XLabel string
	// PartNames name the parts, in stacking order (the legend).
	PartNames []string
	// Bars, drawn top to bottom; each has one value per part.
	Bars []StackedBar
}

// StackedBar is one bar: a label and its parts' values (any unit, all the
// same).
type StackedBar struct {
	Label string
	Parts []float64
}

// SaveStackedBars renders sb to a PNG (or any format gonum/plot knows by
// extension), with the legend in a band right of the bars.
func SaveStackedBars(sb StackedBars, path string) error {
	p := plot.New()
	p.Title.Text = sb.Title
	p.X.Label.Text = sb.XLabel
	p.X.Min, p.X.Max = 0, 100
	p.X.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	n := len(sb.Bars)
	labels := make([]string, n)
	// Bars are listed top to bottom; the Y axis counts upward.
	for i, b := range sb.Bars {
		labels[n-1-i] = b.Label
	}
	p.NominalY(labels...)
	leg := plot.NewLegend()
	leg.Top, leg.Left = true, true
	leg.Padding = vg.Points(3)
	var below *plotter.BarChart
	for j, name := range sb.PartNames {
		vs := make(plotter.Values, n)
		for i, b := range sb.Bars {
			var total float64
			for _, v := range b.Parts {
				total += max(v, 0)
			}
			if total > 0 && j < len(b.Parts) {
				vs[n-1-i] = 100 * max(b.Parts[j], 0) / total
			}
		}
		bc, err := plotter.NewBarChart(vs, vg.Points(22))
		if err != nil {
			return fmt.Errorf("plot %s: %w", sb.Title, err)
		}
		bc.Horizontal = true
		bc.Color = plotutil.Color(j)
		bc.LineStyle.Width = 0
		if below != nil {
			bc.StackOn(below)
		}
		below = bc
		p.Add(bc)
		leg.Add(name, bc)
	}
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	height := max(plotHeight/2, vg.Points(60+34*float64(n)))
	probe, err := draw.NewFormattedCanvas(plotWidth, height, format)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	band := min(leg.Rectangle(draw.New(probe)).Size().X+vg.Points(24), maxLegendWidth)
	cv, err := draw.NewFormattedCanvas(plotWidth+band, height, format)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	dc := draw.New(cv)
	p.Draw(draw.Crop(dc, 0, -band, 0, 0))
	leg.Draw(draw.Crop(dc, plotWidth+vg.Points(8), 0, 0, -vg.Points(24)))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	if _, err := cv.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}

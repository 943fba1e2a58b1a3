package report

import (
	"fmt"
	"math"

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
	// LogX uses a log scale on the X axis.
	LogX bool
	// FromZero starts the X axis at 0.
	FromZero bool
	// XTicks replaces the X axis ticks.
	XTicks plot.Ticker
}

// Save renders pl to a PNG (or any format gonum/plot knows by extension).
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
	if pl.XTicks != nil {
		p.X.Tick.Marker = pl.XTicks
	}
	ymax := 0.0
	for i, s := range pl.Series {
		xys := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if math.IsNaN(s.Y[j]) || math.IsInf(s.Y[j], 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: s.X[j], Y: s.Y[j]})
			ymax = max(ymax, s.Y[j])
		}
		if len(xys) == 0 {
			continue
		}
		if pl.Points {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pl.Title, err)
			}
			sc.Color = plotutil.Color(i)
			sc.Shape = draw.CircleGlyph{}
			p.Add(sc)
			p.Legend.Add(s.Name, sc)
			if len(s.Labels) == len(s.X) {
				lbls, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: s.Labels})
				if err == nil {
					p.Add(lbls)
				}
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
			p.Legend.Add(s.Name, l, pts)
		}
	}
	if ymax == 0 {
		ymax = 1
	}
	p.Y.Min = 0
	if pl.FromZero {
		p.X.Min = 0
	}
	for _, m := range pl.Markers {
		l, err := plotter.NewLine(plotter.XYs{{X: m.X, Y: 0}, {X: m.X, Y: ymax * 1.05}})
		if err != nil {
			continue
		}
		l.Color = plotutil.Color(3)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		if lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: m.X, Y: ymax * 1.05}}, Labels: []string{m.Label}}); err == nil {
			p.Add(lbl)
		}
	}
	if len(pl.Series) > 1 {
		p.Legend.Top = true
	}
	if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
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

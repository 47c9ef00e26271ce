// Package chart draws what a canary comparison found, for people: the dashboard serves
// the picture and Slack uploads it into the run's thread, both from this one drawing.
package chart

import (
	"bytes"
	"errors"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// maxChartPercent caps a bar so one runaway metric leaves the others readable.
const maxChartPercent = 400

// PNG draws the verdict as one bar per metric: the canary as a percentage of the
// baseline (the dashed line at 100%), with the confidence interval of the difference as an
// error bar. Metrics of different units share one axis that way.
func PNG(v judge.Verdict, title string) ([]byte, error) {
	var names []string
	var can []float64
	var outcomes []judge.Outcome
	var ci canaryInterval
	for _, m := range v.Metrics {
		if m.NBaseline == 0 || m.NCanary == 0 || m.Outcome == judge.Error {
			continue
		}
		names = append(names, m.Name)
		y := pct(m.Effect)
		can = append(can, y)
		outcomes = append(outcomes, m.Outcome)
		ci = append(ci, ciPoint{x: float64(len(can) - 1), y: y, lo: y - pct(m.Low), hi: pct(m.High) - y})
	}
	if len(names) == 0 {
		return nil, errors.New("no metric with data to chart")
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "% of baseline"
	p.Y.Min = 0
	legend := map[judge.Outcome]bool{}
	for i, y := range can {
		bar, err := plotter.NewBarChart(plotter.Values{y}, vg.Points(28))
		if err != nil {
			return nil, err
		}
		o := outcomes[i]
		bar.XMin, bar.Color = float64(i), outcomeColor(o)
		p.Add(bar)
		if !legend[o] {
			legend[o] = true
			p.Legend.Add("canary: "+string(o), bar)
		}
	}
	eb, err := plotter.NewYErrorBars(ci)
	if err != nil {
		return nil, err
	}
	base := plotter.NewFunction(func(float64) float64 { return 100 })
	base.Color, base.Dashes, base.Width = color.RGBA{R: 69, G: 90, B: 100, A: 255}, []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1.5)
	p.Add(eb, base, plotter.NewGrid())
	p.Legend.Add("baseline = 100%", base)
	p.Legend.Top = true
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	p.NominalX(names...)
	wt, err := p.WriterTo(vg.Length(120+110*len(names))*vg.Millimeter/3, 90*vg.Millimeter, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pct is a relative change as a percentage of the baseline, capped for the chart.
func pct(effect float64) float64 {
	y := 100 * (1 + effect)
	if math.IsNaN(y) {
		return 100
	}
	return math.Max(0, math.Min(y, maxChartPercent))
}

type ciPoint struct{ x, y, lo, hi float64 }

// canaryInterval places the error bars over the canary bars.
type canaryInterval []ciPoint

func (c canaryInterval) Len() int                        { return len(c) }
func (c canaryInterval) XY(i int) (float64, float64)     { return c[i].x, c[i].y }
func (c canaryInterval) YError(i int) (float64, float64) { return math.Abs(c[i].lo), math.Abs(c[i].hi) }

// outcomeColor paints a metric's bar by how it was judged.
func outcomeColor(o judge.Outcome) color.Color {
	switch o {
	case judge.Pass:
		return color.RGBA{R: 67, G: 160, B: 71, A: 255}
	case judge.Marginal:
		return color.RGBA{R: 255, G: 179, B: 0, A: 255}
	case judge.Fail:
		return color.RGBA{R: 229, G: 57, B: 53, A: 255}
	}
	return color.RGBA{R: 158, G: 158, B: 158, A: 255}
}

package chart

import (
	"bytes"
	"errors"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Look is one metric at one look of a canary comparison: minutes since the first look,
// and the baseline's and the canary's values (in the unit the chart is labelled with).
type Look struct {
	Minutes          float64
	Baseline, Canary float64
}

// Timeline draws one metric over a comparison's looks: the baseline's and the canary's
// values, and the allowed-effect band, the baseline's value ± allowed (a fraction: 0.2 is
// 20%), inside which the canary's difference is tolerated. Every look is drawn.
func Timeline(title, unit string, looks []Look, allowed float64) ([]byte, error) {
	if len(looks) == 0 {
		return nil, errors.New("no look with data to chart")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "minutes since the first look"
	p.Y.Label.Text = unit
	p.Y.Min = 0
	base, can := make(plotter.XYs, len(looks)), make(plotter.XYs, len(looks))
	band := make(plotter.XYs, 0, 2*len(looks))
	for i, l := range looks {
		base[i] = plotter.XY{X: l.Minutes, Y: l.Baseline}
		can[i] = plotter.XY{X: l.Minutes, Y: l.Canary}
		band = append(band, plotter.XY{X: l.Minutes, Y: l.Baseline * (1 + allowed)})
	}
	for i := len(looks) - 1; i >= 0; i-- {
		band = append(band, plotter.XY{X: looks[i].Minutes, Y: max(0, looks[i].Baseline*(1-allowed))})
	}
	if len(looks) == 1 { // a band needs a width: half a minute around the one look
		l := looks[0]
		band = plotter.XYs{{X: l.Minutes - 0.5, Y: l.Baseline * (1 + allowed)}, {X: l.Minutes + 0.5, Y: l.Baseline * (1 + allowed)},
			{X: l.Minutes + 0.5, Y: max(0, l.Baseline*(1-allowed))}, {X: l.Minutes - 0.5, Y: max(0, l.Baseline*(1-allowed))}}
	}
	poly, err := plotter.NewPolygon(band)
	if err != nil {
		return nil, err
	}
	poly.Color, poly.LineStyle.Width = color.NRGBA{R: 69, G: 90, B: 100, A: 50}, 0
	bl, bp, err := plotter.NewLinePoints(base)
	if err != nil {
		return nil, err
	}
	bl.Color, bl.Dashes, bl.Width = color.RGBA{R: 69, G: 90, B: 100, A: 255}, []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1.5)
	bp.Color, bp.Shape = bl.Color, draw.CircleGlyph{}
	cl, cp, err := plotter.NewLinePoints(can)
	if err != nil {
		return nil, err
	}
	canary := color.RGBA{R: 130, G: 80, B: 223, A: 255}
	cl.Color, cl.Width = canary, vg.Points(2)
	cp.Color, cp.Shape = canary, draw.CircleGlyph{}
	p.Add(poly, plotter.NewGrid(), bl, bp, cl, cp)
	p.Legend.Add("baseline", bl, bp)
	p.Legend.Add("canary", cl, cp)
	p.Legend.Add("allowed effect", poly)
	p.Legend.Top, p.Legend.Left = true, true
	wt, err := p.WriterTo(160*vg.Millimeter, 90*vg.Millimeter, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

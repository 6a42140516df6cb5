package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/harbormaster-dev/harbormaster/pkg/gpusim"
)

// palette gives each policy a distinct, print-friendly colour.
func palette(i int) color.Color {
	colors := []color.RGBA{
		{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
		{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	}
	return colors[i%len(colors)]
}

// writePlot draws allocated GPU % against arrived GPU request % for each
// policy (mean over seeds), with the ideal diagonal, to a PNG, from 60%
// arrived on.
func writePlot(path, trace string, byPolicy map[gpusim.Policy][]*gpusim.Result, order []gpusim.Policy) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("openb %s: allocated GPUs as the workload arrives", trace)
	p.X.Label.Text = "arrived GPU request (% of capacity)"
	p.Y.Label.Text = "allocated GPUs (% of capacity)"
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	ideal, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 100, Y: 100}, {X: 130, Y: 100}})
	if err != nil {
		return err
	}
	ideal.Color = color.Gray{Y: 0xb0}
	ideal.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(ideal)
	p.Legend.Add("all placed", ideal)
	for i, policy := range order {
		x, y := gpusim.MeanCurve(byPolicy[policy], 0.5)
		pts := make(plotter.XYs, len(x))
		for j := range x {
			pts[j] = plotter.XY{X: x[j], Y: y[j]}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = palette(i)
		line.Width = vg.Points(1.2)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (%d seeds)", policy, len(byPolicy[policy])), line)
	}
	// Below 60% arrived every policy places everything: the curves are
	// the diagonal. The differences are where the cluster saturates.
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 60, 130, 70, 100
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

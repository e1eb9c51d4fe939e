package train

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// csvHeader is the first line of metrics.csv.
var csvHeader = []string{"epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "img_per_s", "lr", "seconds"}

// appendCSV appends one epoch to path, writing the header first when the file is new.
func appendCSV(path string, s EpochStats) error {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	w := csv.NewWriter(f)
	if os.IsNotExist(statErr) {
		_ = w.Write(csvHeader)
	}
	ff := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	_ = w.Write([]string{strconv.Itoa(s.Epoch), strconv.FormatInt(s.Step, 10), ff(s.TrainLoss), ff(s.TrainAcc),
		ff(s.ValLoss), ff(s.ValAcc), ff(s.ImagesPerSec), ff(s.LR), ff(s.Seconds)})
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	return f.Close()
}

// ReadCSV reads a metrics.csv written by Fit.
func ReadCSV(path string) ([]EpochStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	if len(rows) == 0 || len(rows[0]) != len(csvHeader) || rows[0][0] != csvHeader[0] {
		return nil, fmt.Errorf("metrics %s: missing header %v", path, csvHeader)
	}
	var out []EpochStats
	for i, r := range rows[1:] {
		v := make([]float64, len(r))
		for j, cell := range r {
			if v[j], err = strconv.ParseFloat(cell, 64); err != nil {
				return nil, fmt.Errorf("metrics %s line %d column %s: %q is not a number", path, i+2, csvHeader[j], cell)
			}
		}
		out = append(out, EpochStats{Epoch: int(v[0]), Step: int64(v[1]), TrainLoss: v[2], TrainAcc: v[3], ValLoss: v[4],
			ValAcc: v[5], ImagesPerSec: v[6], LR: v[7], Seconds: v[8]})
	}
	return out, nil
}

// PlotCurves draws loss (top) and accuracy (bottom) per epoch from metrics.csv into a PNG.
func PlotCurves(csvPath, pngPath string) error {
	rows, err := ReadCSV(csvPath)
	if err != nil {
		return err
	}
	line := func(p *plot.Plot, name string, get func(EpochStats) float64, c color.Color, dashed bool) error {
		var pts plotter.XYs
		for _, r := range rows {
			if y := get(r); !math.IsNaN(y) && !math.IsInf(y, 0) {
				pts = append(pts, plotter.XY{X: float64(r.Epoch), Y: y})
			}
		}
		if len(pts) == 0 {
			return nil
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	blue, orange := color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255}
	lossP, accP := plot.New(), plot.New()
	lossP.Title.Text, lossP.X.Label.Text, lossP.Y.Label.Text = "loss", "epoch", "cross-entropy"
	accP.Title.Text, accP.X.Label.Text, accP.Y.Label.Text = "accuracy", "epoch", "accuracy"
	for _, e := range []error{
		line(lossP, "train", func(s EpochStats) float64 { return s.TrainLoss }, blue, false),
		line(lossP, "val", func(s EpochStats) float64 { return s.ValLoss }, orange, true),
		line(accP, "train", func(s EpochStats) float64 { return s.TrainAcc }, blue, false),
		line(accP, "val", func(s EpochStats) float64 { return s.ValAcc }, orange, true),
	} {
		if e != nil {
			return fmt.Errorf("plot %s: %w", pngPath, e)
		}
	}
	lossP.Legend.Top, accP.Legend.Top = true, false
	img := vgimg.New(vg.Points(640), vg.Points(720))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter * 2, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := [][]*plot.Plot{{lossP}, {accP}}
	canvases := plot.Align(plots, tiles, dc)
	lossP.Draw(canvases[0][0])
	accP.Draw(canvases[1][0])
	f, err := os.Create(pngPath)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", pngPath, err)
	}
	return f.Close()
}

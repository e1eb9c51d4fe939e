package train

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// DegradationOptions configure the degradation experiment of He et al. (2016), Figure 6: plain
// networks and ResNets of the same depths trained with the same recipe.
type DegradationOptions struct {
	// Base is the training configuration shared by every run (data, recipe, epochs, backend...).
	// Arch and Dir are set per run.
	Base Config
	// Depths of the CIFAR layout, 6k+2 (default 20, 56).
	Depths []int
	// Out receives one run directory per network (plain20/, resnet20/, ...), degradation.png
	// and degradation.csv.
	Out string
	// OnRun, if set, is called before each training run (for progress output).
	OnRun func(i, n int, arch string)
}

// DegradationRun is the outcome of one network of the experiment.
type DegradationRun struct {
	Arch      string
	Depth     int
	Residual  bool
	Epochs    []EpochStats
	TestError float64 // NaN without a test set
	Seconds   float64
}

// DegradationResult lists the runs and the files written.
type DegradationResult struct {
	Runs     []DegradationRun
	PNG, CSV string
}

// Degradation trains plain<d> and resnet<d> for every depth d and draws the comparison.
// Resuming (Base.Resume) continues each run directory; finished runs then train no more.
func Degradation(ctx context.Context, opt DegradationOptions) (*DegradationResult, error) {
	if opt.Out == "" {
		return nil, errors.New("degradation: no output directory")
	}
	depths := opt.Depths
	if len(depths) == 0 {
		depths = []int{20, 56}
	}
	for _, d := range depths {
		if d < 8 || (d-2)%6 != 0 {
			return nil, fmt.Errorf("degradation: depth %d is not 6k+2 >= 8 (e.g. 8, 14, 20, 32, 44, 56, 110)", d)
		}
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, fmt.Errorf("degradation: %w", err)
	}
	res := &DegradationResult{PNG: filepath.Join(opt.Out, "degradation.png"), CSV: filepath.Join(opt.Out, "degradation.csv")}
	n := 2 * len(depths)
	for _, residual := range []bool{false, true} {
		for _, d := range depths {
			arch := fmt.Sprintf("plain%d", d)
			if residual {
				arch = fmt.Sprintf("resnet%d", d)
			}
			if opt.OnRun != nil {
				opt.OnRun(len(res.Runs)+1, n, arch)
			}
			cfg := opt.Base
			cfg.Arch, cfg.Dir = arch, filepath.Join(opt.Out, arch)
			if cfg.Resume {
				if files, _ := filepath.Glob(filepath.Join(cfg.Dir, "checkpoint-*.json")); len(files) == 0 {
					cfg.Resume = false // not started yet
				}
			}
			r, err := Fit(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("degradation run %s: %w", arch, err)
			}
			// The curves come from metrics.csv, so a resumed run plots its whole history.
			rows, err := ReadCSV(filepath.Join(cfg.Dir, "metrics.csv"))
			if err != nil {
				return nil, err
			}
			run := DegradationRun{Arch: arch, Depth: d, Residual: residual, Epochs: rows, TestError: 1 - r.TestAcc}
			for _, e := range rows {
				run.Seconds += e.Seconds
			}
			res.Runs = append(res.Runs, run)
		}
	}
	if err := writeDegradationCSV(res.CSV, res.Runs); err != nil {
		return nil, err
	}
	if err := PlotDegradation(res.Runs, res.PNG); err != nil {
		return nil, err
	}
	return res, nil
}

// degradationHeader is the first line of degradation.csv (errors in percent).
var degradationHeader = []string{"arch", "depth", "residual", "epochs", "final_train_error", "final_val_error",
	"best_val_error", "test_error", "seconds"}

func writeDegradationCSV(path string, runs []DegradationRun) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("degradation: %w", err)
	}
	w := csv.NewWriter(f)
	_ = w.Write(degradationHeader)
	pct := func(v float64) string {
		if math.IsNaN(v) {
			return "NaN"
		}
		return strconv.FormatFloat(100*v, 'f', 2, 64)
	}
	for _, r := range runs {
		last := EpochStats{TrainAcc: math.NaN(), ValAcc: math.NaN()}
		if len(r.Epochs) > 0 {
			last = r.Epochs[len(r.Epochs)-1]
		}
		best := math.NaN()
		for _, e := range r.Epochs {
			if !math.IsNaN(e.ValAcc) && (math.IsNaN(best) || 1-e.ValAcc < best) {
				best = 1 - e.ValAcc
			}
		}
		_ = w.Write([]string{r.Arch, strconv.Itoa(r.Depth), strconv.FormatBool(r.Residual), strconv.Itoa(len(r.Epochs)),
			pct(1 - last.TrainAcc), pct(1 - last.ValAcc), pct(best), pct(r.TestError),
			strconv.FormatFloat(r.Seconds, 'f', 1, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("degradation %s: %w", path, err)
	}
	return f.Close()
}

// depthColors gives each depth its colour, shallow to deep, as in the paper (thin/bold pairs
// of the same colour).
var depthColors = []color.RGBA{
	{R: 31, G: 119, B: 180, A: 255}, {R: 214, G: 39, B: 40, A: 255}, {R: 44, G: 160, B: 44, A: 255},
	{R: 148, G: 103, B: 189, A: 255}, {R: 255, G: 127, B: 14, A: 255}, {R: 23, G: 190, B: 207, A: 255},
}

// PlotDegradation draws the runs in the style of He et al.'s Figure 6: error (%) per epoch,
// plain networks on the left, ResNets on the right, training error thin and dashed,
// validation error bold, one colour per depth.
func PlotDegradation(runs []DegradationRun, pngPath string) error {
	panels := [2]*plot.Plot{plot.New(), plot.New()}
	titles := [2]string{"plain networks", "ResNets"}
	depthIndex := map[int]int{}
	for _, r := range runs {
		if _, ok := depthIndex[r.Depth]; !ok {
			depthIndex[r.Depth] = len(depthIndex)
		}
	}
	maxErr := 0.0
	for _, r := range runs {
		for _, e := range r.Epochs {
			for _, v := range []float64{1 - e.TrainAcc, 1 - e.ValAcc} {
				if !math.IsNaN(v) {
					maxErr = max(maxErr, 100*v)
				}
			}
		}
	}
	for _, r := range runs {
		p := panels[0]
		if r.Residual {
			p = panels[1]
		}
		c := depthColors[depthIndex[r.Depth]%len(depthColors)]
		label := fmt.Sprintf("plain-%d", r.Depth)
		if r.Residual {
			label = fmt.Sprintf("ResNet-%d", r.Depth)
		}
		for _, val := range []bool{false, true} {
			var pts plotter.XYs
			for _, e := range r.Epochs {
				acc := e.TrainAcc
				if val {
					acc = e.ValAcc
				}
				if !math.IsNaN(acc) {
					pts = append(pts, plotter.XY{X: float64(e.Epoch), Y: 100 * (1 - acc)})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pngPath, err)
			}
			l.Color = c
			if val {
				l.Width = vg.Points(2.5)
				p.Legend.Add(label+" val", l)
			} else {
				l.Width = vg.Points(0.8)
				l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
				p.Legend.Add(label+" train", l)
			}
			p.Add(l)
			if len(pts) == 1 { // one epoch: a line of one point draws nothing
				s, err := plotter.NewScatter(pts)
				if err != nil {
					return fmt.Errorf("plot %s: %w", pngPath, err)
				}
				s.Color = c
				p.Add(s)
			}
		}
	}
	for i, p := range panels {
		p.Title.Text = titles[i]
		p.X.Label.Text = "epoch"
		p.Y.Label.Text = "error (%)"
		p.Y.Min, p.Y.Max = 0, math.Max(5, math.Ceil(maxErr/5)*5)
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
	}
	img := vgimg.New(vg.Points(1000), vg.Points(420))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 2, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{panels[0], panels[1]}}, tiles, dc)
	panels[0].Draw(canvases[0][0])
	panels[1].Draw(canvases[0][1])
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

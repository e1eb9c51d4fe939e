package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/train/evaluate"
)

func init() {
	commands["quantize"] = command{"quantize an exported float model to an int8 .tflite, calibrated on training images", runQuantize}
}

func runQuantize(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("quantize")
	model := fs.String("model", "", "the export directory (model.json + weights.bin) written by `shortcut-train export`")
	source := fs.String("data", "fashion-mnist", "training data for calibration: FORMAT[:DIR]; images come from its train split")
	downsample := fs.Int("downsample", 1, "shrink dataset images by this integer factor first (for models trained on shrunk images)")
	n := fs.Int("calibration", 500, fmt.Sprintf("calibration images drawn from the training split (at least %d)", quant.RecommendedMinSamples))
	method := fs.String("method", "minmax", "activation ranges: "+strings.Join(quant.Methods, ", ")+
		" (min/max of the calibration values; their --percentile of |x|; the clipping with the least quantization MSE)")
	percentile := fs.Float64("percentile", quant.DefaultPercentile, "with --method percentile: share of |values| in percent that the range keeps")
	bias := fs.Bool("bias-correction", false, "subtract each layer's mean int8 output error from its bias (empirical bias correction)")
	refit := fs.Bool("refit-head", false, "refit the classifier to the int8 embedding: ridge regression onto the float model's logits of the calibration images")
	ridge := fs.Float64("head-ridge", quant.DefaultHeadRidge, "with --refit-head: how strongly the refit classifier is held to the trained one (relative to the mean squared embedding value)")
	int8IO := fs.Bool("int8-io", false, "int8 inputs and outputs instead of float ones with QUANTIZE/DEQUANTIZE inside")
	seed := fs.Uint64("seed", 1, "seed of the calibration draw")
	out := fs.String("out", "", "the .tflite file to write")
	report := fs.String("report", "", "also write the calibration report (ranges, warnings, bias corrections) as JSON to this file")
	verbose := fs.Bool("v", false, "print every tensor's calibrated range")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return errors.New("--model EXPORT_DIR and --out M.tflite are required")
	}
	if *downsample < 1 {
		return fmt.Errorf("--downsample %d must be at least 1", *downsample)
	}
	m, err := quant.ParseMethod(*method)
	if err != nil {
		return fmt.Errorf("--method: %w", err)
	}
	e, err := quant.ReadExport(*model)
	if err != nil {
		return err
	}
	spec := evaluate.SpecFromExport(e)
	d, err := evaluate.LoadSplit(*source, "train", *downsample, &spec)
	if err != nil {
		return err
	}
	o := quant.Options{Method: m, Percentile: *percentile, BiasCorrection: *bias, RefitHead: *refit, HeadRidge: *ridge}
	if *int8IO {
		o.IO = quant.Int8IO
	}
	res, err := quantizeExport(ctx, e, d, *n, *seed, o)
	if err != nil {
		return err
	}
	if err := res.Model.WriteFile(*out); err != nil {
		return err
	}
	printQuantReport(stdout, res.Report, *verbose)
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d bytes, %d operators, %d tensors (%s)\n", *out, st.Size(), len(res.Model.Operators), len(res.Model.Tensors), res.Model.Description)
	if *report != "" {
		return writeEvalJSON(*report, res.Report)
	}
	return nil
}

func printQuantReport(w io.Writer, r *quant.Report, verbose bool) {
	fmt.Fprintf(w, "calibrated on %d training images, method %v", r.Samples, r.Method)
	if r.Method == quant.Percentile {
		fmt.Fprintf(w, " (%g %% of |x|)", r.Percentile)
	}
	fmt.Fprintln(w)
	clipped := 0
	for _, tr := range r.Ranges {
		if tr.Chosen != tr.Observed && tr.MinMaxBecause == "" && tr.Unused == "" && tr.Logits == nil {
			clipped++
		}
		if verbose {
			fmt.Fprintf(w, "  %-40s observed [%9.4f, %9.4f]  range [%9.4f, %9.4f]  clipped %.4f %%", tr.Name, tr.Observed.Min, tr.Observed.Max,
				tr.Chosen.Min, tr.Chosen.Max, 100*tr.Clipped)
			switch {
			case tr.Unused != "":
				fmt.Fprintf(w, "  (not used: %s)", tr.Unused)
			case tr.MinMaxBecause != "":
				fmt.Fprintf(w, "  (min/max: %s)", tr.MinMaxBecause)
			}
			fmt.Fprintln(w)
		}
	}
	if r.Method != quant.MinMax {
		fmt.Fprintf(w, "%d activation ranges clipped\n", clipped)
	}
	for _, tr := range r.Ranges {
		if lc := tr.Logits; lc != nil {
			fmt.Fprintf(w, "logits %s: range [%.3g, %.3g] (min/max [%.3g, %.3g]): simulated top-1 kept on %.2f %% of calibration images (min/max %.2f %%), mean top-1 score error %.4f (min/max %.4f)\n",
				tr.Name, lc.Range.Min, lc.Range.Max, tr.Observed.Min, tr.Observed.Max, 100*lc.Kept, 100*lc.KeptMinMax, lc.ScoreError, lc.ScoreErrorMinMax)
		}
	}
	if len(r.Exact) > 0 {
		fmt.Fprintf(w, "lossless channel-selection convolutions (option-A shortcuts): %s\n", strings.Join(r.Exact, ", "))
	}
	if len(r.BiasCorrection) > 0 {
		fmt.Fprintln(w, "bias correction: mean per-channel output error in LSB, before -> after")
		for _, l := range r.BiasCorrection {
			fmt.Fprintf(w, "  %-40s %6.3f -> %6.3f", l.Name, l.Before/l.Step, l.After/l.Step)
			if l.Skipped > 0 {
				fmt.Fprintf(w, "  (%d of %d channels almost never active, left alone)", l.Skipped, l.Channels)
			}
			fmt.Fprintln(w)
		}
	}
	if h := r.HeadRefit; h != nil {
		fmt.Fprintf(w, "head refit: %s (%d features) on %d calibration images, ridge %g: top-1 agreement with float %.2f %% -> %.2f %%, mean largest score error %.4f -> %.4f; fit RMSE %.4f -> %.4f; logits range [%.3g, %.3g]\n",
			h.Layer, h.Features, h.Samples, h.Ridge, 100*h.AgreementBefore, 100*h.AgreementAfter, h.ScoreErrorBefore, h.ScoreErrorAfter,
			h.FitRMSEBefore, h.FitRMSEAfter,
			h.Logits.Range.Min, h.Logits.Range.Max)
	}
	for _, msg := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", msg)
	}
}

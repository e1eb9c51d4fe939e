package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/evaluate"
)

func init() {
	commands["eval"] = command{"score a run directory, a float export or a .tflite on labelled images (with --float: int8 vs float, per-layer SQNR)", runEval}
}

// modelKind tells what a --model path is.
func modelKind(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--model %s: %w", path, err)
	}
	if !st.IsDir() {
		return "tflite", nil
	}
	if _, err := os.Stat(filepath.Join(path, "model.json")); err == nil {
		return "export", nil
	}
	for _, d := range []string{path, filepath.Join(path, train.BestDir)} {
		if m, _ := filepath.Glob(filepath.Join(d, "checkpoint-*.json")); len(m) > 0 {
			return "run", nil
		}
	}
	return "", fmt.Errorf("--model %s is a directory with neither model.json (an export) nor checkpoint-*.json (a training run)", path)
}

func runEval(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("eval")
	model := fs.String("model", "", "what to score: a training run directory, an export directory (float) or a .tflite")
	float := fs.String("float", "", "the float model the --model .tflite was quantized from (an export directory or a float .tflite): adds its accuracy, top-1 agreement and per-layer SQNR")
	source := fs.String("data", "fashion-mnist", "labelled images: FORMAT[:DIR] (fashion-mnist, mnist, cifar10, cifar100, folder)")
	split := fs.String("split", "test", "which split to score: test or train")
	downsample := fs.Int("downsample", 1, "shrink dataset images by this integer factor first (for models trained on shrunk images)")
	limit := fs.Int("limit", 0, "score only the first N images (0: all)")
	useWitness := fs.Bool("witness", false, "also run the .tflite in a real TFLite (LiteRT.js, or tfjs-tflite for int8 inputs) and report top-1 agreement with ours")
	witnessLimit := fs.Int("witness-limit", 0, "with --witness: run only the first N images in TFLite (0: all)")
	witnessEngine := fs.String("witness-engine", "", "with --witness: litert (LiteRT.js, XNNPACK kernels) or tfjs (tfjs-tflite); default: litert, tfjs for int8 inputs or outputs")
	layers := fs.Int("layers", -1, "print the per-layer SQNR table: -1 all layers, 0 none, N the N worst")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	arithmetic := fs.String("arithmetic", interp.ArithmeticReference, arithmeticHelp)
	threads := fs.Int("threads", runtime.NumCPU(), "images scored at once, each with its own interpreters (results do not depend on it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model is required (a run directory, an export directory or a .tflite)")
	}
	if *limit < 0 || *downsample < 1 {
		return fmt.Errorf("--limit %d must be >= 0 and --downsample %d >= 1", *limit, *downsample)
	}
	kind, err := modelKind(*model)
	if err != nil {
		return err
	}
	if kind == "run" {
		if *float != "" || *useWitness {
			return errors.New("--float and --witness apply to an export or a .tflite, not to a training run directory")
		}
		return evalRun(ctx, *model, *source, *split, *downsample, *limit, stdout)
	}
	m, spec, err := evaluate.LoadModel(*model, kind)
	if err != nil {
		return err
	}
	if *threads < 1 {
		return fmt.Errorf("--threads %d: want at least 1", *threads)
	}
	in := evaluate.Input{Name: *model, Kind: kind, Model: m, Spec: *spec, DataName: *source, Arithmetic: *arithmetic, Threads: *threads}
	if kind == "tflite" {
		in.ModelPath = *model
	}
	if *float != "" {
		fk, err := modelKind(*float)
		if err != nil {
			return fmt.Errorf("--float: %w", err)
		}
		fm, fspec, err := evaluate.LoadModel(*float, fk)
		if err != nil {
			return fmt.Errorf("--float: %w", err)
		}
		if fspec.H != spec.H || fspec.W != spec.W || fspec.Channels != spec.Channels {
			return fmt.Errorf("--float %s takes %dx%dx%d inputs, --model %s %dx%dx%d", *float, fspec.H, fspec.W, fspec.Channels, *model, spec.H, spec.W, spec.Channels)
		}
		if fk == "export" {
			in.Spec = *fspec // the export's input section is the authority on preprocessing
		}
		in.Float, in.FloatName = fm, *float
	}
	if *useWitness {
		if kind != "tflite" {
			return errors.New("--witness runs a .tflite in a real TFLite; --model is an export")
		}
		int8IO := m.Tensors[m.Inputs[0]].Type == resnet.Int8 || m.Tensors[m.Outputs[0]].Type == resnet.Int8
		switch *witnessEngine {
		case "":
			if int8IO {
				in.Engine = witness.TFJS // LiteRT.js refuses int8 inputs and outputs
			}
		case string(witness.TFJS):
			in.Engine = witness.TFJS
		case string(witness.LiteRT):
			if int8IO {
				return errors.New("--witness-engine litert: LiteRT.js refuses int8 inputs and outputs; use tfjs or a model quantized without --int8-io")
			}
			in.Engine = witness.LiteRT
		default:
			return fmt.Errorf("--witness-engine %q: want litert or tfjs", *witnessEngine)
		}
		tmp, err := os.MkdirTemp("", "shortcut-eval-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		in.Tmp, in.Witness, in.WitnessLimit = tmp, true, *witnessLimit
	}
	d, err := evaluate.LoadSplit(*source, *split, *downsample, &in.Spec)
	if err != nil {
		return err
	}
	in.Test = d.Head(*limit)
	rep, err := evaluate.Evaluate(ctx, in)
	if err != nil {
		return err
	}
	printEval(stdout, rep, *layers)
	if *jsonOut != "" {
		return writeEvalJSON(*jsonOut, rep)
	}
	return nil
}

func writeEvalJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// evalRun scores a training run's checkpoint with train.Eval.
func evalRun(ctx context.Context, dir, source, split string, downsample, limit int, stdout io.Writer) error {
	src, err := data.ParseSource(source)
	if err != nil {
		return err
	}
	d, err := data.Load(src, split)
	if err != nil {
		return err
	}
	if downsample > 1 {
		if d, err = d.Downsample(downsample); err != nil {
			return err
		}
	}
	res, err := train.Eval(ctx, train.EvalOptions{Dir: dir, Dataset: d, Limit: limit})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s (training run, GoMLX)  data %s/%s\n", dir, source, split)
	fmt.Fprint(stdout, res.Format())
	return nil
}

func evalPct(v float64) string { return fmt.Sprintf("%.2f %%", 100*v) }

func printEval(w io.Writer, r *evaluate.Report, layers int) {
	fmt.Fprintf(w, "model %s (%s)  data %s  images %d\n", r.Model, r.Kind, r.Data, r.Images)
	if r.FloatScore != nil {
		fmt.Fprintf(w, "accuracy  model %s  float %s (%s)  difference %+.2f points\n", evalPct(r.Score.Accuracy), evalPct(r.FloatScore.Accuracy),
			r.Float, 100*(r.Score.Accuracy-r.FloatScore.Accuracy))
		fmt.Fprintf(w, "top-1 agreement with float: %s\n", evalPct(r.Agreement))
	} else {
		fmt.Fprintf(w, "accuracy  %s\n", evalPct(r.Score.Accuracy))
	}
	if wr := r.Witness; wr != nil {
		fmt.Fprintf(w, "TFLite (%s): accuracy %s, top-1 agreement with our runtime %s (%d images; %s counting int8 score ties as agreement), largest score difference %.1f LSB",
			wr.Engine, evalPct(wr.Accuracy), evalPct(wr.Agreement), wr.Images, evalPct(wr.AgreementTies), wr.MaxDiffLSB)
		if len(wr.Disagree) > 0 {
			fmt.Fprintf(w, "; where they disagree, our top-1 led TFLite's by at most %.0f LSB", wr.MaxGapLSB)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "per-class accuracy")
	for i, c := range r.Classes {
		fmt.Fprintf(w, "  %-16s %7s", c, evalPct(r.Score.PerClass[i]))
		if r.FloatScore != nil {
			fmt.Fprintf(w, "  (float %s)", evalPct(r.FloatScore.PerClass[i]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "confusion matrix (rows: true class, columns: predicted)")
	for _, row := range r.Score.Confusion {
		for _, c := range row {
			fmt.Fprintf(w, "%6d", c)
		}
		fmt.Fprintln(w)
	}
	if len(r.Layers) > 0 && layers != 0 {
		ls := append([]quant.LayerSQNR(nil), r.Layers...)
		title := "per-layer SQNR, float vs int8 (graph order; higher is better, < 20 dB deserves a look)"
		if layers > 0 && layers < len(ls) {
			sortBySQNR(ls)
			ls = ls[:layers]
			title = fmt.Sprintf("the %d layers with the lowest SQNR, float vs int8", layers)
		}
		fmt.Fprintln(w, title)
		for _, l := range ls {
			fmt.Fprintf(w, "  %-40s %-16s %s", l.Name, l.Op, formatDB(l.SQNR))
			if l.Note != "" {
				fmt.Fprintf(w, "  (%s)", l.Note)
			}
			fmt.Fprintln(w)
		}
	}
}

func formatDB(db float64) string {
	if math.IsInf(db, 1) {
		return "exact"
	}
	return fmt.Sprintf("%6.1f dB", db)
}

func sortBySQNR(ls []quant.LayerSQNR) {
	slices.SortStableFunc(ls, func(a, b quant.LayerSQNR) int { return cmp.Compare(a.SQNR, b.SQNR) })
}

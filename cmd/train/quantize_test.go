package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/evaluate"
)

// quantFashion loads real Fashion-MNIST (Debian package dataset-fashion-mnist)
// shrunk to 14x14, as the quantize tests train on it.
var quantFashion = sync.OnceValues(func() ([2]*data.Dataset, error) {
	src := data.Source{Format: data.FormatFashionMNIST, Dir: data.FashionMNISTDir}
	var out [2]*data.Dataset
	for i, split := range []string{"train", "test"} {
		d, err := data.Load(src, split)
		if err != nil {
			return out, err
		}
		if out[i], err = d.Downsample(2); err != nil {
			return out, err
		}
	}
	return out, nil
})

// trainExport trains a ResNet-8 of width 8 for two epochs on 4000 14x14
// Fashion-MNIST images (about 77 % test accuracy; train/fit_test.go's
// settings) and exports it.
func trainExport(t *testing.T) (exp string, trainSet, testSet *data.Dataset) {
	t.Helper()
	sets, err := quantFashion()
	if err != nil {
		t.Fatalf("Fashion-MNIST is needed (apt-get install dataset-fashion-mnist): %v", err)
	}
	start := time.Now()
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	cfg := train.Config{Backend: "cpu", Arch: "resnet8", BaseWidth: 8, TrainSet: sets[0].Head(4000), Recipe: "seed", LR: 3e-3,
		Epochs: 2, NoAugment: true, Dir: run, Seed: 7, Workers: 2}
	if _, err := train.Fit(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	exp = filepath.Join(dir, "export")
	if _, err := train.Export(train.ExportOptions{Backend: "cpu", Dir: run, Out: exp}); err != nil {
		t.Fatal(err)
	}
	t.Logf("trained and exported ResNet-8 in %v", time.Since(start).Round(time.Millisecond))
	return exp, sets[0], sets[1]
}

// TestQuantizationOfATrainedFashionMNISTModel trains one small model and
// runs every quantization check on it: issue #5's end-to-end table, the
// commands as a user runs them, and their refusals of bad input.
func TestQuantizationOfATrainedFashionMNISTModel(t *testing.T) {
	exp, trainSet, testSet := trainExport(t)
	t.Run("int8 keeps the float accuracy and matches TFLite", func(t *testing.T) {
		checkEndToEnd(t, exp, trainSet, testSet)
	})
	t.Run("quantize and eval commands run end to end", func(t *testing.T) { checkCommands(t, exp) })
	t.Run("eval scores a training run and an int8-io model", func(t *testing.T) { checkOtherModels(t, exp) })
	t.Run("bad input is refused in one line", func(t *testing.T) { checkBadInput(t, exp) })
}

// checkFloatMatchesReference holds the float model FromExport builds, run by
// our interpreter, to train's reference interpreter of the export on real
// images.
func checkFloatMatchesReference(t *testing.T, exp string, e *quant.Export, d *data.Dataset) {
	t.Helper()
	ref, err := train.LoadExported(exp)
	if err != nil {
		t.Fatal(err)
	}
	m := e.Model
	logits := -1
	for _, op := range m.Operators {
		if op.Op == resnet.OpSoftmax {
			logits = op.Inputs[0]
		}
	}
	it, err := interp.New(m, interp.Options{KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	err = evaluate.ForEachImage(context.Background(), d, evaluate.SpecFromExport(e), func(i int, x []float32, _ int) error {
		want, err := ref.Run(x)
		if err != nil {
			return err
		}
		copy(it.Input(0).Float32(), x)
		if err := it.Invoke(); err != nil {
			return err
		}
		got := it.TensorByIndex(logits).Float32()
		for k := range want {
			if math.Abs(float64(got[k]-want[k])) > 1e-4*(1+math.Abs(float64(want[k]))) {
				return fmt.Errorf("image %d logit %d: our float model gives %g, train's reference %g", i, k, got[k], want[k])
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func requireTFLite(t *testing.T) {
	t.Helper()
	if err := witness.Available(); err != nil {
		t.Fatalf("the real TFLite witness cannot run (make setup installs it): %v", err)
	}
}

// checkEndToEnd is issue #5's end-to-end check: quantize with every
// calibration method, and run the int8 model in our runtime (2000 test
// images) and in LiteRT.js (the first 500).
func checkEndToEnd(t *testing.T, exp string, trainSet, testSet *data.Dataset) {
	requireTFLite(t)
	e, err := quant.ReadExport(exp)
	if err != nil {
		t.Fatal(err)
	}
	test := testSet.Head(2000)
	const calibration, witnessed = 300, 500
	checkFloatMatchesReference(t, exp, e, test.Head(20))
	type row struct {
		name                string
		float, int8, tflite float64
		agreeFloat, agreeTF float64
		agreeTFTies         float64
		worstLayer          string
		worstDB             float64
	}
	var rows []row
	for _, tc := range []struct {
		name string
		o    quant.Options
	}{
		{"minmax", quant.Options{Method: quant.MinMax}},
		{"percentile", quant.Options{Method: quant.Percentile}},
		{"mse", quant.Options{Method: quant.MSE}},
		{"mse+bias", quant.Options{Method: quant.MSE, BiasCorrection: true}},
	} {
		start := time.Now()
		res, err := quantizeExport(context.Background(), e, trainSet, calibration, 1, tc.o)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		path := filepath.Join(t.TempDir(), tc.name+".tflite")
		if err := res.Model.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		q, err := resnet.LoadFile(path)
		if err != nil {
			t.Fatalf("%s: our own file does not load: %v", tc.name, err)
		}
		rep, err := evaluate.Evaluate(context.Background(), evaluate.Input{Name: path, Kind: "tflite", Model: q, ModelPath: path, Float: e.Model,
			FloatName: exp, Spec: evaluate.SpecFromExport(e), Test: test, DataName: "fashion-mnist/2x", Witness: true,
			WitnessLimit: witnessed, Tmp: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := row{name: tc.name, float: rep.FloatScore.Accuracy, int8: rep.Score.Accuracy, tflite: rep.Witness.Accuracy,
			agreeFloat: rep.Agreement, agreeTF: rep.Witness.Agreement, agreeTFTies: rep.Witness.AgreementTies, worstDB: math.Inf(1)}
		noted := false
		for _, l := range rep.Layers {
			if l.Note != "" {
				// The logits: their range is chosen for the scores, and
				// the extremes it clips count as noise.
				noted = noted || (l.Name == "fc" && l.Note == quant.LogitsNote)
				continue
			}
			if l.SQNR < r.worstDB {
				r.worstLayer, r.worstDB = l.Name, l.SQNR
			}
		}
		if !noted {
			t.Errorf("%s: the per-layer table does not say that the logits fc are clipped by design", tc.name)
		}
		rows = append(rows, r)
		t.Logf("%s: quantized and evaluated in %v; TFLite scores within %.1f LSB of ours", tc.name, time.Since(start).Round(time.Millisecond), rep.Witness.MaxDiffLSB)
		if rep.Images != test.Len() || rep.Witness.Images != witnessed {
			t.Errorf("%s: scored %d images (TFLite %d), want %d (%d)", tc.name, rep.Images, rep.Witness.Images, test.Len(), witnessed)
		}
		if rep.FloatScore.Accuracy < 0.6 {
			t.Errorf("%s: float accuracy %.3f; the trained model should reach about 0.77", tc.name, rep.FloatScore.Accuracy)
		}
		if d := 100 * math.Abs(rep.Score.Accuracy-rep.FloatScore.Accuracy); d > 0.5 {
			t.Errorf("%s: int8 accuracy %.2f %% is %.2f points from float %.2f %%; want within 0.5", tc.name,
				100*rep.Score.Accuracy, d, 100*rep.FloatScore.Accuracy)
		}
		// Our runtime follows TFLite's reference kernels (fixed-point
		// requantization, which rounds twice); XNNPACK rounds once in
		// float. They differ by 1 LSB on near-ties, which a few layers on
		// can move a SOFTMAX score by several of its 1/256 steps: images
		// whose two best classes are that close may flip between exactly
		// tied and 1 LSB apart. Strict agreement is logged; the assertion
		// counts an int8 tie between the two top-1 choices as agreement.
		if rep.Witness.AgreementTies < 0.995 {
			t.Errorf("%s: TFLite agrees with our top-1 on %.2f %% of %d images (%.2f %% strictly; disagreeing: %v); want at least 99.5 %%", tc.name,
				100*rep.Witness.AgreementTies, rep.Witness.Images, 100*rep.Witness.Agreement, rep.Witness.Disagree)
		}
		if r.worstDB < 10 {
			t.Errorf("%s: layer %s has an SQNR of %.1f dB; a healthy int8 layer is well above 10", tc.name, r.worstLayer, r.worstDB)
		}
		if len(rows) == 1 {
			// In XNNPACK arithmetic our runtime computes what the real
			// TFLite computes, byte for byte: every top-1 agrees, strictly.
			x, err := evaluate.Evaluate(context.Background(), evaluate.Input{Name: path, Kind: "tflite", Model: q, ModelPath: path,
				Spec: evaluate.SpecFromExport(e), Test: test, DataName: "fashion-mnist/2x", Witness: true,
				WitnessLimit: witnessed, Tmp: t.TempDir(), Arithmetic: interp.ArithmeticXNNPACK})
			if err != nil {
				t.Fatalf("%s (xnnpack arithmetic): %v", tc.name, err)
			}
			t.Logf("%s, xnnpack arithmetic: TFLite agrees strictly on %.2f %% of %d images, max difference %.1f LSB",
				tc.name, 100*x.Witness.Agreement, x.Witness.Images, x.Witness.MaxDiffLSB)
			if x.Witness.Agreement != 1 || x.Witness.MaxDiffLSB != 0 {
				t.Errorf("%s, xnnpack arithmetic: TFLite agrees on %.2f %% of images, max difference %.1f LSB; want 100 %% and 0",
					tc.name, 100*x.Witness.Agreement, x.Witness.MaxDiffLSB)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ResNet-8 (width 8) on 14x14 Fashion-MNIST, %d calibration images, %d test images (TFLite: first %d)\n", calibration, test.Len(), witnessed)
	fmt.Fprintf(&b, "%-11s %8s %8s %8s %10s %12s %12s %12s  %s\n", "method", "float", "int8", "delta", "TFLite", "int8=float", "ours=TFLite",
		"(with ties)", "lowest SQNR")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-11s %7.2f%% %7.2f%% %+7.2f %9.2f%% %11.2f%% %11.2f%% %11.2f%%  %s %.1f dB\n", r.name, 100*r.float, 100*r.int8,
			100*(r.int8-r.float), 100*r.tflite, 100*r.agreeFloat, 100*r.agreeTF, 100*r.agreeTFTies, r.worstLayer, r.worstDB)
	}
	t.Log("\n" + b.String())
}

// checkCommands drives the two commands as a user would.
func checkCommands(t *testing.T, exp string) {
	requireTFLite(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "m.tflite")
	report := filepath.Join(dir, "report.json")
	code, out, errOut := cli("quantize", "--model", exp, "--data", "fashion-mnist", "--downsample", "2", "--calibration", "64",
		"--method", "percentile", "--bias-correction", "--refit-head", "--out", model, "--report", report)
	if code != 0 {
		t.Fatalf("quantize failed: %s", errOut)
	}
	for _, want := range []string{"calibrated on 64 training images, method percentile (99.99 % of |x|)", "lossless channel-selection",
		"bias correction", "logits fc: range", "head refit: fc (32 features) on 64 calibration images", "wrote " + model} {
		if !strings.Contains(out, want) {
			t.Errorf("quantize output lacks %q:\n%s", want, out)
		}
	}
	var rep quant.Report
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &struct {
		Samples   *int
		HeadRefit **quant.HeadRefit
	}{&rep.Samples, &rep.HeadRefit}) != nil || rep.Samples != 64 || rep.HeadRefit == nil || rep.HeadRefit.Samples != 64 {
		t.Errorf("report %s: %v, samples %d, head refit %+v", report, err, rep.Samples, rep.HeadRefit)
	}
	m, err := resnet.LoadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Outputs) != 2 || len(m.Meta.Labels) != 10 || m.Meta.Labels[9] != "Ankle boot" || len(m.Meta.Std) != 1 {
		t.Errorf("the .tflite does not carry two outputs, the labels and the normalization: outputs %v, meta %+v", m.Outputs, m.Meta)
	}

	jsonOut := filepath.Join(dir, "eval.json")
	code, out, errOut = cli("eval", "--model", model, "--float", exp, "--data", "fashion-mnist", "--downsample", "2", "--limit", "200",
		"--witness", "--json", jsonOut)
	if code != 0 {
		t.Fatalf("eval failed: %s", errOut)
	}
	for _, want := range []string{"images 200", "top-1 agreement with float", "TFLite (litert)", "per-class accuracy", "Ankle boot",
		"confusion matrix", "per-layer SQNR", "layer2.0.relu2", "ADD"} {
		if !strings.Contains(out, want) {
			t.Errorf("eval output lacks %q:\n%s", want, out)
		}
	}
	var ev evaluate.Report
	if b, err := os.ReadFile(jsonOut); err != nil || json.Unmarshal(b, &ev) != nil || ev.Images != 200 || ev.Witness == nil || len(ev.LayerJSON) == 0 {
		t.Errorf("eval JSON %s: %v, %+v", jsonOut, err, ev)
	}
	checkThreadsDoNotChangeEval(t, model, exp, ev)

	// The other real TFLite on the same float-io model; LiteRT.js refuses
	// int8 inputs, and the flag says so.
	code, out, errOut = cli("eval", "--model", model, "--data", "fashion-mnist", "--downsample", "2", "--limit", "50",
		"--witness", "--witness-engine", "tfjs", "--layers", "0")
	if code != 0 || !strings.Contains(out, "TFLite (tfjs)") {
		t.Errorf("eval --witness-engine tfjs: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = cli("eval", "--model", model, "--data", "fashion-mnist", "--downsample", "2", "--witness", "--witness-engine", "tflite")
	if code == 0 || !strings.Contains(errOut, "want litert or tfjs") {
		t.Errorf("eval --witness-engine tflite: exit %d, %s", code, errOut)
	}

	// The float export alone, through our interpreter.
	code, out, errOut = cli("eval", "--model", exp, "--data", "fashion-mnist", "--downsample", "2", "--limit", "100")
	if code != 0 || !strings.Contains(out, "(export)") || !strings.Contains(out, "accuracy") {
		t.Errorf("eval of the export: code %d\n%s%s", code, out, errOut)
	}
}

// checkOtherModels evaluates the training run itself (through GoMLX) and a
// model with int8 inputs and outputs (in tfjs-tflite, which takes them).
func checkOtherModels(t *testing.T, exp string) {
	requireTFLite(t)
	run := filepath.Join(filepath.Dir(exp), "run")
	code, out, errOut := cli("eval", "--model", run, "--downsample", "2", "--limit", "100")
	if code != 0 || !strings.Contains(out, "training run") || !strings.Contains(out, "images 100") {
		t.Errorf("eval of the run directory: exit %d\n%s%s", code, out, errOut)
	}
	model := filepath.Join(t.TempDir(), "io8.tflite")
	if code, _, errOut := cli("quantize", "--model", exp, "--downsample", "2", "--calibration", "32", "--int8-io", "--out", model); code != 0 {
		t.Fatalf("quantize --int8-io: %s", errOut)
	}
	code, out, errOut = cli("eval", "--model", model, "--float", exp, "--downsample", "2", "--limit", "100", "--witness", "--layers", "0")
	if code != 0 || !strings.Contains(out, "TFLite (tfjs)") || strings.Contains(out, "per-layer SQNR") {
		t.Fatalf("eval of the int8-io model: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := cli("eval", "--model", model, "--downsample", "2", "--witness", "--witness-engine", "litert"); code == 0 || !strings.Contains(errOut, "LiteRT.js refuses int8 inputs") {
		t.Errorf("eval --witness-engine litert of the int8-io model: exit %d, %s", code, errOut)
	}
	var acc, float float64
	if _, err := fmt.Sscanf(out[strings.Index(out, "accuracy  model"):], "accuracy  model %f %% float %f", &acc, &float); err != nil || math.Abs(acc-float) > 3 {
		t.Errorf("int8-io model accuracy %.2f %%, float %.2f %% (%v); they should be close:\n%s", acc, float, err, out)
	}
}

func checkBadInput(t *testing.T, exp string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.tflite")
	v2 := filepath.Join(dir, "v2")
	if err := os.MkdirAll(v2, 0o755); err != nil {
		t.Fatal(err)
	}
	js, _ := os.ReadFile(filepath.Join(exp, "model.json"))
	os.WriteFile(filepath.Join(v2, "model.json"), []byte(strings.Replace(string(js), train.ExportFormat, "shortcut-float-v9", 1)), 0o644)
	wb, _ := os.ReadFile(filepath.Join(exp, "weights.bin"))
	os.WriteFile(filepath.Join(v2, "weights.bin"), wb, 0o644)

	// A colour dataset (CIFAR-100 layout) and a grey one of 3 classes.
	cifar := filepath.Join(dir, "cifar100")
	os.MkdirAll(cifar, 0o755)
	if err := data.WriteCIFAR(filepath.Join(cifar, "train.bin"), make([]uint8, 4*32*32*3), []int32{0, 1, 2, 3}, []int32{0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "three")
	for _, c := range []string{"a", "b", "c"} {
		os.MkdirAll(filepath.Join(folder, c), 0o755)
		f, err := os.Create(filepath.Join(folder, c, "x.png"))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, image.NewGray(image.Rect(0, 0, 14, 14)))
		f.Close()
	}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing data", []string{"quantize", "--model", exp, "--data", "fashion-mnist:" + filepath.Join(dir, "nowhere"), "--out", out}, "nowhere"},
		{"data with other channels", []string{"quantize", "--model", exp, "--data", "cifar100:" + cifar, "--out", out},
			"have 3 channels, the model takes 1"},
		{"data with other classes", []string{"quantize", "--model", exp, "--data", "folder:" + folder, "--out", out},
			"has 3 classes (a, b, c), the model 10"},
		{"no model", []string{"quantize", "--out", out}, "--model EXPORT_DIR and --out M.tflite are required"},
		{"too little calibration data", []string{"quantize", "--model", exp, "--downsample", "2", "--calibration", "10", "--out", out},
			"at least 32 images"},
		{"more calibration images than the data has", []string{"quantize", "--model", exp, "--downsample", "2", "--calibration", "70000", "--out", out},
			"has only 60000 images"},
		{"images of the wrong size", []string{"quantize", "--model", exp, "--out", out}, "are 28x28, the model takes 14x14 images (the model was trained on images shrunk 2x: add --downsample 2)"},
		{"unknown method", []string{"quantize", "--model", exp, "--method", "kl", "--out", out}, "want one of minmax, percentile, mse"},
		{"unknown export version", []string{"quantize", "--model", v2, "--downsample", "2", "--out", out}, `unknown format version "shortcut-float-v9"`},
		{"eval of nothing", []string{"eval", "--model", filepath.Join(dir, "missing.tflite")}, "missing.tflite"},
		{"eval of an unrelated directory", []string{"eval", "--model", dir}, "neither model.json"},
		{"witness of an export", []string{"eval", "--model", exp, "--witness", "--downsample", "2"}, "--witness runs a .tflite"},
	}
	for _, tc := range cases {
		code, _, errOut := cli(tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want 1 and one line containing %q", tc.name, code, errOut, tc.want)
		}
	}
}

// checkThreadsDoNotChangeEval scores the same images with one worker and
// with three: every count is the same, the per-layer SQNR equal up to the
// order of the sums.
func checkThreadsDoNotChangeEval(t *testing.T, model, exp string, want evaluate.Report) {
	t.Helper()
	dir := t.TempDir()
	var got [2]evaluate.Report
	for k, threads := range []string{"1", "3"} {
		j := filepath.Join(dir, threads+".json")
		code, _, errOut := cli("eval", "--model", model, "--float", exp, "--data", "fashion-mnist", "--downsample", "2",
			"--limit", "200", "--layers", "0", "--threads", threads, "--json", j)
		if code != 0 {
			t.Fatalf("eval --threads %s failed: %s", threads, errOut)
		}
		if b, err := os.ReadFile(j); err != nil || json.Unmarshal(b, &got[k]) != nil {
			t.Fatalf("eval --threads %s JSON: %v", threads, err)
		}
	}
	for k, r := range got {
		if r.Images != want.Images || r.Agreement != want.Agreement || r.Score.Correct != want.Score.Correct ||
			r.FloatScore.Correct != want.FloatScore.Correct || !slices.EqualFunc(r.Score.Confusion, want.Score.Confusion, slices.Equal) ||
			len(r.LayerJSON) != len(want.LayerJSON) {
			t.Errorf("eval with %d worker(s) differs: images %d agreement %v correct %d/%d, want %d %v %d/%d",
				2*k+1, r.Images, r.Agreement, r.Score.Correct, r.FloatScore.Correct, want.Images, want.Agreement,
				want.Score.Correct, want.FloatScore.Correct)
			continue
		}
		for i, l := range r.LayerJSON {
			if d := math.Abs(l.SQNRdB - want.LayerJSON[i].SQNRdB); l.Name != want.LayerJSON[i].Name || d > 1e-6 {
				t.Errorf("eval with %d worker(s): layer %s SQNR %.9f dB, want %s %.9f", 2*k+1, l.Name, l.SQNRdB,
					want.LayerJSON[i].Name, want.LayerJSON[i].SQNRdB)
			}
		}
	}
}

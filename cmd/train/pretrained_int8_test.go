package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/models"
)

// writeFashionPNGs writes Fashion-MNIST images first..first+n-1 of a split's pixels (28x28 grey)
// as PNG files in dir and returns their paths.
func writeFashionPNGs(t *testing.T, dir string, px []uint8, first, n int) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := first; i < first+n; i++ {
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		copy(img.Pix, px[i*784:(i+1)*784])
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%05d.png", i))
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// readInputs prepares image files as pretrained's calibration does: resized whole to size x size
// (a no-op for 28x28 Fashion-MNIST at input 28), normalized with the model's mean and std.
func readInputs(t *testing.T, files []string, size int, mean, std []float32) [][]float32 {
	t.Helper()
	out := make([][]float32, len(files))
	for i, p := range files {
		x, err := data.ReadImageInput(p, size, size, data.Normalization{Mean: mean, Std: std})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = x
	}
	return out
}

// fashionBackbone trains a torchvision-layout ResNet-18 (base width 8, one grey channel, 28x28
// input, 10 classes) on the first `images` real Fashion-MNIST training images for `epochs` epochs
// on the CPU (train.Fit, the seed recipe: Adam, constant learning rate 1e-2, batch 64), exports it
// with batch norm folded, and writes the folded network as a torchvision state dict in safetensors:
// each convolution's folded weights, its batch norm the identity (weight 1, running mean 0, running
// variance 1 - eps) carrying the folded bias, and the classifier. It returns the file and the
// export (its plain-loop forward pass and its input normalization).
func fashionBackbone(t *testing.T, dir string, images, epochs int) (weights string, ref *train.ExportedModel) {
	t.Helper()
	return fashionBackboneWith(t, dir, backboneConfig{images: images, epochs: epochs, width: 8, lr: 1e-2, seed: 7})
}

// backboneConfig is how fashionBackboneWith trains.
type backboneConfig struct {
	images, epochs, width int
	lr                    float64
	seed                  uint64
}

func fashionBackboneWith(t *testing.T, dir string, bc backboneConfig) (weights string, ref *train.ExportedModel) {
	t.Helper()
	src := data.Source{Format: data.FormatFashionMNIST, Dir: data.FashionMNISTDir}
	d, err := data.Load(src, "train")
	if err != nil {
		t.Fatalf("Fashion-MNIST is needed (apt-get install dataset-fashion-mnist): %v", err)
	}
	run, exp := filepath.Join(dir, "run"), filepath.Join(dir, "export")
	cfg := train.Config{Backend: "cpu", Arch: "resnet18", BaseWidth: bc.width, TrainSet: d.Head(bc.images), Recipe: "seed", LR: bc.lr,
		Epochs: bc.epochs, NoAugment: true, Dir: run, Seed: bc.seed, Workers: 2}
	if _, err := train.Fit(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := train.Export(train.ExportOptions{Backend: "cpu", Dir: run, Out: exp}); err != nil {
		t.Fatal(err)
	}
	ex, err := train.LoadExported(exp)
	if err != nil {
		t.Fatal(err)
	}
	net, err := models.New(models.Config{Arch: "resnet18", BaseWidth: bc.width, Height: 28, Width: 28, Channels: 1, NumClasses: 10})
	if err != nil {
		t.Fatal(err)
	}
	tensor := func(name string) ([]float32, []int) {
		v, s, err := ex.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		return v, s
	}
	eps := float32(ex.Manifest.BNEpsilon)
	var ts []train.NamedTensor
	conv := ""
	for _, l := range net.Layers {
		switch l.Kind {
		case models.OpConv:
			v, s := tensor(l.Name + ".weights") // [O, KH, KW, I]
			o, kh, kw, in := s[0], s[1], s[2], s[3]
			w := make([]float32, len(v))
			for a := range o {
				for y := range kh {
					for x := range kw {
						for c := range in {
							w[((a*in+c)*kh+y)*kw+x] = v[((a*kh+y)*kw+x)*in+c]
						}
					}
				}
			}
			ts = append(ts, train.NamedTensor{Name: l.Name + ".weight", Shape: []int{o, in, kh, kw}, Data: w})
			conv = l.Name
		case models.OpBatchNorm:
			b, _ := tensor(conv + ".bias")
			one, zero, v := make([]float32, l.Out), make([]float32, l.Out), make([]float32, l.Out)
			for i := range one {
				one[i], v[i] = 1, 1-eps
			}
			for _, p := range []struct {
				s string
				v []float32
			}{{"weight", one}, {"bias", b}, {"running_mean", zero}, {"running_var", v}} {
				ts = append(ts, train.NamedTensor{Name: l.Name + "." + p.s, Shape: []int{l.Out}, Data: p.v})
			}
		case models.OpDense:
			w, s := tensor(l.Name + ".weights")
			b, _ := tensor(l.Name + ".bias")
			ts = append(ts, train.NamedTensor{Name: l.Name + ".weight", Shape: s, Data: w},
				train.NamedTensor{Name: l.Name + ".bias", Shape: []int{l.Out}, Data: b})
		}
	}
	weights = filepath.Join(dir, "fashion-resnet18.safetensors")
	writePretrainedSafetensors(t, weights, ts)
	return weights, ex
}

// TestPretrainedInt8AgreesWithItsFloatModelOnFashionMNIST is issue 16's proof of the int8 model
// that `pretrained --calibration images:DIR` writes, on real images with a trained backbone.
//
// The setup: the repository ships no Fashion-MNIST-trained torchvision ResNet (the demo model is
// a ResNet-8, and only as int8), and random weights give near-uniform scores that make a top-1
// comparison meaningless, so the test trains one: fashionBackbone fits a torchvision-layout
// ResNet-18 (base width 8, grey 28x28 input) for one epoch over the whole 60,000-image training
// split on the CPU (about 2-4 minutes on the 2 shared cores; 83-85 % test accuracy) and writes it
// as a torchvision safetensors file. `pretrained --calibration images:DIR` reads that file and
// calibrates on 300 training images written as PNG (calibration data is training data, as a user's
// would be). Top-1 agreement of model-int8.tflite with model-float.tflite is measured on the whole
// 10,000-image test split, which neither training nor calibration saw (standard error of the share
// about 0.1 point). Last, LiteRT.js runs the int8 model on eight test images (the disagreements
// first: the images nearest a tie) and its scores and embedding must equal our runtime's bit for
// bit in XNNPACK arithmetic.
//
// Agreement: the issue asks for 99 % and the test requires it. Measured with this setup (10,000
// test images), training seeds 7/8/9/10/11: 99.30/99.56/99.24/99.21/99.38 % (mean 99.34 %,
// float accuracy 83.3-84.7 %; this test trains seed 7). The flips are near-ties: every image
// where the float model's top-1 score leads its second by 0.2 or more agrees (checked below;
// seed 7: 8,865 such images, the largest lead among the 70 flips 0.104), and many flips are exact ties of the int8 scores, whose steps are 1/256
// (TFLite's fixed SOFTMAX output scale), settled by class order: seed 10 has 49 such ties among
// its 79 flips. What limits agreement is int8 noise in the embedding (about 34 dB SQNR through
// per-tensor activation scales, with a 1x1 last stage where pooling averages nothing), measured
// per seed: a float classifier on the int8 model's embedding agrees on 99.32-99.56 %, while the
// float embedding rounded to the int8 embedding's step alone agrees on 99.92-99.96 %. How
// converged the backbone is matters most: the earlier fixture (6,000 training images, two epochs,
// 74-79 % accuracy, more near-ties) measured 99.28/99.08/99.07/98.82/98.95 % on the same seeds.
// Variants measured on that weaker fixture (2,000 test images unless 10k is said; seed 7 unless
// said):
//   - learning rate 3e-3: 98.80 %, seed 8 98.65 %; 10k 98.87 %. 2e-2: 98.55 %, seed 9 98.85 %;
//     5e-3: 99.25 %; 1e-3: 98.05 %.
//   - width 16: 99.50 %; 10k seed 9 99.07 %. Width 16 on 4,000 images: 99.15 %, seed 9 98.35 %;
//     one epoch: 99.20 %, seeds 8/9 98.85/98.55 %.
//   - three epochs: 98.90 % (3e-3), seed 9 99.05 % (1e-2); no validation split 98.85 %; cosine
//     schedule 98.55 %; the fast recipe (AdamW, cosine, 1e-2) 99.10 %, seed 9 99.05 %; batch 32
//     99.20 %; input 56 (pixels doubled): 98.60 %.
//   - 12,000 images for one epoch, 10k: seeds 7-12 99.24/99.18/99.28/99.01/98.46/98.96 %.
//   - calibration: 1,000 images 98.65 % (3e-3); 500 vs 300 images on four models -0.5 to +0.35
//     points; bias correction on six models (10k) -0.07 to +0.13 points; head refit 98.90 %,
//     seed 9 98.40 %; percentile/MSE ranges 98.55-98.90 %. None changes the picture, so
//     pretrained's default (min/max, no correction) stays.
func TestPretrainedInt8AgreesWithItsFloatModelOnFashionMNIST(t *testing.T) {
	const (
		input        = 28
		trainImages  = 60000 // the whole training split
		epochs       = 1
		calibStart   = 10000
		calibCount   = 300
		testImages   = 10000 // the whole test split
		witnessed    = 8
		minAgreement = 0.99 // the figure
		// clearLead: images whose float top-1 score leads the second by this much must all agree.
		clearLead = 0.2
	)
	start := time.Now()
	dir := t.TempDir()
	weights, ref := fashionBackbone(t, dir, trainImages, epochs)
	trained := time.Since(start)
	mean, std := ref.Manifest.Input.Mean, ref.Manifest.Input.Std

	trainPx, _ := fashionImages(t, "train", calibStart+calibCount)
	testPx, testLab := fashionImages(t, "t10k", testImages)
	calib := filepath.Join(dir, "calib")
	writeFashionPNGs(t, calib, trainPx, calibStart, calibCount)
	test := readInputs(t, writeFashionPNGs(t, filepath.Join(dir, "test"), testPx, 0, testImages), input, mean, std)

	out := filepath.Join(dir, "out")
	code, stdout, stderr := cli("pretrained", "--arch", "resnet18", "--weights", weights, "--classes", "10", "--input", fmt.Sprint(input),
		"--mean", fmt.Sprint(mean[0]), "--std", fmt.Sprint(std[0]), "--calibration", "images:"+calib, "--out", out)
	if code != 0 {
		t.Fatalf("pretrained --calibration: exit %d: %s", code, stderr)
	}
	if !bytes.Contains([]byte(stdout), []byte(fmt.Sprintf("calibrated on %d", calibCount))) {
		t.Errorf("pretrained's summary does not say it calibrated on the %d images:\n%s", calibCount, stdout)
	}
	floatPath, int8Path := filepath.Join(out, "model-float.tflite"), filepath.Join(out, "model-int8.tflite")
	fm, err := resnet.LoadFile(floatPath)
	if err != nil {
		t.Fatal(err)
	}
	qm, err := resnet.LoadFile(int8Path)
	if err != nil {
		t.Fatal(err)
	}
	fit, err := interp.New(fm, interp.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fit.Close()
	qit, err := interp.New(qm, interp.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer qit.Close()
	// The float model computes the trained network: the export's own forward pass agrees.
	for i, x := range test[:20] {
		logits, err := ref.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		scores, _ := runModel(t, fm, x)
		for j, p := range softmax(logits) {
			if math.Abs(p-float64(scores[j])) > 1e-4 {
				t.Fatalf("test image %d class %d: model-float.tflite scores %g, the trained export %g", i, j, scores[j], p)
			}
		}
	}
	agree, floatRight, int8Right, clear, clearAgree := 0, 0, 0, 0, 0
	worstLead := float32(0) // the float model's top-1 score minus its second, on the largest disagreement
	var disagree []int
	for i, x := range test {
		copy(fit.Input(0).Float32(), x)
		if err := qit.Input(0).SetFloat32(x); err != nil {
			t.Fatal(err)
		}
		if err := fit.Invoke(); err != nil {
			t.Fatal(err)
		}
		if err := qit.Invoke(); err != nil {
			t.Fatal(err)
		}
		qs, err := qit.Output(0).Floats()
		if err != nil {
			t.Fatal(err)
		}
		fs := fit.Output(0).Float32()
		f, q := argmax(fs), argmax(qs)
		lead := fs[f] - secondLargest(fs)
		if f == q {
			agree++
		} else {
			disagree = append(disagree, i)
			worstLead = max(worstLead, lead)
		}
		if lead >= clearLead {
			clear++
			if f == q {
				clearAgree++
			}
		}
		if f == int(testLab[i]) {
			floatRight++
		}
		if q == int(testLab[i]) {
			int8Right++
		}
	}
	share := float64(agree) / float64(len(test))
	t.Logf("images where the float top-1 score leads the second by %g or more: %d, int8 agrees on %d; the disagreements' float lead is at most %.3f",
		clearLead, clear, clearAgree, worstLead)
	t.Logf("int8 top-1 agreement with float on %d held-out Fashion-MNIST test images: %d (%.2f %%); accuracy float %.2f %%, int8 %.2f %%; disagreements at %v",
		len(test), agree, 100*share, 100*float64(floatRight)/float64(len(test)), 100*float64(int8Right)/float64(len(test)), disagree)
	if floatRight < len(test)/2 {
		t.Fatalf("the float model is right on %d of %d test images: the backbone did not learn, agreement would prove little", floatRight, len(test))
	}
	if share < minAgreement {
		t.Errorf("int8 and float agree on top-1 for %.2f %% of %d held-out images, want at least %.1f %%", 100*share, len(test), 100*minAgreement)
	}
	if clearAgree != clear {
		t.Errorf("int8 changes the top-1 of %d of the %d images where the float model's top-1 leads by %g or more: not a near-tie, a quantization fault",
			clear-clearAgree, clear, clearLead)
	}

	// The report names the calibration images: all 300 (the default count takes up to 500).
	var rep struct {
		Calibration calibrationRecord `json:"calibration"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "model-int8.report.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.Calibration; c.Count != calibCount || !c.DefaultCount || len(c.Images) != calibCount || c.Available != calibCount {
		t.Errorf("report calibration %+v: want the default count, all %d images listed", c, calibCount)
	}

	// LiteRT.js (XNNPACK) on the int8 model: bit for bit what our runtime computes in XNNPACK arithmetic.
	requireTFLite(t)
	xit, err := interp.New(qm, interp.Options{Threads: 1, Arithmetic: interp.ArithmeticXNNPACK})
	if err != nil {
		t.Fatal(err)
	}
	defer xit.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	shape := qm.Tensors[qm.Inputs[0]].Shape
	// The disagreements first (the images nearest a tie), then the first test images.
	picks := slices.Clone(disagree[:min(len(disagree), witnessed/2)])
	for i := 0; len(picks) < witnessed; i++ {
		if !slices.Contains(picks, i) {
			picks = append(picks, i)
		}
	}
	wdir := t.TempDir()
	var jobs []witness.Job
	for k, i := range picks {
		in := filepath.Join(wdir, fmt.Sprintf("in%d.npy", k))
		if err := npy.Write(in, shape, test[i]); err != nil {
			t.Fatal(err)
		}
		job := witness.Job{Model: int8Path, Engine: witness.LiteRT, Inputs: []string{in}, OutputDir: filepath.Join(wdir, fmt.Sprintf("out%d", k))}
		if err := os.Mkdir(job.OutputDir, 0o755); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job)
	}
	res, err := witness.Run(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	for k, i := range picks {
		if res[k].Err != nil {
			t.Fatalf("LiteRT.js on test image %d: %v", i, res[k].Err)
		}
		if err := xit.Input(0).SetFloat32(test[i]); err != nil {
			t.Fatal(err)
		}
		if err := xit.Invoke(); err != nil {
			t.Fatal(err)
		}
		for o, name := range []string{"scores", "embedding"} {
			ours, err := xit.Output(o).Floats()
			if err != nil {
				t.Fatal(err)
			}
			_, d, err := npy.Read(filepath.Join(jobs[k].OutputDir, fmt.Sprintf("output_%d.npy", o)))
			if err != nil {
				t.Fatalf("LiteRT.js %s of test image %d: %v", name, i, err)
			}
			v, ok := d.([]float32)
			if !ok || len(v) != len(ours) {
				t.Fatalf("LiteRT.js %s of test image %d: %T of %d values, want %d float32", name, i, d, len(v), len(ours))
			}
			for c := range v {
				if math.Float32bits(v[c]) != math.Float32bits(ours[c]) {
					t.Fatalf("test image %d %s[%d]: LiteRT.js %v, our runtime (XNNPACK arithmetic) %v", i, name, c, v[c], ours[c])
				}
			}
		}
	}
	t.Logf("LiteRT.js gives our scores and embedding bit for bit on test images %v; training %v, whole test %v", picks,
		trained.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func secondLargest(v []float32) float32 {
	a, b := float32(math.Inf(-1)), float32(math.Inf(-1))
	for _, x := range v {
		switch {
		case x > a:
			a, b = x, a
		case x > b:
			b = x
		}
	}
	return b
}

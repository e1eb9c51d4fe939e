package onnx

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/ort"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// requireORT skips when tools/ort-node is not installed (make setup installs
// it, so under make test these tests run).
func requireORT(t *testing.T) {
	t.Helper()
	if err := ort.Available(); err != nil {
		t.Skipf("ONNX Runtime is not installed, so the exported models cannot be run: %v", err)
	}
}

func floatResNet(t *testing.T, depth int, hwc [3]int, classes int) *resnet.Model {
	t.Helper()
	m, err := build.ResNet(build.Config{Depth: depth, Input: hwc, Classes: classes, Weights: build.RandomWeights(uint64(depth))})
	if err != nil {
		t.Fatalf("build ResNet-%d: %v", depth, err)
	}
	return m
}

func int8ResNet(t *testing.T, depth int, hwc [3]int, classes int, int8IO bool) *resnet.Model {
	t.Helper()
	f := floatResNet(t, depth, hwc, classes)
	r := rand.New(rand.NewPCG(uint64(depth), 9))
	calib := make([]quant.Sample, 4)
	for i := range calib {
		calib[i] = quant.Sample{normal(r, hwc[0]*hwc[1]*hwc[2])}
	}
	o := quant.Options{}
	if int8IO {
		o.IO = quant.Int8IO
	}
	m, err := quant.Model(f, calib, o)
	if err != nil {
		t.Fatalf("quantize ResNet-%d: %v", depth, err)
	}
	return m
}

func quantizeChain(t *testing.T, f *resnet.Model) *resnet.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(2, 2))
	n := f.Tensors[f.Inputs[0]].NumElements()
	calib := []quant.Sample{{normal(r, n)}, {normal(r, n)}, {normal(r, n)}}
	m, err := quant.Model(f, calib, quant.Options{})
	if err != nil {
		t.Fatalf("quantize the chain: %v", err)
	}
	return m
}

func normal(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

type agreementCase struct {
	name  string
	model *resnet.Model
	acts  Activations
	// scoresLSB, when set, replaces maxLSB for output 0: the chain's logits
	// have a coarse scale (0.28), so one logit step moves a softmax output by
	// up to 0.07 = 18 LSB of its 1/256 scale (measured: 14 LSB with int8
	// activations, 3 with uint8; the logits themselves differ by <= 3 LSB).
	scoresLSB float64
}

// TestExportedResNetsAgreeWithOurRuntimeInONNXRuntime is the exporter's
// contract: the ONNX form of a model computes, in ONNX Runtime, what our
// runtime computes from the .tflite. Float models agree to 1e-4 of each
// output's largest magnitude (only the summation order differs). Int8
// models agree within maxLSB steps of each output's quantization: ONNX
// Runtime requantizes in float and rounds half to even, TFLite's reference
// kernels use a fixed-point multiplier and round half away from zero, so a
// value near a rounding tie can land one step apart in any layer, and the
// step travels on through the following layers.
func TestExportedResNetsAgreeWithOurRuntimeInONNXRuntime(t *testing.T) {
	requireORT(t)
	if testing.Short() {
		t.Skip("runs five ResNets in two runtimes (about 10 s)")
	}
	const (
		floatRel = 1e-4
		// maxLSB: measured largest differences on these models (see the
		// log) were at most 1 LSB for scores and 4 for the embedding; the
		// bound leaves room for other random weights.
		maxLSB = 8
		images = 2
	)
	cases := []agreementCase{
		{"float ResNet-8 32x32", floatResNet(t, 8, [3]int{32, 32, 3}, 10), "", 0},
		{"float ResNet-20 32x32", floatResNet(t, 20, [3]int{32, 32, 3}, 10), "", 0},
		{"float ResNet-18 64x64", floatResNet(t, 18, [3]int{64, 64, 3}, 10), "", 0},
	}
	for _, acts := range []Activations{Int8, UInt8} {
		cases = append(cases,
			agreementCase{"int8 ResNet-8 32x32 " + string(acts) + " activations", int8ResNet(t, 8, [3]int{32, 32, 3}, 10, false), acts, 0},
			agreementCase{"int8 ResNet-20 32x32 " + string(acts) + " activations", int8ResNet(t, 20, [3]int{32, 32, 3}, 10, false), acts, 0},
			agreementCase{"int8 ResNet-18 64x64 " + string(acts) + " activations", int8ResNet(t, 18, [3]int{64, 64, 3}, 10, false), acts, 0},
		)
	}
	cases = append(cases, agreementCase{"int8 ResNet-8 32x32 int8 inputs and outputs, uint8 activations",
		int8ResNet(t, 8, [3]int{32, 32, 3}, 10, true), UInt8, 0})
	chain := chainModel(t)
	cases = append(cases, agreementCase{"float depthwise/pool/squeeze/reshape chain", chain, "", 0})
	for _, acts := range []Activations{Int8, UInt8} {
		cases = append(cases, agreementCase{"int8 depthwise/pool/squeeze/reshape chain " + string(acts) + " activations", quantizeChain(t, chain), acts, 24})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runner, err := ort.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 5))
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Export(c.model, Options{Activations: c.acts})
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			path := filepath.Join(dir, fmt.Sprintf("case%d.onnx", ci))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			it, err := interp.New(c.model, interp.Options{})
			if err != nil {
				t.Fatalf("our runtime: %v", err)
			}
			defer it.Close()
			worst := make([]float64, it.NumOutputs())
			for img := range images {
				in := it.Input(0)
				if err := in.SetFloat32(normal(r, in.NumElements())); err != nil {
					t.Fatal(err)
				}
				inPath := filepath.Join(dir, fmt.Sprintf("case%d_in%d.npy", ci, img))
				var data any = in.Float32()
				if in.Type == resnet.Int8 {
					data = in.Int8()
				}
				if err := npy.Write(inPath, in.Shape, data); err != nil {
					t.Fatal(err)
				}
				if err := it.Invoke(); err != nil {
					t.Fatalf("our runtime: %v", err)
				}
				outDir := filepath.Join(dir, fmt.Sprintf("case%d_out%d", ci, img))
				if err := os.Mkdir(outDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if _, err := runner.Do(ort.Job{Model: path, Inputs: []string{inPath}, OutputDir: outDir}); err != nil {
					t.Fatalf("ONNX Runtime: %v", err)
				}
				for o := range it.NumOutputs() {
					ours, err := it.Output(o).Floats()
					if err != nil {
						t.Fatal(err)
					}
					theirs := readReal(t, filepath.Join(outDir, fmt.Sprintf("output_%d.npy", o)), it.Output(o).Quant)
					if len(theirs) != len(ours) {
						t.Fatalf("output %d: ONNX Runtime gave %d values, ours %d", o, len(theirs), len(ours))
					}
					var maxAbs, maxDiff float64
					for i := range ours {
						maxAbs = max(maxAbs, math.Abs(float64(ours[i])))
						maxDiff = max(maxDiff, math.Abs(float64(ours[i]-theirs[i])))
					}
					if c.model.QuantBehind(c.model.Outputs[o]) == nil {
						worst[o] = max(worst[o], maxDiff/max(maxAbs, 1e-30))
						continue
					}
					lsb := float64(c.model.QuantBehind(c.model.Outputs[o]).Scale[0])
					worst[o] = max(worst[o], math.Round(maxDiff/lsb))
				}
			}
			for o, w := range worst {
				name := c.model.Tensors[c.model.Outputs[o]].Name
				if c.model.QuantBehind(c.model.Outputs[o]) == nil {
					t.Logf("output %d %q: largest difference %.2g of the largest value", o, name, w)
					if w > floatRel {
						t.Errorf("output %d %q: ONNX Runtime differs from our runtime by %.3g of the output's largest value; want <= %g", o, name, w, floatRel)
					}
					continue
				}
				bound := float64(maxLSB)
				if o == 0 && c.scoresLSB > 0 {
					bound = c.scoresLSB
				}
				t.Logf("output %d %q: largest difference %g LSB", o, name, w)
				if w > bound {
					t.Errorf("output %d %q: ONNX Runtime differs from our runtime by %g LSB; want <= %g", o, name, w, bound)
				}
			}
		})
	}
}

// readReal reads an output .npy as real values (int8 outputs dequantized
// with the .tflite's parameters).
func readReal(t *testing.T, path string, q *resnet.Quant) []float32 {
	t.Helper()
	_, data, err := npy.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	switch v := data.(type) {
	case []float32:
		return v
	case []int8:
		out := make([]float32, len(v))
		if !q.DequantizeInt8(out, v) {
			t.Fatalf("%s: int8 output without per-tensor quantization", path)
		}
		return out
	}
	t.Fatalf("%s holds %T; want float32 or int8", path, data)
	return nil
}

func TestONNXRuntimeRefusesNothingItShouldRunAndReportsBadInputs(t *testing.T) {
	requireORT(t)
	m := floatResNet(t, 8, [3]int{16, 16, 3}, 4)
	b, err := Export(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong.npy")
	if err := npy.Write(wrong, []int{1, 16, 16, 3}, make([]int8, 16*16*3)); err != nil {
		t.Fatal(err)
	}
	_, errs, err := ort.Run(context.Background(), []ort.Job{
		{Model: path, Inputs: []string{wrong}},
		{Model: filepath.Join(dir, "missing.onnx"), Inputs: []string{wrong}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] == nil || !contains(errs[0].Error(), "int8", "float32") {
		t.Errorf("an int8 input for a float model: %v; want an error naming both types", errs[0])
	}
	if errs[1] == nil || !contains(errs[1].Error(), "missing.onnx") {
		t.Errorf("a missing model: %v; want an error naming the file", errs[1])
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// The reason for the uint8 option: with uint8 activations and int8
// per-channel weights ONNX Runtime turns every DQ -> Conv -> Q group into
// its integer QLinearConv and every residual Add into QLinearAdd, so the
// benchmark times its integer kernels, not a float fallback.
func TestUInt8ActivationsRunAsIntegerKernelsInONNXRuntime(t *testing.T) {
	requireORT(t)
	m := int8ResNet(t, 20, [3]int{32, 32, 3}, 10, false)
	dir := t.TempDir()
	for _, acts := range []Activations{UInt8, Int8} {
		b, err := Export(m, Options{Activations: acts})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, string(acts)+".onnx")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(dir, "in.npy")
		if err := npy.Write(in, []int{1, 32, 32, 3}, make([]float32, 32*32*3)); err != nil {
			t.Fatal(err)
		}
		opt := filepath.Join(dir, string(acts)+"-optimized.onnx")
		_, errs, err := ort.Run(context.Background(), []ort.Job{{Model: path, Inputs: []string{in}, OptimizedModel: opt}})
		if err != nil || errs[0] != nil {
			t.Fatalf("ONNX Runtime: %v %v", err, errs[0])
		}
		optimized, err := os.ReadFile(opt)
		if err != nil {
			t.Fatal(err)
		}
		convs, adds := count(summarize(t, b).ops, "Conv"), count(summarize(t, b).ops, "Add")
		s := summarize(t, optimized)
		t.Logf("%s activations: %d Conv -> %d QLinearConv, %d Conv left; %d Add -> %d QLinearAdd", acts, convs,
			count(s.ops, "QLinearConv"), count(s.ops, "Conv")+count(s.ops, "FusedConv"), adds, count(s.ops, "QLinearAdd"))
		if acts == UInt8 && (count(s.ops, "QLinearConv") != convs || count(s.ops, "QLinearAdd") != adds) {
			t.Errorf("uint8 activations: ONNX Runtime fused %d of %d Conv and %d of %d Add into integer kernels; want all: %v",
				count(s.ops, "QLinearConv"), convs, count(s.ops, "QLinearAdd"), adds, s.ops)
		}
	}
}

// chainModel uses the operators and options the ResNets leave out:
// depthwise convolution with a multiplier and RELU6, SAME average pooling
// with a partial window at the edge, MEAN keeping its dimensions, SQUEEZE,
// RESHAPE and a VALID strided max pool.
func chainModel(t *testing.T) *resnet.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 3))
	g := build.New("onnx export chain")
	x := g.Input("image", 1, 11, 9, 4)
	x = g.DepthwiseConv2D("dw", x, build.DepthwiseSpec{KH: 3, KW: 3, Mult: 2, StrideH: 2, StrideW: 1,
		Padding: resnet.PaddingSame, Act: resnet.ActRelu6, Weights: normal(r, 3*3*8), Bias: normal(r, 8)})
	x = g.AveragePool2D("avg", x, 2, 1, resnet.PaddingSame)
	x = g.Conv2D("pw", x, build.ConvSpec{Out: 6, KH: 1, KW: 1, Padding: resnet.PaddingValid, Weights: normal(r, 6*8), Bias: normal(r, 6)})
	x = g.MaxPool2D("max", x, 2, 2, resnet.PaddingValid)
	emb := g.SpatialMean("mean", x, true)
	emb = g.Squeeze("squeeze", emb, []int{1, 2})
	s := g.Shape(x)
	flat := g.Reshape("flat", x, []int{1, s[1] * s[2] * s[3]})
	logits := g.FullyConnected("fc", flat, 5, normal(r, 5*s[1]*s[2]*s[3]), normal(r, 5), resnet.ActNone)
	g.Output(g.Softmax("scores", logits, 1))
	g.Output(emb)
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

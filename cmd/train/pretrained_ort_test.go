package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/ort"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/train"
)

// This file is issue 16 §5's witness for `pretrained`: ONNX Runtime runs a twin of the network
// that is written here straight from the torchvision state dict, in PyTorch's own layout and
// semantics (NCHW, Conv with the unfolded weights, BatchNormalization with the running
// statistics and eps 1e-5, the v1.5 bottleneck, Gemm with fc.weight transposed), and our
// model-float.tflite must compute the same scores and embedding. Nothing of the twin comes from
// our .tflite, our importer or our ONNX exporter (resnet/onnx): even the protobuf is encoded
// here, so a mistake in folding, layout or strides on our side cannot be repeated on the other.

// torchvisionWeights returns random weights with torchvision's names and shapes for arch at
// base width 64 and k classes. Convolutions are He-initialised (N(0, 2/fan_in)); every batch
// norm has non-trivial statistics (running_var in [0.5, 2], running_mean ~ N(0, 0.1),
// weight in [0.8, 1.2], bias ~ N(0, 0.1)), so that dropping or misapplying any part of the
// folding changes the outputs. The last batch norm of each residual branch has its weight
// divided by sqrt(blocks) as well (Fixup's rule): with running statistics instead of batch
// statistics nothing renormalises, and at weight ~1 every block would double the variance
// (ResNet-50: 2^16), the scores would be one-hot and the comparison would test little (tried:
// without the division ResNet-50's top score is 1 on every image and its scores differ between
// images by 4e-13).
func torchvisionWeights(arch string, k int, seed uint64) []train.NamedTensor {
	names, shapes := torchvisionStateDict(arch, k)
	blocks := 0
	for _, n := range names {
		if strings.HasSuffix(n, ".conv1.weight") && strings.HasPrefix(n, "layer") {
			blocks++
		}
	}
	bottleneck := slices.Contains(names, "layer1.0.conv3.weight")
	lastBN := ".bn2."
	if bottleneck {
		lastBN = ".bn3."
	}
	rng := rand.New(rand.NewPCG(seed, 16))
	var out []train.NamedTensor
	for _, n := range names {
		s := shapes[n]
		size := 1
		for _, d := range s {
			size *= d
		}
		v := make([]float32, size)
		for i := range v {
			switch {
			case strings.HasSuffix(n, "running_var"):
				v[i] = float32(0.5 + 1.5*rng.Float64())
			case strings.HasSuffix(n, "running_mean"), strings.HasSuffix(n, ".bias"):
				v[i] = float32(0.1 * rng.NormFloat64())
			case n == "fc.weight":
				v[i] = float32(2 * rng.NormFloat64() / math.Sqrt(float64(s[1])))
			case len(s) == 1: // a batch norm's weight
				g := 0.8 + 0.4*rng.Float64()
				if strings.Contains(n, lastBN) {
					g /= math.Sqrt(float64(blocks))
				}
				v[i] = float32(g)
			default: // a convolution, [out, in, kh, kw]
				v[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(size/s[0])))
			}
		}
		out = append(out, train.NamedTensor{Name: n, Shape: s, Data: v})
	}
	return out
}

// torchvisionStateDict lists the tensors of torchvision's resnet18 or resnet50 (base width 64,
// k classes) with their shapes, written here from torchvision's definition (BasicBlock
// [2 2 2 2], Bottleneck [3 4 6 3] with expansion 4) rather than taken from our importer's list,
// so that a mistake there cannot be repeated on both sides. num_batches_tracked is left out:
// the importer ignores it and the twin has no use for it.
func torchvisionStateDict(arch string, k int) (names []string, shapes map[string][]int) {
	shapes = map[string][]int{}
	add := func(n string, s ...int) {
		names = append(names, n)
		shapes[n] = s
	}
	bn := func(p string, c int) {
		for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
			add(p+"."+s, c)
		}
	}
	depths, expansion := []int{2, 2, 2, 2}, 1
	if arch == "resnet50" {
		depths, expansion = []int{3, 4, 6, 3}, 4
	}
	add("conv1.weight", 64, 3, 7, 7)
	bn("bn1", 64)
	in := 64
	for l, d := range depths {
		planes := 64 << l
		for b := range d {
			p := fmt.Sprintf("layer%d.%d", l+1, b)
			if expansion == 1 {
				add(p+".conv1.weight", planes, in, 3, 3)
				bn(p+".bn1", planes)
				add(p+".conv2.weight", planes, planes, 3, 3)
				bn(p+".bn2", planes)
			} else {
				add(p+".conv1.weight", planes, in, 1, 1)
				bn(p+".bn1", planes)
				add(p+".conv2.weight", planes, planes, 3, 3)
				bn(p+".bn2", planes)
				add(p+".conv3.weight", planes*expansion, planes, 1, 1)
				bn(p+".bn3", planes*expansion)
			}
			if b == 0 && (l > 0 || in != planes*expansion) {
				add(p+".downsample.0.weight", planes*expansion, in, 1, 1)
				bn(p+".downsample.1", planes*expansion)
			}
			in = planes * expansion
		}
	}
	add("fc.weight", k, in)
	add("fc.bias", k)
	return names, shapes
}

// onnxTwin writes the ONNX graph of a torchvision ResNet from its state dict: input "image"
// NHWC [1, h, w, 3] (the normalised image our model takes), transposed to NCHW; outputs
// "scores" (softmax of fc) and "embedding" (the pooled features fc reads).
func onnxTwin(ts []train.NamedTensor, h, w int) ([]byte, error) {
	byName := map[string]train.NamedTensor{}
	for _, nt := range ts {
		byName[nt.Name] = nt
	}
	var g twinGraph
	used := map[string]bool{}
	param := func(name string) (string, error) {
		if _, ok := byName[name]; !ok {
			return "", fmt.Errorf("state dict has no %s", name)
		}
		used[name] = true
		return name, nil
	}
	var err error
	must := func(name string) string {
		p, e := param(name)
		if e != nil && err == nil {
			err = e
		}
		return p
	}
	conv := func(x, weight string, stride int) string {
		k := byName[weight].Shape[2]
		p := int64((k - 1) / 2)
		return g.node("Conv", []string{x, must(weight)}, intsAttr("kernel_shape", int64(k), int64(k)),
			intsAttr("strides", int64(stride), int64(stride)), intsAttr("pads", p, p, p, p))
	}
	bn := func(x, prefix string) string {
		return g.node("BatchNormalization", []string{x, must(prefix + ".weight"), must(prefix + ".bias"),
			must(prefix + ".running_mean"), must(prefix + ".running_var")}, floatAttr("epsilon", 1e-5))
	}
	relu := func(x string) string { return g.node("Relu", []string{x}) }

	x := g.node("Transpose", []string{"image"}, intsAttr("perm", 0, 3, 1, 2))
	x = relu(bn(conv(x, "conv1.weight", 2), "bn1"))
	x = g.node("MaxPool", []string{x}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intsAttr("pads", 1, 1, 1, 1))
	for layer := 1; layer <= 4; layer++ {
		for b := 0; ; b++ {
			p := fmt.Sprintf("layer%d.%d", layer, b)
			if _, ok := byName[p+".conv1.weight"]; !ok {
				if b == 0 {
					return nil, fmt.Errorf("state dict has no %s.conv1.weight", p)
				}
				break
			}
			stride := 1
			if layer > 1 && b == 0 {
				stride = 2
			}
			var y string
			if _, ok := byName[p+".conv3.weight"]; ok {
				// Bottleneck v1.5: 1x1, 3x3 with the stride, 1x1.
				y = relu(bn(conv(x, p+".conv1.weight", 1), p+".bn1"))
				y = relu(bn(conv(y, p+".conv2.weight", stride), p+".bn2"))
				y = bn(conv(y, p+".conv3.weight", 1), p+".bn3")
			} else {
				y = relu(bn(conv(x, p+".conv1.weight", stride), p+".bn1"))
				y = bn(conv(y, p+".conv2.weight", 1), p+".bn2")
			}
			short := x
			if _, ok := byName[p+".downsample.0.weight"]; ok {
				short = bn(conv(x, p+".downsample.0.weight", stride), p+".downsample.1")
			}
			x = relu(g.node("Add", []string{y, short}))
		}
	}
	x = g.node("GlobalAveragePool", []string{x})
	g.nodes = append(g.nodes, twinNode{op: "Flatten", in: []string{x}, out: "embedding", attrs: [][]byte{intAttr("axis", 1)}})
	logits := g.node("Gemm", []string{"embedding", must("fc.weight"), must("fc.bias")}, intAttr("transB", 1))
	g.nodes = append(g.nodes, twinNode{op: "Softmax", in: []string{logits}, out: "scores", attrs: [][]byte{intAttr("axis", 1)}})
	if err != nil {
		return nil, err
	}
	for _, nt := range ts {
		if !used[nt.Name] {
			return nil, fmt.Errorf("the twin does not use %s: it is not the network the state dict describes", nt.Name)
		}
	}
	fc := byName["fc.weight"].Shape
	return g.model("torchvision-resnet-twin", ts, nil, []int64{1, int64(h), int64(w), 3}, int64(fc[0]), int64(fc[1])), nil
}

// The few messages of ONNX's protobuf schema (onnx/onnx.proto) the twin needs, encoded by hand:
// ModelProto{1 ir_version, 7 graph, 8 opset_import{2 version}}, GraphProto{1 node, 2 name,
// 5 initializer, 11 input, 12 output}, NodeProto{1 input, 2 output, 4 op_type, 5 attribute},
// AttributeProto{1 name, 2 f, 3 i, 8 ints, 20 type (FLOAT 1, INT 2, INTS 7)},
// TensorProto{1 dims, 2 data_type (FLOAT 1), 8 name, 9 raw_data}, ValueInfoProto{1 name,
// 2 type{1 tensor_type{1 elem_type, 2 shape{1 dim{1 dim_value}}}}}.
type twinNode struct {
	op, out string
	in      []string
	attrs   [][]byte
}

type twinGraph struct{ nodes []twinNode }

func (g *twinGraph) node(op string, in []string, attrs ...[]byte) string {
	out := fmt.Sprintf("t%d_%s", len(g.nodes), strings.ToLower(op))
	g.nodes = append(g.nodes, twinNode{op: op, in: in, out: out, attrs: attrs})
	return out
}

func pbBytes(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func pbVarint(b []byte, num protowire.Number, v int64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(v))
}

func intsAttr(name string, v ...int64) []byte {
	b := pbBytes(nil, 1, []byte(name))
	for _, x := range v {
		b = pbVarint(b, 8, x)
	}
	return pbVarint(b, 20, 7)
}

func intAttr(name string, v int64) []byte {
	return pbVarint(pbVarint(pbBytes(nil, 1, []byte(name)), 3, v), 20, 2)
}

func floatAttr(name string, v float32) []byte {
	b := pbBytes(nil, 1, []byte(name))
	b = protowire.AppendFixed32(protowire.AppendTag(b, 2, protowire.Fixed32Type), math.Float32bits(v))
	return pbVarint(b, 20, 1)
}

func valueInfo(name string, dims ...int64) []byte {
	var shape []byte
	for _, d := range dims {
		shape = pbBytes(shape, 1, pbVarint(nil, 1, d))
	}
	tensor := pbBytes(pbVarint(nil, 1, 1), 2, shape)
	return pbBytes(pbBytes(nil, 1, []byte(name)), 2, pbBytes(nil, 1, tensor))
}

// model encodes the graph as an ONNX model named name: float initializers
// ts, int64 initializers ints (Pad's pads), one image input, the scores
// and the embedding out.
func (g *twinGraph) model(name string, ts []train.NamedTensor, ints map[string][]int64, input []int64, classes, width int64) []byte {
	var gb []byte
	for _, n := range g.nodes {
		var nb []byte
		for _, in := range n.in {
			nb = pbBytes(nb, 1, []byte(in))
		}
		nb = pbBytes(nb, 2, []byte(n.out))
		nb = pbBytes(nb, 4, []byte(n.op))
		for _, a := range n.attrs {
			nb = pbBytes(nb, 5, a)
		}
		gb = pbBytes(gb, 1, nb)
	}
	gb = pbBytes(gb, 2, []byte(name))
	for _, nt := range ts {
		var tb []byte
		for _, d := range nt.Shape {
			tb = pbVarint(tb, 1, int64(d))
		}
		tb = pbVarint(tb, 2, 1)
		tb = pbBytes(tb, 8, []byte(nt.Name))
		raw := make([]byte, 0, 4*len(nt.Data))
		for _, v := range nt.Data {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
		gb = pbBytes(gb, 5, pbBytes(tb, 9, raw))
	}
	for name, v := range ints {
		tb := pbVarint(nil, 1, int64(len(v)))
		tb = pbVarint(tb, 2, 7) // INT64
		tb = pbBytes(tb, 8, []byte(name))
		var raw []byte
		for _, x := range v {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(x))
		}
		gb = pbBytes(gb, 5, pbBytes(tb, 9, raw))
	}
	gb = pbBytes(gb, 11, valueInfo("image", input...))
	gb = pbBytes(gb, 12, valueInfo("scores", 1, classes))
	gb = pbBytes(gb, 12, valueInfo("embedding", 1, width))
	b := pbVarint(nil, 1, 7) // IR version 7 goes with opset 13
	b = pbBytes(b, 7, gb)
	return pbBytes(b, 8, pbVarint(nil, 2, 13))
}

// maxRelDiff is the largest |a-b| over the largest |b|.
func maxRelDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// TestPretrainedAgreesWithAnONNXTwinOfTheTorchvisionNetwork: for random torchvision weights
// written as safetensors, `pretrained`'s model-float.tflite (batch norms folded, NHWC, our
// runtime) and the unfolded NCHW twin in ONNX Runtime give the same scores and embedding on
// random normalised images, within 1e-4 of each output's largest value (float32 summation
// order is all that differs). ResNet-50 runs at 224, its torchvision size: the whole test
// takes about 5 s on 2 cores.
//
// Measured (3 images each, ONNX Runtime 1.30.0, 2 threads): ResNet-18 64x64 1.5e-6 (scores),
// 4.9e-7 (embedding); ResNet-50 224x224 2.2e-5 (scores), 3.7e-7 (embedding). Broken folding
// fails it: eps 1e-3 instead of 1e-5 in train/export.go gives 2.5e-3..5e-3, the running mean
// left out 0.03..0.12.
func TestPretrainedAgreesWithAnONNXTwinOfTheTorchvisionNetwork(t *testing.T) {
	if err := ort.Available(); err != nil {
		t.Skipf("ONNX Runtime is not installed (make setup installs it): %v", err)
	}
	if testing.Short() {
		t.Skip("imports and runs ResNet-18 and ResNet-50 in two runtimes")
	}
	const (
		tol     = 1e-4
		images  = 3
		classes = 1000
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := ort.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		arch  string
		input int
		width int
	}{{"resnet18", 64, 512}, {"resnet50", 224, 2048}} {
		t.Run(tc.arch, func(t *testing.T) {
			dir := t.TempDir()
			ts := torchvisionWeights(tc.arch, classes, 5)
			weights := filepath.Join(dir, tc.arch+".safetensors")
			writePretrainedSafetensors(t, weights, ts)
			twin, err := onnxTwin(ts, tc.input, tc.input)
			if err != nil {
				t.Fatal(err)
			}
			twinPath := filepath.Join(dir, "twin.onnx")
			if err := os.WriteFile(twinPath, twin, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			if code, _, e := cli("pretrained", "--arch", tc.arch, "--weights", weights, "--input", fmt.Sprint(tc.input), "--out", out); code != 0 {
				t.Fatalf("pretrained: exit %d: %s", code, e)
			}
			m, err := resnet.LoadFile(filepath.Join(out, "model-float.tflite"))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(tc.input), 7))
			var worstScores, worstEmb, spread float64
			var first []float32
			for img := range images {
				x := make([]float32, tc.input*tc.input*3)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				xPath := filepath.Join(dir, fmt.Sprintf("x%d.npy", img))
				if err := npy.Write(xPath, []int{1, tc.input, tc.input, 3}, x); err != nil {
					t.Fatal(err)
				}
				sPath, ePath := filepath.Join(dir, fmt.Sprintf("s%d.npy", img)), filepath.Join(dir, fmt.Sprintf("e%d.npy", img))
				if _, err := r.Do(ort.Job{Model: twinPath, Inputs: []string{xPath}, Outputs: []string{sPath, ePath}, Threads: 2}); err != nil {
					t.Fatal(err)
				}
				wantS, wantE := readNPY(t, sPath, classes), readNPY(t, ePath, tc.width)
				scores, emb := runModel(t, m, x)
				if len(scores) != classes || len(emb) != tc.width {
					t.Fatalf("model-float.tflite gives %d scores and a %d-value embedding, want %d and %d", len(scores), len(emb), classes, tc.width)
				}
				ds, de := maxRelDiff(scores, wantS), maxRelDiff(emb, wantE)
				if ds > tol || de > tol {
					t.Errorf("image %d: model-float.tflite differs from the ONNX twin by %.3g (scores) and %.3g (embedding) of the largest value, want <= %g",
						img, ds, de, tol)
				}
				worstScores, worstEmb = max(worstScores, ds), max(worstEmb, de)
				if top := slices.Max(wantS); top > 0.99 {
					t.Errorf("image %d: the twin's top score is %.4g: the network is saturated, the comparison proves little", img, top)
				}
				if img == 0 {
					first = wantS
				} else {
					spread = max(spread, maxRelDiff(wantS, first))
				}
			}
			// The outputs must depend on the image far more than the tolerance allows, or a
			// model that ignored its input could pass.
			if spread < 100*tol {
				t.Errorf("the twin's scores differ between images by only %.3g of the largest value: the network ignores its input", spread)
			}
			t.Logf("%s %dx%d, %d images: largest difference %.3g (scores), %.3g (embedding) of the largest value; scores differ between images by %.3g",
				tc.arch, tc.input, tc.input, images, worstScores, worstEmb, spread)
		})
	}
}

func readNPY(t *testing.T, path string, n int) []float32 {
	t.Helper()
	shape, v, err := npy.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{1, n}) {
		t.Fatalf("%s: shape %v, want [1 %d]", path, shape, n)
	}
	f, ok := v.([]float32)
	if !ok {
		t.Fatalf("%s holds %T, want float32", path, v)
	}
	return f
}

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/ort"
	"github.com/shortcut-edge/shortcut/internal/repo"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/h5"
)

// This file is issue 16 §5's witness for `pretrained --arch keras-resnet50`. The weights are
// written as Keras 2 writes them (HDF5 via h5wasm, the HDF5 C library; layer_names,
// weight_names, <layer>/<layer>/kernel:0), read back by jsfive (an independent JavaScript
// reader) to check our own HDF5 reader, and an ONNX twin of Keras' ResNet50 is written here
// from the same numbers in Keras' own semantics: BGR input, ZeroPadding then VALID
// convolution and max pool, convolutions with biases, BatchNormalization with epsilon
// 1.001e-5, the v1 block (stride on the first 1x1 and on the shortcut). The layer list below
// is written from keras.applications.resnet (ResNet50, stack1, block1), not taken from
// train/models, so a mistake there cannot be repeated here.

type kerasTestWeight struct {
	name  string // Keras' weight name: conv1_conv/kernel:0
	shape []int
	data  []float32
	dtype string // "" (float32) or an h5wasm dtype, for the wrong-type file
}

type kerasTestLayer struct {
	name    string
	weights []kerasTestWeight
}

// kerasResNet50 lists Keras' ResNet50(include_top=False, pooling='avg') layers (those without
// weights too, as Keras writes every layer), plus a Dense(classes) named dense when classes >
// 0, with random weights: convolutions He-initialised with N(0, 0.1) biases, batch norms with
// non-trivial statistics (gamma in [0.8, 1.2], beta, moving_mean ~ N(0, 0.1), moving_variance
// in [0.5, 2]); the last batch norm of each residual branch has gamma divided by 4 (sqrt of
// the 16 blocks), or the running statistics would let every block double the variance and the
// scores would be one-hot (see torchvisionWeights).
func kerasResNet50(classes int, seed uint64) []kerasTestLayer {
	rng := rand.New(rand.NewPCG(seed, 50))
	normal := func(n int, sd float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(sd * rng.NormFloat64())
		}
		return v
	}
	uniform := func(n int, lo, hi, div float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((lo + (hi-lo)*rng.Float64()) / div)
		}
		return v
	}
	var ls []kerasTestLayer
	plain := func(names ...string) {
		for _, n := range names {
			ls = append(ls, kerasTestLayer{name: n})
		}
	}
	conv := func(name string, k, in, out int) {
		ls = append(ls, kerasTestLayer{name: name, weights: []kerasTestWeight{
			{name: name + "/kernel:0", shape: []int{k, k, in, out}, data: normal(k*k*in*out, math.Sqrt(2/float64(k*k*in)))},
			{name: name + "/bias:0", shape: []int{out}, data: normal(out, 0.1)},
		}})
	}
	bn := func(name string, c int, last bool) {
		div := 1.0
		if last {
			div = 4
		}
		ls = append(ls, kerasTestLayer{name: name, weights: []kerasTestWeight{
			{name: name + "/gamma:0", shape: []int{c}, data: uniform(c, 0.8, 1.2, div)},
			{name: name + "/beta:0", shape: []int{c}, data: normal(c, 0.1)},
			{name: name + "/moving_mean:0", shape: []int{c}, data: normal(c, 0.1)},
			{name: name + "/moving_variance:0", shape: []int{c}, data: uniform(c, 0.5, 2, 1)},
		}})
	}
	plain("input_1", "conv1_pad")
	conv("conv1_conv", 7, 3, 64)
	bn("conv1_bn", 64, false)
	plain("conv1_relu", "pool1_pad", "pool1_pool")
	in := 64
	for s, blocks := range []int{3, 4, 6, 3} {
		filters := 64 << s
		for b := 1; b <= blocks; b++ {
			p := fmt.Sprintf("conv%d_block%d", s+2, b)
			conv(p+"_1_conv", 1, in, filters)
			bn(p+"_1_bn", filters, false)
			plain(p + "_1_relu")
			conv(p+"_2_conv", 3, filters, filters)
			bn(p+"_2_bn", filters, false)
			plain(p + "_2_relu")
			if b == 1 {
				conv(p+"_0_conv", 1, in, 4*filters)
			}
			conv(p+"_3_conv", 1, filters, 4*filters)
			if b == 1 {
				bn(p+"_0_bn", 4*filters, false)
			}
			bn(p+"_3_bn", 4*filters, true)
			plain(p+"_add", p+"_out")
			in = 4 * filters
		}
	}
	plain("avg_pool")
	if classes > 0 {
		ls = append(ls, kerasTestLayer{name: "dense", weights: []kerasTestWeight{
			{name: "dense/kernel:0", shape: []int{2048, classes}, data: normal(2048*classes, 2/math.Sqrt(2048))},
			{name: "dense/bias:0", shape: []int{classes}, data: normal(classes, 0.1)},
		}})
	}
	return ls
}

// kerasNode returns the node that runs tools/ort-node's scripts and that folder, or skips.
func kerasNode(t *testing.T) (node, dir string) {
	t.Helper()
	if err := ort.Available(); err != nil {
		t.Skipf("tools/ort-node is not installed (make setup installs it): %v", err)
	}
	dir, err := repo.Find("tools/ort-node/keras-h5.mjs")
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "h5wasm", "package.json")); err != nil {
		t.Skipf("h5wasm is not installed in %s/node_modules: run tools/ort-node/setup.sh", dir)
	}
	node = os.Getenv(witness.NodeEnv)
	if local := filepath.Join(filepath.Dir(dir), "tflite-node", ".node", "bin", "node"); node == "" {
		if _, err := os.Stat(local); err == nil {
			node = local
		} else if node, err = exec.LookPath("node"); err != nil {
			t.Skip("node is not on PATH")
		}
	}
	return node, dir
}

// writeKerasH5 writes each file's layers as a Keras 2 weights file with h5wasm, as h5py does
// by default (superblock 0, symbol-table groups, fixed-length strings), in one node run.
func writeKerasH5(t *testing.T, files map[string][]kerasTestLayer) {
	t.Helper()
	node, dir := kerasNode(t)
	tmp := t.TempDir()
	var specs []map[string]any
	i := 0
	for out, ls := range files {
		var blob []byte
		var layers []map[string]any
		for _, l := range ls {
			ws := []map[string]any{}
			for _, w := range l.weights {
				m := map[string]any{"name": w.name, "shape": w.shape, "offset": len(blob)}
				if w.dtype != "" {
					m["dtype"] = w.dtype
				}
				ws = append(ws, m)
				for _, x := range w.data {
					blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(x))
				}
			}
			layers = append(layers, map[string]any{"name": l.name, "weights": ws})
		}
		bp := filepath.Join(tmp, fmt.Sprintf("w%d.bin", i))
		i++
		if err := os.WriteFile(bp, blob, 0o644); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, map[string]any{"out": out, "blob": bp, "layers": layers, "strings": "fixed",
			"libver": []string{"earliest", "v108"}})
	}
	js, _ := json.Marshal(specs)
	sp := filepath.Join(tmp, "specs.json")
	if err := os.WriteFile(sp, js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "keras-h5.mjs", "write", sp, "-")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keras-h5.mjs write: %v: %s", err, b)
	}
}

// kerasTestFiles are the Keras files the subtests of TestKerasResNet50 share (ResNet50: 25.6 M
// weights, 100 MB a file): with a 10-class Dense, the notop file, one without conv4_block6 (another
// architecture) and one whose conv3_block2_2_conv kernel is int32.
type kerasTestFiles struct {
	full, notop, noBlock, intKernel string
	layers                          []kerasTestLayer
}

const kerasClasses = 10

func writeKerasTestFiles(t *testing.T) *kerasTestFiles {
	t.Helper()
	dir := t.TempDir()
	kf := &kerasTestFiles{layers: kerasResNet50(kerasClasses, 3),
		full: filepath.Join(dir, "resnet50-dense10.h5"), notop: filepath.Join(dir, "resnet50-notop.h5"),
		noBlock: filepath.Join(dir, "resnet50-no-conv4-block6.h5"), intKernel: filepath.Join(dir, "resnet50-int-kernel.h5")}
	noBlock := slices.DeleteFunc(slices.Clone(kf.layers), func(l kerasTestLayer) bool { return strings.HasPrefix(l.name, "conv4_block6_") })
	intKernel := slices.Clone(kf.layers)
	for i, l := range intKernel {
		if l.name == "conv3_block2_2_conv" {
			ws := slices.Clone(l.weights)
			ws[0].dtype = "<i"
			intKernel[i].weights = ws
		}
	}
	writeKerasH5(t, map[string][]kerasTestLayer{kf.full: kf.layers, kf.notop: kf.layers[:len(kf.layers)-1],
		kf.noBlock: noBlock, kf.intKernel: intKernel})
	return kf
}

// TestKerasResNet50 runs `pretrained --arch keras-resnet50` on Keras files that h5wasm wrote.
func TestKerasResNet50(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB Keras files and runs ResNet50 in two runtimes")
	}
	kerasNode(t)
	kf := writeKerasTestFiles(t)
	t.Run("our HDF5 reader reads what jsfive reads", func(t *testing.T) { testKerasReaderAgreesWithJsfive(t, kf) })
	t.Run("agrees with an ONNX twin", func(t *testing.T) { testKerasAgreesWithONNXTwin(t, kf) })
	t.Run("bad input", func(t *testing.T) { testKerasBadInput(t, kf) })
}

// testKerasReaderAgreesWithJsfive: every weight of the h5wasm-written Keras file, read by
// train/h5, is bit for bit what jsfive reads (and what was written).
func testKerasReaderAgreesWithJsfive(t *testing.T, kf *kerasTestFiles) {
	node, dir := kerasNode(t)
	out := t.TempDir()
	cmd := exec.Command(node, "keras-h5.mjs", "read", kf.full, out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keras-h5.mjs read: %v: %s", err, b)
	}
	var index struct {
		LayerNames []string `json:"layer_names"`
		Tensors    []struct {
			Path   string
			Shape  []int
			Offset int
		}
	}
	js, err := os.ReadFile(filepath.Join(out, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &index); err != nil {
		t.Fatal(err)
	}
	values, err := os.ReadFile(filepath.Join(out, "values.bin"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(kf.full)
	if err != nil {
		t.Fatal(err)
	}
	f, err := h5.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	root, err := f.Root()
	if err != nil {
		t.Fatal(err)
	}
	names, err := root.Attr("layer_names")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names.Strings, index.LayerNames) {
		t.Fatalf("layer_names: ours %d names, jsfive's %d", len(names.Strings), len(index.LayerNames))
	}
	written := map[string][]float32{}
	for _, l := range kf.layers {
		for _, w := range l.weights {
			written[l.name+"/"+w.name] = w.data
		}
	}
	if len(index.Tensors) != len(written) {
		t.Fatalf("jsfive read %d tensors, %d were written", len(index.Tensors), len(written))
	}
	total := 0
	for _, ti := range index.Tensors {
		o, err := root.Open(ti.Path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := o.Dataset()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Shape, ti.Shape) {
			t.Fatalf("%s: our shape %v, jsfive's %v", ti.Path, d.Shape, ti.Shape)
		}
		v, err := d.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			js := math.Float64frombits(binary.LittleEndian.Uint64(values[ti.Offset+8*i:]))
			if float64(x) != js || x != written[ti.Path][i] {
				t.Fatalf("%s[%d]: ours %v, jsfive's %v, written %v", ti.Path, i, x, js, written[ti.Path][i])
			}
		}
		total += len(v)
	}
	t.Logf("%d tensors, %d values (%d bytes of HDF5): train/h5 and jsfive read the same bits", len(index.Tensors), total, len(b))
}

// kerasTwin writes the ONNX graph of Keras' ResNet50 from the Keras weights: input "image"
// NHWC [1, h, w, 3] in Keras' own convention (BGR, caffe-preprocessed), outputs "scores" and
// "embedding".
func kerasTwin(ls []kerasTestLayer, h, w int) ([]byte, error) {
	byName := map[string]kerasTestWeight{}
	for _, l := range ls {
		for _, wt := range l.weights {
			byName[strings.TrimSuffix(wt.name, ":0")] = wt
		}
	}
	var g twinGraph
	var inits []train.NamedTensor
	pads := map[string][]int64{}
	var err error
	param := func(name string) string {
		wt, ok := byName[name]
		if !ok {
			if err == nil {
				err = fmt.Errorf("no weight %s", name)
			}
			return name
		}
		if len(wt.shape) == 4 { // HWIO -> OIHW
			kh, kw, ci, co := wt.shape[0], wt.shape[1], wt.shape[2], wt.shape[3]
			v := make([]float32, len(wt.data))
			for a := range kh {
				for b := range kw {
					for i := range ci {
						for o := range co {
							v[((o*ci+i)*kh+a)*kw+b] = wt.data[((a*kw+b)*ci+i)*co+o]
						}
					}
				}
			}
			inits = append(inits, train.NamedTensor{Name: name, Shape: []int{co, ci, kh, kw}, Data: v})
		} else {
			inits = append(inits, train.NamedTensor{Name: name, Shape: wt.shape, Data: wt.data})
		}
		return name
	}
	pad := func(x string, p int64) string {
		name := fmt.Sprintf("pads%d", p)
		pads[name] = []int64{0, 0, p, p, 0, 0, p, p}
		return g.node("Pad", []string{x, name})
	}
	conv := func(x, name string, stride int64) string {
		k := int64(byName[name+"/kernel"].shape[0])
		attrs := [][]byte{intsAttr("kernel_shape", k, k), intsAttr("strides", stride, stride)}
		if k == 3 { // padding='SAME' at stride 1
			attrs = append(attrs, intsAttr("pads", 1, 1, 1, 1))
		}
		return g.node("Conv", []string{x, param(name + "/kernel"), param(name + "/bias")}, attrs...)
	}
	bn := func(x, name string) string {
		return g.node("BatchNormalization", []string{x, param(name + "/gamma"), param(name + "/beta"),
			param(name + "/moving_mean"), param(name + "/moving_variance")}, floatAttr("epsilon", 1.001e-5))
	}
	relu := func(x string) string { return g.node("Relu", []string{x}) }

	x := g.node("Transpose", []string{"image"}, intsAttr("perm", 0, 3, 1, 2))
	x = relu(bn(conv(pad(x, 3), "conv1_conv", 2), "conv1_bn"))
	x = g.node("MaxPool", []string{pad(x, 1)}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2))
	for s, blocks := range []int{3, 4, 6, 3} {
		for b := 1; b <= blocks; b++ {
			p := fmt.Sprintf("conv%d_block%d", s+2, b)
			stride := int64(1)
			if b == 1 && s > 0 {
				stride = 2
			}
			short := x
			if b == 1 {
				short = bn(conv(x, p+"_0_conv", stride), p+"_0_bn")
			}
			y := relu(bn(conv(x, p+"_1_conv", stride), p+"_1_bn"))
			y = relu(bn(conv(y, p+"_2_conv", 1), p+"_2_bn"))
			y = bn(conv(y, p+"_3_conv", 1), p+"_3_bn")
			x = relu(g.node("Add", []string{short, y}))
		}
	}
	x = g.node("GlobalAveragePool", []string{x})
	g.nodes = append(g.nodes, twinNode{op: "Flatten", in: []string{x}, out: "embedding", attrs: [][]byte{intAttr("axis", 1)}})
	logits := g.node("Gemm", []string{"embedding", param("dense/kernel"), param("dense/bias")})
	g.nodes = append(g.nodes, twinNode{op: "Softmax", in: []string{logits}, out: "scores", attrs: [][]byte{intAttr("axis", 1)}})
	if err != nil {
		return nil, err
	}
	if len(inits) != len(byName) {
		return nil, fmt.Errorf("the twin uses %d of the %d weights", len(inits), len(byName))
	}
	classes := int64(byName["dense/kernel"].shape[1])
	return g.model("keras-resnet50-twin", inits, pads, []int64{1, int64(h), int64(w), 3}, classes, 2048), nil
}

// testKerasAgreesWithONNXTwin: for random Keras ResNet50 weights with a 10-class
// Dense, written as Keras .h5, `pretrained --arch keras-resnet50` at 32x32 gives a
// model-float.tflite whose scores and embedding match ONNX Runtime running the unfolded twin
// in Keras' semantics, on several images: our model takes the RGB image normalised with its
// metadata, the twin the same image in BGR, as Keras' caffe preprocessing gives it. The notop
// file gives the same embedding and uniform placeholder scores.
func testKerasAgreesWithONNXTwin(t *testing.T, kf *kerasTestFiles) {
	const (
		tol    = 1e-4
		images = 4
		size   = 32
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := ort.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	twin, err := kerasTwin(kf.layers, size, size)
	if err != nil {
		t.Fatal(err)
	}
	twinPath := filepath.Join(dir, "twin.onnx")
	if err := os.WriteFile(twinPath, twin, 0o644); err != nil {
		t.Fatal(err)
	}
	out, outNotop := filepath.Join(dir, "out"), filepath.Join(dir, "notop")
	code, stdout, stderr := cli("pretrained", "--arch", "keras-resnet50", "--weights", kf.full, "--input", fmt.Sprint(size), "--out", out)
	if code != 0 {
		t.Fatalf("pretrained: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "keras-h5") || !strings.Contains(stdout, "10 classes") {
		t.Errorf("pretrained printed %q", stdout)
	}
	// The notop file with a placeholder head, calibrated: the int8 model must be written too
	// (a zero classifier must not break quantization).
	shots := filepath.Join(dir, "shots")
	writePNGs(t, shots, 32, size, 11)
	code, stdout, stderr = cli("pretrained", "--arch", "keras-resnet50", "--weights", kf.notop, "--classes", "5", "--input", fmt.Sprint(size),
		"--calibration", "images:"+shots, "--out", outNotop)
	if code != 0 {
		t.Fatalf("pretrained (notop): exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "NOTE:") || !strings.Contains(stdout, "PLACEHOLDER") {
		t.Errorf("pretrained (notop) printed no note about its placeholder classifier: %q", stdout)
	}
	m, err := resnet.LoadFile(filepath.Join(out, "model-float.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	mNotop, err := resnet.LoadFile(filepath.Join(outNotop, "model-float.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resnet.LoadFile(filepath.Join(outNotop, "model-int8.tflite")); err != nil {
		t.Fatal(err)
	}
	// The metadata says how to get Keras' input from an RGB image: (p/255 - mean)/std = p - m_caffe.
	for c, want := range []float64{123.68, 116.779, 103.939} {
		md := m.Meta
		got := (0 - float64(md.Mean[c])) / float64(md.Std[c])
		if math.Abs(got+want) > 1e-3 || math.Abs(float64(md.Std[c])*255-1) > 1e-6 {
			t.Errorf("channel %d: metadata mean %v std %v gives pixel 0 -> %v, Keras' caffe preprocessing gives %v", c, md.Mean[c], md.Std[c], got, -want)
		}
	}
	rng := rand.New(rand.NewPCG(32, 7))
	var worstScores, worstEmb, worstNotop, spread float64
	var first []float32
	for img := range images {
		// A normalised input: Keras' caffe values are pixel - mean, about +-128; the random
		// weights are scaled for unit inputs, so the test feeds values of that size.
		x := make([]float32, size*size*3)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		bgr := make([]float32, len(x))
		for p := 0; p < len(x); p += 3 {
			bgr[p], bgr[p+1], bgr[p+2] = x[p+2], x[p+1], x[p]
		}
		xPath := filepath.Join(dir, fmt.Sprintf("x%d.npy", img))
		if err := npy.Write(xPath, []int{1, size, size, 3}, bgr); err != nil {
			t.Fatal(err)
		}
		sPath, ePath := filepath.Join(dir, fmt.Sprintf("s%d.npy", img)), filepath.Join(dir, fmt.Sprintf("e%d.npy", img))
		if _, err := r.Do(ort.Job{Model: twinPath, Inputs: []string{xPath}, Outputs: []string{sPath, ePath}, Threads: 2}); err != nil {
			t.Fatal(err)
		}
		wantS, wantE := readNPY(t, sPath, kerasClasses), readNPY(t, ePath, 2048)
		scores, emb := runModel(t, m, x)
		if len(scores) != kerasClasses || len(emb) != 2048 {
			t.Fatalf("model-float.tflite gives %d scores and a %d-value embedding, want %d and 2048", len(scores), len(emb), kerasClasses)
		}
		ds, de := maxRelDiff(scores, wantS), maxRelDiff(emb, wantE)
		if ds > tol || de > tol {
			t.Errorf("image %d: model-float.tflite differs from the ONNX twin by %.3g (scores) and %.3g (embedding) of the largest value, want <= %g", img, ds, de, tol)
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
		ns, ne := runModel(t, mNotop, x)
		if dn := maxRelDiff(ne, wantE); dn > tol {
			t.Errorf("image %d: the notop model's embedding differs from the twin's by %.3g", img, dn)
		} else {
			worstNotop = max(worstNotop, dn)
		}
		for _, s := range ns {
			if math.Abs(float64(s)-0.2) > 1e-6 {
				t.Fatalf("image %d: the notop model's placeholder scores are %v, want 1/5 each", img, ns)
			}
		}
	}
	if spread < 100*tol {
		t.Errorf("the twin's scores differ between images by only %.3g of the largest value: the network ignores its input", spread)
	}
	t.Logf("keras-resnet50 %dx%d, %d images, ONNX Runtime %s: largest difference %.3g (scores), %.3g (embedding) of the largest value; notop embedding %.3g; scores differ between images by %.3g",
		size, size, images, r.ORTVersion, worstScores, worstEmb, worstNotop, spread)
}

// testKerasBadInput: a truncated file, a file of another
// architecture (a block missing), NaN weights, an integer kernel, a notop file without
// --classes, and Keras weights with a torchvision --arch: each a one-line error naming the file
// and what is wrong, and --out left as it was (absent).
func testKerasBadInput(t *testing.T, kf *kerasTestFiles) {
	dir := t.TempDir()
	full, err := os.ReadFile(kf.full)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.h5")
	if err := os.WriteFile(truncated, full[:len(full)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	// NaN weights: overwrite conv2_block1_1_conv's kernel value 5 in place (contiguous storage).
	var target []float32
	for _, l := range kf.layers {
		if l.name == "conv2_block1_1_conv" {
			target = l.weights[0].data
		}
	}
	var pattern []byte
	for _, x := range target[:8] {
		pattern = binary.LittleEndian.AppendUint32(pattern, math.Float32bits(x))
	}
	at := bytes.Index(full, pattern)
	if at < 0 {
		t.Fatal("conv2_block1_1_conv's kernel is not stored contiguously")
	}
	nan := slices.Clone(full)
	binary.LittleEndian.PutUint32(nan[at+20:], math.Float32bits(float32(math.NaN())))
	nanPath := filepath.Join(dir, "nan.h5")
	if err := os.WriteFile(nanPath, nan, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		args       []string
		want       []string
	}{
		{"truncated", truncated, nil, []string{"truncated"}},
		{"another architecture", kf.noBlock, nil, []string{"missing", "conv4_block6_1_conv/kernel"}},
		{"NaN weights", nanPath, nil, []string{"conv2_block1_1_conv/kernel:0[5] is NaN", "finite"}},
		{"an integer kernel", kf.intKernel, nil, []string{"conv3_block2_2_conv/kernel:0 holds int32, want float32 or float64"}},
		{"notop without --classes", kf.notop, nil, []string{"no classifier", "--classes N"}},
		{"10 outputs, 3 classes", kf.full, []string{"--classes", "3"}, []string{"10 outputs but 3 classes"}},
		{"Keras weights as torchvision resnet50", kf.full, []string{"--arch", "resnet50"}, []string{"Keras .h5", "--arch keras-resnet50"}},
		{"--format pth", kf.full, []string{"--format", "pth"}, []string{"--arch keras-resnet50 reads Keras .h5 weights"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
			args := []string{"pretrained", "--weights", tc.file, "--input", "32", "--out", out}
			if !slices.Contains(tc.args, "--arch") {
				args = append(args, "--arch", "keras-resnet50")
			}
			code, _, stderr := cli(append(args, tc.args...)...)
			msg := strings.TrimSpace(stderr)
			if code == 0 {
				t.Fatalf("exit 0, want an error")
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error of more than one line:\n%s", msg)
			}
			if !strings.Contains(msg, filepath.Base(tc.file)) && !strings.HasPrefix(tc.name, "--format") {
				t.Errorf("error does not name the file %s: %s", tc.file, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("--out %s exists after the error", out)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".out-*"))
			if len(left) > 0 {
				t.Errorf("half-written folders left: %v", left)
			}
			t.Logf("%s", msg)
		})
	}
}
